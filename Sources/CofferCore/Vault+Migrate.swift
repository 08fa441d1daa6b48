import CofferCrypto
import CofferStore
import Foundation
import Logging

/// What `coffer migrate` copied, table by table (its own `MIGRATE` entry not counted).
public struct MigrationSummary: Sendable, Hashable, CustomStringConvertible {
    public let kekVersions: Int
    public let subjects: Int
    public let fields: Int
    public let indexTags: Int
    public let clients: Int
    public let auditEntries: Int
    public let tokens: Int

    init(_ counts: StoreCounts) {
        kekVersions = counts.kekVersions
        subjects = counts.subjects
        fields = counts.fields
        indexTags = counts.indexTags
        clients = counts.clients
        auditEntries = counts.auditEntries
        tokens = counts.tokens
    }

    public var description: String {
        func counted(_ count: Int, _ noun: String, _ plural: String? = nil) -> String {
            "\(count) \(count == 1 ? noun : plural ?? noun + "s")"
        }
        return [
            counted(kekVersions, "KEK version"), counted(subjects, "subject"), counted(fields, "field"),
            counted(indexTags, "index entry", "index entries"), counted(clients, "client"),
            counted(auditEntries, "audit entry", "audit entries"), counted(tokens, "token"),
        ].joined(separator: ", ")
    }
}

/// The source as it was copied, from one snapshot.
struct CopiedVault {
    let counts: StoreCounts
    let kekRecords: [KEKRecord]
    let head: (seq: Int64, mac: [UInt8])?
}

extension Vault {
    /// Rows per page of a copy or a check: a page of fields holds at most 512 × 64 KiB of sealed
    /// bytes, whatever the size of the vault.
    static let migrationPage = 512

    /// `coffer migrate`: copies the SQLite vault of `source` into the empty shared store
    /// `destination` (PostgreSQL) and proves the copy before anyone uses it.
    ///
    /// The source is opened as the owner of its data directory (refused, naming the holder,
    /// while a server or another command has it) and only read. Every row goes across as it is
    /// (wrapped data keys, sealed fields and their write numbers, index tags, client rows with
    /// their MACs, every audit entry with its sequence number and MAC, tokens, the KEK versions
    /// and their states), read from one snapshot and written in one transaction. Then the
    /// committed copy is opened like any node opens it and checked (`checkCopy`), the source is
    /// checked to be unchanged, and a `MIGRATE` entry by the local operator ends the copied
    /// trail. On any failure everything created in `destination` is dropped again and the
    /// first problem is reported by name, never with a value.
    public static func migrate(
        from source: VaultConfiguration, to destination: any StoreLocation,
        logger: Logger = Logger(label: "coffer.migrate")
    ) throws -> MigrationSummary {
        guard !source.store.isShared else {
            throw VaultError(.setup, "coffer migrate copies a SQLite vault; \(source.store) is a shared store already")
        }
        guard destination.isShared else {
            throw VaultError(.setup, "coffer migrate copies into a PostgreSQL vault; \(destination) is not one")
        }
        if let holder = try DataDirectoryLock.holder(of: source.dataDirectory) {
            throw VaultError(
                .setup,
                "data directory \(source.dataDirectory) is in use by \(holder); stop it first: coffer migrate copies a vault that nothing else has open"
            )
        }
        // Owning the directory keeps a server, and every KEK change, away until the copy is done.
        let vault = try open(source, owner: .init(command: "migrate"), logger: logger)
        defer { try? vault.close() }
        if try storageCall({ try destination.isOccupied }) {
            throw VaultError(
                .setup,
                "\(destination) is not empty; coffer migrate copies only into an empty database, and touched nothing")
        }
        var target = source
        target.dataDirectory = ""
        target.store = destination
        // The key directory is unsealed already: the copy opens under the same root key.
        target.root = vault.keys.root
        target.unsealer = nil
        do {
            let started = ContinuousClock.now
            let copied = try storageCall {
                let store = try destination.create(durability: source.durability)
                defer { try? store.close() }
                return try vault.copy(into: store)
            }
            let checking = ContinuousClock.now
            logger.info("vault copied", metadata: ["seconds": "\(seconds(checking - started))"])
            let migrated = try open(target, logger: logger)
            defer { try? migrated.close() }
            try migrated.checkCopy(of: copied)
            try vault.checkUnchanged(since: copied)
            logger.info("copy checked", metadata: ["seconds": "\(seconds(ContinuousClock.now - checking))"])
            try migrated.audited("MIGRATE", .localOperator) { tx, draft in
                _ = try migrated.resolve(.localOperator, in: tx, recordingIn: &draft).require(
                    .operation(.keys), "MIGRATE")
            }
            logger.notice(
                "vault migrated",
                metadata: ["subjects": "\(copied.counts.subjects)", "audit.entries": "\(copied.counts.auditEntries)"])
            return MigrationSummary(copied.counts)
        } catch {
            destination.destroyCreated()
            let failure = mapped(error)
            let emptied = (try? destination.isOccupied) == false
            throw VaultError(
                failure.code,
                "\(failure.message); nothing was migrated: "
                    + (emptied
                        ? "what was created in \(destination) is gone again"
                        : "what was created in \(destination) could not be dropped; drop its tables before trying again")
            )
        }
    }

    /// Copies every row of this vault's store, read from one snapshot, into `destination` in
    /// one write transaction: the copy is whole or absent.
    private func copy(into destination: any VaultStore) throws -> CopiedVault {
        let page = Self.migrationPage
        return try destination.write { out in
            try store.read { source in
                let keks = try source.kekRecords()
                // Before any data key: the destination refuses a key under a version it does not know as live.
                try out.replaceKEKRecords(keks)
                try forEachPage({ try source.subjectKeys(after: $0?.subject, limit: page) }, out.importSubjects)
                try forEachPage(
                    { last in try source.storedFields(after: last.map { ($0.subject, $0.name) }, limit: page) },
                    out.importFields)
                try forEachPage({ try source.indexTags(after: $0, limit: page) }, out.importIndexTags)
                for client in try source.clients() { try out.insertClient(client) }
                try forEachPage({ try source.auditRecords(after: $0?.seq ?? 0, limit: 8 * page) }, out.importAudit)
                try forEachPage({ try source.tokens(after: $0?.hash, limit: page) }, out.importTokens)
                return CopiedVault(counts: try source.recordCounts(), kekRecords: keks, head: try source.lastAudit())
            }
        }
    }

    /// Proves the committed copy against the source's snapshot: every table holds as many rows,
    /// the KEK records are the same, every data key unwraps and every field and token opens
    /// under the key directory, every client row matches its MAC, and the audit trail verifies
    /// end to end (as `AUDIT.VERIFY` does, rolled-back fields included) up to the source's head.
    private func checkCopy(of copied: CopiedVault) throws {
        let counts = try Self.storageCall { try store.read { try $0.recordCounts() } }
        for (copy, source) in zip(counts.tables, copied.counts.tables) where copy.count != source.count {
            throw VaultError(
                .integrity, "the copy's \(copy.table) table holds \(copy.count) rows, the source's \(source.count)")
        }
        guard try Self.storageCall({ try store.read { try $0.kekRecords() } }) == copied.kekRecords else {
            throw VaultError(.integrity, "the copy's KEK records differ from the source's")
        }
        try openEveryField()
        try openEveryToken()
        for client in try Self.storageCall({ try store.read { try $0.clients() } }) { try checkRecord(client) }
        if case .tampered(_, let reason) = try Self.storageCall({ try audit.verify(store) }) {
            throw VaultError(.integrity, "the audit trail does not verify: \(reason)")
        }
        let head = try Self.storageCall { try store.read { try $0.lastAudit() } }
        guard head?.seq == copied.head?.seq, head?.mac == copied.head?.mac else {
            throw VaultError(
                .integrity,
                "the copy's audit trail ends at entry \(head?.seq ?? 0), the source's at \(copied.head?.seq ?? 0)")
        }
        if case .tampered(_, let reason) = try Self.storageCall({ try firstRolledBackField() }) {
            throw VaultError(.integrity, "the audit trail does not verify: \(reason)")
        }
    }

    /// Unwraps every subject's data key and opens every field under it, on one snapshot. Fields
    /// and subjects page in the same order of subjects, so each key is unwrapped once, as its
    /// subject comes up; subjects without fields are unwrapped as they are passed.
    private func openEveryField() throws {
        let page = Self.migrationPage
        try Self.storageCall {
            try store.read { tx in
                try scratch.withScratch { scratch in
                    var subjects: [(subject: String, key: WrappedKey)] = []
                    var next = 0
                    var passed: String?
                    // Unwraps the next subject's data key into slot 1; nil when none is left.
                    func unwrapNext() throws -> String? {
                        if next == subjects.count {
                            subjects = try tx.subjectKeys(after: passed, limit: page)
                            next = 0
                            guard !subjects.isEmpty else { return nil }
                        }
                        let (subject, key) = subjects[next]
                        next += 1
                        passed = subject
                        try envelope.unwrapDEK(key, subject: subject, in: scratch)
                        return subject
                    }
                    var unwrapped: String?
                    try forEachPage(
                        { last in try tx.storedFields(after: last.map { ($0.subject, $0.name) }, limit: page) }
                    ) { fields in
                        for row in fields {
                            while unwrapped != row.subject {
                                guard let subject = try unwrapNext() else {
                                    throw VaultError(
                                        .integrity,
                                        "field '\(row.name)' of subject '\(row.subject)' has no data key in the copy")
                                }
                                unwrapped = subject
                            }
                            var plain = try envelope.open(row.field, subject: row.subject, name: row.name, in: scratch)
                            Random.wipe(&plain)
                        }
                    }
                    while try unwrapNext() != nil {}
                }
            }
        }
    }

    /// Opens every token and checks it against its hash, on one snapshot.
    private func openEveryToken() throws {
        let page = Self.migrationPage
        try Self.storageCall {
            try store.read { tx in
                try scratch.withScratch { scratch in
                    try forEachPage({ try tx.tokens(after: $0?.hash, limit: page) }) { tokens in
                        for token in tokens {
                            var plain = try envelope.openToken(token, in: scratch)
                            Random.wipe(&plain)
                        }
                    }
                }
            }
        }
    }

    /// The source must still be what was copied: a command run alongside the migration (a
    /// client added through `coffer clients`, an `audit verify`) would be missing from the copy.
    private func checkUnchanged(since copied: CopiedVault) throws {
        let (head, counts) = try Self.storageCall { try store.read { (try $0.lastAudit(), try $0.recordCounts()) } }
        guard head?.seq == copied.head?.seq, head?.mac == copied.head?.mac, counts == copied.counts else {
            throw VaultError(
                .setup,
                "the SQLite vault changed while it was copied (its audit trail now ends at entry \(head?.seq ?? 0), the copy's at \(copied.head?.seq ?? 0)): a command ran alongside; run coffer migrate again"
            )
        }
    }
}

private func seconds(_ duration: Duration) -> String {
    String(format: "%.1f", Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18)
}

/// Calls `body` with each page `next` returns, until one is empty; `next` is given the last row
/// of the page before (nil for the first).
private func forEachPage<Row>(_ next: (Row?) throws -> [Row], _ body: ([Row]) throws -> Void) throws {
    var last: Row?
    while true {
        let rows = try next(last)
        guard let end = rows.last else { return }
        try body(rows)
        last = end
    }
}
