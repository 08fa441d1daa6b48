import Foundation
import GRDB

/// The SQLite implementation of `VaultStore`: one WAL-mode `DatabasePool` per file, so reads
/// run concurrently with the single writer.
public final class SQLiteStore: VaultStore {
    public static let fileName = "coffer.db"

    /// Internal so that the backup extension (`SQLiteStore+Backup.swift`) can copy from it.
    let pool: DatabasePool
    public let path: String

    /// Opens (creating if needed) the database at `path` and runs pending migrations.
    public init(path: String, durability: StoreDurability = .full, create: Bool = true) throws {
        if !create && !FileManager.default.fileExists(atPath: path) {
            throw StoreError("database file \(path) does not exist")
        }
        var config = Configuration()
        config.foreignKeysEnabled = true
        config.busyMode = .timeout(10)
        config.label = "coffer"
        // Three readers are plenty on the machines Coffer targets, and bound the page caches.
        config.maximumReaderCount = 3
        let synchronous = durability == .full ? "FULL" : "NORMAL"
        config.prepareDatabase { db in
            // Freed pages and cells are zeroed, so deleted ciphertext does not linger in the file.
            try db.execute(sql: "PRAGMA secure_delete = ON")
            // Sorts and temporary tables stay in memory, never in temp files.
            try db.execute(sql: "PRAGMA temp_store = MEMORY")
            try db.execute(sql: "PRAGMA synchronous = \(synchronous)")
            // 16 MiB of pages per connection keeps the hot index and table pages in process
            // memory (this VM's kernel drops idle file pages after about a minute).
            try db.execute(sql: "PRAGMA cache_size = -16384")
            // Commits never checkpoint; a background connection does (see `Checkpointer`).
            try db.execute(sql: "PRAGMA wal_autocheckpoint = 0")
        }
        self.path = path
        // The file is created with the process umask; tighten it to owner-only before use.
        let oldMask = umask(0o077)
        defer { umask(oldMask) }
        pool = try DatabasePool(path: path, configuration: config)
        let migrator = SQLiteSchema.migrator
        let before = try pool.read { try migrator.appliedIdentifiers($0) }
        try migrator.migrate(pool)
        clientMACsNeeded = !before.isEmpty && !before.contains(SQLiteSchema.clientMACMigration)
        checkpointer = try Checkpointer(path: path)
    }

    private let checkpointer: Checkpointer
    public let clientMACsNeeded: Bool

    public func read<T>(_ body: (any StoreReading) throws -> T) throws -> T {
        try pool.read { db in try body(SQLiteTransaction(db: db, memo: TransactionMemo())) }
    }

    public func write<T>(_ body: (any StoreWriting) throws -> T) throws -> T {
        try pool.write { db in try body(SQLiteTransaction(db: db, memo: TransactionMemo())) }
    }

    /// Keeps the WAL bounded under sustained writes. The background checkpointer copies pages
    /// back as they come, but only the writer, between transactions, can restart the log; it
    /// does so when the log passes `limit` bytes, which is then quick because most pages are
    /// already back in the main file.
    public func boundLog() { boundWAL(limit: 64 * 1024 * 1024) }

    func boundWAL(limit: Int64) {
        var info = stat()
        guard stat(path + "-wal", &info) == 0, Int64(info.st_size) > limit else { return }
        // Never waits for readers: a waiting TRUNCATE checkpoint would hold up every writer.
        _ = checkpointer.tryWipe()
    }

    /// Copies the whole WAL into the database file and empties it, so that page images from
    /// before a shred survive nowhere.
    public func tryWipe() -> Bool { checkpointer.tryWipe() }

    public func requestWipe() { checkpointer.requestWipe() }

    public var wipePending: Bool { checkpointer.wipePending }

    public func onWipeCompleted(_ body: @escaping @Sendable () -> Void) { checkpointer.setOnWiped(body) }

    public func close() throws {
        checkpointer.stop()
        try pool.close()
    }
}

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
        try db.cachedStatement(sql: "SAVEPOINT unit").execute()
        let result: T
        do {
            result = try body()
        } catch {
            memo.forget()
            try? db.cachedStatement(sql: "ROLLBACK TO unit").execute()
            try? db.cachedStatement(sql: "RELEASE unit").execute()
            throw error
        }
        try db.cachedStatement(sql: "RELEASE unit").execute()
        return result
    }

    func subjectKey(_ subject: String) throws -> WrappedKey? {
        let statement = try db.cachedStatement(sql: "SELECT kek_version, wrapped_dek FROM subject WHERE id = ?")
        guard let row = try Row.fetchOne(statement, arguments: [subject]) else { return nil }
        let version: Int64 = row[0]
        let sealed: Data = row[1]
        return WrappedKey(kekVersion: UInt32(truncatingIfNeeded: version), sealed: [UInt8](sealed))
    }

    func sealedFields(_ subject: String, names: [String]) throws -> [String: SealedField] {
        let statement = try db.cachedStatement(
            sql: "SELECT sealed, write_seq FROM field WHERE subject_id = ? AND name = ?")
        var result: [String: SealedField] = [:]
        for name in names where result[name] == nil {
            if let row = try Row.fetchOne(statement, arguments: [subject, name]) {
                let sealed: Data = row[0]
                result[name] = SealedField(sealed: [UInt8](sealed), writeSeq: row[1])
            }
        }
        return result
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
        let statement = try db.cachedStatement(sql: "UPDATE subject SET kek_version = ?, wrapped_dek = ? WHERE id = ?")
        try statement.execute(arguments: [Int64(key.kekVersion), Data(key.sealed), subject])
    }

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

    func insertSubject(_ subject: String, key: WrappedKey) throws {
        let statement = try db.cachedStatement(
            sql: "INSERT INTO subject (id, kek_version, wrapped_dek) VALUES (?, ?, ?)")
        try statement.execute(arguments: [subject, Int64(key.kekVersion), Data(key.sealed)])
    }

    func upsertSealedField(subject: String, name: String, sealed: [UInt8], writeSeq: Int64?) throws {
        let statement = try db.cachedStatement(
            sql: """
                INSERT INTO field (subject_id, name, sealed, write_seq) VALUES (?, ?, ?, ?)
                ON CONFLICT (subject_id, name) DO UPDATE SET sealed = excluded.sealed, write_seq = excluded.write_seq
                """)
        try statement.execute(arguments: [subject, name, Data(sealed), writeSeq])
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
        let delete = try db.cachedStatement(sql: "DELETE FROM blind_index WHERE subject_id = ? AND kind = ?")
        try delete.execute(arguments: [subject, kind])
        if let tag {
            let insert = try db.cachedStatement(
                sql: "INSERT INTO blind_index (kind, tag, subject_id) VALUES (?, ?, ?)")
            try insert.execute(arguments: [kind, Data(tag), subject])
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
