import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// One server per data directory, and keys change only through it (issue 10.5).
@Suite struct DataDirectoryLockTests {
    /// KEYS.STATUS's `current`, over a connection authenticated as admin.
    func current(_ admin: RESPClient) throws -> Int {
        guard case .array(let flat) = try admin.call("KEYS.STATUS"), flat.count > 1, case .integer(let n) = flat[1]
        else { throw TestFailure("bad KEYS.STATUS reply") }
        return n
    }

    @Test func aSecondServerOnTheSameDataDirectoryIsRefusedNamingThePID() throws {
        let server = try TestServer()
        // Another socket and no TCP: nothing collides but the data directory.
        let second = try CofferBinary.run(
            ["serve", "--socket", server.root + "/second.sock"] + CofferBinary.rootFlag, environment: server.env)
        #expect(second.status == 1)
        #expect(
            second.stderr.contains(
                "data directory \(server.data) is in use by coffer serve (pid \(server.process.processIdentifier)"),
            "\(second.stderr)")
        #expect(!FileManager.default.fileExists(atPath: server.root + "/second.sock"))
        #expect(try server.client().call("PING") == .simple("PONG"))
    }

    @Test func keysCommandsFindAServerOnANonDefaultSocketAndNeverActOffline() throws {
        let socket = CofferBinary.temporaryDirectory("sock") + "/elsewhere.sock"
        let server = try TestServer(extraArguments: ["--socket", socket])
        let admin = try RESPClient(unixPath: socket)
        #expect(try admin.call("AUTH", "admin", server.adminSecret) == .simple("OK"))
        // Without the secret the CLI refuses; it does not rotate or retire behind the server.
        for words in [["keys", "rotate"], ["keys", "retire", "1"], ["keys", "status"]] {
            let refused = try CofferBinary.run(words, environment: server.env)
            #expect(refused.status != 0)
            #expect(refused.stderr.contains("COFFER_SECRET"), "\(words): \(refused.stderr)")
        }
        #expect(!FileManager.default.fileExists(atPath: server.keys + "/kek-2.key"))
        #expect(FileManager.default.fileExists(atPath: server.keys + "/kek-1.key"))
        #expect(try current(admin) == 1)
        // With it, the command goes through the server, which uses the new KEK at once.
        var env = server.env
        env["COFFER_SECRET"] = server.adminSecret
        let rotated = try CofferBinary.run(["keys", "rotate", "--wait"], environment: env)
        #expect(rotated.status == 0 && rotated.stdout == "2\n", "\(rotated.stderr)")
        #expect(try current(admin) == 2)
        let status = try CofferBinary.run(["keys", "status"], environment: env)
        #expect(status.stdout.hasPrefix("current 2\n"), "\(status.stdout) \(status.stderr)")
    }

    @Test func aServerWithoutASocketIsNamedAndNotBypassed() throws {
        let root = CofferBinary.temporaryDirectory("nosock")
        let server = try TestServer(extraArguments: ["--no-socket"], root: root)
        var env = server.env
        env["COFFER_SECRET"] = server.adminSecret
        let refused = try CofferBinary.run(["keys", "rotate"], environment: env)
        #expect(refused.status == 1)
        #expect(
            refused.stderr.contains(
                "coffer serve (pid \(server.process.processIdentifier), listening on tcp 127.0.0.1:\(server.tcpPort)) serves \(server.data) without a Unix socket"
            ), "\(refused.stderr)")
        #expect(!FileManager.default.fileExists(atPath: server.keys + "/kek-2.key"))
    }

    @Test func theLockGoesWithTheServerEvenAfterSIGKILL() throws {
        let server = try TestServer()
        server.stop(signal: SIGKILL)
        // The kernel dropped the lock with the process: offline commands and a new server may run.
        let status = try CofferBinary.run(["keys", "status"], environment: server.env)
        #expect(status.status == 0 && status.stdout.hasPrefix("current 1\n"), "\(status.stderr)")
        let restarted = try TestServer(root: server.root, adminSecret: server.adminSecret)
        #expect(try restarted.authenticated().call("PING") == .simple("PONG"))
        #expect(restarted.stop() == 0)
        let offline = try CofferBinary.run(["keys", "rotate"], environment: server.env)
        #expect(offline.status == 0 && offline.stdout == "2\n", "\(offline.stderr)")
    }
}
