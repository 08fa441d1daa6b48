import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Faults on the PostgreSQL backend (issue #12): the database restarted or crashed under write
/// load.
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
        #expect(!failures.isEmpty, "no client noticed the outage")
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
}
