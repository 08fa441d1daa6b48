/// Who is asking, and from where. Every vault operation takes one; the vault resolves the
/// identity to a role itself, on every call, so a revoked client is refused from its next
/// command. The origin is recorded in the audit trail.
public struct Caller: Sendable, Hashable {
    public enum Identity: Sendable, Hashable {
        /// An authenticated client, by name. A session that authenticated over the socket
        /// carries the binding its AUTH returned, and is refused once the client record it
        /// authenticated against is revoked, re-added, or has its secret or role changed. In-process
        /// callers that hold the vault itself (tests) may omit it.
        case client(String, ClientBinding?)
        /// The operator at the machine, using the CLI offline with the key directory in hand.
        case localOperator
        /// A connection that has not authenticated (only AUTH reaches the vault from one).
        case anonymous
    }

    public var identity: Identity
    /// Where the request came from: `unix`, `tcp 127.0.0.1:5123`, `cli`.
    public var origin: String
    /// Why this command is made (`PURPOSE …` on the command, or `CLIENT.PURPOSE` on the
    /// connection); recorded in its audit entry and weighed by purpose-conditioned grants.
    public var purpose: AccessPurpose?

    public init(identity: Identity, origin: String, purpose: AccessPurpose? = nil) {
        self.identity = identity
        self.origin = origin
        self.purpose = purpose
    }

    public static func client(_ name: String, origin: String = "local", binding: ClientBinding? = nil) -> Caller {
        Caller(identity: .client(name, binding), origin: origin)
    }

    public static let localOperator = Caller(identity: .localOperator, origin: "cli")

    public static func anonymous(origin: String) -> Caller { Caller(identity: .anonymous, origin: origin) }

    /// The client name, if this is a client.
    public var clientName: String? {
        if case .client(let name, _) = identity { name } else { nil }
    }
}

/// What an AUTH proved: the exact client record (its secret hash and role) the session
/// authenticated against. Opaque outside the vault core.
public struct ClientBinding: Sendable, Hashable {
    let secretHash: [UInt8]
    let role: String

    /// The role the session authenticated with, for `CLIENT LIST` (a role is not a secret).
    public var roleName: String { role }
}
