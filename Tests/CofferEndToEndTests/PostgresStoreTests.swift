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
