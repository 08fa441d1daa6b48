import Foundation
import GRDB
import Synchronization

/// Copies the write-ahead log back into the database file from a connection of its own, on a
/// thread of its own, so that no commit on the request path ever pays for a checkpoint.
/// (Automatic checkpoints are turned off on the vault's connections.) A PASSIVE checkpoint
/// runs alongside the writer and readers without blocking them.
///
/// It also finishes wipes: after a shred, the WAL still holds page images from before it until
/// a TRUNCATE checkpoint copies them out and empties the log. That checkpoint cannot complete
/// while a reader holds an older snapshot, and waiting for it would block every writer, so it
/// is only ever tried without waiting, here, until it succeeds.
///
/// The thread holds only `Shared`, never the checkpointer, so that dropping the last reference
/// to the checkpointer (a store released without `close()`) stops the thread in `deinit`.
final class Checkpointer: Sendable {
    private final class Shared: Sendable {
        let stopped = Atomic<Bool>(false)
        let wipeWanted = Atomic<Bool>(false)
        /// Signalled by `stop()`, so that the thread need not finish its sleep.
        let wake = DispatchSemaphore(value: 0)
        let done = DispatchSemaphore(value: 0)
        let connection: DatabaseQueue
        /// Never waits on a lock: a TRUNCATE checkpoint that waited would hold up new writers.
        let wiper: DatabaseQueue
        let onWiped = Mutex<(@Sendable () -> Void)?>(nil)

        init(connection: DatabaseQueue, wiper: DatabaseQueue) {
            self.connection = connection
            self.wiper = wiper
        }

        /// One TRUNCATE checkpoint, without waiting: true if the whole log was copied into the
        /// database file (whose freed pages `secure_delete` has zeroed) and the log emptied.
        func tryWipe() -> Bool {
            (try? wiper.writeWithoutTransaction { db -> Bool in
                let result = try db.checkpoint(.truncate)
                return result.walFrameCount == 0 || result.walFrameCount == result.checkpointedFrameCount
            }) ?? false
        }
    }

    private let shared: Shared

    init(path: String, interval: Double = 0.25) throws {
        var config = Configuration()
        config.label = "coffer.checkpoint"
        config.busyMode = .timeout(1)
        var wiperConfig = Configuration()
        wiperConfig.label = "coffer.wipe"
        wiperConfig.busyMode = .immediateError
        let shared = Shared(
            connection: try DatabaseQueue(path: path, configuration: config),
            wiper: try DatabaseQueue(path: path, configuration: wiperConfig))
        self.shared = shared
        let thread = Thread {
            while !shared.stopped.load(ordering: .acquiring) {
                _ = try? shared.connection.writeWithoutTransaction { try $0.checkpoint(.passive) }
                if shared.wipeWanted.load(ordering: .acquiring), shared.tryWipe() {
                    shared.wipeWanted.store(false, ordering: .releasing)
                    shared.onWiped.withLock { $0 }?()
                }
                _ = shared.wake.wait(timeout: .now() + interval)
            }
            shared.done.signal()
        }
        thread.name = "coffer-checkpoint"
        thread.start()
    }

    func tryWipe() -> Bool { shared.tryWipe() }

    /// Asks the background thread to retry the wipe until it succeeds, then to call `onWiped`.
    func requestWipe() { shared.wipeWanted.store(true, ordering: .releasing) }

    var wipePending: Bool { shared.wipeWanted.load(ordering: .acquiring) }

    func setOnWiped(_ body: @escaping @Sendable () -> Void) { shared.onWiped.withLock { $0 = body } }

    func stop() {
        guard !shared.stopped.exchange(true, ordering: .acquiringAndReleasing) else { return }
        shared.wake.signal()
        shared.done.wait()
        try? shared.connection.close()
        try? shared.wiper.close()
    }

    deinit { stop() }
}
