import Foundation
import Testing

/// The PostgreSQL backend's own rules, through the real binary: where a vault may be made, and
/// that a database off the machine is reached only over verified TLS unless the URI says not.
@Suite struct PostgresStoreTests {
    @Test func initRefusesANonEmptyDatabaseAndServeAMissingVault() throws {
        let (name, url) = try PostgresTestCluster.freshDatabase()
        try PostgresTestCluster.psql("CREATE TABLE unrelated (x int)", database: name)
        let keys = TemporaryDirectory("pgkeys")
        let refused = try CofferBinary.run(["init", "--store", url, "--keys", keys.path + "/keys"])
        #expect(refused.status != 0)
        #expect(refused.stderr.contains("a vault already exists"), "\(refused.stderr)")
        #expect(!FileManager.default.fileExists(atPath: keys.path + "/keys/kek-1.key"))
        #expect(
            try PostgresTestCluster.psql("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'", database: name)
                == "1")

        let (_, empty) = try PostgresTestCluster.freshDatabase()
        let serve = try CofferBinary.run(
            ["serve", "--store", empty, "--keys", keys.path + "/keys", "--socket", keys.path + "/s"]
                + CofferBinary.rootFlag)
        #expect(serve.status != 0 && serve.stderr.contains("no vault in"), "\(serve.stderr)")
        let noSocket = try CofferBinary.run(
            ["serve", "--store", empty, "--keys", keys.path + "/keys"] + CofferBinary.rootFlag)
        #expect(noSocket.status != 0 && noSocket.stderr.contains("--socket"), "\(noSocket.stderr)")
        let both = try CofferBinary.run([
            "init", "--store", empty, "--data", keys.path + "/d", "--keys", keys.path + "/k",
        ])
        #expect(both.status != 0 && both.stderr.contains("--data and --store"), "\(both.stderr)")
    }

    @Test func aDatabaseOverTCPIsRefusedWithoutTLSUnlessTheURISaysSo() throws {
        let cluster = try PostgresTestCluster.cluster()
        guard let tcp = cluster.tcpURL else {
            Issue.record("the test cluster was started without --tcp")
            return
        }
        let (name, _) = try PostgresTestCluster.freshDatabase()
        // The test cluster has no certificate, as an attacker's man in the middle might not.
        var components = URLComponents(string: tcp)!
        components.path = "/" + name
        let uri = components.string!
        let keys = TemporaryDirectory("pgtls")
        let refused = try CofferBinary.run(["init", "--store", uri, "--keys", keys.path + "/keys"])
        #expect(refused.status != 0)
        #expect(
            refused.stderr.lowercased().contains("ssl") || refused.stderr.lowercased().contains("tls"),
            "\(refused.stderr)")
        #expect(!FileManager.default.fileExists(atPath: keys.path + "/keys/kek-1.key"))
        #expect(
            try PostgresTestCluster.psql("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'", database: name)
                == "0")
        let allowed = try CofferBinary.run(["init", "--store", uri + "?sslmode=disable", "--keys", keys.path + "/keys"])
        #expect(allowed.status == 0, "\(allowed.stderr)")
        // The password given in the URI shows nowhere in what coffer prints.
        let password = URLComponents(string: uri)?.password ?? "-"
        #expect(!allowed.stderr.contains(password) && !refused.stderr.contains(password))
    }
}

/// `coffer clients`, `coffer keys` and `coffer audit` on a PostgreSQL vault work on the database
/// directly, beside running nodes, and the nodes see what they did at their next command.
@Suite struct PostgresCLITests {
    @Test func clientsKeysAndAuditWorkBesideARunningNode() throws {
        let node = try TestServer(backend: .postgres)
        let env = node.env.merging(["COFFER_UNSEAL_FILE": CofferBinary.devShareFile(keys: node.keys)]) { $1 }
        let added = try CofferBinary.run(["clients", "add", "cli-support", "--role", "support"], environment: env)
        #expect(added.status == 0, "\(added.stderr)")
        let secret = added.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let support = try node.authenticated("cli-support", secret: secret)
        #expect(try support.call("PUT", "p1", "name", "Ann Lee") == .integer(1))
        let listed = try CofferBinary.run(["clients", "list"], environment: env)
        #expect(
            listed.status == 0 && listed.stdout.contains("cli-support support"), "\(listed.stdout) \(listed.stderr)")

        // Rotation from the CLI: the node adopts the new version and the rewrap moves p1 to it.
        let rotated = try CofferBinary.run(["keys", "rotate", "--wait"], environment: env)
        #expect(rotated.status == 0, "\(rotated.stderr)")
        #expect(rotated.stdout == "2\n")
        let deadline = Date().addingTimeInterval(60)
        var status = ""
        while Date() < deadline {
            status = try CofferBinary.run(["keys", "status"], environment: env).stdout
            if status.contains("version 1 active 0 data keys") { break }
            usleep(200_000)
        }
        #expect(status.contains("current 2\n") && status.contains("version 1 active 0 data keys"), "\(status)")
        // The node records the version it uses once a second; until then RETIRE names it.
        var retired = try CofferBinary.run(["keys", "retire", "1"], environment: env)
        while retired.status != 0 && retired.stderr.contains("still current on node") && Date() < deadline {
            usleep(200_000)
            retired = try CofferBinary.run(["keys", "retire", "1"], environment: env)
        }
        #expect(retired.status == 0, "\(retired.stderr)")
        #expect(!FileManager.default.fileExists(atPath: node.keys + "/kek-1.key"))
        #expect(try support.call("GET", "p1", "name") == .array([.bulk("Ann Lee")]))

        // Revoked from the CLI: the node's open session ends at its next command.
        #expect(try CofferBinary.run(["clients", "revoke", "cli-support"], environment: env).status == 0)
        #expect(try support.call("EXISTS", "p1").errorText?.hasPrefix("NOAUTH") == true)

        let verified = try CofferBinary.run(["audit", "verify"], environment: env)
        #expect(verified.status == 0 && verified.stdout.hasPrefix("OK "), "\(verified.stdout) \(verified.stderr)")
        let exported = try CofferBinary.run(["audit", "export", "--since", "1"], environment: env)
        #expect(exported.status == 0)
        #expect(exported.stdout.contains("\"command\":\"KEYS.ROTATE\""), "\(exported.stdout.suffix(400))")
        #expect(!exported.stdout.contains(secret) && !exported.stdout.contains("Ann Lee"))
        // A PostgreSQL vault is backed up with pg_dump, and coffer says so.
        let backup = try CofferBinary.run(["backup", "--to", node.root + "/b.db"], environment: env)
        #expect(backup.status != 0 && backup.stderr.contains("pg_dump"), "\(backup.stderr)")
    }
}

/// Found by the attack on the PostgreSQL backend.
@Suite struct PostgresRetirementTests {
    /// A shredded subject's key may have been wrapped under every version up to the one current
    /// at the shred (each rotation rewrapped it), and an old dump holds those wrappings: the
    /// shred is complete only when all of them are retired, not just the last.
    @Test func aShredWaitsForEveryOlderVersionAndOtherNodesDestroyRetiredKeyFiles() throws {
        let a = try TestServer(backend: .postgres)
        // Node B keeps its own copy of the key directory, as OPERATIONS.md describes.
        let copy = a.root + "/keys-b"
        let copied = try Shell.run("cp", ["-a", a.keys, copy])
        #expect(copied.0 == 0, "\(copied.1)")
        _ = try Shell.run("cp", [CofferBinary.devShareFile(keys: a.keys), CofferBinary.devShareFile(keys: copy)])
        let b = try TestServer(root: a.root, adminSecret: a.adminSecret, keysOverride: copy, store: a.store)
        let admin = try a.authenticated()
        let support = try a.authenticated("s", secret: try a.addClient("s", role: "support"))
        #expect(try support.call("PUT", "victim", "name", "Victim Name") == .integer(1))

        func status() throws -> (awaiting: Int, pending: Int) {
            guard case .array(let flat) = try admin.call("KEYS.STATUS") else { throw TestFailure("KEYS.STATUS") }
            var values: [String: Int] = [:]
            for index in stride(from: 0, to: flat.count - 1, by: 2) {
                if case .bulk(let key) = flat[index], case .integer(let value) = flat[index + 1] { values[key] = value }
            }
            return (values["shred.awaiting_retirement"] ?? -1, values["rewrap.pending"] ?? -1)
        }
        func rotateAndWait(to version: Int) throws {
            #expect(try admin.call("KEYS.ROTATE") == .integer(version))
            // The operator copies the new key file to node B's directory.
            _ = try Shell.run("cp", ["-a", a.keys + "/kek-\(version).key", copy + "/"])
            let deadline = Date().addingTimeInterval(60)
            while try status().pending > 0 && Date() < deadline { usleep(100_000) }
            #expect(try status().pending == 0)
        }
        func retire(_ version: Int) throws {
            // Nodes record the version they use once a second; until then RETIRE names them.
            let deadline = Date().addingTimeInterval(30)
            var reply = try admin.call("KEYS.RETIRE", "\(version)")
            while reply != .simple("OK"), reply.errorText?.contains("still current on node") == true, Date() < deadline
            {
                usleep(200_000)
                reply = try admin.call("KEYS.RETIRE", "\(version)")
            }
            #expect(reply == .simple("OK"), "\(reply)")
        }

        try rotateAndWait(to: 2)  // victim's key: wrapped under 1, then under 2
        #expect(try admin.call("SHRED", "victim") == .integer(1))
        #expect(try status().awaiting == 1)
        try rotateAndWait(to: 3)
        try retire(2)
        // Version 1 still wraps the victim's key in any dump taken before the first rotation.
        #expect(try status().awaiting == 1)
        try retire(1)
        #expect(try status().awaiting == 0)

        // Node B's copy of the retired key files goes within seconds of the retirement.
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline
            && (FileManager.default.fileExists(atPath: copy + "/kek-1.key")
                || FileManager.default.fileExists(atPath: copy + "/kek-2.key"))
        {
            usleep(200_000)
        }
        #expect(!FileManager.default.fileExists(atPath: copy + "/kek-1.key"))
        #expect(!FileManager.default.fileExists(atPath: copy + "/kek-2.key"))
        #expect(FileManager.default.fileExists(atPath: copy + "/kek-3.key"))
        #expect(b.stderr.contains("destroyed the key file of a KEK version retired on another node"), "\(b.stderr)")
    }
}
