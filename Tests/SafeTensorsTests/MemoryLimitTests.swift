import Foundation
import Testing

@testable import SafeTensors

/// The cgroup memory limit as /proc/self/cgroup and the limit files give it, for v1 and v2.
@Suite("Memory limit")
struct MemoryLimitTests {
    @Test("v2: the process's cgroup's memory.max; \"max\" is no limit")
    func v2() {
        let files = ["/sys/fs/cgroup/ci/job/memory.max": "17179869184\n"]
        #expect(MemoryLimit.cgroupLimit(cgroups: "0::/ci/job\n") { files[$0] } == 17_179_869_184)
        #expect(MemoryLimit.cgroupLimit(cgroups: "0::/\n") { _ in "max\n" } == nil)
        let root = ["/sys/fs/cgroup/memory.max": "4096"]
        #expect(MemoryLimit.cgroupLimit(cgroups: "0::/\n") { root[$0] } == 4096)
    }

    @Test("v1: the memory controller's limit_in_bytes; other controllers and unreadable files are ignored")
    func v1() {
        let cgroups = "12:pids:/x\n11:cpu,cpuacct:/x\n4:memory:/av-gate\n1:name=systemd:/x\n"
        let files = ["/sys/fs/cgroup/memory/av-gate/memory.limit_in_bytes": "8589934592"]
        #expect(MemoryLimit.cgroupLimit(cgroups: cgroups) { files[$0] } == 8_589_934_592)
        #expect(MemoryLimit.cgroupLimit(cgroups: cgroups) { _ in nil } == nil)
        #expect(MemoryLimit.cgroupLimit(cgroups: "") { _ in "1" } == nil)
    }

    @Test("the limit in force is at most the machine's memory")
    func inForce() {
        #expect(MemoryLimit.bytes > 0)
        #expect(MemoryLimit.bytes <= ProcessInfo.processInfo.physicalMemory)
    }
}
