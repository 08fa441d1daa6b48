import GRDB

/// Shreds whose wipe of the write-ahead log waits for a reader (see `Vault.shred`).
extension SQLiteTransaction {
    func pendingWipes() throws -> [String] {
        try String.fetchAll(db, sql: "SELECT subject_id FROM pending_wipe ORDER BY subject_id")
    }

    func addPendingWipe(_ subject: String) throws {
        try db.execute(sql: "INSERT OR IGNORE INTO pending_wipe (subject_id) VALUES (?)", arguments: [subject])
    }

    func removePendingWipes(_ subjects: [String]) throws {
        for subject in subjects {
            try db.execute(sql: "DELETE FROM pending_wipe WHERE subject_id = ?", arguments: [subject])
        }
    }
}
