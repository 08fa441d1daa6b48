import Foundation
import GRDB

/// KEK versions and the data keys wrapped under them: rotation, rewrap, retirement.
extension SQLiteTransaction {
    func kekRecords() throws -> [KEKRecord] {
        try Row.fetchAll(db, sql: "SELECT version, state, created_at, retired_at FROM kek ORDER BY version").map {
            row in
            let version: Int64 = row[0]
            let state: String = row[1]
            return KEKRecord(
                version: UInt32(truncatingIfNeeded: version), state: KEKState(rawValue: state) ?? .active,
                createdAt: row[2], retiredAt: row[3])
        }
    }

    func dekCounts() throws -> [UInt32: Int] {
        var counts: [UInt32: Int] = [:]
        for row in try Row.fetchAll(db, sql: "SELECT kek_version, COUNT(*) FROM subject GROUP BY kek_version") {
            let version: Int64 = row[0]
            counts[UInt32(truncatingIfNeeded: version)] = row[1]
        }
        return counts
    }

    func subjectsNotWrapped(under version: UInt32, limit: Int) throws -> [(subject: String, key: WrappedKey)] {
        // kek_version is indexed, so both ranges are index scans however large the table.
        let statement = try db.cachedStatement(
            sql: """
                SELECT id, kek_version, wrapped_dek FROM subject WHERE kek_version < ?1
                UNION ALL
                SELECT id, kek_version, wrapped_dek FROM subject WHERE kek_version > ?1
                LIMIT ?2
                """)
        return try Row.fetchAll(statement, arguments: [Int64(version), limit]).map { row in
            let v: Int64 = row[1]
            let sealed: Data = row[2]
            return (row[0], WrappedKey(kekVersion: UInt32(truncatingIfNeeded: v), sealed: [UInt8](sealed)))
        }
    }

    func updateSubjectKey(_ subject: String, key: WrappedKey) throws {
        try RawStatement.run(db, "UPDATE subject SET kek_version = ?, wrapped_dek = ? WHERE id = ?") { statement in
            try statement.bind(1, Int64(key.kekVersion))
            try statement.bind(2, key.sealed)
            try statement.bind(3, subject)
            _ = try statement.step()
        }
    }

    /// `secure_delete` and the WAL wipe leave nothing of a shredded subject in the vault's files.
    func shreddedAwaitingRetirement() throws -> Int { 0 }

    func insertPendingKEK(_ version: UInt32, at time: Double) throws {
        try db.execute(
            sql: "INSERT INTO kek (version, state, created_at) VALUES (?, 'pending', ?)",
            arguments: [Int64(version), time])
    }

    func promotePendingKEK(_ version: UInt32) throws {
        guard
            try Int64.fetchOne(
                db, sql: "SELECT COUNT(*) FROM kek WHERE version = ? AND state = 'pending'", arguments: [Int64(version)]
            )
                == 1
        else { throw StoreError("KEK version \(version) is not pending") }
        try db.execute(sql: "UPDATE kek SET state = 'active' WHERE state = 'current'")
        try db.execute(sql: "UPDATE kek SET state = 'current' WHERE version = ?", arguments: [Int64(version)])
    }

    func deletePendingKEK(_ version: UInt32) throws {
        try db.execute(sql: "DELETE FROM kek WHERE version = ? AND state = 'pending'", arguments: [Int64(version)])
    }

    func retireKEK(_ version: UInt32, at time: Double) throws {
        try db.execute(
            sql: "UPDATE kek SET state = 'retired', retired_at = ? WHERE version = ? AND state = 'active'",
            arguments: [time, Int64(version)])
    }
}
