#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Puts the finished directory `temporary` at `destination` so that a reader always sees either the
/// old directory or the new one, whole.
///
/// On Linux an existing destination is swapped with the new directory in one step
/// (`renameat2(RENAME_EXCHANGE)`), then the old one, now under the temporary name, is removed. Where
/// the exchange is unavailable (kernels or file systems without it, other systems) the fallback moves
/// the old directory aside and the new one in: two renames, with a moment in between where the
/// destination is missing (never partial). A missing destination is a single rename either way.
/// `exchange: false` takes the fallback (for its tests). Returns the way the directory went in.
@discardableResult
func replaceDirectory(_ destination: String, with temporary: String, exchange: Bool = true) throws(SafeTensorsError)
    -> DirectoryReplacement
{
    let kind = FileKind(of: destination)
    let how: DirectoryReplacement
    switch kind {
    case .missing:
        guard rename(temporary, destination) == 0 else {
            throw SafeTensorsError(file: destination, .io(operation: "rename into place", message: errnoText()))
        }
        how = .renamed
    case .directory:
        if exchange && exchangePaths(temporary, destination) {
            // `temporary` now names the old directory.
            try? FileManager.default.removeItem(atPath: temporary)
            how = .exchanged
        } else {
            try moveAsideAndReplace(destination, with: temporary)
            how = .movedAside
        }
    default:
        throw SafeTensorsError(
            file: destination,
            .refusedOutput(message: "exists and is \(kind.phrase); a model directory cannot replace it"))
    }
    TemporaryFiles.unregister(temporary)
    syncDirectory(of: destination)
    return how
}

/// How a finished directory was put in place.
enum DirectoryReplacement: Equatable {
    /// Nothing was there: one rename.
    case renamed
    /// Swapped with the old directory in one step: a reader sees the old or the new, never neither.
    case exchanged
    /// The fallback: the old directory moved aside, then the new one in (a moment with neither).
    case movedAside
}

/// The two-rename fallback: old directory aside, new one in, old one removed.
private func moveAsideAndReplace(_ destination: String, with temporary: String) throws(SafeTensorsError) {
    let (dir, name) = splitPath(destination)
    let aside = dir + "." + name + ".old-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
    guard rename(destination, aside) == 0 else {
        throw SafeTensorsError(file: destination, .io(operation: "move the old directory aside", message: errnoText()))
    }
    // Not registered for removal on signals: until the new directory is in, it is the only copy
    // of the previous model.
    guard rename(temporary, destination) == 0 else {
        let message = errnoText()
        _ = rename(aside, destination)
        throw SafeTensorsError(file: destination, .io(operation: "rename into place", message: message))
    }
    try? FileManager.default.removeItem(atPath: aside)
}

private typealias RenameAt2 = @convention(c) (Int32, UnsafePointer<CChar>, Int32, UnsafePointer<CChar>, UInt32) -> Int32

/// glibc's `renameat2`, looked up at run time: Swift's Glibc module does not export it, and glibc
/// before 2.28 lacks it.
nonisolated(unsafe) private let renameat2Function: RenameAt2? = {
    #if os(Linux)
        guard let handle = dlopen(nil, RTLD_NOW), let symbol = dlsym(handle, "renameat2") else { return nil }
        return unsafeBitCast(symbol, to: RenameAt2.self)
    #else
        return nil
    #endif
}()

/// Swaps two existing paths atomically; false where the system cannot (then nothing changed).
func exchangePaths(_ a: String, _ b: String) -> Bool {
    guard let renameat2 = renameat2Function else { return false }
    let renameExchange: UInt32 = 1 << 1
    return renameat2(AT_FDCWD, a, AT_FDCWD, b, renameExchange) == 0
}
