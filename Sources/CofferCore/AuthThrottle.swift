import Foundation
import Synchronization

/// Failed-AUTH bookkeeping, in memory, keyed by (client name, origin) where the origin is the
/// peer's uid on the Unix socket or its IP address on TCP.
///
/// - A lock-out is per (name, origin): ten wrong AUTHs from one address lock that name out for
///   that address only, so an attacker cannot lock a real client out from elsewhere.
/// - A wrong secret repeated counts once per window: a client library that retries a stale
///   secret ten times (redis-py does) does not lock its own service out, while a brute-forcer
///   (distinct guesses) is still locked after `maximumFailures` (PCI DSS 8.3.4).
/// - One origin may make at most `maximumOriginFailures` distinct failures per window across all
///   names before every name is locked for it, so cycling names buys a brute-forcer nothing.
/// - It also decides which failures reach the audit trail: the first of each (name, origin) per
///   audit window is written at once, the rest are counted and written as one entry when the
///   window closes, so anonymous traffic adds a bounded number of audit rows per window.
final class AuthThrottle: Sendable {
    struct Configuration: Sendable {
        var maximumFailures = 10
        var maximumOriginFailures = 100
        var lockoutSeconds: Double = 30 * 60
        var failureWindowSeconds: Double = 15 * 60
        var auditWindowSeconds: Double = 60
        /// Most (name, origin) pairs remembered; past it the oldest unlocked ones are dropped.
        var maximumEntries = 16_384
    }

    struct Key: Hashable, Sendable {
        let name: String
        let origin: String
    }

    private struct Entry {
        var windowStart: Double
        /// Short digests of the distinct wrong secrets seen in this window.
        var seen: Set<UInt64> = []
        var lockedUntil: Double?
        var auditWindowStart: Double?
        var unaudited = 0
        var lastSeen: Double
    }

    /// What one failed attempt means.
    struct Failure: Sendable {
        /// Distinct failures of this (name, origin) in the window: the reply delay grows with it.
        let failures: Int
        /// This failure locked the pair (audit it as a lock-out).
        let lockedNow: Bool
        /// Write this failure to the audit trail now (the first of its audit window).
        let auditNow: Bool
    }

    /// Failures counted but not yet written to the audit trail.
    struct Pending: Sendable, Hashable {
        let key: Key
        let count: Int
    }

    let configuration: Configuration
    private let state = Mutex<State>(State())

    private struct State {
        var pairs: [Key: Entry] = [:]
        var origins: [String: Entry] = [:]
        /// Counted failures of pairs dropped to keep the map bounded, still owed to the trail.
        var droppedUnaudited = 0
        /// Since the process started, for INFO and metrics.
        var totalFailures = 0
        var totalLockouts = 0
    }

    /// The key under which failures of dropped pairs are audited.
    static let overflowKey = Key(name: "(many)", origin: "(many)")

    init(configuration: Configuration = Configuration()) { self.configuration = configuration }

    /// True if `key` may not authenticate now (its pair or its whole origin is locked).
    func isLocked(_ key: Key, now: Double) -> Bool {
        state.withLock { state in
            (state.pairs[key]?.lockedUntil ?? 0) > now || (state.origins[key.origin]?.lockedUntil ?? 0) > now
        }
    }

    /// Records a failed attempt with a wrong secret whose digest is `digest`.
    func recordFailure(_ key: Key, digest: UInt64, now: Double) -> Failure {
        state.withLock { state in
            var pair = Self.fresh(state.pairs[key], now: now, window: configuration.failureWindowSeconds)
            var origin = Self.fresh(state.origins[key.origin], now: now, window: configuration.failureWindowSeconds)
            let alreadyLocked = (pair.lockedUntil ?? 0) > now || (origin.lockedUntil ?? 0) > now
            var lockedNow = false
            if !alreadyLocked {
                pair.seen.insert(digest)
                origin.seen.insert(digest ^ UInt64(truncatingIfNeeded: key.name.hashValue))
                if pair.seen.count >= configuration.maximumFailures {
                    pair.lockedUntil = now + configuration.lockoutSeconds
                    lockedNow = true
                }
                if origin.seen.count >= configuration.maximumOriginFailures {
                    origin.lockedUntil = now + configuration.lockoutSeconds
                    lockedNow = true
                }
            }
            var auditNow = false
            if let start = pair.auditWindowStart, now - start < configuration.auditWindowSeconds, !lockedNow {
                pair.unaudited += 1
            } else {
                pair.auditWindowStart = now
                auditNow = true
            }
            pair.lastSeen = now
            origin.lastSeen = now
            if state.pairs[key] == nil {
                state.droppedUnaudited += Self.makeRoom(&state.pairs, limit: configuration.maximumEntries)
            }
            if state.origins[key.origin] == nil {
                _ = Self.makeRoom(&state.origins, limit: configuration.maximumEntries)
            }
            state.pairs[key] = pair
            state.origins[key.origin] = origin
            state.totalFailures += 1
            if lockedNow { state.totalLockouts += 1 }
            return Failure(failures: max(pair.seen.count, 1), lockedNow: lockedNow, auditNow: auditNow)
        }
    }

    /// Failed AUTHs and lock-outs since the process started.
    var totals: (failures: Int, lockouts: Int) {
        state.withLock { ($0.totalFailures, $0.totalLockouts) }
    }

    /// A successful AUTH clears the pair's count; what it had not audited yet is returned.
    func recordSuccess(_ key: Key) -> Pending? {
        state.withLock { state in
            guard let entry = state.pairs.removeValue(forKey: key), entry.unaudited > 0 else { return nil }
            return Pending(key: key, count: entry.unaudited)
        }
    }

    /// Lifts every lock-out of `name` (from any origin). Returns whether one was in force.
    /// Lifts every lock-out of `name`: its (name, origin) pairs, and the whole-origin locks of
    /// the origins it failed from (otherwise an origin that cycled names would keep it out).
    func unlock(name: String, now: Double) -> Bool {
        state.withLock { state in
            var wasLocked = false
            for (key, entry) in state.pairs where key.name == name {
                wasLocked = wasLocked || (entry.lockedUntil ?? 0) > now
                state.pairs[key]?.lockedUntil = nil
                state.pairs[key]?.seen = []
                if let origin = state.origins[key.origin], (origin.lockedUntil ?? 0) > now {
                    wasLocked = true
                    state.origins[key.origin]?.lockedUntil = nil
                    state.origins[key.origin]?.seen = []
                }
            }
            return wasLocked
        }
    }

    /// Whether `name` is locked out from any origin.
    func isLockedAnywhere(name: String, now: Double) -> Bool {
        state.withLock { state in state.pairs.contains { $0.key.name == name && ($0.value.lockedUntil ?? 0) > now } }
    }

    /// Failures whose audit window has closed and that were counted but not yet written.
    /// With `all`, every counted failure (at shutdown).
    func takePendingAudit(now: Double, all: Bool = false) -> [Pending] {
        state.withLock { state in
            var pending: [Pending] = []
            for (key, entry) in state.pairs where entry.unaudited > 0 {
                guard all || now - (entry.auditWindowStart ?? 0) >= configuration.auditWindowSeconds else { continue }
                pending.append(Pending(key: key, count: entry.unaudited))
                state.pairs[key]?.unaudited = 0
                state.pairs[key]?.auditWindowStart = nil
            }
            if state.droppedUnaudited > 0 {
                pending.append(Pending(key: Self.overflowKey, count: state.droppedUnaudited))
                state.droppedUnaudited = 0
            }
            return pending
        }
    }

    private static func fresh(_ entry: Entry?, now: Double, window: Double) -> Entry {
        guard var entry else { return Entry(windowStart: now, lastSeen: now) }
        if let until = entry.lockedUntil, until <= now {
            // An expired lock-out starts a fresh count.
            entry.lockedUntil = nil
            entry.seen = []
            entry.windowStart = now
        } else if entry.lockedUntil == nil, now - entry.windowStart >= window {
            entry.seen = []
            entry.windowStart = now
        }
        return entry
    }

    /// Keeps the map bounded: drops the least recently seen eighth, unlocked entries first.
    /// Returns the failures they had counted but not yet audited.
    private static func makeRoom<K>(_ map: inout [K: Entry], limit: Int) -> Int {
        guard map.count >= limit else { return 0 }
        let victims = map.sorted {
            ($0.value.lockedUntil == nil ? 0 : 1, $0.value.lastSeen) < (
                $1.value.lockedUntil == nil ? 0 : 1, $1.value.lastSeen
            )
        }.prefix(max(1, limit / 8))
        var owed = 0
        for (key, entry) in victims {
            owed += entry.unaudited
            map.removeValue(forKey: key)
        }
        return owed
    }
}
