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
        // GRDB's pool turns on WAL after `prepareDatabase` has run, and sets the writer to
        // `synchronous = NORMAL` as it does so: without this, `full` never fsynced a commit.
        try pool.writeWithoutTransaction { db in
            try db.execute(sql: "PRAGMA synchronous = \(synchronous)")
        }
        let migrator = SQLiteSchema.migrator
        let before = try pool.read { try migrator.appliedIdentifiers($0) }
        try migrator.migrate(pool)
        clientMACsNeeded = !before.isEmpty && !before.contains(SQLiteSchema.clientMACMigration)
        checkpointer = try Checkpointer(path: path)
    }

    private let checkpointer: Checkpointer

    /// The writer connection's `PRAGMA synchronous` (0 off, 1 normal, 2 full), for tests.
    public func writerSynchronous() throws -> Int {
        try pool.writeWithoutTransaction { try Int.fetchOne($0, sql: "PRAGMA synchronous") ?? -1 }
    }
    public let clientMACsNeeded: Bool

    public func read<T>(_ body: (any StoreReading) throws -> T) throws -> T {
        try pool.read { db in try body(SQLiteTransaction(db: db, memo: TransactionMemo())) }
    }

    public func write<T>(_ body: (any StoreWriting) throws -> T) throws -> T {
        try pool.write { db in try body(SQLiteTransaction(db: db, memo: TransactionMemo())) }
    }

    /// One writer at a time already: the rewrap's batches are ordinary writes.
    public func writeUnchained<T>(_ body: (any StoreWriting) throws -> T) throws -> T { try write(body) }

    public func withKeyChangeLock<T>(_ body: () throws -> T) throws -> T { try body() }

    public func recordNode(_ id: String, currentKEK: UInt32, at time: Double) throws {}

    public func nodesUsing(kek version: UInt32, seenSince time: Double) throws -> [String] { [] }

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
