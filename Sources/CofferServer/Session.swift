import CofferCore

/// The state of one connection: who it is (once authenticated) and which RESP version it speaks.
struct Session: Sendable {
    let id: Int
    /// `unix` or `tcp HOST:PORT`, recorded in the audit trail.
    let origin: String
    /// The authenticated client, if any.
    var client: String?
    /// The name a library gave the connection (`CLIENT SETNAME`, `HELLO … SETNAME`).
    var connectionName: String?
    var protocolVersion = 2

    init(id: Int, origin: String) {
        self.id = id
        self.origin = origin
    }

    var isAuthenticated: Bool { client != nil }

    var caller: Caller {
        client.map { .client($0, origin: origin) } ?? .anonymous(origin: origin)
    }
}
