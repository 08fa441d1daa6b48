import Foundation
import GRDB

/// Whole tables in pages, and the KEK records replaced whole: a copy of the vault into another
/// store (`coffer migrate`). Every page is an index range scan from where the last one ended.
extension SQLiteTransaction {
    func subjectKeys(after: String?, limit: Int) throws -> [(subject: String, key: WrappedKey)] {
        let rows =
            try after.map {
                try Row.fetchAll(
                    db, sql: "SELECT id, kek_version, wrapped_dek FROM subject WHERE id > ? ORDER BY id LIMIT ?",
                    arguments: [$0, limit])
            }
            ?? Row.fetchAll(
                db, sql: "SELECT id, kek_version, wrapped_dek FROM subject ORDER BY id LIMIT ?", arguments: [limit])
        return rows.map { row in
            let version: Int64 = row[1]
            let sealed: Data = row[2]
            return (row[0], WrappedKey(kekVersion: UInt32(truncatingIfNeeded: version), sealed: [UInt8](sealed)))
        }
    }

    func storedFields(after: (subject: String, name: String)?, limit: Int) throws -> [StoredField] {
        let rows =
            try after.map {
                try Row.fetchAll(
                    db,
                    sql: """
                        SELECT subject_id, name, sealed, write_seq FROM field WHERE (subject_id, name) > (?, ?)
                        ORDER BY subject_id, name LIMIT ?
                        """, arguments: [$0.subject, $0.name, limit])
            }
            ?? Row.fetchAll(
                db, sql: "SELECT subject_id, name, sealed, write_seq FROM field ORDER BY subject_id, name LIMIT ?",
                arguments: [limit])
        return rows.map { row in
            let sealed: Data = row[2]
            return StoredField(
                subject: row[0], name: row[1], field: SealedField(sealed: [UInt8](sealed), writeSeq: row[3]))
        }
    }

    func indexTags(after: IndexTagRecord?, limit: Int) throws -> [IndexTagRecord] {
        let rows =
            try after.map {
                try Row.fetchAll(
                    db,
                    sql: """
                        SELECT kind, tag, subject_id FROM blind_index WHERE (kind, tag, subject_id) > (?, ?, ?)
                        ORDER BY kind, tag, subject_id LIMIT ?
                        """, arguments: [$0.kind, Data($0.tag), $0.subject, limit])
            }
            ?? Row.fetchAll(
                db, sql: "SELECT kind, tag, subject_id FROM blind_index ORDER BY kind, tag, subject_id LIMIT ?",
                arguments: [limit])
        return rows.map { row in
            let tag: Data = row[1]
            return IndexTagRecord(kind: row[0], tag: [UInt8](tag), subject: row[2])
        }
    }

    func tokens(after hash: [UInt8]?, limit: Int) throws -> [TokenRecord] {
        let columns = "hash, subject_id, field, format, sealed, created_seq"
        let rows =
            try hash.map {
                try Row.fetchAll(
                    db, sql: "SELECT \(columns) FROM token WHERE hash > ? ORDER BY hash LIMIT ?",
                    arguments: [Data($0), limit])
            }
            ?? Row.fetchAll(db, sql: "SELECT \(columns) FROM token ORDER BY hash LIMIT ?", arguments: [limit])
        return rows.map { row in
            let hash: Data = row[0]
            let sealed: Data = row[4]
            return TokenRecord(
                hash: [UInt8](hash), subject: row[1], field: row[2], format: row[3], sealed: [UInt8](sealed),
                createdSeq: row[5])
        }
    }

    func recordCounts() throws -> StoreCounts {
        guard
            let row = try Row.fetchOne(
                db,
                sql: """
                    SELECT (SELECT COUNT(*) FROM kek), (SELECT COUNT(*) FROM subject), (SELECT COUNT(*) FROM field),
                        (SELECT COUNT(*) FROM blind_index), (SELECT COUNT(*) FROM client),
                        (SELECT COUNT(*) FROM audit), (SELECT COUNT(*) FROM token)
                    """)
        else { throw StoreError("the tables could not be counted") }
        return StoreCounts(
            kekVersions: row[0], subjects: row[1], fields: row[2], indexTags: row[3], clients: row[4],
            auditEntries: row[5], tokens: row[6])
    }

    func replaceKEKRecords(_ records: [KEKRecord]) throws {
        try db.execute(sql: "DELETE FROM kek")
        for record in records {
            try db.execute(
                sql: "INSERT INTO kek (version, state, created_at, retired_at) VALUES (?, ?, ?, ?)",
                arguments: [Int64(record.version), record.state.rawValue, record.createdAt, record.retiredAt])
        }
    }
}
