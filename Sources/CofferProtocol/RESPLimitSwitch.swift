import Synchronization

/// Which limits a connection's decoder applies, shared between the decoder on the event loop
/// and the connection's task.
///
/// An anonymous connection gets small limits. When it sends AUTH (or HELLO), the decoder stops
/// decoding until that command has been answered: a client that pipelines `AUTH` and then large
/// commands must have them parsed under the limits of the outcome, as Redis (which runs one
/// command at a time) does. Bytes that arrive meanwhile are held, up to one authenticated
/// request's worth.
public final class RESPLimitSwitch: Sendable {
    public enum State: UInt8, Sendable {
        case anonymous
        case awaitingAuthentication
        case authenticated
    }

    private let state = Atomic<UInt8>(State.anonymous.rawValue)
    private let resume = Mutex<(@Sendable () -> Void)?>(nil)
    public let anonymousLimits: RESPLimits
    public let authenticatedLimits: RESPLimits

    public init(anonymous: RESPLimits = .anonymous, authenticated: RESPLimits = .authenticated) {
        self.anonymousLimits = anonymous
        self.authenticatedLimits = authenticated
    }

    public var current: State { State(rawValue: state.load(ordering: .acquiring)) ?? .anonymous }

    /// The limits for the next request (while awaiting authentication, the anonymous ones).
    public var limits: RESPLimits { current == .authenticated ? authenticatedLimits : anonymousLimits }

    /// Called by the decoder when an anonymous connection sends a command that may authenticate.
    public func beginAuthentication() {
        state.store(State.awaitingAuthentication.rawValue, ordering: .releasing)
    }

    /// How the decoder is woken to decode what it held back; set once by the server.
    public func setResume(_ body: @escaping @Sendable () -> Void) {
        resume.withLock { $0 = body }
    }

    /// Called after each command with the connection's state; wakes the decoder if it waited.
    public func settle(authenticated: Bool) {
        let new = authenticated ? State.authenticated : State.anonymous
        let old = state.exchange(new.rawValue, ordering: .acquiringAndReleasing)
        if old == State.awaitingAuthentication.rawValue, let wake = resume.withLock({ $0 }) { wake() }
    }

    /// Convenience for tests.
    public func setAuthenticated(_ value: Bool) { settle(authenticated: value) }
}
