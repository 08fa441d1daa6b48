import Foundation
import GRDB
import Synchronization

/// Copies the write-ahead log back into the database file from a connection of its own, on a
/// thread of its own, so that no commit on the request path ever pays for a checkpoint.
/// (Automatic checkpoints are turned off on the vault's connections.) A PASSIVE checkpoint
/// runs alongside the writer and readers without blocking them.
///
/// The thread holds only `Shared`, never the checkpointer, so that dropping the last reference
/// to the checkpointer (a store released without `close()`) stops the thread in `deinit`.
final class Checkpointer: Sendable {
    private final class Shared: Sendable {
        let stopped = Atomic<Bool>(false)
        /// Signalled by `stop()`, so that the thread need not finish its sleep.
        let wake = DispatchSemaphore(value: 0)
        let done = DispatchSemaphore(value: 0)
        let connection: DatabaseQueue

        init(connection: DatabaseQueue) { self.connection = connection }
    }

    private let shared: Shared

    init(path: String, interval: Double = 0.25) throws {
        var config = Configuration()
        config.label = "coffer.checkpoint"
        config.busyMode = .timeout(1)
        let shared = Shared(connection: try DatabaseQueue(path: path, configuration: config))
        self.shared = shared
        let thread = Thread {
            while !shared.stopped.load(ordering: .acquiring) {
                _ = try? shared.connection.writeWithoutTransaction { try $0.checkpoint(.passive) }
                _ = shared.wake.wait(timeout: .now() + interval)
            }
            shared.done.signal()
        }
        thread.name = "coffer-checkpoint"
        thread.start()
    }

    func stop() {
        guard !shared.stopped.exchange(true, ordering: .acquiringAndReleasing) else { return }
        shared.wake.signal()
        shared.done.wait()
        try? shared.connection.close()
    }

    deinit { stop() }
}
