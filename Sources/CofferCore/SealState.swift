import CofferCrypto
import Synchronization

/// Whether the vault is sealed, and how far an unseal has got: the key shares entered so far
/// (in guarded memory), checked one by one against the seal manifest as they arrive.
///
/// One per server, shared by every connection (and readable by INFO and health checks). The
/// clock is passed in, so the idle expiry and the rate limit are tested without waiting.
public final class SealState: Sendable {
    public struct Status: Sendable, Equatable {
        public var sealed: Bool
        public var threshold: Int
        public var shares: Int
        /// Shares entered towards the current unseal (0 when unsealed).
        public var entered: Int
        public var generation: UInt32

        /// `sealed: 1 of 3 key shares entered`, the text `-SEALED` replies carry.
        public var progress: String {
            sealed ? "sealed: \(entered) of \(threshold) key shares entered" : "unsealed"
        }
    }

    public enum Outcome: Sendable {
        /// The share was accepted; more are needed.
        case progress(Status)
        /// The share completed the threshold: here is the root key, checked against the
        /// manifest. The caller opens the vault with it and then calls `markUnsealed()`.
        case unsealed(RootKey)
    }

    /// Progress is dropped after this long without a new share, so a half-finished unseal does
    /// not wait for ever for someone to complete it.
    public static let idleExpiry: Duration = .seconds(600)
    /// Share entries allowed per minute (accepted or refused) from one peer (a local uid, a
    /// remote address). Per peer, so that a stranger entering junk cannot use up the share
    /// holders' allowance and keep the vault sealed.
    public static let attemptsPerMinute = 10
    /// Peers tracked at once; past it the one whose last entry is oldest is forgotten.
    public static let maximumPeers = 1024

    private struct State {
        var sealed = true
        var entered: [KeyShare] = []
        /// Who entered the shares of the unseal under way: only they may reset it.
        var enteredBy: Set<String> = []
        var lastEntry: ContinuousClock.Instant?
        var attempts: [String: [ContinuousClock.Instant]] = [:]
        /// The threshold was reached and the vault is being opened: no share is taken until
        /// that has succeeded (`markUnsealed`) or failed (`openFailed`), so that shares racing
        /// the last one cannot start a second unseal and open the vault twice.
        var opening = false
    }

    public let manifest: SealManifest
    private let state = Mutex(State())

    public init(manifest: SealManifest) {
        self.manifest = manifest
    }

    public func status(now: ContinuousClock.Instant = .now) -> Status {
        state.withLock { state in
            expire(&state, now: now)
            return status(state)
        }
    }

    public var isSealed: Bool { state.withLock { $0.sealed } }

    /// Takes one share typed by an operator. Refuses, saying why and keeping the progress, a
    /// malformed or mistyped share, one of another generation, one this vault never issued, or
    /// one entered already; past the threshold, refuses shares whose root key fails the
    /// manifest's check (and drops the progress, since one of them must be wrong).
    public func submit(
        _ text: some StringProtocol, from peer: String = "local", now: ContinuousClock.Instant = .now
    ) throws(VaultError) -> Outcome {
        try state.withLock { (state) throws(VaultError) -> Outcome in
            expire(&state, now: now)
            guard state.sealed else { throw VaultError(.invalid, "the vault is already unsealed") }
            guard !state.opening else { throw VaultError(.busy, "the vault is being unsealed; try SEAL.STATUS") }
            try Self.countAttempt(&state, from: peer, now: now)
            let (generation, share) = try ShareText.decode(text)
            guard generation == manifest.generation else {
                throw VaultError(
                    .invalid,
                    "the share is of seal generation \(generation), the vault's shares are of generation \(manifest.generation) (a rekey replaced them)"
                )
            }
            guard manifest.recognises(share, generation: generation) else {
                throw VaultError(.invalid, "the share is not one of this vault's shares")
            }
            guard !state.entered.contains(where: { $0.x == share.x }) else {
                throw VaultError(.invalid, "share \(share.x) was entered already")
            }
            state.entered.append(share)
            state.enteredBy.insert(peer)
            state.lastEntry = now
            guard state.entered.count >= manifest.threshold else { return .progress(status(state)) }
            let shares = state.entered
            state.entered = []
            state.enteredBy = []
            state.lastEntry = nil
            state.opening = true
            let key: SymmetricKey
            do { key = try SymmetricKey(Shamir.combine(shares)) } catch {
                state.opening = false
                throw VaultError(.keys, "the shares could not be combined: \(error)")
            }
            guard manifest.isMade(for: key) else {
                state.opening = false
                throw VaultError(
                    .keys, "the shares do not give the root key the seal manifest was made for; progress reset")
            }
            return .unsealed(RootKey(key: key, generation: manifest.generation))
        }
    }

    /// Counts one entry against `peer`'s allowance, refusing past it. The table is bounded:
    /// when it is full, the peer whose last entry is oldest is forgotten, never a new peer
    /// refused, so that junk from many addresses cannot lock the share holders out (it only
    /// earns each of those addresses its own allowance).
    private static func countAttempt(
        _ state: inout State, from peer: String, now: ContinuousClock.Instant
    ) throws(VaultError) {
        let recent = (state.attempts[peer] ?? []).filter { now - $0 < .seconds(60) }
        guard recent.count < attemptsPerMinute else {
            throw VaultError(
                .busy, "too many key shares entered in the last minute from here (\(attemptsPerMinute) at most); wait")
        }
        if state.attempts[peer] == nil && state.attempts.count >= maximumPeers {
            state.attempts = state.attempts.filter { $0.value.contains { now - $0 < .seconds(60) } }
            if state.attempts.count >= maximumPeers,
                let stalest = state.attempts.min(by: { ($0.value.last ?? now) < ($1.value.last ?? now) })?.key
            {
                state.attempts[stalest] = nil
            }
        }
        state.attempts[peer] = recent + [now]
    }

    /// Forgets the shares entered so far: only a peer that entered one of them may (or anyone,
    /// with `by: nil`, for the operator at the machine), so a stranger cannot wipe a ceremony
    /// under way. Counted against the peer's allowance like a share.
    public func reset(by peer: String?, now: ContinuousClock.Instant = .now) throws(VaultError) {
        try state.withLock { (state) throws(VaultError) in
            expire(&state, now: now)
            if let peer {
                try Self.countAttempt(&state, from: peer, now: now)
                guard state.entered.isEmpty || state.enteredBy.contains(peer) else {
                    throw VaultError(
                        .noPermission,
                        "only a share holder who entered a share of this unseal may reset it (it expires after 10 idle minutes)"
                    )
                }
            }
            state.entered = []
            state.enteredBy = []
            state.lastEntry = nil
        }
    }

    /// Opening the vault with the root key the shares gave failed: the server stays sealed and
    /// takes shares again.
    public func openFailed() {
        state.withLock { $0.opening = false }
    }

    public func markUnsealed() {
        state.withLock {
            $0.sealed = false
            $0.opening = false
            $0.entered = []
            $0.enteredBy = []
            $0.lastEntry = nil
        }
    }

    public func markSealed() {
        state.withLock { $0.sealed = true }
    }

    private func expire(_ state: inout State, now: ContinuousClock.Instant) {
        if let last = state.lastEntry, now - last >= Self.idleExpiry {
            state.entered = []
            state.enteredBy = []
            state.lastEntry = nil
        }
    }

    private func status(_ state: State) -> Status {
        Status(
            sealed: state.sealed, threshold: manifest.threshold, shares: manifest.shareCount,
            entered: state.entered.count, generation: manifest.generation)
    }
}
