import Tensors

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// The memory this process may fill: the machine's, or less when its control group sets a limit (a
/// container, a CI runner's job, `systemd-run -p MemoryMax=`). Mapped files count against that limit
/// as page cache, so decisions to read a whole model ahead take it from here, not from the machine.
public enum MemoryLimit {
    /// The smaller of the machine's physical memory and the process's cgroup limit (v2 `memory.max`,
    /// v1 `memory.limit_in_bytes`), read once.
    public static let bytes: UInt64 = {
        let physical = ProcessInfo.processInfo.physicalMemory
        let cgroups = try? String(contentsOfFile: "/proc/self/cgroup", encoding: .utf8)
        let limit = cgroups.flatMap { cgroupLimit(cgroups: $0) { try? String(contentsOfFile: $0, encoding: .utf8) } }
        return limit.map { min($0, physical) } ?? physical
    }()

    /// The smallest memory limit among the cgroups listed in `cgroups` (the text of /proc/self/cgroup),
    /// each limit file read with `read`; nil when none is set or readable.
    static func cgroupLimit(cgroups: String, read: (String) -> String?) -> UInt64? {
        var limits: [UInt64] = []
        for line in cgroups.split(separator: "\n") {
            // "hierarchy-id:controllers:path": v2 is "0::/path", v1's memory line names "memory".
            let fields = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
            guard fields.count == 3 else { continue }
            let path = fields[2] == "/" ? "" : String(fields[2])
            let file: String
            if fields[0] == "0" && fields[1].isEmpty {
                file = "/sys/fs/cgroup" + path + "/memory.max"
            } else if fields[1].split(separator: ",").contains("memory") {
                file = "/sys/fs/cgroup/memory" + path + "/memory.limit_in_bytes"
            } else {
                continue
            }
            // "max" (v2's no limit) does not parse; v1's no limit is a huge number, above physical memory.
            if let value = read(file), let limit = UInt64(value.trimmingWhitespace()) { limits.append(limit) }
        }
        return limits.min()
    }
}
