import Logging
import Synchronization

/// Lets at most `limit` lines of one kind into the log per `interval`, and counts the rest, so
/// that a client repeating a logged event (a wrong AUTH, an HTTP request, a lock-out, thousands
/// a second from many connections) cannot flood the log and the disk under it. The next line
/// let through says how many were held back. The audit trail still has every audited event.
public final class LogThrottle: Sendable {
    public let limit: Int
    public let interval: Duration
    private let state = Mutex<(windowStart: ContinuousClock.Instant?, logged: Int, heldBack: Int)>((nil, 0, 0))

    public init(limit: Int, per interval: Duration) {
        self.limit = limit
        self.interval = interval
    }

    /// nil if this line is to be held back; otherwise the number of lines held back since the
    /// last one let through.
    public func admit(now: ContinuousClock.Instant = .now) -> Int? {
        state.withLock { state in
            if state.windowStart.map({ now - $0 >= interval }) ?? true {
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

    /// `metadata` for a line let through, with `not_logged_before` when lines were held back.
    public static func metadata(_ metadata: Logger.Metadata, heldBack: Int) -> Logger.Metadata {
        guard heldBack > 0 else { return metadata }
        var metadata = metadata
        metadata["not_logged_before"] = "\(heldBack)"
        return metadata
    }
}
