/// A subject's data key, sealed under one version of the key-encrypting key.
public struct WrappedKey: Sendable, Hashable {
    public var kekVersion: UInt32
    public var sealed: [UInt8]

    public init(kekVersion: UInt32, sealed: [UInt8]) {
        self.kekVersion = kekVersion
        self.sealed = sealed
    }
}

/// A sealed field value and the audit sequence number of the write that sealed it (nil for
/// fields sealed before write sequence numbers existed).
public struct SealedField: Sendable, Hashable {
    public var sealed: [UInt8]
    public var writeSeq: Int64?

    public init(sealed: [UInt8], writeSeq: Int64?) {
        self.sealed = sealed
        self.writeSeq = writeSeq
    }
}

/// A client allowed to connect. Only a keyed hash of its secret is stored.
public struct ClientRecord: Sendable, Hashable {
    public var name: String
    public var role: String
    public var secretHash: [UInt8]
    public var failedAttempts: Int
    /// Seconds since 1970 until which the client is locked out, if it is.
    public var lockedUntil: Double?
    public var createdAt: Double
    /// The vault's MAC over the row (nil only for a row written before MACs existed).
    public var mac: [UInt8]?

    public init(
        name: String, role: String, secretHash: [UInt8], failedAttempts: Int = 0, lockedUntil: Double? = nil,
        createdAt: Double, mac: [UInt8]? = nil
    ) {
        self.mac = mac
        self.name = name
        self.role = role
        self.secretHash = secretHash
        self.failedAttempts = failedAttempts
        self.lockedUntil = lockedUntil
        self.createdAt = createdAt
    }
}

public struct StoreError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// One audit-trail row. It never holds a value, a secret or a key.
public struct AuditRecord: Sendable, Hashable {
    public var seq: Int64
    public var at: String
    public var client: String
    public var role: String
    public var origin: String
    public var command: String
    public var subject: String?
    public var fields: String
    public var outcome: String
    public var mac: [UInt8]
    /// Why the command was made, if it said (nil in every entry written before purposes existed).
    public var purpose: String?
    /// The ticket of purpose `other`.
    public var ticket: String?

    public init(
        seq: Int64, at: String, client: String, role: String, origin: String, command: String, subject: String?,
        fields: String, outcome: String, mac: [UInt8], purpose: String? = nil, ticket: String? = nil
    ) {
        self.purpose = purpose
        self.ticket = ticket
        self.seq = seq
        self.at = at
        self.client = client
        self.role = role
        self.origin = origin
        self.command = command
        self.subject = subject
        self.fields = fields
        self.outcome = outcome
        self.mac = mac
    }
}

/// The life of a KEK version, as the database records it.
public enum KEKState: String, Sendable, Hashable {
    /// Recorded by a rotation before its key file is written; made current once the file is durable.
    case pending
    case current
    case active
    case retired
}

public struct KEKRecord: Sendable, Hashable {
    public var version: UInt32
    public var state: KEKState
    public var createdAt: Double
    public var retiredAt: Double?
}

/// A card token as stored: never the token itself, only its keyed hash (the lookup key) and the
/// token sealed under a key from the key directory.
public struct TokenRecord: Sendable, Hashable {
    public var hash: [UInt8]
    public var subject: String
    public var field: String
    public var format: String
    public var sealed: [UInt8]
    /// The audit sequence number of the TOKENIZE that made it; the seal is bound to it.
    public var createdSeq: Int64

    public init(hash: [UInt8], subject: String, field: String, format: String, sealed: [UInt8], createdSeq: Int64) {
        self.hash = hash
        self.subject = subject
        self.field = field
        self.format = format
        self.sealed = sealed
        self.createdSeq = createdSeq
    }
}

/// One stored field and the subject it belongs to, as a copy of the whole table reads it.
public struct StoredField: Sendable, Hashable {
    public var subject: String
    public var name: String
    public var field: SealedField

    public init(subject: String, name: String, field: SealedField) {
        self.subject = subject
        self.name = name
        self.field = field
    }
}

/// One blind-index entry: a keyed tag of a subject's normalised email or phone.
public struct IndexTagRecord: Sendable, Hashable {
    public var kind: String
    public var tag: [UInt8]
    public var subject: String

    public init(kind: String, tag: [UInt8], subject: String) {
        self.kind = kind
        self.tag = tag
        self.subject = subject
    }
}

/// How many rows each table of a vault holds (what a copy must match).
public struct StoreCounts: Sendable, Hashable {
    public var kekVersions: Int
    public var subjects: Int
    public var fields: Int
    public var indexTags: Int
    public var clients: Int
    public var auditEntries: Int
    public var tokens: Int

    public init(
        kekVersions: Int, subjects: Int, fields: Int, indexTags: Int, clients: Int, auditEntries: Int, tokens: Int
    ) {
        self.kekVersions = kekVersions
        self.subjects = subjects
        self.fields = fields
        self.indexTags = indexTags
        self.clients = clients
        self.auditEntries = auditEntries
        self.tokens = tokens
    }

    /// Each table's name and count, in a fixed order, for messages.
    public var tables: [(table: String, count: Int)] {
        [
            ("kek", kekVersions), ("subject", subjects), ("field", fields), ("blind_index", indexTags),
            ("client", clients), ("audit", auditEntries), ("token", tokens),
        ]
    }
}
