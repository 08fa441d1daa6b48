/// The narrow storage interface the vault core is written against. A store keeps only
/// ciphertext, wrapped keys, keyed hashes and client records: it never sees plaintext or a key.
///
/// The vault core holds an `any VaultStore` and never names a backend: SQLite (`SQLiteStore`)
/// implements it today, and a second backend plugs in by implementing this protocol and
/// `StoreLocation`, without a change to the core.
public protocol VaultStore: AnyObject, Sendable {
    /// Runs `body` in a read transaction that sees one consistent snapshot.
    func read<T>(_ body: (any StoreReading) throws -> T) throws -> T
    /// Runs `body` in a write transaction: everything it writes commits together, or nothing does.
    func write<T>(_ body: (any StoreWriting) throws -> T) throws -> T
    /// Like `write`, but the commit need not be on disk yet when it returns: the caller calls
    /// `syncCommitted()` (from any thread) before it acknowledges anything the transaction did.
    /// The group committer uses it to run the next batch while the last one's fsync runs.
    func writeDeferringSync<T>(_ body: (any StoreWriting) throws -> T) throws -> T
    /// Makes every transaction committed so far through `writeDeferringSync` durable.
    func syncCommitted() throws
    /// The same, for a transaction that appends nothing to the audit chain (the rewrap): on a
    /// shared store it does not queue behind the chain's head, and the rows it reads to update
    /// (`subjectsNotWrapped`) are claimed so that nodes never take the same ones.
    func writeUnchained<T>(_ body: (any StoreWriting) throws -> T) throws -> T
    /// Runs `body` while no other process of a shared store can change KEKs (PostgreSQL: an
    /// advisory lock held for the call); throws at once if another holds it. A store that is
    /// not shared runs `body` as it is: the data directory's lock decides there.
    func withKeyChangeLock<T>(_ body: () throws -> T) throws -> T
    /// Records that node `id` wraps new keys under `currentKEK` (a shared store; others ignore it).
    func recordNode(_ id: String, currentKEK: UInt32, at time: Double) throws
    /// The nodes seen since `time` that still wrap new keys under `version`.
    func nodesUsing(kek version: UInt32, seenSince time: Double) throws -> [String]

    /// Tries once, without waiting for readers, to make the images of deleted rows unreadable
    /// in the store's own files (SQLite: copy the write-ahead log into the main file and empty
    /// it). False if a reader's older snapshot still needs them.
    func tryWipe() -> Bool
    /// Retries the wipe in the background, never blocking anyone, until it succeeds; then calls
    /// the body given to `onWipeCompleted`.
    func requestWipe()
    /// A requested wipe has not completed yet.
    var wipePending: Bool { get }
    func onWipeCompleted(_ body: @escaping @Sendable () -> Void)
    /// Called by the writer between transactions: keeps the store's log bounded under sustained
    /// writes (SQLite: restarts a WAL grown past its limit). Never waits for readers.
    func boundLog()

    /// True when this open added the client-row MAC column to an existing vault: the core then
    /// computes the MACs of the rows that predate it, once.
    var clientMACsNeeded: Bool { get }
    /// Writes a consistent online copy of the store to the file `path` (which must not exist)
    /// and returns the KEK versions its data keys are wrapped under. A backend whose backups are
    /// the database's own tool (`pg_dump`) throws a `StoreError` that says so.
    func backup(into path: String) throws -> [UInt32]
    /// Finishes background work and closes every connection. Idempotent.
    func close() throws
}

extension VaultStore {
    /// A store whose commits are durable when they return (PostgreSQL waits for its COMMIT).
    public func writeDeferringSync<T>(_ body: (any StoreWriting) throws -> T) throws -> T { try write(body) }
    public func syncCommitted() throws {}
}

/// How hard a commit is pushed to disk. `full` (the default) makes every acknowledged write
/// survive a process crash and a power loss; `normal` survives a process crash only.
public enum StoreDurability: String, Sendable, CaseIterable {
    case full
    case normal
}

/// Where a vault's records live: the one value that names a backend. The core opens and
/// creates its store through it and learns nothing else about it.
public protocol StoreLocation: Sendable, CustomStringConvertible {
    /// Something already lives there (a vault, or files or tables `create` would overwrite).
    /// Throws if the place cannot be examined (a database that cannot be reached).
    var isOccupied: Bool { get throws }
    /// Several processes (nodes) may serve this store at once, so nothing read from it may be
    /// kept past its transaction, and KEK changes are coordinated through the store itself.
    var isShared: Bool { get }
    /// Opens an existing store, running pending migrations; throws if there is none.
    func open(durability: StoreDurability) throws -> any VaultStore
    /// Creates an empty store, refusing if `isOccupied`.
    func create(durability: StoreDurability) throws -> any VaultStore
    /// Undoes a `create` whose vault could not be finished (SQLite: removes the files).
    func destroyCreated()
}

public protocol StoreReading {
    func subjectKey(_ subject: String) throws -> WrappedKey?
    func sealedFields(_ subject: String, names: [String]) throws -> [String: SealedField]
    func allSealedFields(_ subject: String) throws -> [(name: String, field: SealedField)]
    /// Every stored field's write sequence number, in pages after (subject, name).
    func fieldWrites(after: (subject: String, name: String)?, limit: Int) throws -> [(
        subject: String, name: String, writeSeq: Int64?
    )]
    func subjects(indexKind: String, tag: [UInt8]) throws -> [String]
    /// Every KEK version that still wraps at least one DEK.
    func referencedKEKVersions() throws -> [UInt32]
    func client(named name: String) throws -> ClientRecord?
    func clients() throws -> [ClientRecord]
    /// The newest audit entry's sequence number and MAC, if any.
    func lastAudit() throws -> (seq: Int64, mac: [UInt8])?
    /// Audit entries with `seq > after`, oldest first, at most `limit`.
    func auditRecords(after: Int64, limit: Int) throws -> [AuditRecord]
    /// The newest `count` audit entries, oldest first.
    func auditTail(_ count: Int) throws -> [AuditRecord]
    func kekRecords() throws -> [KEKRecord]
    /// How many DEKs each KEK version wraps.
    func dekCounts() throws -> [UInt32: Int]
    /// Up to `limit` subjects whose DEK is wrapped under a version other than `version`.
    func subjectsNotWrapped(under version: UInt32, limit: Int) throws -> [(subject: String, key: WrappedKey)]
    /// The token stored under the keyed hash `hash`, if any.
    func token(hash: [UInt8]) throws -> TokenRecord?
    /// The subject's newest token of `format`, if it has one.
    func newestToken(subject: String, format: String) throws -> TokenRecord?
    /// Shredded subjects whose wrapped data key may still be read somewhere the store cannot
    /// wipe (PostgreSQL: dead tuples, the WAL, archives, replicas), under KEK versions not yet
    /// retired. Always 0 for SQLite, whose SHRED wipes the vault's own files.
    func shreddedAwaitingRetirement() throws -> Int
    /// Shredded subjects whose wipe of the store's files still waits (`addPendingWipe`). Always
    /// empty for a store that offers no wipe.
    func pendingWipes() throws -> [String]

    // Whole tables in pages, for a copy of the vault into another store (`coffer migrate`).
    // Each pages in the store's own order of its key, after the last row of the page before;
    // `subjectKeys` and `storedFields` order subjects alike, so the two can be walked side by side.

    /// Subjects and their wrapped data keys, by id.
    func subjectKeys(after: String?, limit: Int) throws -> [(subject: String, key: WrappedKey)]
    /// Stored fields with their sealed bytes, by (subject, name).
    func storedFields(after: (subject: String, name: String)?, limit: Int) throws -> [StoredField]
    /// Blind-index entries, by (kind, tag, subject).
    func indexTags(after: IndexTagRecord?, limit: Int) throws -> [IndexTagRecord]
    /// Tokens, by hash.
    func tokens(after hash: [UInt8]?, limit: Int) throws -> [TokenRecord]
    /// How many rows each table holds.
    func recordCounts() throws -> StoreCounts
}

public protocol StoreWriting: StoreReading {
    /// Runs `body` in a savepoint: if it throws, only its own changes are rolled back.
    func savepoint<T>(_ body: () throws -> T) throws -> T
    /// The same for a body that writes one row at most (a read and its audit entry): SQLite
    /// undoes a failed statement by itself, so it runs the body without a savepoint (two
    /// statements fewer per GET); PostgreSQL aborts the whole transaction on any failed
    /// statement, so it takes one.
    func readingSavepoint<T>(_ body: () throws -> T) throws -> T
    func insertSubject(_ subject: String, key: WrappedKey) throws
    func upsertSealedField(subject: String, name: String, sealed: [UInt8], writeSeq: Int64?) throws
    func deleteFields(subject: String, names: [String]) throws -> Int
    /// Sets (or with nil clears) the subject's single blind-index tag of `kind` (the core names
    /// the kinds; the store only keeps them apart).
    func setIndexTag(subject: String, kind: String, tag: [UInt8]?) throws
    /// Deletes the subject row, which cascades to its fields and index tags.
    func deleteSubject(_ subject: String) throws -> Bool
    func insertClient(_ client: ClientRecord) throws
    func deleteClient(named name: String) throws -> Bool
    func setClientMAC(name: String, mac: [UInt8]) throws
    func appendAudit(_ record: AuditRecord) throws
    /// Replaces a subject's wrapped DEK (rewrap or rekey).
    func updateSubjectKey(_ subject: String, key: WrappedKey) throws
    /// Records `version` as a rotation begun: its key file is not yet written (or not yet durable).
    func insertPendingKEK(_ version: UInt32, at time: Double) throws
    /// Makes the pending `version` current (the previous current one becomes active); throws if
    /// `version` is not the pending one.
    func promotePendingKEK(_ version: UInt32) throws
    /// Forgets the pending `version` (its rotation failed before any data key could use it).
    func deletePendingKEK(_ version: UInt32) throws
    func retireKEK(_ version: UInt32, at time: Double) throws
    /// Stores a token (its keyed hash and its sealed form); throws if the hash is taken.
    func insertToken(_ token: TokenRecord) throws
    /// Deletes the token stored under `hash`; false if there was none.
    func deleteToken(hash: [UInt8]) throws -> Bool
    /// Deletes every token of the subject; returns how many there were.
    func deleteTokens(subject: String) throws -> Int
    /// Records that the wipe of a shredded subject's old page images still waits, so that it is
    /// finished (and audited) even if the process stops first; a store that offers no wipe
    /// ignores it.
    /// Returns false if the store records none (it offers no wipe).
    func addPendingWipe(_ subject: String) throws -> Bool
    /// The wipe of these subjects is done.
    func removePendingWipes(_ subjects: [String]) throws

    // A copy of a vault into a new store (`coffer migrate`): rows go in exactly as they were
    // read, wrapped keys, sealed bytes, MACs and sequence numbers untouched. The imports have
    // row-by-row defaults (`StoreWriting+Import.swift`); a store across a network does each page
    // in one statement.

    /// Replaces every KEK record (a new store records version 1 current) with `records`, so
    /// the copy keeps each version's state and times. Before any data key is imported.
    func replaceKEKRecords(_ records: [KEKRecord]) throws
    func importSubjects(_ rows: [(subject: String, key: WrappedKey)]) throws
    func importFields(_ rows: [StoredField]) throws
    func importIndexTags(_ rows: [IndexTagRecord]) throws
    /// Audit entries, in `seq` order, after the chain's head.
    func importAudit(_ records: [AuditRecord]) throws
    func importTokens(_ tokens: [TokenRecord]) throws
}
