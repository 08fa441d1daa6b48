import Foundation
import GRDB

/// The audit chain: appended in `seq` order, read in pages.
extension SQLiteTransaction {
    func lastAudit() throws -> (seq: Int64, mac: [UInt8])? {
        if let known = memo.lastAudit { return known }
        let statement = try db.cachedStatement(sql: "SELECT seq, mac FROM audit ORDER BY seq DESC LIMIT 1")
        let head = try Row.fetchOne(statement).map { row -> (seq: Int64, mac: [UInt8]) in
            let mac: Data = row[1]
            return (row[0], [UInt8](mac))
        }
        memo.lastAudit = .some(head)
        return head
    }

    private static let auditColumns =
        "seq, at, client, role, origin, command, subject, fields, outcome, mac, purpose, ticket"

    private static func auditRecord(_ row: Row) -> AuditRecord {
        let mac: Data = row[9]
        return AuditRecord(
            seq: row[0], at: row[1], client: row[2], role: row[3], origin: row[4], command: row[5], subject: row[6],
            fields: row[7], outcome: row[8], mac: [UInt8](mac), purpose: row[10], ticket: row[11])
    }

    func auditRecords(after: Int64, limit: Int) throws -> [AuditRecord] {
        let statement = try db.cachedStatement(
            sql: "SELECT \(Self.auditColumns) FROM audit WHERE seq > ? ORDER BY seq LIMIT ?")
        return try Row.fetchAll(statement, arguments: [after, limit]).map(Self.auditRecord)
    }

    func auditTail(_ count: Int) throws -> [AuditRecord] {
        try Row.fetchAll(
            db, sql: "SELECT \(Self.auditColumns) FROM audit ORDER BY seq DESC LIMIT ?", arguments: [count]
        ).map(Self.auditRecord).reversed()
    }

    func appendAudit(_ record: AuditRecord) throws {
        let statement = try db.cachedStatement(
            sql: "INSERT INTO audit (\(Self.auditColumns)) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
        try statement.execute(arguments: [
            record.seq, record.at, record.client, record.role, record.origin, record.command, record.subject,
            record.fields, record.outcome, Data(record.mac), record.purpose, record.ticket,
        ])
        // Only the entry just inserted can be the head: the chain appends in `seq` order.
        memo.lastAudit = .some((record.seq, record.mac))
    }
}
