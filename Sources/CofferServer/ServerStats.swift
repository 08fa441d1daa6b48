import CofferProtocol
import Foundation
import Metrics
import Synchronization

/// Counters of the request path, for INFO and the metrics endpoint. Every command adds to a
/// handful of relaxed atomics (and to pre-made swift-metrics handles): no lock, no allocation,
/// no lookup by string. Labels come only from `CommandTable.labels` and `Outcome`, fixed sets,
/// never from what a client sent.
final class ServerStats: Sendable {
    /// How a command ended, from its reply.
    enum Outcome: Int, CaseIterable, Sendable {
        case ok
        /// NOAUTH, NOPERM, WRONGPASS: refused by the access rules.
        case denied
        /// ERR (syntax, arity, unknown command), INVALID, NOPROTO: refused as malformed.
        case invalid
        /// Anything else (STORAGE, INTEGRITY, BUSY, TAMPERED, internal errors): it ran and failed.
        case failed

        var label: String {
            switch self {
            case .ok: "ok"
            case .denied: "denied"
            case .invalid: "invalid"
            case .failed: "failed"
            }
        }

        /// The error words of docs/PROTOCOL.md, each counted in INFO's errorstats.
        static let errorWords = [
            "ERR", "NOAUTH", "WRONGPASS", "NOPERM", "INVALID", "NOPROTO", "INTEGRITY", "STORAGE", "BUSY", "TAMPERED",
            "KEYS", "SETUP",
        ]

        /// The outcome of a reply and the index of its error word in `errorWords` (nil when OK).
        static func of(_ reply: RESPValue) -> (Outcome, Int?) {
            guard case .error(let message) = reply else { return (.ok, nil) }
            let word = message.prefix { $0 != " " }
            let index = errorWords.firstIndex { $0 == word } ?? 0
            switch word {
            case "NOAUTH", "NOPERM", "WRONGPASS": return (.denied, index)
            case "INVALID", "NOPROTO": return (.invalid, index)
            case "ERR": return (message.hasPrefix("ERR internal error") ? .failed : .invalid, index)
            default: return (.failed, index)
            }
        }
    }

    /// One atomic integer; a class so that many of them can sit in an array.
    final class Cell: Sendable {
        private let value = Atomic<Int>(0)
        func add(_ amount: Int) { value.add(amount, ordering: .relaxed) }
        var load: Int { value.load(ordering: .relaxed) }
    }

    /// Latency buckets: bucket i holds durations of at most 2^i microseconds (the last one
    /// everything longer), enough for INFO's percentiles to the nearest power of two.
    static let latencyBuckets = 24

    struct CommandCells: Sendable {
        let calls = Cell()
        let microseconds = Cell()
        let outcomes = Outcome.allCases.map { _ in Cell() }
        let latency = (0..<ServerStats.latencyBuckets).map { _ in Cell() }
    }

    let commands: [CommandCells] = CommandTable.labels.map { _ in CommandCells() }
    let errors: [Cell] = Outcome.errorWords.map { _ in Cell() }
    let totalCommands = Cell()
    let connectionsReceived = Cell()
    let connectionsRejected = Cell()
    let started = Date()

    /// Commands per second over the last full second (sampled once a second).
    private let opsSample = Mutex<(total: Int, perSecond: Int)>((0, 0))

    // swift-metrics handles, made once: [label][outcome] and [label].
    private let commandCounters: [[Counter]]
    private let commandTimers: [Metrics.Timer]
    let connectionsOpened: Counter
    let connectionsRefused: Counter
    let connectionsOpen: Gauge

    init(factory: any MetricsFactory = MetricsSystem.factory) {
        commandCounters = CommandTable.labels.map { label in
            Outcome.allCases.map {
                Counter(
                    label: "coffer_commands_total", dimensions: [("command", label), ("outcome", $0.label)],
                    factory: factory)
            }
        }
        commandTimers = CommandTable.labels.map {
            Metrics.Timer(label: "coffer_command_duration_seconds", dimensions: [("command", $0)], factory: factory)
        }
        connectionsOpened = Counter(label: "coffer_connections_received_total", factory: factory)
        connectionsRefused = Counter(label: "coffer_connections_rejected_total", factory: factory)
        connectionsOpen = Gauge(label: "coffer_connections", factory: factory)
    }

    /// Records one answered command: its label (`CommandTable.labels`), time and reply; returns
    /// how it ended and its error word, if any.
    @discardableResult
    func record(label: Int, nanoseconds: UInt64, reply: RESPValue) -> (Outcome, String?) {
        let cells = commands[label]
        let micros = Int(nanoseconds / 1000)
        cells.calls.add(1)
        cells.microseconds.add(micros)
        let (outcome, error) = Outcome.of(reply)
        cells.outcomes[outcome.rawValue].add(1)
        if let error { errors[error].add(1) }
        let bucket = min(Self.latencyBuckets - 1, micros <= 1 ? 0 : Int.bitWidth - (micros - 1).leadingZeroBitCount)
        cells.latency[bucket].add(1)
        totalCommands.add(1)
        commandCounters[label][outcome.rawValue].increment()
        commandTimers[label].recordNanoseconds(Int64(clamping: nanoseconds))
        return (outcome, error.map { Outcome.errorWords[$0] })
    }

    func connectionOpened(open: Int) {
        connectionsReceived.add(1)
        connectionsOpened.increment()
        connectionsOpen.record(open)
    }

    func connectionRefused() {
        connectionsRejected.add(1)
        connectionsRefused.increment()
    }

    func connectionClosed(open: Int) { connectionsOpen.record(open) }

    /// Called once a second: the commands of the last second.
    func sampleOps() {
        let total = totalCommands.load
        opsSample.withLock { sample in
            sample.perSecond = max(0, total - sample.total)
            sample.total = total
        }
    }

    var opsPerSecond: Int { opsSample.withLock { $0.perSecond } }

    /// The smallest bucket bound (in microseconds) below which `fraction` of the calls fall.
    func percentile(_ fraction: Double, label: Int) -> Double? {
        let counts = commands[label].latency.map(\.load)
        let total = counts.reduce(0, +)
        guard total > 0 else { return nil }
        let rank = Int((fraction * Double(total)).rounded(.up))
        var seen = 0
        for (i, count) in counts.enumerated() {
            seen += count
            if seen >= max(rank, 1) { return Double(1 << i) }
        }
        return Double(1 << (Self.latencyBuckets - 1))
    }
}
