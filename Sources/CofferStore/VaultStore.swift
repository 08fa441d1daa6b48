/// The narrow storage interface the vault core is written against. A store keeps only
/// ciphertext, wrapped keys, keyed hashes and client records: it never sees plaintext or a key.
///
/// SQLite (`SQLiteStore`) implements it today; a PostgreSQL backend can implement the same
/// protocol later.
public protocol VaultStore: Sendable {
    /// Runs `body` in a read transaction that sees one consistent snapshot.
    func read<T>(_ body: (any StoreReading) throws -> T) throws -> T
    /// Runs `body` in a write transaction: everything it writes commits together, or nothing does.
    func write<T>(_ body: (any StoreWriting) throws -> T) throws -> T
    /// Tries once, without waiting for readers, to copy the write-ahead log into the main file and
    /// empty it, so that pages freed by a shred survive nowhere. False if a reader's older
    /// snapshot still needs part of the log.
    func tryWipe() -> Bool
}

public protocol StoreReading {
    func subjectKey(_ subject: String) throws -> WrappedKey?
    func sealedFields(_ subject: String, names: [String]) throws -> [String: SealedField]
    func allSealedFields(_ subject: String) throws -> [(name: String, field: SealedField)]
    /// Every stored field's write sequence number, in pages after (subject, name).
    func fieldWrites(after: (subject: String, name: String)?, limit: Int) throws -> [(
        subject: String, name: String, writeSeq: Int64?
    )]
    func subjects(indexKind: IndexKind, tag: [UInt8]) throws -> [String]
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
}

public protocol StoreWriting: StoreReading {
    /// Runs `body` in a savepoint: if it throws, only its own changes are rolled back.
    func savepoint<T>(_ body: () throws -> T) throws -> T
    func insertSubject(_ subject: String, key: WrappedKey) throws
    func upsertSealedField(subject: String, name: String, sealed: [UInt8], writeSeq: Int64?) throws
    func deleteFields(subject: String, names: [String]) throws -> Int
    /// Sets (or with nil clears) the subject's single blind-index tag of `kind`.
    func setIndexTag(subject: String, kind: IndexKind, tag: [UInt8]?) throws
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
}
