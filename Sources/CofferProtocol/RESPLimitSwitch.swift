import Synchronization

/// Which limits a connection's decoder applies: the anonymous ones until the connection
/// authenticates. Shared between the decoder on the event loop and the connection's task.
public final class RESPLimitSwitch: Sendable {
    private let authenticated = Atomic<Bool>(false)
    private let anonymousLimits: RESPLimits
    private let authenticatedLimits: RESPLimits

    public init(anonymous: RESPLimits = .anonymous, authenticated: RESPLimits = .authenticated) {
        self.anonymousLimits = anonymous
        self.authenticatedLimits = authenticated
    }

    public var current: RESPLimits {
        authenticated.load(ordering: .acquiring) ? authenticatedLimits : anonymousLimits
    }

    public func setAuthenticated(_ value: Bool) {
        authenticated.store(value, ordering: .releasing)
    }
}
