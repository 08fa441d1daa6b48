import Foundation
import Logging
import NIOCore
import PostgresNIO

/// What one transaction has sent without waiting for, and what it has read of its subjects.
/// Used by one thread at a time, like the transaction it belongs to.
final class PostgresTransactionState {
    /// Statements whose answer nobody needs at once (SAVEPOINT, the audit INSERT): the
    /// connection runs them in order, so each is answered before the next awaited statement,
    /// which then also settles them.
    var unsettled: [EventLoopFuture<PostgresQueryResult>] = []
    /// Each subject's wrapped key and fields, read in one query by `subjectKey` (nil: no such
    /// subject). Writes to a subject drop its entry; a rolled-back savepoint drops them all.
    var subjects: [String: (key: WrappedKey, fields: [String: SealedField])?] = [:]
}

/// The PostgreSQL store's view of one transaction on one leased connection. Statements are
/// awaited on the calling thread (the committer or a pool thread, never an event loop); those
/// whose answer is not needed at once are sent without waiting (`send`), so a GET costs two
/// round trips, not five.
struct PostgresTransaction: StoreWriting {
    let connection: PostgresConnection
    let logger: Logger
    let memo: TransactionMemo
    /// The rewrap's transactions claim the rows they will update with `FOR NO KEY UPDATE SKIP LOCKED`,
    /// so several nodes rewrap side by side without taking the same rows.
    var claimsRows = false
    let state = PostgresTransactionState()

    static func run(_ connection: PostgresConnection, _ query: PostgresQuery, _ logger: Logger) throws
        -> PostgresQueryResult
    {
        do {
            return try watched(connection, connection.query(query, logger: logger)).wait()
        } catch {
            throw StoreError("PostgreSQL: \(describe(error))")
        }
    }

    /// postgres-nio (1.33) drops a query written to a connection whose channel has already
    /// closed (the server ended it: a restart, a crash, an administrator), and its future
    /// never completes: the calling thread, the committer among them, would wait for ever.
    /// So every answer also ends, with an error, once the connection is seen closed.
    static func watched(_ connection: PostgresConnection, _ answer: EventLoopFuture<PostgresQueryResult>)
        -> EventLoopFuture<PostgresQueryResult>
    {
        let loop = connection.eventLoop
        let result = loop.makePromise(of: PostgresQueryResult.self)
        answer.cascade(to: result)
        // One timer per statement does both watches: the connection closed, or (whatever else
        // goes wrong) no answer within `statementDeadline`, after which the connection is closed
        // (the pool replaces it) and the command fails.
        let started = NIODeadline.now()
        let watch = loop.scheduleRepeatedTask(initialDelay: closedCheck, delay: closedCheck) { _ in
            // A second completion of the promise (the answer after all) is ignored by NIO.
            if connection.isClosed {
                result.fail(StoreError("the connection to PostgreSQL was closed"))
            } else if NIODeadline.now() - started > statementDeadline {
                result.fail(
                    StoreError("PostgreSQL did not answer within \(statementDeadline.nanoseconds / 1_000_000_000) s"))
                connection.close().whenComplete { _ in }
            }
        }
        result.futureResult.whenComplete { _ in watch.cancel() }
        return result.futureResult
    }

    /// How often a waiting query checks that its connection is still open.
    static let closedCheck = TimeAmount.milliseconds(200)
    /// The longest any statement is waited for (Coffer's statements take milliseconds).
    static let statementDeadline = TimeAmount.seconds(60)

    /// PostgreSQL's SQLSTATE and primary message, never its DETAIL (which may quote a row's
    /// values, a subject ID among them).
    static func describe(_ error: any Error) -> String {
        guard let error = error as? PSQLError else { return "\(error)" }
        if let info = error.serverInfo {
            return "\(info[.message] ?? "error") (SQLSTATE \(info[.sqlState] ?? "?"))"
        }
        if let underlying = error.underlying { return "\(error.code): \(underlying)" }
        return "\(error.code)"
    }

    /// Sends `query` and waits for its answer; throws the first failure of the statements sent
    /// before it (which explains a failure of this one: the transaction was already aborted).
    @discardableResult
    func query(_ query: PostgresQuery) throws -> PostgresQueryResult {
        let answer = Self.watched(connection, connection.query(query, logger: logger))
        let result = Result { try answer.wait() }
        try settle()
        do { return try result.get() } catch { throw StoreError("PostgreSQL: \(Self.describe(error))") }
    }

    /// Sends `query` without waiting: its failure is thrown by the next `query` or `settle`.
    func send(_ query: PostgresQuery) {
        state.unsettled.append(Self.watched(connection, connection.query(query, logger: logger)))
    }

    /// Waits for every statement sent and not yet settled; throws the first failure.
    func settle() throws {
        let sent = state.unsettled
        state.unsettled.removeAll()
        for future in sent {
            do { _ = try future.wait() } catch { throw StoreError("PostgreSQL: \(Self.describe(error))") }
        }
    }

    func execute(_ sql: String) throws {
        try query(PostgresQuery(unsafeSQL: sql))
    }

    /// Rows changed by the statement.
    func changes(_ sql: PostgresQuery) throws -> Int {
        try query(sql).metadata.rows ?? 0
    }

    static func bytes(_ buffer: ByteBuffer) -> [UInt8] { Array(buffer.readableBytesView) }
    static func buffer(_ bytes: [UInt8]) -> ByteBuffer { ByteBuffer(bytes: bytes) }

    /// One per command on the hot path. SAVEPOINT is sent without waiting; RELEASE is awaited,
    /// so a failed audit INSERT (sent without waiting) fails its own command, not a later one.
    /// Any failed statement aborts a PostgreSQL transaction, so even a read takes a savepoint.
    func readingSavepoint<T>(_ body: () throws -> T) throws -> T { try savepoint(body) }

    func savepoint<T>(_ body: () throws -> T) throws -> T {
        send("SAVEPOINT unit")
        let result: T
        do {
            result = try body()
        } catch {
            memo.forget()
            state.subjects.removeAll()
            try? settle()
            try? execute("ROLLBACK TO SAVEPOINT unit")
            try? execute("RELEASE SAVEPOINT unit")
            throw error
        }
        do {
            try execute("RELEASE SAVEPOINT unit")
        } catch {
            memo.forget()
            state.subjects.removeAll()
            try? execute("ROLLBACK TO SAVEPOINT unit")
            try? execute("RELEASE SAVEPOINT unit")
            throw error
        }
        return result
    }

    // MARK: Subjects, fields and blind indexes

    /// Reads the subject's key and every field of it in one round trip: a GET asks for both.
    func subjectKey(_ subject: String) throws -> WrappedKey? {
        try subjectRows(subject)?.key
    }

    private func subjectRows(_ subject: String) throws -> (key: WrappedKey, fields: [String: SealedField])? {
        if let known = state.subjects[subject] { return known }
        let rows = try query(
            """
            SELECT s.kek_version, s.wrapped_dek, f.name, f.sealed, f.write_seq
            FROM subject s LEFT JOIN field f ON f.subject_id = s.id WHERE s.id = \(subject)
            """)
        var found: (key: WrappedKey, fields: [String: SealedField])?
        for row in rows {
            let (version, wrapped, name, sealed, writeSeq) = try row.decode(
                (Int64, ByteBuffer, String?, ByteBuffer?, Int64?).self)
            if found == nil {
                found = (WrappedKey(kekVersion: UInt32(truncatingIfNeeded: version), sealed: Self.bytes(wrapped)), [:])
            }
            if let name, let sealed {
                found?.fields[name] = SealedField(sealed: Self.bytes(sealed), writeSeq: writeSeq)
            }
        }
        state.subjects[subject] = .some(found)
        return found
    }

    /// Writes to a subject make what was read of it stale.
    private func forget(_ subject: String) { state.subjects[subject] = nil }

    func sealedFields(_ subject: String, names: [String]) throws -> [String: SealedField] {
        if let known = state.subjects[subject] {
            guard let known else { return [:] }
            return known.fields.filter { names.contains($0.key) }
        }
        var result: [String: SealedField] = [:]
        let wanted = Array(Set(names))
        guard !wanted.isEmpty else { return result }
        let rows = try query(
            "SELECT name, sealed, write_seq FROM field WHERE subject_id = \(subject) AND name = ANY(\(wanted))")
        for row in rows {
            let (name, sealed, writeSeq) = try row.decode((String, ByteBuffer, Int64?).self)
            result[name] = SealedField(sealed: Self.bytes(sealed), writeSeq: writeSeq)
        }
        return result
    }

    func allSealedFields(_ subject: String) throws -> [(name: String, field: SealedField)] {
        try query("SELECT name, sealed, write_seq FROM field WHERE subject_id = \(subject) ORDER BY name").map {
            let (name, sealed, writeSeq) = try $0.decode((String, ByteBuffer, Int64?).self)
            return (name, SealedField(sealed: Self.bytes(sealed), writeSeq: writeSeq))
        }
    }

    func fieldWrites(after: (subject: String, name: String)?, limit: Int) throws -> [(
        subject: String, name: String, writeSeq: Int64?
    )] {
        let rows: PostgresQueryResult
        if let after {
            rows = try query(
                """
                SELECT subject_id, name, write_seq FROM field WHERE (subject_id, name) > (\(after.subject), \(after.name))
                ORDER BY subject_id, name LIMIT \(limit)
                """)
        } else {
            rows = try query("SELECT subject_id, name, write_seq FROM field ORDER BY subject_id, name LIMIT \(limit)")
        }
        return try rows.map { try $0.decode((String, String, Int64?).self) }
    }

    func subjects(indexKind: String, tag: [UInt8]) throws -> [String] {
        try query(
            "SELECT subject_id FROM blind_index WHERE kind = \(indexKind) AND tag = \(Self.buffer(tag)) ORDER BY subject_id"
        ).map { try $0.decode(String.self) }
    }

    func referencedKEKVersions() throws -> [UInt32] {
        try query("SELECT DISTINCT kek_version FROM subject ORDER BY kek_version").map {
            UInt32(truncatingIfNeeded: try $0.decode(Int64.self))
        }
    }

    func insertSubject(_ subject: String, key: WrappedKey) throws {
        forget(subject)
        try query(
            "INSERT INTO subject (id, kek_version, wrapped_dek) VALUES (\(subject), \(Int64(key.kekVersion)), \(Self.buffer(key.sealed)))"
        )
    }

    func upsertSealedField(subject: String, name: String, sealed: [UInt8], writeSeq: Int64?) throws {
        forget(subject)
        try query(
            """
            INSERT INTO field (subject_id, name, sealed, write_seq) VALUES (\(subject), \(name), \(Self.buffer(sealed)), \(writeSeq))
            ON CONFLICT (subject_id, name) DO UPDATE SET sealed = excluded.sealed, write_seq = excluded.write_seq
            """)
    }

    func deleteFields(subject: String, names: [String]) throws -> Int {
        forget(subject)
        let unique = Array(Set(names))
        guard !unique.isEmpty else { return 0 }
        return try changes("DELETE FROM field WHERE subject_id = \(subject) AND name = ANY(\(unique))")
    }

    func setIndexTag(subject: String, kind: String, tag: [UInt8]?) throws {
        try query("DELETE FROM blind_index WHERE subject_id = \(subject) AND kind = \(kind)")
        if let tag {
            try query(
                "INSERT INTO blind_index (kind, tag, subject_id) VALUES (\(kind), \(Self.buffer(tag)), \(subject))")
        }
    }

    func deleteSubject(_ subject: String) throws -> Bool {
        forget(subject)
        // The wrapped DEK lives on in dead tuples and the WAL until vacuum and checkpoints, and
        // in archives and replicas for good: what stays readable of the subject is that key,
        // wrapped under its KEK version. Count it against that version until it is retired.
        let deleted = try query("DELETE FROM subject WHERE id = \(subject) RETURNING kek_version")
        guard let row = deleted.first else { return false }
        let version = try row.decode(Int64.self)
        try query(
            """
            INSERT INTO shredded (kek_version, count) VALUES (\(version), 1)
            ON CONFLICT (kek_version) DO UPDATE SET count = shredded.count + 1
            """)
        return true
    }

    /// A shredded subject's key was wrapped, over its life, under the version current at the
    /// shred and possibly every older one (each rotation rewrapped it), and a dump or a replica
    /// may hold any of those: its shred is complete only once every version up to that one is
    /// retired.
    func shreddedAwaitingRetirement() throws -> Int {
        let rows = try query(
            """
            SELECT COALESCE(SUM(s.count), 0)::int8 FROM shredded s
            WHERE EXISTS (SELECT 1 FROM kek k WHERE k.version <= s.kek_version AND k.state <> 'retired')
            """)
        return Int(try rows.first?.decode(Int64.self) ?? 0)
    }

    /// PostgreSQL offers no wipe (`shreddedAwaitingRetirement` says what is left instead), so
    /// none is ever pending.
    func pendingWipes() throws -> [String] { [] }
    func addPendingWipe(_ subject: String) throws -> Bool { false }
    func removePendingWipes(_ subjects: [String]) throws {}
}
