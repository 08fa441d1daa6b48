import CofferFuzzHarness

/// libFuzzer's entry point. Built only by `.ci/fuzz` (COFFER_FUZZ=1, -sanitize=fuzzer,address).
/// Each input goes through the protocol parsers and, as a field value, through the vault core's
/// validators and masks. A property violation traps, so libFuzzer saves the input as a crash.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let input = size == 0 || data == nil ? [] : Array(UnsafeBufferPointer(start: data, count: size))
    let violations = ProtocolFuzzHarness.run(input) + ValueFuzzHarness.run(input)
    if !violations.isEmpty { fatalError("property violated: \(violations.joined(separator: "; "))") }
    return 0
}

typealias FuzzCallback = @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32

/// libFuzzer's driver, from the runtime -sanitize=fuzzer links in.
@_silgen_name("LLVMFuzzerRunDriver")
func runFuzzerDriver(
    _ argc: UnsafeMutablePointer<Int32>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ callback: FuzzCallback
) -> Int32

/// SwiftPM links an executable with `main` aliased to `<module>_main`, which shadows libFuzzer's
/// own `main`; so this is that entry point, and it hands over to libFuzzer's driver.
@_cdecl("CofferFuzzer_main")
public func fuzzerMain(
    _ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?
) -> Int32 {
    var count = argc
    var arguments = argv
    return runFuzzerDriver(&count, &arguments, fuzzOneInput)
}
