#if canImport(Glibc)
    import Glibc
#endif

// libFuzzer's driver, called from this executable's main: SwiftPM names the entry point of an
// executable target itself, so libFuzzer's own main is not the one that runs.
@_silgen_name("LLVMFuzzerRunDriver")
func runDriver(
    _ argc: UnsafeMutablePointer<CInt>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
    _ callback: @convention(c) (UnsafePointer<UInt8>, Int) -> CInt
) -> CInt

nonisolated(unsafe) let target = String(cString: getenv("AV_FUZZ_TARGET") ?? strdup(""))

var argc = CommandLine.argc
var argv = CommandLine.unsafeArgv
exit(
    runDriver(&argc, &argv) { data, size in
        Targets.run(target, Array(UnsafeBufferPointer(start: data, count: size)))
        return 0
    })
