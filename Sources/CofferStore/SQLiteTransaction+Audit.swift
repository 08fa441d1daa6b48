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

    private static let auditColumns = HotStatement.auditColumns

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
        try RawStatement.run(db, .insertAudit, memo: memo) { statement in
            try statement.bind(1, record.seq)
            try statement.bind(2, record.at)
            try statement.bind(3, record.client)
            try statement.bind(4, record.role)
            try statement.bind(5, record.origin)
            try statement.bind(6, record.command)
            try statement.bind(7, record.subject)
            try statement.bind(8, record.fields)
            try statement.bind(9, record.outcome)
            try statement.bind(10, record.mac)
            try statement.bind(11, record.purpose)
            try statement.bind(12, record.ticket)
            _ = try statement.step()
        }
        // Only the entry just inserted can be the head: the chain appends in `seq` order.
        memo.lastAudit = .some((record.seq, record.mac))
    }
}
