import CofferCore

/// The state of one connection: who it is (once authenticated) and which RESP version it speaks.
struct Session: Sendable {
    let id: Int
    var caller: Caller?
    var clientName: String?
    var protocolVersion = 2

    init(id: Int) { self.id = id }

    var isAuthenticated: Bool { caller != nil }
}
