import NIOCore
import Synchronization

/// The open connections: the client caps, and shutdown, which stops each one reading while it
/// answers what it has read.
///
/// Connections that have not authenticated (TLS ones still in their handshake included) have a
/// cap of their own, below the total, so that idle anonymous connections can never take the
/// slots authenticated clients need.
final class ConnectionRegistry: Sendable {
    struct Registration: Sendable, Hashable {
        let id: Int
        fileprivate let key: ObjectIdentifier
    }

    enum Admission: Sendable {
        case admitted(Registration)
        case refused(String)
    }

    private struct State {
        var open: [ObjectIdentifier: (channel: any Channel, authenticated: Bool)] = [:]
        var anonymous = 0
        var nextID = 0
        var draining = false
    }

    private let state = Mutex(State())
    let maximumClients: Int
    let maximumAnonymous: Int

    init(maximumClients: Int, maximumAnonymous: Int) {
        self.maximumClients = maximumClients
        self.maximumAnonymous = maximumAnonymous
    }

    /// Registers a new (anonymous) connection, or says why it is refused.
    func register(_ channel: any Channel) -> Admission {
        state.withLock { state in
            if state.draining { return .refused("server is shutting down") }
            if state.open.count >= maximumClients { return .refused("max number of clients reached") }
            if state.anonymous >= maximumAnonymous {
                return .refused("max number of unauthenticated clients reached")
            }
            state.nextID += 1
            let key = ObjectIdentifier(channel)
            state.open[key] = (channel, false)
            state.anonymous += 1
            return .admitted(Registration(id: state.nextID, key: key))
        }
    }

    /// The connection has authenticated: it no longer counts against the anonymous cap.
    func authenticated(_ registration: Registration) {
        state.withLock { state in
            guard let entry = state.open[registration.key], !entry.authenticated else { return }
            state.open[registration.key]?.authenticated = true
            state.anonymous -= 1
        }
    }

    func unregister(_ registration: Registration) {
        state.withLock { state in
            guard let entry = state.open.removeValue(forKey: registration.key) else { return }
            if !entry.authenticated { state.anonymous -= 1 }
        }
    }

    var count: Int { state.withLock { $0.open.count } }

    /// Stops every connection from reading further requests; each finishes what it has read,
    /// replies, and then closes.
    func drain() {
        let channels = state.withLock { state -> [any Channel] in
            state.draining = true
            return state.open.values.map(\.channel)
        }
        for channel in channels {
            channel.close(mode: .input).whenFailure { _ in channel.close(promise: nil) }
        }
    }

    /// Waits (polling) until every connection has closed, or `timeout` has passed.
    func waitUntilEmpty(timeout: Duration) async {
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        while count > 0 && clock.now < deadline {
            try? await Task.sleep(for: .milliseconds(20))
        }
    }
}
