import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// A real `coffer serve` process on a fresh vault in a temporary directory.
final class TestServer {
    let root: String
    let data: String
    let keys: String
    let adminSecret: String
    private(set) var process: Process
    private(set) var tcpPort: Int = 0
    private let stderrPipe = Pipe()
    private let stderrLines = LinesCollector()
    private var stderrReader: PipeReader?
    /// The command line that runs coffer (`setpriv … --`), or empty to run it directly.
    private let launcher: [String]
    /// The directory this server (or the one it restarts) made; removed once no server uses it.
    private let directory: TemporaryDirectory?

    let socketPath: String
    /// The PostgreSQL vault's URI, for a server on that backend; nil for SQLite in `data`.
    let store: String?
    var backend: TestBackend { store == nil ? .sqlite : .postgres }
    /// How the CLI names this vault: `--data DIR` or `--store URI`.
    var vaultArguments: [String] { store.map { ["--store", $0] } ?? ["--data", data] }
    var env: [String: String] {
        store.map { ["COFFER_STORE": $0, "COFFER_KEYS": keys] } ?? ["COFFER_DATA": data, "COFFER_KEYS": keys]
    }

    /// With `root`, restarts on an existing vault (pass its admin secret along). With `socket`,
    /// serves on that path (`--socket`) instead of DATA/coffer.sock. With `launcher`, `coffer init`
    /// and `coffer serve` run through it (e.g. `setpriv --reuid …` to serve as another user).
    /// With `backend: .postgres`, the vault lives in a fresh database of the test cluster, or in
    /// `store` (another node of a vault made before: pass its `root` and admin secret too).
    init(
        extraArguments: [String] = [], root: String? = nil, adminSecret knownSecret: String = "",
        dataOverride: String? = nil, keysOverride: String? = nil, listen: String = "127.0.0.1:0",
        socket: String? = nil, launcher: [String] = [], environment: [String: String] = [:],
        backend: TestBackend = .sqlite, store knownStore: String? = nil
    ) throws {
        if let root {
            directory = TemporaryDirectory.owner(of: root)
            self.root = root
        } else {
            let made = TemporaryDirectory("srv")
            directory = made
            self.root = made.path
        }
        data = dataOverride ?? self.root + "/data"
        keys = keysOverride ?? self.root + "/keys"
        self.launcher = launcher
        let existing: Bool
        if backend == .postgres || knownStore != nil {
            existing = knownStore != nil
            store = try knownStore ?? PostgresTestCluster.freshDatabase().url
            // A node has no data directory: its socket goes where the test says, or in its root.
            socketPath = socket ?? self.root + "/node-\(UUID().uuidString.prefix(8)).sock"
        } else {
            store = nil
            existing = FileManager.default.fileExists(atPath: data + "/coffer.db")
            socketPath = socket ?? data + "/coffer.sock"
        }
        let vault = store.map { ["--store", $0] } ?? ["--data", data]
        if !existing {
            let initialized = try CofferBinary.run(["init"] + vault + ["--keys", keys], wrappedIn: launcher)
            guard initialized.status == 0 else { throw TestFailure("init failed: \(initialized.stderr)") }
            adminSecret = initialized.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        } else {
            adminSecret = knownSecret
        }
        process = Process()
        if !environment.isEmpty {
            process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        }
        let socketArguments = store != nil && !extraArguments.contains("--no-socket") ? ["--socket", socketPath] : []
        try start(
            extraArguments: ["--listen", listen] + (socket.map { ["--socket", $0] } ?? socketArguments) + extraArguments
        )
    }

    /// Starts `coffer serve` and waits for its "ready" line.
    private func start(extraArguments: [String]) throws {
        process.executableURL = URL(fileURLWithPath: launcher.first ?? CofferBinary.path)
        process.arguments =
            (launcher.isEmpty ? [] : Array(launcher.dropFirst()) + [CofferBinary.path])
            + ["serve"] + vaultArguments + ["--keys", keys] + CofferBinary.rootFlag + extraArguments
        if !extraArguments.contains("--unseal-file") {
            // On top of whatever environment the test gave the server.
            var environment = process.environment ?? ProcessInfo.processInfo.environment
            environment["COFFER_UNSEAL_FILE"] = CofferBinary.devShareFile(keys: keys)
            process.environment = environment
        }
        process.standardError = stderrPipe
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        stderrReader = PipeReader(stderrPipe.fileHandleForReading, into: stderrLines)
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline {
            let text = stderrLines.text
            if text.contains("coffer: ready") {
                // "listening on tcp|tls|mtls HOST:PORT"
                for line in text.split(separator: "\n") where line.hasPrefix("coffer: listening on ") {
                    let words = line.split(separator: " ")
                    guard words.count == 5, words[3] != "unix", let colon = words[4].lastIndex(of: ":") else {
                        continue
                    }
                    tcpPort = Int(words[4][words[4].index(after: colon)...]) ?? 0
                }
                return
            }
            if !process.isRunning { throw TestFailure("coffer serve exited: \(text)") }
            usleep(20_000)
        }
        throw TestFailure("coffer serve did not become ready: \(stderrLines.text)")
    }

    var stderr: String { stderrLines.text }

    func client() throws -> RESPClient { try RESPClient(unixPath: socketPath) }

    func authenticated(_ name: String = "admin", secret: String? = nil) throws -> RESPClient {
        let c = try client()
        let reply = try c.call("AUTH", name, secret ?? adminSecret)
        guard reply == .simple("OK") else { throw TestFailure("AUTH \(name) failed: \(reply)") }
        return c
    }

    /// Adds a client through the running server (as admin) and returns its secret.
    func addClient(_ name: String, role: String) throws -> String {
        let admin = try authenticated()
        guard case .bulk(let secret) = try admin.call("CLIENT.ADD", name, role) else {
            throw TestFailure("CLIENT.ADD failed")
        }
        return secret
    }

    /// Sends a signal and waits for the process to exit; returns its exit status.
    @discardableResult
    func stop(signal: Int32 = SIGTERM) -> Int32 {
        if process.isRunning { kill(process.processIdentifier, signal) }
        process.waitUntilExit()
        stderrReader?.finish()
        return process.terminationStatus
    }

    /// Kills the process if it still runs; the temporary directory goes with the last server
    /// that uses it.
    deinit {
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
        stderrReader?.finish()
    }
}

/// Reads a pipe on a thread of its own until end of file, into a `LinesCollector`.
///
/// Not `FileHandle.readabilityHandler`: on Linux, tearing down a pipe's dispatch read source
/// now and then crashes libdispatch in `_dispatch_event_loop_drain` (a known
/// swift-corelibs-foundation bug, seen in SourceKit-LSP's tests). It took a whole CI run of
/// this test process down on 2026-12-07. A blocking read needs no dispatch source.
final class PipeReader: Sendable {
    private let done = DispatchSemaphore(value: 0)

    /// Starts reading. Call after the process has been launched, which closes this process's
    /// copy of the pipe's write end, so end of file comes when the child's copy closes.
    init(_ handle: FileHandle, into collector: LinesCollector) {
        let descriptor = handle.fileDescriptor
        let done = self.done
        let thread = Thread {
            var buffer = [UInt8](repeating: 0, count: 65_536)
            while true {
                let count = buffer.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
                if count > 0 {
                    collector.append(Data(buffer[0..<count]))
                } else if count < 0 && errno == EINTR {
                    continue
                } else {
                    break
                }
            }
            done.signal()
        }
        thread.start()
    }

    /// Waits (at most `seconds`) until everything the child wrote has been read: call once the
    /// child has exited, and before the pipe goes. Returns at once when called again.
    func finish(seconds: Double = 10) {
        if done.wait(timeout: .now() + seconds) == .success { done.signal() }
    }
}

final class LinesCollector: @unchecked Sendable {
    // @unchecked Sendable: every access to `data` holds `lock`.
    private let lock = NSLock()
    private var data = Data()

    func append(_ chunk: Data) { lock.withLock { data.append(chunk) } }
    var text: String { lock.withLock { String(decoding: data, as: UTF8.self) } }
}

struct TestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
