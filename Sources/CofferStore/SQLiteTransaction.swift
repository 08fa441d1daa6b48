import Foundation
import GRDB

/// What one transaction has already read of the rows every command reads: the audit chain's
/// head and the client rows. A group-commit batch is one transaction of up to 512 commands,
/// and each of them resolved its client and appended to the chain with a query of its own.
///
/// It lives exactly as long as its transaction, so it never outlives the snapshot it was read
/// from (several processes, and later several nodes, write the same tables). Inside the
/// transaction, every write to those rows updates or drops it, and so does every savepoint
/// rolled back. Used by one thread at a time, like the `Database` it sits beside.
final class TransactionMemo {
    var lastAudit: (seq: Int64, mac: [UInt8])??
    var clients: [String: ClientRecord?] = [:]
    /// The hot statements used so far in this transaction, by `HotStatement` (kept through a
    /// rollback: a prepared statement holds no data).
    var statements = [Statement?](repeating: nil, count: HotStatement.allCases.count)

    func forget() {
        lastAudit = nil
        clients.removeAll()
    }
}

/// The store's view of one transaction. Statements are cached per connection, so the hot
/// paths prepare each SQL string once.
struct SQLiteTransaction: StoreWriting {
    let db: Database
    let memo: TransactionMemo

    /// Savepoints through cached statements: one per command on the hot path, where GRDB's
    /// `inSavepoint` would compile its SQL each time.
    func savepoint<T>(_ body: () throws -> T) throws -> T {
        try execute(.savepoint)
        let result: T
        do {
            result = try body()
        } catch {
            memo.forget()
            try? execute("ROLLBACK TO unit")
            try? execute(.release)
            throw error
        }
        try execute(.release)
        return result
    }

    func readingSavepoint<T>(_ body: () throws -> T) throws -> T {
        do { return try body() } catch {
            // Whatever it read may be stale now that its statement failed.
            memo.forget()
            throw error
        }
    }

    private func execute(_ sql: String) throws {
        _ = try RawStatement.run(db, sql) { try $0.step() }
    }

    private func execute(_ hot: HotStatement) throws {
        _ = try RawStatement.run(db, hot, memo: memo) { try $0.step() }
    }

    func subjectKey(_ subject: String) throws -> WrappedKey? {
        try RawStatement.run(db, .subjectKey, memo: memo) { statement in
            try statement.bind(1, subject)
            guard try statement.step() else { return nil }
            return WrappedKey(kekVersion: UInt32(truncatingIfNeeded: statement.int64(0)), sealed: statement.bytes(1))
        }
    }

    func sealedFields(_ subject: String, names: [String]) throws -> [String: SealedField] {
        try RawStatement.run(db, .sealedField, memo: memo) { statement in
            var result: [String: SealedField] = [:]
            try statement.bind(1, subject)
            for name in names where result[name] == nil {
                try statement.bind(2, name)
                if try statement.step() {
                    result[name] = SealedField(
                        sealed: statement.bytes(0), writeSeq: statement.isNull(1) ? nil : statement.int64(1))
                }
                statement.reset()
            }
            return result
        }
    }

    func allSealedFields(_ subject: String) throws -> [(name: String, field: SealedField)] {
        let statement = try db.cachedStatement(
            sql: "SELECT name, sealed, write_seq FROM field WHERE subject_id = ? ORDER BY name")
        return try Row.fetchAll(statement, arguments: [subject]).map { row in
            let name: String = row[0]
            let sealed: Data = row[1]
            return (name, SealedField(sealed: [UInt8](sealed), writeSeq: row[2]))
        }
    }

    func fieldWrites(after: (subject: String, name: String)?, limit: Int) throws -> [(
        subject: String, name: String, writeSeq: Int64?
    )] {
        let rows: [Row]
        if let after {
            rows = try Row.fetchAll(
                db,
                sql: """
                    SELECT subject_id, name, write_seq FROM field WHERE (subject_id, name) > (?, ?)
                    ORDER BY subject_id, name LIMIT ?
                    """, arguments: [after.subject, after.name, limit])
        } else {
            rows = try Row.fetchAll(
                db, sql: "SELECT subject_id, name, write_seq FROM field ORDER BY subject_id, name LIMIT ?",
                arguments: [limit])
        }
        return rows.map { ($0[0], $0[1], $0[2]) }
    }

    func subjects(indexKind: String, tag: [UInt8]) throws -> [String] {
        let statement = try db.cachedStatement(
            sql: "SELECT subject_id FROM blind_index WHERE kind = ? AND tag = ? ORDER BY subject_id")
        return try String.fetchAll(statement, arguments: [indexKind, Data(tag)])
    }

    func referencedKEKVersions() throws -> [UInt32] {
        try Int64.fetchAll(db, sql: "SELECT DISTINCT kek_version FROM subject ORDER BY kek_version")
            .map { UInt32(truncatingIfNeeded: $0) }
    }

    func insertSubject(_ subject: String, key: WrappedKey) throws {
        try RawStatement.run(db, "INSERT INTO subject (id, kek_version, wrapped_dek) VALUES (?, ?, ?)") { statement in
            try statement.bind(1, subject)
            try statement.bind(2, Int64(key.kekVersion))
            try statement.bind(3, key.sealed)
            _ = try statement.step()
        }
    }

    func upsertSealedField(subject: String, name: String, sealed: [UInt8], writeSeq: Int64?) throws {
        try RawStatement.run(db, .upsertField, memo: memo) { statement in
            try statement.bind(1, subject)
            try statement.bind(2, name)
            try statement.bind(3, sealed)
            try statement.bind(4, writeSeq)
            _ = try statement.step()
        }
    }

    func deleteFields(subject: String, names: [String]) throws -> Int {
        let statement = try db.cachedStatement(sql: "DELETE FROM field WHERE subject_id = ? AND name = ?")
        var removed = 0
        for name in Set(names) {
            try statement.execute(arguments: [subject, name])
            removed += db.changesCount
        }
        return removed
    }

    func setIndexTag(subject: String, kind: String, tag: [UInt8]?) throws {
        try RawStatement.run(db, "DELETE FROM blind_index WHERE subject_id = ? AND kind = ?") { statement in
            try statement.bind(1, subject)
            try statement.bind(2, kind)
            _ = try statement.step()
        }
        if let tag {
            try RawStatement.run(db, "INSERT INTO blind_index (kind, tag, subject_id) VALUES (?, ?, ?)") { statement in
                try statement.bind(1, kind)
                try statement.bind(2, tag)
                try statement.bind(3, subject)
                _ = try statement.step()
            }
        }
    }

    func deleteSubject(_ subject: String) throws -> Bool {
        // Explicit deletes first, so secure_delete zeroes every cell even if a future schema
        // change forgot a cascade.
        try db.execute(sql: "DELETE FROM field WHERE subject_id = ?", arguments: [subject])
        try db.execute(sql: "DELETE FROM blind_index WHERE subject_id = ?", arguments: [subject])
        try db.execute(sql: "DELETE FROM token WHERE subject_id = ?", arguments: [subject])
        try db.execute(sql: "DELETE FROM subject WHERE id = ?", arguments: [subject])
        return db.changesCount > 0
    }
}
