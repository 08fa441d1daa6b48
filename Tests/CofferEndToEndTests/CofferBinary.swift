import Foundation
import Synchronization

/// Runs the real `coffer` executable that `swift build` put next to the test bundle.
enum CofferBinary {
    static var path: String {
        if let override = ProcessInfo.processInfo.environment["COFFER_BINARY"] { return override }
        let executable = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        return executable.deletingLastPathComponent().appendingPathComponent("coffer").path
    }

    /// Tests may run as root (CI does); the server refuses root unless told otherwise.
    static var rootFlag: [String] { geteuid() == 0 ? ["--allow-root"] : [] }

    struct Result {
        let status: Int32
        /// True if the process died of a signal (a trap, a crash) instead of exiting.
        let crashed: Bool
        let stdout: String
        let stderr: String
    }

    /// Every vault the tests make is a dev vault, as `.ci/dev` makes one: one key share, kept in
    /// `<keys>.share` beside the key directory, from which every later command unseals (with
    /// the loud warning). A test that wants a real quorum passes `--shares` to `init` or its own
    /// `COFFER_UNSEAL_FILE`.
    static func devSealing(_ arguments: [String], _ environment: [String: String]) -> ([String], [String: String]) {
        var arguments = arguments
        var environment = environment
        let keys =
            arguments.firstIndex(of: "--keys").flatMap { arguments.indices.contains($0 + 1) ? arguments[$0 + 1] : nil }
            ?? environment["COFFER_KEYS"]
        if let keys, environment["COFFER_UNSEAL_FILE"] == nil, !arguments.contains("--unseal-file") {
            environment["COFFER_UNSEAL_FILE"] = devShareFile(keys: keys)
        }
        if arguments.first == "init", !arguments.contains("--shares"), !arguments.contains("--help") {
            arguments += ["--shares", "1", "--threshold", "1"]
        }
        return (arguments, environment)
    }

    /// Where a test vault's dev share lives: beside its key directory, never inside it.
    static func devShareFile(keys: String) -> String {
        var path = keys
        while path.count > 1 && path.hasSuffix("/") { path.removeLast() }
        return path + ".share"
    }

    /// `directory`, if given, is the working directory the command runs in; `wrapper`, if
    /// given, is a command line that runs coffer (`"$0"`) with its arguments (`"$@"`).
    static func run(
        _ arguments: [String], environment: [String: String] = [:], stdin: String? = nil, in directory: String? = nil,
        wrappedIn wrapper: [String] = []
    ) throws -> Result {
        let (arguments, environment) = devSealing(arguments, environment)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: wrapper.first ?? path)
        process.arguments = wrapper.isEmpty ? arguments : Array(wrapper.dropFirst()) + [path] + arguments
        if let directory { process.currentDirectoryURL = URL(fileURLWithPath: directory) }
        var env = ProcessInfo.processInfo.environment
        env["COFFER_DATA"] = nil
        env["COFFER_KEYS"] = nil
        env.merge(environment) { _, new in new }
        process.environment = env
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        let input = Pipe()
        process.standardInput = input
        try process.run()
        if let stdin { input.fileHandleForWriting.write(Data(stdin.utf8)) }
        try input.fileHandleForWriting.close()
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        let errData = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Result(
            status: process.terminationStatus, crashed: process.terminationReason == .uncaughtSignal,
            stdout: String(decoding: outData, as: UTF8.self),
            stderr: String(decoding: errData, as: UTF8.self))
    }

    /// A fresh directory, removed when the test process exits. Prefer `TemporaryDirectory`, which
    /// goes as soon as its last reference does.
    static func temporaryDirectory(_ tag: String) -> String {
        TemporaryDirectory.keptUntilExit(TemporaryDirectory(tag)).path
    }
}

/// A fresh directory under the system's temporary folder, removed with everything in it when the
/// last reference to it goes. A server restarted on a directory keeps it alive: `owner(of:)`.
final class TemporaryDirectory: Sendable {
    let path: String

    init(_ tag: String) {
        path = FileManager.default.temporaryDirectory.appendingPathComponent("coffer-e2e-\(tag)-\(UUID())").path
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        Self.state.withLock { $0.live[path] = Weak(directory: self) }
    }

    deinit {
        Self.state.withLock { $0.live[path] = nil }
        try? FileManager.default.removeItem(atPath: path)
    }

    /// The live directory that holds `path` (or is it), if a `TemporaryDirectory` made it.
    static func owner(of path: String) -> TemporaryDirectory? {
        state.withLock { state in
            state.live.first { path == $0.key || path.hasPrefix($0.key + "/") }?.value.directory
        }
    }

    /// Keeps `directory` until the process exits, then removes it.
    static func keptUntilExit(_ directory: TemporaryDirectory) -> TemporaryDirectory {
        state.withLock { state in
            if state.untilExit.isEmpty {
                atexit {
                    let paths = TemporaryDirectory.state.withLock { $0.untilExit.map(\.path) }
                    for path in paths { try? FileManager.default.removeItem(atPath: path) }
                }
            }
            state.untilExit.append(directory)
        }
        return directory
    }

    private struct Weak: Sendable {
        weak var directory: TemporaryDirectory?
    }
    private struct State: Sendable {
        var live: [String: Weak] = [:]
        var untilExit: [TemporaryDirectory] = []
    }
    private static let state = Mutex(State())
}
