import Foundation
import NIOCore
import PostgresNIO

/// Client rows, the audit chain, KEK versions and tokens, as `SQLiteTransaction` keeps them.
extension PostgresTransaction {
    // MARK: Clients

    private static let clientColumns = "name, role, secret_hash, failed_attempts, locked_until, created_at, mac"

    private static func clientRecord(_ row: PostgresRow) throws -> ClientRecord {
        let (name, role, hash, failed, locked, created, mac) = try row.decode(
            (String, String, ByteBuffer, Int64, Double?, Double, ByteBuffer?).self)
        return ClientRecord(
            name: name, role: role, secretHash: bytes(hash), failedAttempts: Int(failed), lockedUntil: locked,
            createdAt: created, mac: mac.map(bytes))
    }

    func client(named name: String) throws -> ClientRecord? {
        if let known = memo.clients[name] { return known }
        let record = try query("SELECT \(unescaped: Self.clientColumns) FROM client WHERE name = \(name)").first
            .map(Self.clientRecord)
        memo.clients[name] = .some(record)
        return record
    }

    func clients() throws -> [ClientRecord] {
        try query("SELECT \(unescaped: Self.clientColumns) FROM client ORDER BY name").map(Self.clientRecord)
    }

    func insertClient(_ client: ClientRecord) throws {
        memo.clients[client.name] = nil
        try query(
            """
            INSERT INTO client (\(unescaped: Self.clientColumns))
            VALUES (\(client.name), \(client.role), \(Self.buffer(client.secretHash)), \(Int64(client.failedAttempts)),
                    \(client.lockedUntil), \(client.createdAt), \(client.mac.map(Self.buffer)))
            """)
    }

    func deleteClient(named name: String) throws -> Bool {
        memo.clients[name] = nil
        return try changes("DELETE FROM client WHERE name = \(name)") > 0
    }

    func setClientMAC(name: String, mac: [UInt8]) throws {
        memo.clients[name] = nil
        try query("UPDATE client SET mac = \(Self.buffer(mac)) WHERE name = \(name)")
    }

    // MARK: Audit chain

    private static let auditColumns =
        "seq, at, client, role, origin, command, subject, fields, outcome, mac, purpose, ticket"

    private static func auditRecord(_ row: PostgresRow) throws -> AuditRecord {
        let (seq, at, client, role, origin, command, subject) = try row.decode(
            (Int64, String, String, String, String, String, String?).self)
        let columns = row.makeRandomAccess()
        let fields = try columns[7].decode(String.self)
        let outcome = try columns[8].decode(String.self)
        let mac = try columns[9].decode(ByteBuffer.self)
        let purpose = try columns[10].decode(String?.self)
        let ticket = try columns[11].decode(String?.self)
        return AuditRecord(
            seq: seq, at: at, client: client, role: role, origin: origin, command: command, subject: subject,
            fields: fields, outcome: outcome, mac: bytes(mac), purpose: purpose, ticket: ticket)
    }

    /// The chain's head. Write transactions hold `audit_head`'s lock before they get here, so
    /// no other node can append between this read and this transaction's appends.
    func lastAudit() throws -> (seq: Int64, mac: [UInt8])? {
        if let known = memo.lastAudit { return known }
        let head = try query("SELECT seq, mac FROM audit ORDER BY seq DESC LIMIT 1").first.map {
            row -> (seq: Int64, mac: [UInt8]) in
            let (seq, mac) = try row.decode((Int64, ByteBuffer).self)
            return (seq, Self.bytes(mac))
        }
        memo.lastAudit = .some(head)
        return head
    }

    func auditRecords(after: Int64, limit: Int) throws -> [AuditRecord] {
        try query("SELECT \(unescaped: Self.auditColumns) FROM audit WHERE seq > \(after) ORDER BY seq LIMIT \(limit)")
            .map(Self.auditRecord)
    }

    func auditTail(_ count: Int) throws -> [AuditRecord] {
        try query("SELECT \(unescaped: Self.auditColumns) FROM audit ORDER BY seq DESC LIMIT \(count)")
            .map(Self.auditRecord).reversed()
    }

    /// Sent without waiting: the unit's RELEASE, awaited next, settles it (see `savepoint`).
    func appendAudit(_ record: AuditRecord) throws {
        send(
            """
            INSERT INTO audit (\(unescaped: Self.auditColumns)) VALUES (
                \(record.seq), \(record.at), \(record.client), \(record.role), \(record.origin), \(record.command),
                \(record.subject), \(record.fields), \(record.outcome), \(Self.buffer(record.mac)), \(record.purpose),
                \(record.ticket))
            """)
        memo.lastAudit = .some((record.seq, record.mac))
    }

    // MARK: KEK versions

    func kekRecords() throws -> [KEKRecord] {
        try query("SELECT version, state, created_at, retired_at FROM kek ORDER BY version").map { row in
            let (version, state, created, retired) = try row.decode((Int64, String, Double, Double?).self)
            return KEKRecord(
                version: UInt32(truncatingIfNeeded: version), state: KEKState(rawValue: state) ?? .active,
                createdAt: created, retiredAt: retired)
        }
    }

    func dekCounts() throws -> [UInt32: Int] {
        var counts: [UInt32: Int] = [:]
        for row in try query("SELECT kek_version, count(*) FROM subject GROUP BY kek_version") {
            let (version, count) = try row.decode((Int64, Int64).self)
            counts[UInt32(truncatingIfNeeded: version)] = Int(count)
        }
        return counts
    }

    func subjectsNotWrapped(under version: UInt32, limit: Int) throws -> [(subject: String, key: WrappedKey)] {
        // NO KEY UPDATE, as strong as the UPDATE that follows and no stronger: FOR UPDATE also
        // blocked the FOR KEY SHARE with which a PUT adding a field checks its foreign key, and
        // that PUT held the audit chain's head row meanwhile, so every node's writes waited.
        let claim: PostgresQuery =
            claimsRows
            ? "SELECT id, kek_version, wrapped_dek FROM subject WHERE kek_version <> \(Int64(version)) LIMIT \(limit) FOR NO KEY UPDATE SKIP LOCKED"
            : "SELECT id, kek_version, wrapped_dek FROM subject WHERE kek_version <> \(Int64(version)) LIMIT \(limit)"
        return try query(claim).map { row in
            let (id, kek, sealed) = try row.decode((String, Int64, ByteBuffer).self)
            return (id, WrappedKey(kekVersion: UInt32(truncatingIfNeeded: kek), sealed: Self.bytes(sealed)))
        }
    }

    func updateSubjectKey(_ subject: String, key: WrappedKey) throws {
        state.subjects[subject] = nil
        try query(
            "UPDATE subject SET kek_version = \(Int64(key.kekVersion)), wrapped_dek = \(Self.buffer(key.sealed)) WHERE id = \(subject)"
        )
    }

    func insertPendingKEK(_ version: UInt32, at time: Double) throws {
        try query("INSERT INTO kek (version, state, created_at) VALUES (\(Int64(version)), 'pending', \(time))")
    }

    func promotePendingKEK(_ version: UInt32) throws {
        guard try changes("UPDATE kek SET state = 'active' WHERE state = 'current'") <= 1,
            try changes("UPDATE kek SET state = 'current' WHERE version = \(Int64(version)) AND state = 'pending'")
                == 1
        else { throw StoreError("KEK version \(version) is not pending") }
    }

    func deletePendingKEK(_ version: UInt32) throws {
        try query("DELETE FROM kek WHERE version = \(Int64(version)) AND state = 'pending'")
    }

    /// Locks the version's row before it counts what it wraps, so a node's transaction that is
    /// wrapping a key under it right now (its trigger holds the row `FOR SHARE`) commits first
    /// and is counted, or waits and then finds the version retired.
    func retireKEK(_ version: UInt32, at time: Double) throws {
        try query("SELECT 1 FROM kek WHERE version = \(Int64(version)) FOR UPDATE")
        let wrapped =
            try query("SELECT count(*) FROM subject WHERE kek_version = \(Int64(version))").first?
            .decode(Int64.self) ?? 0
        guard wrapped == 0 else {
            throw StoreError("KEK version \(version) still wraps \(wrapped) data keys; wait for the rewrap to finish")
        }
        try query(
            "UPDATE kek SET state = 'retired', retired_at = \(time) WHERE version = \(Int64(version)) AND state = 'active'"
        )
    }

    // MARK: Tokens

    private static let tokenColumns = "hash, subject_id, field, format, sealed, created_seq"

    private static func tokenRecord(_ row: PostgresRow) throws -> TokenRecord {
        let (hash, subject, field, format, sealed, created) = try row.decode(
            (ByteBuffer, String, String, String, ByteBuffer, Int64).self)
        return TokenRecord(
            hash: bytes(hash), subject: subject, field: field, format: format, sealed: bytes(sealed),
            createdSeq: created)
    }

    func token(hash: [UInt8]) throws -> TokenRecord? {
        try query("SELECT \(unescaped: Self.tokenColumns) FROM token WHERE hash = \(Self.buffer(hash))").first.map(
            Self.tokenRecord)
    }

    func newestToken(subject: String, format: String) throws -> TokenRecord? {
        try query(
            """
            SELECT \(unescaped: Self.tokenColumns) FROM token WHERE subject_id = \(subject) AND format = \(format)
            ORDER BY created_seq DESC LIMIT 1
            """
        ).first.map(Self.tokenRecord)
    }

    func insertToken(_ token: TokenRecord) throws {
        try query(
            """
            INSERT INTO token (\(unescaped: Self.tokenColumns)) VALUES (
                \(Self.buffer(token.hash)), \(token.subject), \(token.field), \(token.format), \(Self.buffer(token.sealed)),
                \(token.createdSeq))
            """)
    }

    func deleteToken(hash: [UInt8]) throws -> Bool {
        try changes("DELETE FROM token WHERE hash = \(Self.buffer(hash))") > 0
    }

    func deleteTokens(subject: String) throws -> Int {
        try changes("DELETE FROM token WHERE subject_id = \(subject)")
    }
}
