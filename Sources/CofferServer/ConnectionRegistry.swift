import NIOCore
import Synchronization

/// The open connections, so that shutdown can stop each one reading while it finishes the
/// command in flight, and so that the client cap can be enforced.
final class ConnectionRegistry: Sendable {
    private let state = Mutex<(open: [ObjectIdentifier: any Channel], nextID: Int, draining: Bool)>(([:], 0, false))

    /// Registers a connection, or returns nil if `limit` connections are open already or the
    /// server is shutting down.
    func register(_ channel: any Channel, limit: Int) -> Int? {
        state.withLock { state in
            guard !state.draining, state.open.count < limit else { return nil }
            state.nextID += 1
            state.open[ObjectIdentifier(channel)] = channel
            return state.nextID
        }
    }

    func unregister(_ channel: any Channel) {
        _ = state.withLock { $0.open.removeValue(forKey: ObjectIdentifier(channel)) }
    }

    var count: Int { state.withLock { $0.open.count } }

    /// Stops every connection from reading further requests; each finishes what it has read,
    /// replies, and then closes.
    func drain() {
        let channels = state.withLock { state -> [any Channel] in
            state.draining = true
            return Array(state.open.values)
        }
        for channel in channels {
            channel.close(mode: .input).whenFailure { _ in channel.close(promise: nil) }
        }
    }
}
