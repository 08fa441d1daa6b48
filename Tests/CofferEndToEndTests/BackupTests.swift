import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

@Suite struct BackupTests {
    @Test func backupUnderLoadRestoresEverything() throws {
        let server = try TestServer()
        let secret = try server.addClient("s", role: "support")
        let writer = try server.authenticated("s", secret: secret)
        for i in 0..<300 { _ = try writer.call("PUT", "b\(i)", "name", "Before \(i)") }
        // Writes keep landing while the backup runs.
        let stop = LinesCollector()
        let socket = server.socketPath
        let load = Thread {
            guard let c = try? RESPClient(unixPath: socket), (try? c.call("AUTH", "s", secret)) == .simple("OK") else {
                return
            }
            var i = 0
            while stop.text.isEmpty {
                _ = try? c.call("PUT", "during\(i)", "name", "During \(i)")
                i += 1
            }
        }
        load.start()
        let file = server.root + "/backup.db"
        let taken = try CofferBinary.run(["backup", "--to", file], environment: server.env)
        stop.append(Data("stop".utf8))
        #expect(taken.status == 0, "\(taken.stderr)")
        #expect(taken.stdout == "1\n")
        let mode = try FileManager.default.attributesOfItem(atPath: file)[.posixPermissions] as? Int
        #expect(mode == 0o600)
        #expect(!FileManager.default.fileExists(atPath: file + ".partial"))
        // Restore into a fresh data directory next to the same keys, and read it all back.
        let restoredData = server.root + "/restored"
        let env = ["COFFER_DATA": restoredData, "COFFER_KEYS": server.keys]
        let restored = try CofferBinary.run(["restore", "--from", file], environment: env)
        #expect(restored.status == 0, "\(restored.stderr)")
        let again = try CofferBinary.run(["restore", "--from", file], environment: env)
        #expect(again.status != 0 && again.stderr.contains("empty data directory"))
        server.stop()
        let second = try TestServer(
            root: server.root + "/restored-run", dataOverride: restoredData, keysOverride: server.keys)
        let reader = try second.authenticated("s", secret: secret)
        for i in 0..<300 { #expect(try reader.call("GET", "b\(i)", "name") == .array([.bulk("Before \(i)")])) }
        #expect(try second.authenticated("s", secret: secret).call("EXISTS", "during0") == .integer(1))
        #expect(try CofferBinary.run(["audit", "verify"], environment: env).status == 0)
    }

    @Test func aBackupFromBeforeAShredIsDeadOnceItsKEKIsRetired() throws {
        let server = try TestServer()
        var env = server.env
        env["COFFER_SECRET"] = server.adminSecret
        let secret = try server.addClient("s", role: "support")
        let c = try server.authenticated("s", secret: secret)
        _ = try c.call("PUT", "victim", "name", "Victim Name")
        _ = try c.call("PUT", "keeper", "name", "Keeper Name")
        let old = server.root + "/before-shred.db"
        #expect(try CofferBinary.run(["backup", "--to", old], environment: server.env).status == 0)
        #expect(try server.authenticated().call("SHRED", "victim") == .integer(1))
        // While KEK 1 exists, the old backup still opens, shredded subject included: the gap.
        let peek = server.root + "/peek"
        #expect(
            try CofferBinary.run(
                ["restore", "--from", old], environment: ["COFFER_DATA": peek, "COFFER_KEYS": server.keys]
            ).status == 0)
        // Rotate, let the rewrap finish, retire KEK 1: the gap closes.
        #expect(try CofferBinary.run(["keys", "rotate", "--wait"], environment: env).status == 0)
        #expect(try CofferBinary.run(["keys", "retire", "1"], environment: env).status == 0)
        let dead = try CofferBinary.run(
            ["restore", "--from", old], environment: ["COFFER_DATA": server.root + "/dead", "COFFER_KEYS": server.keys])
        #expect(dead.status != 0)
        #expect(dead.stderr.contains("needs KEK versions 1"), "\(dead.stderr)")
        // The peeked copy can no longer be opened either.
        let open = try CofferBinary.run(
            ["clients", "list"], environment: ["COFFER_DATA": peek, "COFFER_KEYS": server.keys])
        #expect(open.status != 0 && open.stderr.contains("kek-1.key"))
        // The live vault is unaffected.
        #expect(try c.call("GET", "keeper", "name") == .array([.bulk("Keeper Name")]))
        #expect(try c.call("GET", "victim", "name") == .array([.null]))
    }
}
