import Foundation
import Synchronization
import Testing

#if canImport(Glibc)
    import Glibc
#endif

@Suite struct RotationTests {
    /// Fills the vault over one pipelined connection.
    func populate(_ server: TestServer, _ client: RESPClient, count: Int) throws {
        var pipeline: [UInt8] = []
        for i in 0..<count {
            pipeline += RESPClient.encode(
                ["PUT", "s\(i)", "name", "Person \(i)", "email", "p\(i)@example.com"].map { Array($0.utf8) })
        }
        try client.send(pipeline)
        for _ in 0..<count { guard case .integer(2) = try client.read() else { throw TestFailure("PUT failed") } }
    }

    func pending(_ admin: RESPClient) throws -> Int {
        guard case .array(let flat) = try admin.call("KEYS.STATUS"),
            let index = flat.firstIndex(of: .bulk("rewrap.pending")),
            case .integer(let n) = flat[index + 1]
        else { throw TestFailure("bad KEYS.STATUS reply") }
        return n
    }

    /// Waits up to a minute for the rewrap to finish.
    func waitForRewrap(_ admin: RESPClient) throws {
        let deadline = Date().addingTimeInterval(60)
        while try pending(admin) > 0 && Date() < deadline { usleep(50_000) }
    }

    /// GETs every subject `populate` wrote in one pipeline; the number that did not read back.
    func wrongReads(_ reader: RESPClient, count: Int) throws -> Int {
        var pipeline: [UInt8] = []
        for i in 0..<count { pipeline += RESPClient.encode(["GET", "s\(i)", "name"].map { Array($0.utf8) }) }
        try reader.send(pipeline)
        var wrong = 0
        for i in 0..<count where try reader.read() != .array([.bulk("Person \(i)")]) { wrong += 1 }
        return wrong
    }

    @Test func sigkillDuringRewrapLosesNothing() throws {
        let count = 4000
        var server = try TestServer(extraArguments: ["--rewrap-batch", "25", "--durability", "normal"])
        let root = server.root
        let adminSecret = server.adminSecret
        let secret = try server.addClient("s", role: "support")
        try populate(server, try server.authenticated("s", secret: secret), count: count)
        #expect(try server.authenticated().call("KEYS.ROTATE") == .integer(2))
        var sawPartial = false
        for round in 0..<6 {
            // Let the rewrap run a little, then kill the process without warning.
            usleep(UInt32(30_000 + (round * 37_000) % 120_000))
            server.stop(signal: SIGKILL)
            server = try TestServer(
                extraArguments: ["--rewrap-batch", "25", "--durability", "normal"], root: root, adminSecret: adminSecret
            )
            let left = try pending(try server.authenticated())
            if left > 0 && left < count { sawPartial = true }
            if left == 0 { break }
        }
        #expect(sawPartial, "no kill landed in the middle of the rewrap")
        // The restarted server resumes and finishes.
        let admin = try server.authenticated()
        try waitForRewrap(admin)
        #expect(try pending(admin) == 0)
        // Every subject reads back, and the old KEK can go.
        let reader = try server.authenticated("s", secret: secret)
        #expect(try wrongReads(reader, count: count) == 0)
        #expect(try admin.call("KEYS.RETIRE", "1") == .simple("OK"))
        #expect(try admin.call("AUDIT.VERIFY").description.hasPrefix("+OK"))
        #expect(try reader.call("GET", "s123", "email") == .array([.bulk("p123@example.com")]))
    }

    /// `--rewrap-batch-ms` bounds how long one batch holds the writer; batches cut short by it
    /// still finish the rewrap. Out of range is refused by name.
    @Test func timeBoundedRewrapBatchesFinishTheRewrap() throws {
        let count = 2000
        let server = try TestServer(extraArguments: ["--rewrap-batch", "1000", "--rewrap-batch-ms", "1"])
        let secret = try server.addClient("s", role: "support")
        let reader = try server.authenticated("s", secret: secret)
        try populate(server, reader, count: count)
        let admin = try server.authenticated()
        #expect(try admin.call("KEYS.ROTATE") == .integer(2))
        try waitForRewrap(admin)
        #expect(try pending(admin) == 0)
        #expect(try wrongReads(reader, count: count) == 0)
        #expect(try admin.call("KEYS.RETIRE", "1") == .simple("OK"))
        for bad in ["0", "10001", "x"] {
            let refused = try CofferBinary.run(
                ["serve", "--rewrap-batch-ms", bad] + CofferBinary.rootFlag, environment: server.env)
            #expect(refused.status != 0)
            #expect(refused.stderr.contains("rewrap-batch-ms"), "\(refused.stderr)")
        }
    }

    @Test func keysCLIGoesThroughTheRunningServer() throws {
        let server = try TestServer()
        var env = server.env
        env["COFFER_SECRET"] = server.adminSecret
        let rotated = try CofferBinary.run(["keys", "rotate", "--wait"], environment: env)
        #expect(rotated.status == 0, "\(rotated.stderr)")
        #expect(rotated.stdout == "2\n")
        let status = try CofferBinary.run(["keys", "status"], environment: env)
        // What Deploy/OPERATIONS.md says these print.
        #expect(
            status.stdout.contains("current 2\n") && status.stdout.contains("version 1 active 0 data keys\n")
                && status.stdout.contains("rewrap idle: 0 pending"),
            "\(status.stdout)")
        // The server uses the new KEK at once.
        let secret = try server.addClient("s", role: "support")
        #expect(try server.authenticated("s", secret: secret).call("PUT", "x", "name", "X") == .integer(1))
        let refused = try CofferBinary.run(["keys", "retire", "2"], environment: env)
        #expect(refused.status != 0 && refused.stderr.contains("is current"))
        let retired = try CofferBinary.run(["keys", "retire", "1"], environment: env)
        #expect(retired.status == 0 && retired.stderr.contains("coffer: KEK version 1 retired"), "\(retired.stderr)")
        #expect(!FileManager.default.fileExists(atPath: server.keys + "/kek-1.key"))
        // Without the secret the CLI will not act behind the server's back.
        let noSecret = try CofferBinary.run(["keys", "rotate"], environment: server.env)
        #expect(noSecret.status != 0 && noSecret.stderr.contains("COFFER_SECRET"))
        let wrong = try CofferBinary.run(
            ["keys", "rotate"], environment: server.env.merging(["COFFER_SECRET": "nope"]) { $1 })
        #expect(wrong.status != 0)
        // Audit from the CLI, while the server runs.
        let verified = try CofferBinary.run(["audit", "verify"], environment: server.env)
        #expect(verified.status == 0 && verified.stdout.hasPrefix("OK "), "\(verified.stdout) \(verified.stderr)")
        let exported = try CofferBinary.run(["audit", "export", "--since", "2"], environment: server.env)
        let lines = exported.stdout.split(separator: "\n")
        #expect(lines.first?.contains("\"seq\":3") == true)
        #expect(lines.allSatisfy { (try? JSONSerialization.jsonObject(with: Data($0.utf8))) != nil })
        #expect(!exported.stdout.contains(secret))
    }

    /// KEYS.STATUS's current version and the version its `versions` list (the database) calls current.
    func currentVersions(_ admin: RESPClient) throws -> (memory: Int, database: [Int], newest: Int) {
        guard case .array(let flat) = try admin.call("KEYS.STATUS"), case .integer(let memory) = flat[1],
            case .array(let versions) = flat[3]
        else { throw TestFailure("bad KEYS.STATUS reply") }
        var database: [Int] = []
        var newest = 0
        for case .array(let v) in versions {
            guard case .integer(let version) = v[0] else { continue }
            newest = max(newest, version)
            if v[1] == .bulk("current") { database.append(version) }
        }
        return (memory, database, newest)
    }

    @Test(arguments: TestBackend.allCases) func concurrentRotationsFromManyClientsAgreeWithTheDatabase(
        backend: TestBackend
    ) throws {
        let server = try TestServer(backend: backend)
        let clients = 8
        let (socket, adminSecret) = (server.socketPath, server.adminSecret)
        var expected = 1
        for round in 0..<7 {
            // Every client connects and authenticates first; then all send KEYS.ROTATE at once.
            let replies = Mutex<[RESPClient.Reply]>([])
            let ready = DispatchSemaphore(value: 0)
            let start = DispatchSemaphore(value: 0)
            let done = DispatchGroup()
            for _ in 0..<clients {
                done.enter()
                Thread {
                    let admin = try? RESPClient(unixPath: socket)
                    _ = try? admin?.call("AUTH", "admin", adminSecret)
                    ready.signal()
                    start.wait()
                    let reply = (try? admin?.call("KEYS.ROTATE")) ?? .closed
                    replies.withLock { $0.append(reply) }
                    done.leave()
                }.start()
            }
            for _ in 0..<clients { ready.wait() }
            for _ in 0..<clients { start.signal() }
            done.wait()
            expected += clients
            let versions = replies.withLock { $0 }.compactMap { reply -> Int? in
                if case .integer(let v) = reply { v } else { nil }
            }
            #expect(versions.sorted() == Array((expected - clients + 1)...expected), "round \(round): \(versions)")
            let (memory, database, newest) = try currentVersions(try server.authenticated())
            #expect(memory == expected && database == [expected] && newest == expected, "round \(round)")
        }
        // New data keys go under the newest version.
        let secret = try server.addClient("s", role: "support")
        #expect(try server.authenticated("s", secret: secret).call("PUT", "fresh", "name", "F") == .integer(1))
        guard case .array(let flat) = try server.authenticated().call("KEYS.STATUS"),
            case .array(let versions) = flat[3]
        else { throw TestFailure("bad KEYS.STATUS reply") }
        #expect(versions.last == .array([.integer(expected), .bulk("current"), .integer(1)]))
    }

    @Test func offlineKeysCommands() throws {
        let root = CofferBinary.temporaryDirectory("offline")
        let env = ["COFFER_DATA": root + "/d", "COFFER_KEYS": root + "/k"]
        #expect(try CofferBinary.run(["init"], environment: env).status == 0)
        let rotated = try CofferBinary.run(["keys", "rotate", "--wait"], environment: env)
        #expect(rotated.status == 0 && rotated.stdout == "2\n", "\(rotated.stderr)")
        #expect(try CofferBinary.run(["keys", "retire", "1"], environment: env).status == 0)
        let status = try CofferBinary.run(["keys", "status"], environment: env)
        #expect(status.stdout.contains("version 1 retired"), "\(status.stdout)")
    }
}
