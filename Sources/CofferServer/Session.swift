import CofferCore

/// The state of one connection: who it is (once authenticated) and which RESP version it speaks.
struct Session: Sendable {
    let id: Int
    /// `unix`, `tcp HOST:PORT` or `tls HOST:PORT`, recorded in the audit trail.
    let origin: String
    /// What failed AUTHs are counted by: `uid N` on the Unix socket, `ip ADDRESS` on TCP.
    var peer: String
    /// The authenticated client, if any, and the client record its AUTH proved.
    var client: String?
    var binding: ClientBinding?
    /// The name a library gave the connection (`CLIENT SETNAME`, `HELLO … SETNAME`).
    var connectionName: String?
    var protocolVersion = 2
    /// `CLIENT.PURPOSE`: the purpose of commands that state none.
    var purpose: AccessPurpose?
    /// The unseal epoch its AUTH was checked under (see `VaultHandle`).
    var epoch = 0

    init(id: Int, origin: String, peer: String) {
        self.id = id
        self.origin = origin
        self.peer = peer
    }

    var isAuthenticated: Bool { client != nil }

    var caller: Caller {
        var caller: Caller = client.map { .client($0, origin: origin, binding: binding) } ?? .anonymous(origin: origin)
        caller.purpose = purpose
        return caller
    }
}

/// What a command changes about its session; the connection applies it when the command ends.
struct SessionUpdate: Sendable {
    var authenticated: (client: String, binding: ClientBinding)?
    var epoch: Int?
    /// The client behind the session was revoked or changed: the connection is anonymous again.
    var deauthenticated = false
    var protocolVersion: Int?
    var connectionName: String?
    /// `CLIENT.PURPOSE`: `.some(nil)` clears the connection's purpose.
    var purpose: AccessPurpose??

    func apply(to session: inout Session) {
        if let authenticated {
            session.client = authenticated.client
            session.binding = authenticated.binding
        }
        if let epoch { session.epoch = epoch }
        if deauthenticated {
            session.client = nil
            session.binding = nil
        }
        // A new identity starts without the previous one's purpose.
        if authenticated != nil || deauthenticated { session.purpose = nil }
        if let purpose { session.purpose = purpose }
        if let protocolVersion { session.protocolVersion = protocolVersion }
        if let connectionName { session.connectionName = connectionName }
    }
}
