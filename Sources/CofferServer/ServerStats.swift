import CofferProtocol
import Foundation
import Metrics
import NIOCore
import Synchronization

/// Counters of the request path, for INFO and the metrics endpoint. Every command adds to a
/// handful of relaxed atomics (and, with `--metrics`, to pre-made swift-metrics handles): no lock, no allocation,
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

    /// The command counters one event loop adds to. Each loop has its own, so two loops never
    /// write to one cache line or retain one object per command (with one set shared by both
    /// loops, recording a command was 11 % of PING's time in them); readers add the shards up.
    /// The counters are one flat block of atomics, so recording retains nothing.
    // @unchecked: `cells` is allocated in init, freed in deinit, and every access in between is
    // an atomic operation on one of its elements, from any thread: there is nothing to race on.
    final class Shard: @unchecked Sendable {
        /// Per label: microseconds, one per outcome, one per latency bucket. A label's calls
        /// and the total are sums of outcome counts, read when asked, so that recording a
        /// command takes three atomic additions, not five.
        private static let perLabel = 1 + Outcome.allCases.count + ServerStats.latencyBuckets
        private static let errorBase = CommandTable.labels.count * perLabel
        private static let count = errorBase + Outcome.errorWords.count

        private let cells: UnsafeMutablePointer<Atomic<Int>>
        // swift-metrics handles, made once per shard: [label * outcomes + outcome] and [label].
        // A backend gives handles of the same label and dimensions one metric. None when no
        // backend is bootstrapped (no `--metrics`): calling no-op handles cost a retain and a
        // release of each per command.
        private let commandCounters: [Counter]
        private let commandTimers: [Metrics.Timer]

        init(factory: any MetricsFactory) {
            cells = .allocate(capacity: Self.count)
            for i in 0..<Self.count { (cells + i).initialize(to: Atomic(0)) }
            guard !(factory is NOOPMetricsHandler) else {
                commandCounters = []
                commandTimers = []
                return
            }
            commandCounters = CommandTable.labels.flatMap { label in
                Outcome.allCases.map {
                    Counter(
                        label: "coffer_commands_total", dimensions: [("command", label), ("outcome", $0.label)],
                        factory: factory)
                }
            }
            commandTimers = CommandTable.labels.map {
                Metrics.Timer(label: "coffer_command_duration_seconds", dimensions: [("command", $0)], factory: factory)
            }
        }

        deinit {
            cells.deinitialize(count: Self.count)
            cells.deallocate()
        }

        private func add(_ index: Int, _ amount: Int = 1) { cells[index].add(amount, ordering: .relaxed) }
        private func load(_ index: Int) -> Int { cells[index].load(ordering: .relaxed) }

        func calls(label: Int) -> Int { Outcome.allCases.reduce(0) { $0 + count(label: label, $1) } }
        func microseconds(label: Int) -> Int { load(label * Self.perLabel) }
        func count(label: Int, _ outcome: Outcome) -> Int { load(Self.outcomeIndex(label, outcome)) }
        func latency(label: Int, bucket: Int) -> Int { load(Self.latencyIndex(label, bucket)) }

        // Where a label's cells sit in the block; recording and reading use the same ones.
        private static func outcomeIndex(_ label: Int, _ outcome: Outcome) -> Int {
            label * perLabel + 1 + outcome.rawValue
        }
        private static func latencyIndex(_ label: Int, _ bucket: Int) -> Int {
            label * perLabel + 1 + Outcome.allCases.count + bucket
        }
        func errors(_ index: Int) -> Int { load(Self.errorBase + index) }
        var totalCommands: Int { CommandTable.labels.indices.reduce(0) { $0 + calls(label: $1) } }

        /// Records one answered command: its label (`CommandTable.labels`), time and reply;
        /// returns how it ended and its error word, if any.
        @discardableResult
        func record(label: Int, nanoseconds: UInt64, reply: RESPValue) -> (Outcome, String?) {
            let micros = Int(nanoseconds / 1000)
            add(label * Self.perLabel, micros)
            let (outcome, error) = Outcome.of(reply)
            add(Self.outcomeIndex(label, outcome))
            if let error { add(Self.errorBase + error) }
            let bucket = min(
                ServerStats.latencyBuckets - 1, micros <= 1 ? 0 : Int.bitWidth - (micros - 1).leadingZeroBitCount)
            add(Self.latencyIndex(label, bucket))
            if !commandTimers.isEmpty {
                commandCounters[label * Outcome.allCases.count + outcome.rawValue].increment()
                commandTimers[label].recordNanoseconds(Int64(clamping: nanoseconds))
            }
            return (outcome, error.map { Outcome.errorWords[$0] })
        }
    }

    /// One shard per event loop of the server's group (loops beyond that share).
    private let shards: [Shard]
    /// Which shard each event loop was given, in the order they first asked.
    private let shardOfLoop = Mutex<[ObjectIdentifier: Int]>([:])
    let connectionsReceived = Cell()
    let connectionsRejected = Cell()
    let connectionsEvicted = Cell()
    let started = Date()

    /// Commands per second over the last full second (sampled once a second).
    private let opsSample = Mutex<(total: Int, perSecond: Int)>((0, 0))

    let connectionsOpened: Counter
    let connectionsRefused: Counter
    let connectionsEvictedCounter: Counter
    let connectionsOpen: Gauge

    /// One shard per loop of the shared event loop group (`coffer serve --event-loops`).
    init(factory: any MetricsFactory = MetricsSystem.factory, shards: Int = NIOSingletons.groupLoopCountSuggestion) {
        self.shards = (0..<max(1, shards)).map { _ in Shard(factory: factory) }
        connectionsOpened = Counter(label: "coffer_connections_received_total", factory: factory)
        connectionsRefused = Counter(label: "coffer_connections_rejected_total", factory: factory)
        connectionsEvictedCounter = Counter(label: "coffer_connections_evicted_total", factory: factory)
        connectionsOpen = Gauge(label: "coffer_connections", factory: factory)
    }

    /// The shard of the event loop `loop` (once per connection).
    func shard(for loop: ObjectIdentifier) -> Shard {
        shardOfLoop.withLock { map in
            if let index = map[loop] { return shards[index] }
            // A server has a fixed set of loops (at most 256); only tests make thousands. A loop
            // given a shard again keeps counting correctly: every cell is atomic.
            if map.count >= 1024 { map.removeAll() }
            let index = map.count % shards.count
            map[loop] = index
            return shards[index]
        }
    }

    var totalCommands: Int { shards.reduce(0) { $0 + $1.totalCommands } }
    func calls(label: Int) -> Int { shards.reduce(0) { $0 + $1.calls(label: label) } }
    func microseconds(label: Int) -> Int { shards.reduce(0) { $0 + $1.microseconds(label: label) } }
    func count(label: Int, _ outcome: Outcome) -> Int { shards.reduce(0) { $0 + $1.count(label: label, outcome) } }
    func errors(_ index: Int) -> Int { shards.reduce(0) { $0 + $1.errors(index) } }
    var errorReplies: Int { Outcome.errorWords.indices.reduce(0) { $0 + errors($1) } }

    func connectionOpened(open: Int) {
        connectionsReceived.add(1)
        connectionsOpened.increment()
        connectionsOpen.record(open)
    }

    func connectionRefused() {
        connectionsRejected.add(1)
        connectionsRefused.increment()
    }

    /// An unauthenticated connection closed to make room for a newer one (`ConnectionRegistry`).
    func connectionEvicted() {
        connectionsEvicted.add(1)
        connectionsEvictedCounter.increment()
    }

    func connectionClosed(open: Int) { connectionsOpen.record(open) }

    /// Called once a second: the commands of the last second.
    func sampleOps() {
        let total = totalCommands
        opsSample.withLock { sample in
            sample.perSecond = max(0, total - sample.total)
            sample.total = total
        }
    }

    var opsPerSecond: Int { opsSample.withLock { $0.perSecond } }

    /// The smallest bucket bound (in microseconds) below which `fraction` of the calls fall.
    func percentile(_ fraction: Double, label: Int) -> Double? {
        let counts = (0..<Self.latencyBuckets).map { bucket in
            shards.reduce(0) { $0 + $1.latency(label: label, bucket: bucket) }
        }
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
