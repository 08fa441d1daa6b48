import Foundation
import GRDB

/// Client rows: who may connect, with the keyed hash of their secret and the vault's MAC.
extension SQLiteTransaction {
    func client(named name: String) throws -> ClientRecord? {
        if let known = memo.clients[name] { return known }
        let statement = try db.cachedStatement(
            sql:
                "SELECT name, role, secret_hash, failed_attempts, locked_until, created_at, mac FROM client WHERE name = ?"
        )
        let record = try Row.fetchOne(statement, arguments: [name]).map(Self.clientRecord)
        memo.clients[name] = .some(record)
        return record
    }

    func clients() throws -> [ClientRecord] {
        try Row.fetchAll(
            db,
            sql:
                "SELECT name, role, secret_hash, failed_attempts, locked_until, created_at, mac FROM client ORDER BY name"
        ).map(Self.clientRecord)
    }

    private static func clientRecord(_ row: Row) -> ClientRecord {
        let hash: Data = row[2]
        let mac: Data? = row[6]
        return ClientRecord(
            name: row[0], role: row[1], secretHash: [UInt8](hash), failedAttempts: row[3], lockedUntil: row[4],
            createdAt: row[5], mac: mac.map { [UInt8]($0) })
    }

    func insertClient(_ client: ClientRecord) throws {
        memo.clients[client.name] = nil
        try db.execute(
            sql: """
                INSERT INTO client (name, role, secret_hash, failed_attempts, locked_until, created_at, mac)
                VALUES (?, ?, ?, ?, ?, ?, ?)
                """,
            arguments: [
                client.name, client.role, Data(client.secretHash), client.failedAttempts, client.lockedUntil,
                client.createdAt, client.mac.map { Data($0) },
            ])
    }

    func deleteClient(named name: String) throws -> Bool {
        memo.clients[name] = nil
        try db.execute(sql: "DELETE FROM client WHERE name = ?", arguments: [name])
        return db.changesCount > 0
    }

    func setClientMAC(name: String, mac: [UInt8]) throws {
        memo.clients[name] = nil
        try db.execute(sql: "UPDATE client SET mac = ? WHERE name = ?", arguments: [Data(mac), name])
    }
}
