import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Paths as operators type them: relative, one character long, with trailing slashes, dotted,
/// through symlinks. Each command runs in a fresh working directory (issue 16.1: `init --data d`
/// trapped inside Foundation's path code).
@Suite struct PathTests {
    struct Layout: CustomTestStringConvertible, Sendable {
        let name: String
        /// Directories to create and symlinks (name → target) to plant before `init`.
        var directories: [String] = []
        var symlinks: [(String, String)] = []
        let data: String
        let keys: String
        let backup: String
        let restored: String

        var testDescription: String { name }
    }

    static let layouts: [Layout] = [
        Layout(name: "one character", data: "d", keys: "k", backup: "b", restored: "r"),
        Layout(name: "trailing slashes", data: "d/", keys: "k//", backup: "b", restored: "r/"),
        Layout(
            name: "dotted", directories: ["y"], data: "./x/../d", keys: "./k/.", backup: "./y/../b",
            restored: "y/../r"),
        Layout(
            name: "symlinked", directories: ["real-d", "real-k", "real-out"],
            symlinks: [("sd", "real-d"), ("sk", "real-k"), ("so", "real-out")], data: "sd", keys: "sk/",
            backup: "so/b", restored: "so/r"),
    ]

    @Test(arguments: layouts)
    func initServeBackupAndRestoreWithRelativePaths(layout: Layout) throws {
        let root = CofferBinary.temporaryDirectory("paths")
        defer { try? FileManager.default.removeItem(atPath: root) }
        for directory in layout.directories { #expect(mkdir(root + "/" + directory, 0o700) == 0) }
        for (name, target) in layout.symlinks { #expect(symlink(target, root + "/" + name) == 0) }

        let initialized = try CofferBinary.run(["init", "--data", layout.data, "--keys", layout.keys], in: root)
        #expect(initialized.status == 0, "\(initialized.stderr)")
        #expect(initialized.stdout.trimmingCharacters(in: .newlines).count == 64)

        let server = try ServeProcess(["--data", layout.data, "--keys", layout.keys], in: root)
        let client = try RESPClient(unixPath: root + "/" + layout.data + "/coffer.sock")
        #expect(try client.call("PING") == .simple("PONG"))
        #expect(server.stop() == 0)

        let taken = try CofferBinary.run(
            ["backup", "--data", layout.data, "--keys", layout.keys, "--to", layout.backup], in: root)
        #expect(taken.status == 0, "\(taken.stderr)")
        #expect(FileManager.default.fileExists(atPath: root + "/" + layout.backup))

        let restored = try CofferBinary.run(
            ["restore", "--data", layout.restored, "--keys", layout.keys, "--from", layout.backup], in: root)
        #expect(restored.status == 0, "\(restored.stderr)")
        let listed = try CofferBinary.run(
            ["clients", "list", "--data", layout.restored, "--keys", layout.keys], in: root)
        #expect(listed.status == 0, "\(listed.stderr)")
        #expect(listed.stdout == "admin admin\n")
    }

    /// Odd names a user can type: none may crash the CLI; a failure is a message and a non-zero exit.
    static let oddNames = [
        "", "/", ".", "..", "-", "a//b", "./", "../", "é", " ", "\n", String(repeating: "x", count: 5000),
        String(repeating: "a/", count: 2000),
    ]

    @Test func noPathCrashesTheCLI() throws {
        let root = CofferBinary.temporaryDirectory("odd")
        defer { try? FileManager.default.removeItem(atPath: root) }
        #expect(try CofferBinary.run(["init", "--data", "vd", "--keys", "vk"], in: root).status == 0)
        for name in Self.oddNames {
            let runs = [
                ["init", "--data", name, "--keys", "k"],
                ["init", "--data", "d2", "--keys", name],
                ["clients", "list", "--data", name, "--keys", "vk"],
                ["backup", "--data", "vd", "--keys", "vk", "--to", name],
                ["restore", "--data", "r", "--keys", "vk", "--from", name],
                ["restore", "--data", name, "--keys", "vk", "--from", "missing"],
            ]
            for arguments in runs {
                let result = try CofferBinary.run(arguments, in: root)
                #expect(
                    !result.crashed, "\(arguments.map { String($0.prefix(20)) }) crashed: \(result.stderr.prefix(300))")
                #expect(
                    result.status == 0 || !result.stderr.isEmpty,
                    "\(arguments.map { String($0.prefix(20)) }) failed silently")
            }
            // Whatever an init with an odd name did, start again from a clean slate.
            for leftover in ["k", "d2", "r"] { try? FileManager.default.removeItem(atPath: root + "/" + leftover) }
        }
    }
}

/// `coffer serve` started in a given working directory, ready once it says so.
final class ServeProcess {
    private let process = Process()
    private let stderr = LinesCollector()
    private let pipe = Pipe()
    private var reader: PipeReader?

    init(_ arguments: [String], in directory: String) throws {
        process.executableURL = URL(fileURLWithPath: CofferBinary.path)
        process.arguments = ["serve"] + arguments + CofferBinary.rootFlag
        process.currentDirectoryURL = URL(fileURLWithPath: directory)
        var env = ProcessInfo.processInfo.environment
        env["COFFER_DATA"] = nil
        env["COFFER_KEYS"] = nil
        process.environment = CofferBinary.devSealing(["serve"] + arguments, env).1
        process.standardError = pipe
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        reader = PipeReader(pipe.fileHandleForReading, into: stderr)
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline {
            if stderr.text.contains("coffer: ready") { return }
            if !process.isRunning { throw TestFailure("coffer serve exited: \(stderr.text)") }
            usleep(20_000)
        }
        throw TestFailure("coffer serve did not become ready: \(stderr.text)")
    }

    /// SIGTERM, then the exit status.
    func stop() -> Int32 {
        if process.isRunning { kill(process.processIdentifier, SIGTERM) }
        process.waitUntilExit()
        reader?.finish()
        return process.terminationStatus
    }

    deinit {
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
        reader?.finish()
    }
}
