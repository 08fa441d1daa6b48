import Foundation
import GRDB
import Synchronization

/// The SQLite implementation of `VaultStore`: one WAL-mode `DatabasePool` per file, so reads
/// run concurrently with the single writer.
public final class SQLiteStore: VaultStore {
    public static let fileName = "coffer.db"

    /// Internal so that the backup extension (`SQLiteStore+Backup.swift`) can copy from it.
    let pool: DatabasePool
    public let path: String

    /// Opens (creating if needed) the database at `path` and runs pending migrations.
    public convenience init(path: String, durability: StoreDurability = .full, create: Bool = true) throws {
        try self.init(path: path, durability: durability, create: create, checkpointInterval: 0.25)
    }

    /// `checkpointInterval`: seconds between the background checkpointer's passes (tests
    /// lengthen it to run the passes themselves); `truncateLogBytes`: past this, a log is
    /// emptied rather than started again.
    init(
        path: String, durability: StoreDurability, create: Bool, checkpointInterval: Double,
        truncateLogBytes: Int = 64 * 1024 * 1024
    ) throws {
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
        checkpointer = try Checkpointer(path: path, interval: checkpointInterval, truncateBytes: truncateLogBytes)
        self.durability = durability
        // The pool has made the log (GRDB keeps a non-empty one), and the file lives as long
        // as the pool: SQLite removes it only when the last connection closes.
        walDescriptor = Foundation.open(path + "-wal", O_RDONLY | O_CLOEXEC)
        guard walDescriptor >= 0 else {
            let reason = String(cString: strerror(errno))
            try? pool.close()
            throw StoreError("cannot open the write-ahead log \(path)-wal: \(reason)")
        }
    }

    let checkpointer: Checkpointer
    public let clientMACsNeeded: Bool
    private let durability: StoreDurability
    /// The write-ahead log, opened once: `fdatasync` on it makes durable every frame written
    /// to the file by any descriptor (Linux syncs the file, not the descriptor).
    private let walDescriptor: Int32
    /// Set for good when an fsync of the log failed (or a commit's durability could not be
    /// restored): Linux reports a writeback error once and then marks the lost pages clean, so
    /// a later fsync would succeed without them, and recovery after a power loss would stop at
    /// the hole and drop every later commit with it. From then on every write and sync fails,
    /// until the process is restarted and SQLite recovers the log from what is really on disk.
    private let syncFailure = Mutex<String?>(nil)

    deinit { Foundation.close(walDescriptor) }

    /// Stops every later write and sync (see `syncFailure`); the first reason is kept.
    func latchSyncFailure(_ reason: String) {
        syncFailure.withLock { $0 = $0 ?? reason }
    }

    private func refuseAfterSyncFailure() throws {
        if let reason = syncFailure.withLock({ $0 }) {
            throw StoreError(
                "the vault stopped writing after an fsync of its write-ahead log failed (\(reason)); restart it")
        }
    }

    /// The writer connection's `PRAGMA synchronous` (0 off, 1 normal, 2 full), for tests.
    func writerSynchronous() throws -> Int {
        try pool.writeWithoutTransaction { try Int.fetchOne($0, sql: "PRAGMA synchronous") ?? -1 }
    }

    public func read<T>(_ body: (any StoreReading) throws -> T) throws -> T {
        try pool.read { db in try body(SQLiteTransaction(db: db, memo: TransactionMemo())) }
    }

    public func write<T>(_ body: (any StoreWriting) throws -> T) throws -> T {
        try refuseAfterSyncFailure()
        return try pool.write { db in try body(SQLiteTransaction(db: db, memo: TransactionMemo())) }
    }

    /// The commit writes its frames to the log without fsync (`synchronous = NORMAL` for this
    /// transaction only); `syncCommitted` then fsyncs them, off the writer's thread. After
    /// the sync, the log holds every frame of the transaction and of all before it, so
    /// recovery after a power loss replays them: the same guarantee as `synchronous = FULL`.
    /// Checkpoints still sync the log before they copy it and the database file after.
    public func writeDeferringSync<T>(_ body: (any StoreWriting) throws -> T) throws -> T {
        try refuseAfterSyncFailure()
        guard durability == .full else { return try write(body) }
        return try pool.writeWithoutTransaction { db in
            try db.cachedStatement(sql: "PRAGMA synchronous = NORMAL").execute()
            let outcome = Result {
                var result: T?
                try db.inTransaction {
                    result = try body(SQLiteTransaction(db: db, memo: TransactionMemo()))
                    return .commit
                }
                // `inTransaction` returns only after the body ran and the commit succeeded.
                guard let result else { throw StoreError("the transaction produced no result") }
                return result
            }
            // Every other write on this connection must fsync its own commit again; if that
            // cannot be ensured, nothing more is written.
            do {
                try db.cachedStatement(sql: "PRAGMA synchronous = FULL").execute()
            } catch {
                latchSyncFailure("synchronous = FULL could not be restored: \(error)")
            }
            return try outcome.get()
        }
    }

    public func syncCommitted() throws {
        try refuseAfterSyncFailure()
        guard durability == .full else { return }
        while fdatasync(walDescriptor) != 0 {
            guard errno == EINTR else {
                let reason = String(cString: strerror(errno))
                latchSyncFailure(reason)
                throw StoreError("fsync of the write-ahead log failed: \(reason)")
            }
        }
    }

    /// One writer at a time already: the rewrap's batches are ordinary writes, except that
    /// their fsync runs after the writer is free again, so serving batches do not wait for it.
    public func writeUnchained<T>(_ body: (any StoreWriting) throws -> T) throws -> T {
        let result = try writeDeferringSync(body)
        try syncCommitted()
        return result
    }

    public func withKeyChangeLock<T>(_ body: () throws -> T) throws -> T { try body() }

    public func recordNode(_ id: String, currentKEK: UInt32, at time: Double) throws {}

    public func nodesUsing(kek version: UInt32, seenSince time: Double) throws -> [String] { [] }

    /// Keeps the WAL bounded under sustained writes. The background checkpointer copies pages
    /// back as they come, but only the writer, between transactions, can start the log again
    /// or empty it: it does so when the checkpointer asks (see `Checkpointer`). Starting again
    /// reuses the file's blocks, so the file keeps the largest size the log reached (about
    /// 64 MiB at most). Both are quick, because most pages are already back in the main file.
    ///
    /// The checkpoint runs on the pool's writer queue, so that one from the rewrap's thread waits
    /// for the committer's batch (and the other way round) instead of meeting it in SQLite's
    /// busy handler, which sleeps.
    public func boundLog() {
        guard checkpointer.logActionRequested else { return }
        _ = try? pool.writeWithoutTransaction { _ in checkpointer.boundLog() }
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
