import Foundation
import Synchronization
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Several `coffer serve` nodes on one PostgreSQL database (issue #12): what one node writes,
/// shreds or revokes, every other node sees at its next command; the audit trail stays one
/// unbroken chain; a node killed in the middle of a rewrap leaves it to the others.
@Suite struct MultiNodeTests {
    /// Checks the audit table directly: seqs 1…max with no gap, and AUDIT.VERIFY through `node`
    /// vouching for exactly that many entries.
    static func expectWholeTrail(_ node: TestServer, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let counts = try PostgresTestCluster.psql(
            "SELECT count(*) || ' ' || min(seq) || ' ' || max(seq) FROM audit", database: try node.databaseName)
        let numbers = counts.split(separator: " ").compactMap { Int($0) }
        #expect(numbers.count == 3 && numbers[0] == numbers[2] && numbers[1] == 1, "audit seqs: \(counts)")
        // VERIFY's own entry comes after the count above.
        let verified = try node.authenticated().call("AUDIT.VERIFY")
        #expect(
            verified == .simple("OK \((numbers.first ?? 0) + 2) entries verified"), "\(verified)",
            sourceLocation: sourceLocation)
    }

    @Test func threeNodesSeeEachOthersAcknowledgedWritesAtOnce() throws {
        let a = try TestServer(backend: .postgres)
        let nodes = [a, try a.anotherNode(), try a.anotherNode()]
        let secret = try a.addClient("w", role: "support")
        let database = try a.databaseName
        guard let before = Int(try PostgresTestCluster.psql("SELECT max(seq) FROM audit", database: database)) else {
            throw TestFailure("no audit trail")
        }
        let sockets = nodes.map(\.socketPath)
        let writersPerNode = 2
        let rounds = 60
        let problems = Mutex<[String]>([])
        let sent = Mutex<[String: Int]>([:])
        var threads: [Thread] = []
        for home in sockets.indices {
            for writer in 0..<writersPerNode {
                let thread = Thread {
                    var counted: [String: Int] = [:]
                    defer { sent.withLock { $0.merge(counted, uniquingKeysWith: +) } }
                    func call(_ client: RESPClient, _ words: String...) -> RESPClient.Reply {
                        counted[words[0], default: 0] += 1
                        return (try? client.call(words.map { Array($0.utf8) })) ?? .closed
                    }
                    // One connection to every node; writes go to this thread's own node.
                    var connections: [RESPClient] = []
                    for path in sockets {
                        guard let c = try? RESPClient(unixPath: path), call(c, "AUTH", "w", secret) == .simple("OK")
                        else { return problems.withLock { $0.append("node \(home) writer \(writer): no session") } }
                        connections.append(c)
                    }
                    for round in 0..<rounds {
                        let subject = "n\(home)-w\(writer)-\(round)"
                        let value = "Person \(home) \(writer) \(round)"
                        let put = call(connections[home], "PUT", subject, "name", value)
                        guard put == .integer(1) else {
                            problems.withLock { $0.append("PUT \(subject) on node \(home): \(put)") }
                            continue
                        }
                        // Acknowledged: every node must have it now, not eventually.
                        for (node, connection) in connections.enumerated() {
                            let read = call(connection, "GET", subject, "name")
                            if read != .array([.bulk(value)]) {
                                problems.withLock { $0.append("GET \(subject) on node \(node): \(read)") }
                            }
                        }
                    }
                }
                thread.start()
                threads.append(thread)
            }
        }
        #expect(eventually(within: 120) { threads.allSatisfy(\.isFinished) }, "a writer did not finish")
        #expect(problems.withLock { $0 } == [])
        let commands = sent.withLock { $0 }
        let writes = nodes.count * writersPerNode * rounds
        #expect(commands == ["AUTH": nodes.count * nodes.count * writersPerNode, "PUT": writes, "GET": writes * 3])

        // One entry per command sent, from all nodes, in one gapless chain.
        let audited = try PostgresTestCluster.psql(
            "SELECT command || ' ' || count(*) FROM audit WHERE seq > \(before) GROUP BY command ORDER BY command",
            database: database)
        #expect(audited == commands.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: "\n"))
        for node in nodes { try Self.expectWholeTrail(node) }
    }

    @Test func aShredOnOneNodeIsSeenByTheOthersAtOnce() throws {
        let a = try TestServer(backend: .postgres)
        let (b, c) = (try a.anotherNode(), try a.anotherNode())
        let secret = try a.addClient("s", role: "support")
        let admin = try a.authenticated()
        let readers = [try b.authenticated("s", secret: secret), try c.authenticated("s", secret: secret)]
        for i in 0..<10 {
            let subject = "cust-\(i)"
            let email = "p\(i)@example.com"
            let phone = "+1718555\(1000 + i)"
            #expect(
                try readers[i % 2].call("PUT", subject, "name", "Person \(i)", "email", email, "phone", phone)
                    == .integer(3))
            // Both readers see it before the shred, so what follows can fail.
            for reader in readers {
                #expect(
                    try reader.call("GET", subject, "name", "email", "phone")
                        == .array([.bulk("Person \(i)"), .bulk(email), .bulk(phone)]))
                #expect(try reader.call("FIND", "email", email) == .array([.bulk(subject)]))
            }
            #expect(try admin.call("SHRED", subject) == .integer(1))
            for (index, reader) in readers.enumerated() {
                let node = "node \(index == 0 ? "B" : "C"), subject \(i)"
                #expect(
                    try reader.call("GET", subject, "name", "email", "phone") == .array([.null, .null, .null]),
                    "\(node)")
                #expect(try reader.call("FIND", "email", email) == .array([]), "\(node)")
                #expect(try reader.call("FIND", "phone", phone) == .array([]), "\(node)")
                #expect(try reader.call("EXISTS", subject) == .integer(0), "\(node)")
            }
        }
    }

    @Test func aRevocationOnOneNodeEndsSessionsOnTheOthers() throws {
        let a = try TestServer(backend: .postgres)
        let (b, c) = (try a.anotherNode(), try a.anotherNode())
        let admin = try a.authenticated()

        let secret = try a.addClient("r", role: "support")
        let onB = try b.authenticated("r", secret: secret)
        let onC = try c.authenticated("r", secret: secret)
        #expect(try onB.call("PUT", "x", "name", "X") == .integer(1))
        #expect(try onC.call("GET", "x", "name") == .array([.bulk("X")]))
        #expect(try admin.call("CLIENT.REVOKE", "r") == .integer(1))
        for (node, session) in [("B", onB), ("C", onC)] {
            let reply = try session.call("GET", "x", "name")
            #expect(reply.errorText?.hasPrefix("NOAUTH") == true, "node \(node): \(reply)")
        }
        #expect(try b.client().call("AUTH", "r", secret).errorText?.hasPrefix("WRONGPASS") == true)

        // The same name again, with another role and a new secret: the old session on B proved
        // the old record, and must not slide into the new one.
        let old = try a.addClient("q", role: "support")
        let stale = try b.authenticated("q", secret: old)
        #expect(try stale.call("WHOAMI") == .array([.bulk("q"), .bulk("support")]))
        #expect(try admin.call("CLIENT.REVOKE", "q") == .integer(1))
        guard case .bulk(let new) = try admin.call("CLIENT.ADD", "q", "billing") else {
            throw TestFailure("CLIENT.ADD q billing failed")
        }
        #expect(new != old)
        for words in [["WHOAMI"], ["PUT", "y", "card.pan", "4111111111111111"], ["GET", "x", "name"]] {
            let reply = try stale.call(words.map { Array($0.utf8) })
            #expect(reply.errorText?.hasPrefix("NOAUTH") == true, "\(words[0]) on the stale session: \(reply)")
        }
        #expect(try c.client().call("AUTH", "q", old).errorText?.hasPrefix("WRONGPASS") == true)
        let fresh = try c.authenticated("q", secret: new)
        #expect(try fresh.call("WHOAMI") == .array([.bulk("q"), .bulk("billing")]))
        // The stale session is anonymous now, and stays so until it proves the new secret.
        #expect(try stale.call("AUTH", "q", new) == .simple("OK"))
        #expect(try stale.call("WHOAMI") == .array([.bulk("q"), .bulk("billing")]))
    }

    @Test func anotherNodesKeyStatusFollowsARotationAtOnce() throws {
        let count = 200
        let a = try TestServer(backend: .postgres)
        let b = try a.anotherNode()
        try Self.populate(try a.authenticated("s", secret: try a.addClient("s", role: "support")), count: count)
        let adminB = try b.authenticated()
        #expect(try adminB.keyStatus("rewrap.pending") == 0)
        #expect(try a.authenticated().call("KEYS.ROTATE") == .integer(2))
        // At once on B, before its once-a-second catch-up: the rewrap is counted against the
        // version the database calls current, in the same reply's counts.
        let status = try adminB.keyStatus()
        guard case .integer(let current)? = status["current"], case .integer(let pending)? = status["rewrap.pending"],
            case .array(let versions)? = status["versions"]
        else { throw TestFailure("bad KEYS.STATUS: \(status)") }
        #expect(current == 2)
        let underTwo = versions.compactMap { version -> Int? in
            guard case .array(let v) = version, v.count == 3, v[0] == .integer(2), case .integer(let keys) = v[2]
            else { return nil }
            return keys
        }
        #expect(underTwo.count == 1 && pending == count - (underTwo.first ?? 0), "\(status)")
    }

    /// The rewrap claims the subject rows it will rewrap. A PUT that adds a field to one of
    /// them checks the field's foreign key with `FOR KEY SHARE` on the subject row; while the
    /// claim was `FOR UPDATE`, that waited for the whole rewrap batch, holding the audit chain's
    /// head row meanwhile, so every node's writes waited too. The claim is `FOR NO KEY UPDATE`,
    /// as strong as the rewrap's own UPDATE and no stronger. A trigger holds one batch open
    /// with `pg_sleep`; the PUTs must be answered, on both nodes, while it still sleeps.
    @Test func writesDoNotWaitForTheRewrapsClaimedRows() throws {
        let count = 40
        let a = try TestServer(backend: .postgres)
        let b = try a.anotherNode()
        let database = try a.databaseName
        let secret = try a.addClient("s", role: "support")
        try Self.populate(try a.authenticated("s", secret: secret), count: count)
        try PostgresTestCluster.psql(
            """
            CREATE FUNCTION test_stall() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN IF OLD.id = 's0' THEN PERFORM pg_sleep(45); END IF; RETURN NEW; END $$;
            CREATE TRIGGER test_stall BEFORE UPDATE ON subject FOR EACH ROW EXECUTE FUNCTION test_stall();
            """, database: database)
        let sleeping =
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'PgSleep' AND datname = current_database()"
        #expect(try a.authenticated().call("KEYS.ROTATE") == .integer(2))
        #expect(try eventually(within: 30) { try PostgresTestCluster.psql(sleeping, database: database) == "1" })

        let writerA = try a.authenticated("s", secret: secret)
        let writerB = try b.authenticated("s", secret: secret)
        for i in 1..<count {
            let writer = i % 2 == 0 ? writerA : writerB
            #expect(try writer.call("PUT", "s\(i)", "phone", "+4420794600\(i % 10)") == .integer(1))
        }
        #expect(
            try PostgresTestCluster.psql(sleeping, database: database) == "1",
            "the PUTs were answered only after the rewrap's batch")
        // The trigger stops sleeping before the batch is cancelled, so the retried batch does
        // not sleep again (dropping the trigger now would wait for the sleeping batch).
        try PostgresTestCluster.psql(
            "CREATE OR REPLACE FUNCTION test_stall() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$",
            database: database)
        try PostgresTestCluster.psql(
            "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE wait_event = 'PgSleep' AND datname = current_database()",
            database: database)
        #expect(try eventually(within: 60, every: 200_000) { try a.authenticated().keyStatus("rewrap.pending") == 0 })
        try PostgresTestCluster.psql("DROP TRIGGER test_stall ON subject", database: database)
        let replies = try writerA.pipeline((0..<count).map { ["GET", "s\($0)", "name", "phone"] })
        for (i, reply) in replies.enumerated() {
            let phone: RESPClient.Reply = i == 0 ? .null : .bulk("+4420794600\(i % 10)")
            #expect(reply == .array([.bulk("Person \(i)"), phone]), "s\(i): \(reply)")
        }
        try Self.expectWholeTrail(a)
    }

    /// Fills the vault over one pipelined connection.
    static func populate(_ client: RESPClient, count: Int) throws {
        let replies = try client.pipeline(
            (0..<count).map { ["PUT", "s\($0)", "name", "Person \($0)", "email", "p\($0)@example.com"] })
        let failed = replies.filter { $0 != .integer(2) }
        guard failed.isEmpty else { throw TestFailure("\(failed.count) PUTs failed, first \(failed[0])") }
    }

    @Test func aNodeKilledMidRewrapLeavesItToAnother() throws {
        let count = 3000
        let batch = ["--rewrap-batch", "25"]
        let a = try TestServer(extraArguments: batch, backend: .postgres)
        let b = try a.anotherNode(extraArguments: batch)
        let database = try a.databaseName
        let secret = try a.addClient("s", role: "support")
        try Self.populate(try a.authenticated("s", secret: secret), count: count)
        let adminA = try a.authenticated()
        let adminB = try b.authenticated()
        #expect(try adminA.call("KEYS.ROTATE") == .integer(2))
        // Kill A once it has rewrapped a good share of the keys and more are left.
        var killedAt: (done: Int, pending: Int)?
        _ = try eventually(within: 60, every: 2_000) {
            let status = try adminA.keyStatus()
            guard case .integer(let done)? = status["rewrap.done"],
                case .integer(let pending)? = status["rewrap.pending"]
            else { throw TestFailure("bad KEYS.STATUS: \(status)") }
            if pending == 0 { return true }
            guard done >= count / 10 else { return false }
            a.stop(signal: SIGKILL)
            killedAt = (done, pending)
            return true
        }
        let killed = Date()
        let left =
            Int(try PostgresTestCluster.psql("SELECT count(*) FROM subject WHERE kek_version <> 2", database: database))
            ?? 0
        #expect(killedAt != nil && left > 0, "the kill did not land in the middle of the rewrap (\(left) left)")
        #expect(try eventually(within: 90, every: 100_000) { try adminB.keyStatus("rewrap.pending") == 0 })
        let finished = Date()
        #expect(
            try PostgresTestCluster.psql("SELECT count(*) FROM subject WHERE kek_version <> 2", database: database)
                == "0")

        let reader = try b.authenticated("s", secret: secret)
        let replies = try reader.pipeline((0..<count).map { ["GET", "s\($0)", "name", "email"] })
        let wrong = replies.enumerated().filter { $1 != .array([.bulk("Person \($0)"), .bulk("p\($0)@example.com")]) }
        #expect(wrong.isEmpty, "\(wrong.count) subjects do not read back, first \(wrong.first.map { "\($0)" } ?? "")")

        // A live node that still wraps new keys under version 1 holds its retirement back; a
        // node row is what every node publishes about itself each second.
        try PostgresTestCluster.psql(
            "INSERT INTO node (id, current_kek, seen_at) VALUES ('ghost:1', 1, extract(epoch FROM now()))",
            database: database)
        let refused = try adminB.call("KEYS.RETIRE", "1")
        #expect(refused.errorText?.hasPrefix("INVALID KEK version 1 is still current on node ") == true, "\(refused)")
        #expect(refused.errorText?.contains("ghost:1") == true, "\(refused)")
        try PostgresTestCluster.psql("DELETE FROM node WHERE id = 'ghost:1'", database: database)
        // A's own row may say version 1 for up to 10 s if it died before publishing version 2.
        var retired: RESPClient.Reply = .null
        _ = try eventually(within: 30, every: 250_000) {
            retired = try adminB.call("KEYS.RETIRE", "1")
            return retired.errorText?.contains("is still current on node") != true
        }
        #expect(retired == .simple("OK"))
        print(
            "rewrap: A killed after rewrapping \(killedAt?.done ?? 0) keys, with \(left) of \(count) keys left; B finished them in \(String(format: "%.1f", finished.timeIntervalSince(killed))) s; retired \(String(format: "%.1f", Date().timeIntervalSince(killed))) s after the kill"
        )
        #expect(!FileManager.default.fileExists(atPath: b.keys + "/kek-1.key"))
        #expect(try reader.call("GET", "s123", "email") == .array([.bulk("p123@example.com")]))
        try Self.expectWholeTrail(b)
    }
}
