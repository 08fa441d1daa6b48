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
final class Checkpointer: Sendable {
    private let stopped = Atomic<Bool>(false)
    private let wipeWanted = Atomic<Bool>(false)
    private let done = DispatchSemaphore(value: 0)
    private let connection: DatabaseQueue
    /// Never waits on a lock: a TRUNCATE checkpoint that waited would hold up new writers.
    private let wiper: DatabaseQueue
    private let onWiped = Mutex<(@Sendable () -> Void)?>(nil)

    init(path: String, interval: Double = 0.25) throws {
        var config = Configuration()
        config.label = "coffer.checkpoint"
        config.busyMode = .timeout(1)
        connection = try DatabaseQueue(path: path, configuration: config)
        var wiperConfig = Configuration()
        wiperConfig.label = "coffer.wipe"
        wiperConfig.busyMode = .immediateError
        wiper = try DatabaseQueue(path: path, configuration: wiperConfig)
        let thread = Thread { [self] in
            while !stopped.load(ordering: .acquiring) {
                _ = try? connection.writeWithoutTransaction { try $0.checkpoint(.passive) }
                if wipeWanted.load(ordering: .acquiring), tryWipe() {
                    wipeWanted.store(false, ordering: .releasing)
                    onWiped.withLock { $0 }?()
                }
                Thread.sleep(forTimeInterval: interval)
            }
            done.signal()
        }
        thread.name = "coffer-checkpoint"
        thread.start()
    }

    /// One TRUNCATE checkpoint, without waiting: true if the whole log was copied into the
    /// database file (whose freed pages `secure_delete` has zeroed) and the log emptied.
    func tryWipe() -> Bool {
        (try? wiper.writeWithoutTransaction { db -> Bool in
            let result = try db.checkpoint(.truncate)
            return result.walFrameCount == 0 || result.walFrameCount == result.checkpointedFrameCount
        }) ?? false
    }

    /// Asks the background thread to retry the wipe until it succeeds, then to call `onWiped`.
    func requestWipe() { wipeWanted.store(true, ordering: .releasing) }

    var wipePending: Bool { wipeWanted.load(ordering: .acquiring) }

    func setOnWiped(_ body: @escaping @Sendable () -> Void) { onWiped.withLock { $0 = body } }

    func stop() {
        guard !stopped.exchange(true, ordering: .acquiringAndReleasing) else { return }
        done.wait()
        try? connection.close()
        try? wiper.close()
    }
}
