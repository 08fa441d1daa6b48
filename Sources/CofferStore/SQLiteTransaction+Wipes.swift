import GRDB

/// Shreds whose wipe of the write-ahead log waits for a reader (see `Vault.shred`).
extension SQLiteTransaction {
    func pendingWipes() throws -> [String] {
        try String.fetchAll(db, sql: "SELECT subject_id FROM pending_wipe ORDER BY subject_id")
    }

    func addPendingWipe(_ subject: String) throws -> Bool {
        try db.execute(sql: "INSERT OR IGNORE INTO pending_wipe (subject_id) VALUES (?)", arguments: [subject])
        return true
    }

    func removePendingWipes(_ subjects: [String]) throws {
        guard !subjects.isEmpty else { return }
        let marks = Array(repeating: "?", count: subjects.count).joined(separator: ", ")
        try db.execute(
            sql: "DELETE FROM pending_wipe WHERE subject_id IN (\(marks))", arguments: StatementArguments(subjects))
    }
}
