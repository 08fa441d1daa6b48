import Foundation
import GRDB

extension SQLiteStore {
    /// An online, consistent copy of the database into `partial`, an empty file the caller
    /// has created (and will sync and give its final name). SQLite's backup API copies from a
    /// read snapshot, so writers go on meanwhile. The copy is left in rollback-journal mode
    /// (one self-contained file) and checked with `PRAGMA integrity_check`. Returns the KEK
    /// versions the copy's data keys are wrapped under.
    public func backup(into partial: String) throws -> [UInt32] {
        // SQLite's transient journal beside the copy holds page images: owner-only as well.
        let oldMask = umask(0o077)
        defer { umask(oldMask) }
        var config = Configuration()
        config.journalMode = .default
        let copy = try DatabaseQueue(path: partial, configuration: config)
        do {
            try pool.backup(to: copy)
            let (check, versions) = try copy.writeWithoutTransaction { db -> (String, [UInt32]) in
                try db.execute(sql: "PRAGMA journal_mode = DELETE")
                let check = try String.fetchOne(db, sql: "PRAGMA integrity_check") ?? "no answer"
                let versions = try Int64.fetchAll(db, sql: "SELECT DISTINCT kek_version FROM subject ORDER BY 1")
                return (check, versions.map { UInt32(truncatingIfNeeded: $0) })
            }
            try copy.close()
            guard check == "ok" else { throw StoreError("the backup copy failed its integrity check: \(check)") }
            return versions
        } catch {
            try? copy.close()
            throw error
        }
    }

    /// Checks a backup file before it is restored: integrity, and the KEK versions it needs.
    public static func inspectBackup(at path: String) throws -> (integrity: String, kekVersions: [UInt32]) {
        var config = Configuration()
        config.readonly = true
        let queue = try DatabaseQueue(path: path, configuration: config)
        defer { try? queue.close() }
        return try queue.read { db in
            let check = try String.fetchOne(db, sql: "PRAGMA integrity_check") ?? "no answer"
            let versions = try Int64.fetchAll(db, sql: "SELECT DISTINCT kek_version FROM subject ORDER BY 1")
            return (check, versions.map { UInt32(truncatingIfNeeded: $0) })
        }
    }
}
