import NIOCore
import Synchronization

/// Lets at most `limit` lines of one kind into the log per `interval`, and counts the rest, so
/// that a client repeating a logged failure (a wrong AUTH, thousands a second from many
/// connections) cannot flood the log and the disk under it. The next line let through says how
/// many were held back. The audit trail still has every one of them.
final class LogThrottle: Sendable {
    let limit: Int
    let interval: TimeAmount
    private let state = Mutex<(windowStart: NIODeadline, logged: Int, heldBack: Int)>((.distantPast, 0, 0))

    init(limit: Int, per interval: TimeAmount) {
        self.limit = limit
        self.interval = interval
    }

    /// nil if this line is to be held back; otherwise the number of lines held back since the
    /// last one let through.
    func admit(now: NIODeadline = .now()) -> Int? {
        state.withLock { state in
            if now - state.windowStart >= interval {
                state.windowStart = now
                state.logged = 0
            }
            guard state.logged < limit else {
                state.heldBack += 1
                return nil
            }
            state.logged += 1
            defer { state.heldBack = 0 }
            return state.heldBack
        }
    }
}
