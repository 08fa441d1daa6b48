import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Acknowledged writes, collected from several writer threads.
final class Acknowledged: @unchecked Sendable {
    // @unchecked Sendable: every access to `values` holds `lock`.
    private let lock = NSLock()
    private var values: [String: String] = [:]
    func add(_ subject: String, _ value: String) { lock.withLock { values[subject] = value } }
    var all: [String: String] { lock.withLock { values } }
}

@Suite struct CrashSafetyTests {
    @Test func sigkillDuringConcurrentWritesLosesNothingAcknowledged() throws {
        let rounds = 10
        var server = try TestServer()
        let root = server.root
        let admin = server.adminSecret
        let secret = try server.addClient("w", role: "support")
        let acknowledged = Acknowledged()
        var checked = 0
        for round in 0..<rounds {
            let socket = server.socketPath
            var threads: [Thread] = []
            for writer in 0..<4 {
                let thread = Thread {
                    guard let c = try? RESPClient(unixPath: socket, timeoutSeconds: 5),
                        (try? c.call("AUTH", "w", secret)) == .simple("OK")
                    else { return }
                    var n = 0
                    while true {
                        let subject = "r\(round)-w\(writer)-\(n)"
                        let value = "Value \(round) \(writer) \(n)"
                        guard let reply = try? c.call("PUT", subject, "name", value) else { return }
                        guard reply == .integer(1) else { return }
                        acknowledged.add(subject, value)
                        n += 1
                    }
                }
                thread.start()
                threads.append(thread)
            }
            usleep(UInt32(150_000 + (round * 53_000) % 250_000))
            server.stop(signal: SIGKILL)
            // Wait (with a deadline) until every writer has noticed the dead socket.
            let deadline = Date().addingTimeInterval(10)
            var finished = false
            while !finished && Date() < deadline {
                finished = threads.allSatisfy { $0.isFinished }
                if !finished { usleep(10_000) }
            }
            #expect(finished, "round \(round): a writer did not notice the dead server")
            server = try TestServer(root: root, adminSecret: admin)
            let reader = try server.authenticated("w", secret: secret)
            let expected = acknowledged.all
            var missing = 0
            var pipeline: [UInt8] = []
            let subjects = Array(expected.keys)
            for subject in subjects { pipeline += RESPClient.encode(["GET", subject, "name"].map { Array($0.utf8) }) }
            try reader.send(pipeline)
            for subject in subjects where try reader.read() != .array([.bulk(expected[subject]!)]) { missing += 1 }
            #expect(missing == 0, "round \(round): \(missing) acknowledged writes lost")
            checked = subjects.count
            let integrity = Process()
            integrity.executableURL = URL(fileURLWithPath: "/usr/bin/sqlite3")
            integrity.arguments = [server.data + "/coffer.db", "PRAGMA integrity_check;"]
            let out = Pipe()
            integrity.standardOutput = out
            try integrity.run()
            integrity.waitUntilExit()
            #expect(String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self) == "ok\n")
            let verify = try server.authenticated().call("AUDIT.VERIFY")
            #expect(verify.description.hasPrefix("+OK"), "round \(round): \(verify)")
        }
        #expect(checked > 100, "too few writes were acknowledged to prove anything: \(checked)")
        print("crash safety: \(rounds) kills survived, \(checked) acknowledged writes checked")
    }
}
