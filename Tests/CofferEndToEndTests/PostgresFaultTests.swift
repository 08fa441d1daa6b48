import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Faults on the PostgreSQL backend (issue #12): the database restarted or crashed under write
/// load, a node killed in the middle of a batch, and what a shred leaves in PostgreSQL's files
/// until the KEK versions that wrapped the subject's key are retired.
@Suite struct PostgresFaultTests {
    enum Outage: String, CaseIterable, Sendable, CustomTestStringConvertible {
        /// `.ci/postgres restart`: `pg_ctl restart -m fast`.
        case restart
        /// `pg_ctl stop -m immediate` (a crash, recovered from the WAL), held down, then started.
        case crash

        var testDescription: String { rawValue }
    }

    @Test(arguments: Outage.allCases) func postgresGoesAwayUnderWriteLoad(outage: Outage) throws {
        let postgres = try PrivatePostgresCluster()
        let (database, url) = try postgres.freshDatabase()
        let home = TemporaryDirectory("pgfault")
        let initialized = try CofferBinary.run(["init", "--store", url, "--keys", home.path + "/keys"])
        guard initialized.status == 0 else { throw TestFailure("init failed: \(initialized.stderr)") }
        let node = try TestServer(
            root: home.path, adminSecret: initialized.stdout.trimmingCharacters(in: .whitespacesAndNewlines), store: url
        )
        let pid = node.process.processIdentifier
        let secret = try node.addClient("w", role: "support")
        let load = WriteLoad(sockets: [node.socketPath], client: "w", secret: secret, writersPerSocket: 3, tag: "w")
        load.start()
        defer { load.stop() }
        #expect(eventually(within: 30) { load.acknowledgedCount >= 100 }, "the writers got nothing acknowledged")

        let down: Date
        let up: Date
        switch outage {
        case .restart:
            down = Date()
            try postgres.restart()
            up = Date()
        case .crash:
            try postgres.down(immediate: true)
            down = Date()
            // Held down until every writer has met the outage.
            #expect(
                eventually(within: 30) { load.failures.filter { $0.started > down }.count >= 3 },
                "the writers saw no errors while PostgreSQL was down")
            up = Date()
            try postgres.up()
        }
        // The same node process reconnects by itself.
        #expect(
            eventually(within: 30) { load.acknowledgedCalls.contains { $0.started > up } },
            "no write was acknowledged within 30 s of PostgreSQL coming back")
        #expect(node.process.isRunning && node.process.processIdentifier == pid)
        #expect(load.stop(), "a writer's call hangs")

        let failures = load.failures
        // A fast restart can fall between two batches: the pool replaces its connections and no
        // command fails, which is as it should be. A stop held down must be noticed (checked
        // above, while it is down).
        // No write that began after PostgreSQL was gone was acknowledged before it came back.
        let impossible = outage == .restart ? [] : load.acknowledgedCalls.filter { $0.started > down && $0.ended < up }
        #expect(impossible.isEmpty, "\(impossible.count) writes acknowledged while PostgreSQL was down")
        // Errors, promptly. A batch gives up after the node's 5 s wait for a connection, and a
        // command that arrives meanwhile waits for that batch, then fails in its own: 10 s at
        // worst, plus slack for a loaded machine.
        #expect(load.longestCall < 13, "a call took \(load.longestCall) s")
        let kinds = Set(failures.map { String($0.reply.prefix { $0 != " " }) })
        #expect(kinds.isSubset(of: ["-STORAGE"]), "unexpected failures: \(kinds) \(failures.prefix(3).map(\.reply))")

        let reader = try node.authenticated("w", secret: secret)
        let expected = load.acknowledged
        let lost = try WriteLoad.mismatches(expected, through: reader)
        #expect(lost.isEmpty, "\(lost.count) of \(expected.count) acknowledged writes lost: \(lost.prefix(3))")
        let counts = try postgres.psql(
            "SELECT count(*) || ' ' || min(seq) || ' ' || max(seq) FROM audit", database: database)
        let numbers = counts.split(separator: " ").compactMap { Int($0) }
        #expect(numbers.count == 3 && numbers[0] == numbers[2] && numbers[1] == 1, "audit seqs: \(counts)")
        let verified = try node.authenticated().call("AUDIT.VERIFY")
        #expect(verified == .simple("OK \((numbers.first ?? 0) + 2) entries verified"), "\(verified)")
        print(
            "postgres \(outage): \(expected.count) acknowledged writes checked, \(failures.count) errors, longest call \(String(format: "%.2f", load.longestCall)) s"
        )
    }

    @Test func aNodeKilledMidBatchLosesNothingAcknowledged() throws {
        let survivor = try TestServer(backend: .postgres)
        let secret = try survivor.addClient("w", role: "support")
        let background = WriteLoad(
            sockets: [survivor.socketPath], client: "w", secret: secret, writersPerSocket: 1, tag: "b")
        background.start()
        defer { background.stop() }
        var loads: [WriteLoad] = []
        var inFlightAtKills = 0
        for round in 0..<3 {
            let victim = try survivor.anotherNode()
            let load = WriteLoad(
                sockets: [victim.socketPath], client: "w", secret: secret, writersPerSocket: 4, tag: "r\(round)")
            loads.append(load)
            load.start()
            #expect(eventually(within: 30) { load.acknowledgedCount >= 50 + 40 * round }, "round \(round): no writes")
            inFlightAtKills += load.inFlight
            victim.stop(signal: SIGKILL)
            #expect(load.stop(), "round \(round): a writer did not notice the dead node")
        }
        #expect(inFlightAtKills > 0, "no kill landed while a write was in flight")
        let before = background.acknowledgedCount
        #expect(eventually(within: 30) { background.acknowledgedCount > before }, "the survivor stopped writing")
        background.stop()

        let reader = try survivor.authenticated("w", secret: secret)
        for (round, load) in loads.enumerated() {
            let expected = load.acknowledged
            let lost = try WriteLoad.mismatches(expected, through: reader)
            #expect(lost.isEmpty, "round \(round): \(lost.count) of \(expected.count) acknowledged writes lost")
        }
        #expect(try WriteLoad.mismatches(background.acknowledged, through: reader).isEmpty)
        try MultiNodeTests.expectWholeTrail(survivor)
        print(
            "node kills: 3 nodes killed with \(inFlightAtKills) PUTs in flight; \(loads.map(\.acknowledgedCount).reduce(0, +) + background.acknowledgedCount) acknowledged writes checked on the survivor"
        )
    }

    /// A dead tuple's attributes as `tuple_data_split` gives them, hex, with the 1-byte varlena
    /// header of short text and bytea values still on.
    static func deadTuples(_ table: String, database: String) throws -> [[String]] {
        let output = try PostgresTestCluster.psql(
            """
            SELECT array_to_string(ARRAY(SELECT encode(a, 'hex') FROM unnest(
                tuple_data_split('\(table)'::regclass, t_data, t_infomask, t_infomask2, t_bits)) a), ',')
            FROM generate_series(0, pg_relation_size('\(table)') / current_setting('block_size')::int - 1) AS block,
                heap_page_items(get_raw_page('\(table)', block::int))
            WHERE t_xmax <> 0
            """, database: database)
        return output.split(separator: "\n").map {
            $0.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
        }
    }

    /// A short varlena (text or bytea under 127 bytes) without its 1-byte header, as hex.
    static func shortVarlena(_ hex: String) -> String { String(hex.dropFirst(2)) }

    static func text(_ hex: String) -> String {
        let bytes = stride(from: 0, to: hex.count, by: 2).compactMap {
            UInt8(hex.dropFirst($0).prefix(2), radix: 16)
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    @Test func aShredIsCompleteOnceItsKEKVersionIsRetired() throws {
        let node = try TestServer(backend: .postgres)
        let database = try node.databaseName
        let secret = try node.addClient("s", role: "support")
        let support = try node.authenticated("s", secret: secret)
        let admin = try node.authenticated()
        let plaintext = "Wilhelmina Fairweather-Plaintext"
        #expect(
            try support.call("PUT", "victim", "name", plaintext, "email", "wilhelmina@example.com") == .integer(2))
        #expect(try support.call("PUT", "bystander", "name", "B") == .integer(1))
        let wrapped = try PostgresTestCluster.psql(
            "SELECT encode(wrapped_dek, 'hex') FROM subject WHERE id = 'victim'", database: database)
        #expect(wrapped.count == 144)
        #expect(try admin.call("SHRED", "victim") == .integer(1))
        #expect(try admin.keyStatus("shred.awaiting_retirement") == 1)

        // The deleted row is still in the table's pages, and in its file once checkpointed.
        try PostgresTestCluster.psql(
            "SET client_min_messages = warning; CREATE EXTENSION IF NOT EXISTS pageinspect", database: database)
        try PostgresTestCluster.psql("CHECKPOINT", database: database)
        let file = try PostgresTestCluster.psql(
            "SELECT current_setting('data_directory') || '/' || pg_relation_filepath('subject')", database: database)
        let onDisk = try Data(contentsOf: URL(fileURLWithPath: file))
        let wrappedBytes = Data(
            stride(from: 0, to: wrapped.count, by: 2).compactMap {
                UInt8(wrapped.dropFirst($0).prefix(2), radix: 16)
            })
        #expect(onDisk.range(of: wrappedBytes) != nil, "the wrapped DEK is not in \(file)")
        // Recovered from the dead tuples: the subject row (id, kek_version, wrapped_dek) and its fields.
        let subjectRows = try Self.deadTuples("subject", database: database).filter {
            $0.count == 3 && Self.text(Self.shortVarlena($0[0])) == "victim"
        }
        #expect(subjectRows.count == 1)
        let recovered = try #require(subjectRows.first)
        #expect(Self.shortVarlena(recovered[2]) == wrapped, "the dead tuple does not hold the wrapped DEK")
        let fieldRows = try Self.deadTuples("field", database: database).filter {
            $0.count == 4 && Self.text(Self.shortVarlena($0[0])) == "victim"
        }
        #expect(fieldRows.count == 2)

        // The recovered rows put back as they were, bypassing the trigger that refuses a data key
        // under a version that is not live (as superuser: anyone who holds a copy of the files).
        func bytea(_ hex: String) -> String { "decode('\(Self.shortVarlena(hex))', 'hex')" }
        var restore = [
            "SET session_replication_role = replica",
            "INSERT INTO subject (id, kek_version, wrapped_dek) VALUES ('victim', 1, \(bytea(recovered[2])))",
        ]
        for field in fieldRows {
            // write_seq is an int8, stored little-endian.
            let seqBytes = stride(from: 0, to: field[3].count, by: 2).compactMap {
                UInt8(field[3].dropFirst($0).prefix(2), radix: 16)
            }
            let seq = seqBytes.reversed().reduce(0) { $0 << 8 | Int64($1) }
            restore.append(
                "INSERT INTO field (subject_id, name, sealed, write_seq) VALUES ('victim', '\(Self.text(Self.shortVarlena(field[1])))', \(bytea(field[2])), \(seq))"
            )
        }
        // While version 1 lives, what the shred left behind still opens: the gap the retirement closes.
        try PostgresTestCluster.psql(restore.joined(separator: "; "), database: database)
        #expect(
            try support.call("GET", "victim", "name", "email")
                == .array([.bulk(plaintext), .bulk("wilhelmina@example.com")]))
        try PostgresTestCluster.psql("DELETE FROM subject WHERE id = 'victim'", database: database)

        // Rotate, let the rewrap finish, retire version 1.
        #expect(try admin.call("KEYS.ROTATE") == .integer(2))
        #expect(try eventually(within: 60, every: 100_000) { try admin.keyStatus("rewrap.pending") == 0 })
        #expect(try admin.call("KEYS.RETIRE", "1") == .simple("OK"))
        #expect(try admin.keyStatus("shred.awaiting_retirement") == 0)
        #expect(!FileManager.default.fileExists(atPath: node.keys + "/kek-1.key"))
        #expect(FileManager.default.fileExists(atPath: node.keys + "/kek-2.key"))
        // The bytes are still in the table's pages...
        let pagesHolding = try PostgresTestCluster.psql(
            """
            SELECT count(*) FROM generate_series(0, pg_relation_size('subject') / current_setting('block_size')::int - 1) AS block
            WHERE position(decode('\(wrapped)', 'hex') IN get_raw_page('subject', block::int)) > 0
            """, database: database)
        #expect((Int(pagesHolding) ?? 0) >= 1, "the wrapped DEK is no longer in the table's pages")
        // ...and put back once more, they open nothing.
        try PostgresTestCluster.psql(restore.joined(separator: "; "), database: database)
        #expect(
            try PostgresTestCluster.psql("SELECT count(*) FROM field WHERE subject_id = 'victim'", database: database)
                == "2")
        let reply = try support.call("GET", "victim", "name", "email")
        #expect(reply.errorText?.contains("KEK version 1 is not in the key directory") == true, "\(reply)")
        #expect(!reply.description.contains(plaintext) && !reply.description.contains("wilhelmina@"))
        #expect(try support.call("GET", "bystander", "name") == .array([.bulk("B")]))
        try PostgresTestCluster.psql("DELETE FROM subject WHERE id = 'victim'", database: database)
    }
}
