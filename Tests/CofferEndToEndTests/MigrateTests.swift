import Foundation
import Testing

/// `coffer migrate`: a SQLite vault copied into an empty PostgreSQL database, then served by a
/// node on it.
@Suite struct MigrateTests {
    /// Runs SQL on a SQLite database file with the sqlite3 shell; its output, one row a line.
    @discardableResult
    static func sqlite(_ database: String, _ sql: String) throws -> String {
        let (status, output) = try Shell.run("sqlite3", [database, sql])
        guard status == 0 else { throw TestFailure("sqlite3 failed: \(output)") }
        return output.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Every table of the database's public schema.
    static func tables(_ database: String) throws -> [String] {
        try PostgresTestCluster.psql(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename", database: database
        ).split(separator: "\n").map(String.init)
    }

    static func migrate(_ server: TestServer, to url: String) throws -> CofferBinary.Result {
        try CofferBinary.run(["migrate", "--from", server.data, "--to", url, "--keys", server.keys])
    }

    static let contact = ["name", "email", "phone"]
    static let card = ["card.pan", "card.expiry", "card.holder"]
    /// More subjects than a page of the copy holds (512), and more audit entries (4,096).
    static let bulk = 4200

    @Test func aMigratedVaultServesTheSameDataOnPostgres() throws {
        let old = try TestServer(extraArguments: ["--rewrap-batch", "5"])
        let supportSecret = try old.addClient("support", role: "support")
        let billingSecret = try old.addClient("billing", role: "billing")
        let support = try old.authenticated("support", secret: supportSecret)
        let billing = try old.authenticated("billing", secret: billingSecret)
        let admin = try old.authenticated()
        for i in 0..<30 {
            let put = try support.call(
                "PUT", "m\(i)", "name", "Person \(i)", "email", "p\(i)@example.com", "phone", "+1 718 942 \(1000 + i)")
            #expect(put == .integer(3))
        }
        for i in 0..<8 {
            let put = try billing.call(
                "PUT", "m\(i)", "card.pan", "4111111111111111", "card.expiry", "07/29", "card.holder", "HOLDER \(i)")
            #expect(put == .integer(3))
        }
        // Enough rows that every table is copied and checked in several pages.
        var pipeline: [UInt8] = []
        for i in 0..<Self.bulk {
            pipeline += RESPClient.encode(
                ["PUT", "bulk-\(i)", "name", "Bulk \(i)", "email", "bulk\(i)@example.com"].map { Array($0.utf8) })
        }
        try support.send(pipeline)
        for _ in 0..<Self.bulk { #expect(try support.read() == .integer(2)) }
        guard case .bulk(let token) = try billing.call("TOKENIZE", "m3", "card.pan") else {
            Issue.record("TOKENIZE failed")
            return
        }
        #expect(try admin.call("KEYS.ROTATE") == .integer(2))
        // Written under KEK 2, while the rewrap moves the others (finished or not when it stops).
        for i in 30..<40 { #expect(try support.call("PUT", "m\(i)", "name", "Later \(i)") == .integer(1)) }
        #expect(try admin.call("SHRED", "m5") == .integer(1))
        // A subject whose only field is gone keeps its data key.
        #expect(try support.call("DEL", "m39", "name") == .integer(1))
        // Entries with a purpose and a ticket: their MACs cover both.
        #expect(try support.call("GET", "m1", "name", "PURPOSE", "support") == .array([.bulk("Person 1")]))
        #expect(try support.call("GET", "m2", "name", "PURPOSE", "other", "INC-42") == .array([.bulk("Person 2")]))
        func reads(_ client: RESPClient) throws -> [RESPClient.Reply] {
            try (0..<40).map { try client.call((["GET", "m\($0)"] + Self.contact + Self.card).map { Array($0.utf8) }) }
        }
        let supportReads = try reads(support)
        let billingReads = try reads(billing)
        #expect(supportReads[1] != billingReads[1], "the two roles should see different masks")
        #expect(old.stop() == 0)

        let source = old.data + "/coffer.db"
        let sourceTrail = try Self.sqlite(source, "SELECT seq, hex(mac) FROM audit ORDER BY seq")
        let sourceKEKs = try Self.sqlite(source, "SELECT version, state FROM kek ORDER BY version")
        let database = try PostgresTestCluster.freshDatabase()
        let migrated = try Self.migrate(old, to: database.url)
        #expect(migrated.status == 0, "\(migrated.stderr)")
        #expect(
            migrated.stderr.contains("2 KEK versions, 4239 subjects, 8517 fields, 4258 index entries, 3 clients"),
            "\(migrated.stderr)")
        #expect(migrated.stderr.contains("1 token;"), "\(migrated.stderr)")
        #expect(!migrated.stderr.contains("Person") && !migrated.stderr.contains("4111"))
        // The source is left as it was.
        #expect(try Self.sqlite(source, "SELECT seq, hex(mac) FROM audit ORDER BY seq") == sourceTrail)
        // The copied trail is the source's, entry for entry, then MIGRATE by the local operator.
        let copiedTrail = try PostgresTestCluster.psql(
            "SELECT seq, upper(encode(mac, 'hex')) FROM audit ORDER BY seq", database: database.name
        )
        let sourceLines = sourceTrail.split(separator: "\n")
        let copiedLines = copiedTrail.split(separator: "\n")
        #expect(copiedLines.count == sourceLines.count + 1)
        #expect(Array(copiedLines.prefix(sourceLines.count)) == sourceLines)
        #expect(
            try PostgresTestCluster.psql(
                "SELECT command, client, outcome FROM audit ORDER BY seq DESC LIMIT 1", database: database.name)
                == "MIGRATE|(operator)|ok")
        #expect(
            try PostgresTestCluster.psql("SELECT version, state FROM kek ORDER BY version", database: database.name)
                == sourceKEKs)

        let node = try TestServer(root: old.root, adminSecret: old.adminSecret, store: database.url)
        let nodeSupport = try node.authenticated("support", secret: supportSecret)
        let nodeBilling = try node.authenticated("billing", secret: billingSecret)
        #expect(try reads(nodeSupport) == supportReads)
        #expect(try reads(nodeBilling) == billingReads)
        #expect(try nodeBilling.call("DETOKENIZE", token) == .array([.bulk("m3"), .bulk("4111111111111111")]))
        #expect(try nodeSupport.call("FIND", "email", "p7@example.com") == .array([.bulk("m7")]))
        #expect(try nodeSupport.call("EXISTS", "m5") == .integer(0))
        for i in [0, 511, 512, 2048, Self.bulk - 1] {
            #expect(try nodeSupport.call("GET", "bulk-\(i)", "name") == .array([.bulk("Bulk \(i)")]))
            #expect(try nodeSupport.call("FIND", "email", "bulk\(i)@example.com") == .array([.bulk("bulk-\(i)")]))
        }
        let nodeAdmin = try node.authenticated()
        #expect(try nodeAdmin.call("AUDIT.VERIFY").description.hasPrefix("+OK"), "the trail does not verify")
        // New writes go on from the copied chain.
        #expect(try nodeSupport.call("PUT", "m40", "name", "After") == .integer(1))
        #expect(try nodeSupport.call("GET", "m40", "name") == .array([.bulk("After")]))
        // The node finishes the rewrap the SQLite server may have left, and KEK 1 can go.
        let deadline = Date().addingTimeInterval(60)
        var retired = RESPClient.Reply.null
        repeat {
            retired = try nodeAdmin.call("KEYS.RETIRE", "1")
            if retired == .simple("OK") { break }
            usleep(100_000)
        } while Date() < deadline
        #expect(retired == .simple("OK"), "\(retired)")
        #expect(try reads(nodeSupport) == supportReads)
        #expect(node.stop() == 0)
    }

    @Test func aDatabaseThatIsNotEmptyIsRefusedAndLeftAlone() throws {
        let old = try TestServer()
        #expect(try old.authenticated().call("CLIENT.ADD", "probe", "auditor").errorText == nil)
        #expect(old.stop() == 0)
        // A database holding anything at all.
        let other = try PostgresTestCluster.freshDatabase()
        try PostgresTestCluster.psql("CREATE TABLE keep (x int); INSERT INTO keep VALUES (7)", database: other.name)
        let refused = try Self.migrate(old, to: other.url)
        #expect(refused.status == 1)
        #expect(refused.stderr.contains("is not empty"), "\(refused.stderr)")
        #expect(try Self.tables(other.name) == ["keep"])
        #expect(try PostgresTestCluster.psql("SELECT x FROM keep", database: other.name) == "7")
        // A PostgreSQL vault in service.
        let live = try TestServer(backend: .postgres)
        // postgresql://postgres@/NAME?host=…
        let liveName = try #require(live.store?.components(separatedBy: "@/").last?.components(separatedBy: "?").first)
        let before = try PostgresTestCluster.psql("SELECT count(*), max(seq) FROM audit", database: liveName)
        let intoVault = try Self.migrate(old, to: live.store!)
        #expect(intoVault.status == 1)
        #expect(intoVault.stderr.contains("is not empty"), "\(intoVault.stderr)")
        #expect(try PostgresTestCluster.psql("SELECT count(*), max(seq) FROM audit", database: liveName) == before)
        #expect(try live.authenticated().call("AUDIT.VERIFY").description.hasPrefix("+OK"))
    }

    @Test func aVaultAServerHoldsIsRefused() throws {
        let server = try TestServer()
        let database = try PostgresTestCluster.freshDatabase()
        let refused = try Self.migrate(server, to: database.url)
        #expect(refused.status == 1)
        #expect(
            refused.stderr.contains("is in use by coffer serve (pid \(server.process.processIdentifier)"),
            "\(refused.stderr)")
        #expect(try Self.tables(database.name).isEmpty)
        #expect(try server.authenticated().call("PING") == .simple("PONG"))
    }

    @Test func aTamperedSourceFailsTheCheckAndLeavesTheDatabaseEmpty() throws {
        let old = try TestServer()
        let support = try old.authenticated("support", secret: try old.addClient("support", role: "support"))
        for i in 0..<5 { #expect(try support.call("PUT", "t\(i)", "name", "Secret Name \(i)") == .integer(1)) }
        #expect(old.stop() == 0)
        // One byte of one sealed field, flipped behind Coffer's back.
        let source = old.data + "/coffer.db"
        var hex = Array(
            try Self.sqlite(source, "SELECT hex(sealed) FROM field WHERE subject_id = 't3' AND name = 'name'"))
        #expect(hex.count > 80)
        hex[60] = hex[60] == "0" ? "1" : "0"
        try Self.sqlite(source, "UPDATE field SET sealed = X'\(String(hex))' WHERE subject_id = 't3' AND name = 'name'")
        let database = try PostgresTestCluster.freshDatabase()
        let failed = try Self.migrate(old, to: database.url)
        #expect(failed.status == 1)
        #expect(failed.stderr.contains("field 'name' of subject 't3' failed to open"), "\(failed.stderr)")
        #expect(failed.stderr.contains("nothing was migrated"), "\(failed.stderr)")
        #expect(!failed.stderr.contains("Secret Name"))
        #expect(try Self.tables(database.name).isEmpty)
    }
}
