import CofferCore
import Metrics
import Synchronization

/// The vault's own figures as metrics, read at each scrape (they live in the database and the
/// key ring, not on the request path): sealed, KEK version, rewrap progress, subjects, audit
/// head, failed AUTHs and lock-outs. No label at all: one series each.
public final class VaultGauges: Sendable {
    private let vaults: VaultHandle
    private let sealed: Gauge
    private let kekVersion: Gauge
    private let pendingRewrap: Gauge
    private let subjects: Gauge
    private let auditHead: Gauge
    private let rewrapDone: Counter
    private let authFailures: Counter
    private let lockouts: Counter
    private let unknownTokens: Counter
    private let up: Gauge
    /// What the counters showed at the last scrape; they grow by the difference.
    private let last = Mutex<(rewrap: Int, failures: Int, lockouts: Int, tokens: Int)>((0, 0, 0, 0))

    public init(vaults: VaultHandle, factory: any MetricsFactory = MetricsSystem.factory) {
        self.vaults = vaults
        sealed = Gauge(label: "coffer_sealed", factory: factory)
        kekVersion = Gauge(label: "coffer_kek_current_version", factory: factory)
        pendingRewrap = Gauge(label: "coffer_rewrap_pending_deks", factory: factory)
        subjects = Gauge(label: "coffer_subjects", factory: factory)
        auditHead = Gauge(label: "coffer_audit_head_seq", factory: factory)
        rewrapDone = Counter(label: "coffer_rewrap_deks_total", factory: factory)
        authFailures = Counter(label: "coffer_auth_failures_total", factory: factory)
        lockouts = Counter(label: "coffer_auth_lockouts_total", factory: factory)
        unknownTokens = Counter(label: "coffer_unknown_tokens_total", factory: factory)
        up = Gauge(label: "coffer_vault_readable", factory: factory)
    }

    /// Reads the vault's figures into the gauges; if the database cannot be read,
    /// `coffer_vault_readable` is 0 and the rest keep their last values.
    public func update() {
        // Scrapes are serialised (they are seconds apart): two at once must not both add the
        // same difference, or read figures out of order and add one twice.
        last.withLock { last in record(&last) }
    }

    private func record(_ last: inout (rewrap: Int, failures: Int, lockouts: Int, tokens: Int)) {
        // Sealed, there are no keys and nothing to read: the figures keep their last values.
        guard let vault = vaults.vault else {
            sealed.record(1)
            up.record(0)
            return
        }
        guard let info = try? vault.metricsInfo() else {
            up.record(0)
            return
        }
        up.record(1)
        sealed.record(0)
        kekVersion.record(Int(info.currentKEKVersion))
        pendingRewrap.record(info.pendingRewrap)
        subjects.record(info.subjects)
        auditHead.record(Int(info.auditHeadSeq))
        let deltas = (
            info.rewrapDone - last.rewrap, info.authFailures - last.failures, info.lockouts - last.lockouts,
            info.unknownTokens - last.tokens
        )
        last = (info.rewrapDone, info.authFailures, info.lockouts, info.unknownTokens)
        if deltas.0 > 0 { rewrapDone.increment(by: deltas.0) }
        if deltas.1 > 0 { authFailures.increment(by: deltas.1) }
        if deltas.2 > 0 { lockouts.increment(by: deltas.2) }
        if deltas.3 > 0 { unknownTokens.increment(by: deltas.3) }
    }
}
