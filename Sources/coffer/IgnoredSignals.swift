import Dispatch
import Logging
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// Signals whose default action would end `coffer serve` on the spot (no drain of the commands
/// in flight, no log line, a stale socket): SIGHUP, SIGUSR1, SIGUSR2 and SIGALRM. They are
/// ignored, and the first of each kind is logged, so a stray `kill -HUP` or `systemctl reload`
/// is visible and harmless. SIGTERM and SIGINT stay the ways to stop the server.
///
/// SIGHUP does not reload anything: the policy and every other setting are read once at start,
/// so a change needs a restart (a graceful one: SIGTERM finishes the commands in flight).
final class IgnoredSignals {
    static let signals: [(number: Int32, name: String, why: String)] = [
        (SIGHUP, "SIGHUP", "coffer does not reload its configuration; restart it to apply a change"),
        (SIGUSR1, "SIGUSR1", "coffer has no use for it"),
        (SIGUSR2, "SIGUSR2", "coffer has no use for it"),
        (SIGALRM, "SIGALRM", "coffer has no use for it"),
    ]

    /// The signal sources, kept to cancel them when the server stops.
    private let sources: [any DispatchSourceSignal]

    /// Ignores the signals from now on (before the vault opens, so none can kill a start-up).
    init(logger: Logger) {
        let queue = DispatchQueue(label: "coffer.signals")
        var sources: [any DispatchSourceSignal] = []
        for (number, _, _) in Self.signals {
            // The default action must be off before the source can see the signal instead.
            signal(number, SIG_IGN)
            sources.append(DispatchSource.makeSignalSource(signal: number, queue: queue))
        }
        self.sources = sources
        // Each kind is logged once, so a flood of signals cannot fill the journal.
        let logged = SeenSignals()
        for (source, (number, name, why)) in zip(sources, Self.signals) {
            source.setEventHandler {
                guard logged.first(number) else { return }
                logger.notice("\(name) ignored: \(why) (further ones are ignored silently)")
            }
            source.resume()
        }
    }

    func cancel() {
        for source in sources { source.cancel() }
    }
}

/// The signals already seen, shared by the handlers.
private final class SeenSignals: Sendable {
    private let seen = Mutex<Set<Int32>>([])

    /// True the first time `number` is passed.
    func first(_ number: Int32) -> Bool { seen.withLock { $0.insert(number).inserted } }
}
