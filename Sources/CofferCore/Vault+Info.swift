import CofferStore
import Synchronization

/// What the vault reports about itself for `INFO`'s `coffer` section and the metrics endpoint:
/// counts and versions only, never a value, a subject id or a client name.
public struct VaultInfo: Sendable, Hashable {
    public let currentKEKVersion: UInt32
    /// Data keys still wrapped under a KEK version other than the current one.
    public let pendingRewrap: Int
    /// Data keys rewrapped since this process started.
    public let rewrapDone: Int
    /// The sequence number of the newest audit entry before this request's own.
    public let auditHeadSeq: Int64
    /// Subjects stored (each has exactly one data key).
    public let subjects: Int
    /// Failed AUTHs and lock-outs since this process started (kept in memory, like the locks).
    public let authFailures: Int
    public let lockouts: Int
    /// DETOKENIZE and TOKEN.REVOKE calls that named a token the vault does not know (revoked,
    /// shredded, or guessed), since this process started.
    public let unknownTokens: Int
}

/// Operational requests that read no field: which one, for the audit trail and the refusal.
public enum OperationalQuery: String, Sendable, CaseIterable {
    case info = "INFO"
    case configGet = "CONFIG GET"
    case slowlog = "SLOWLOG"
    case latency = "LATENCY"
    case connectionList = "CLIENT LIST"

    /// `CLIENT LIST` shows who is connected from where: the admin's `clients` privilege. The
    /// rest show statistics only: `info` (admin, auditor).
    var privilege: Privilege { self == .connectionList ? .clients : .info }
}

extension Vault {
    /// Decides, in the core, whether `caller` may make `query`, and audits the request like any
    /// other command. Answers the vault's own figures (INFO needs them; the others ignore them).
    public func operationalInfo(_ query: OperationalQuery, as caller: Caller) throws -> VaultInfo {
        try audited(query.rawValue, caller) { [self] tx, draft in
            try resolve(caller, in: tx, recordingIn: &draft).require(.operation(query.privilege), query.rawValue)
            return try info(in: tx)
        }
    }

    /// The figures without an access check, for the metrics endpoint, which serves only the
    /// address the operator bound it to and carries no field, subject or client.
    public func metricsInfo() throws -> VaultInfo {
        try Self.storageCall { try store.read { try info(in: $0) } }
    }

    private func info(in tx: any StoreReading) throws -> VaultInfo {
        let counts = try tx.dekCounts()
        let current = keys.currentKEKVersion
        let totals = throttle.totals
        return VaultInfo(
            currentKEKVersion: current,
            pendingRewrap: counts.filter { $0.key != current }.values.reduce(0, +),
            rewrapDone: rewrapProgress.snapshot.done,
            auditHeadSeq: try tx.lastAudit()?.seq ?? 0,
            subjects: counts.values.reduce(0, +),
            authFailures: totals.failures,
            lockouts: totals.lockouts,
            unknownTokens: unknownTokenCount)
    }
}
