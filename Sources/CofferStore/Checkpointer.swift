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
/// It also keeps the log's file from growing without end. A passive checkpoint never catches
/// up while commits keep coming, and SQLite starts the log again from its first frame only
/// once every frame is back in the database file. So when a pass finds the log longer than
/// `restartFrames`, it asks the writer for a RESTART checkpoint, which the writer runs between
/// two transactions (`boundLog`): it copies the few frames committed since the pass, and the
/// next commit writes the log from its start again, over blocks the file already has.
/// Appending instead made every commit's `fdatasync` also commit the file's new size to the
/// file system's journal: 0.36 against 0.25 ms per sync under GET load (`strace -T`), and GET
/// `-P 1` went from 27,323 to 33,012 req/s and PUT from 23,324 to 25,808 with the restart.
/// If a reader's snapshot kept the log from restarting until its file passed `truncateBytes`,
/// the writer empties it instead (a TRUNCATE checkpoint), so the file does not stay that big.
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
        /// What the writer should do with the log at its next `boundLog`: 0 nothing, or one of
        /// `restart` and `truncate`.
        let logAction = Atomic<UInt8>(0)
        static let restart: UInt8 = 1
        static let truncate: UInt8 = 2
        let logPath: String
        let restartFrames: Int
        let truncateBytes: Int

        init(
            connection: DatabaseQueue, wiper: DatabaseQueue, logPath: String, restartFrames: Int, truncateBytes: Int
        ) {
            self.connection = connection
            self.wiper = wiper
            self.logPath = logPath
            self.restartFrames = restartFrames
            self.truncateBytes = truncateBytes
        }

        /// One pass of the background thread.
        func pass() {
            var passive = try? connection.writeWithoutTransaction { try $0.checkpoint(.passive) }
            // What the writer's RESTART copies is what this pass left (committed while it ran,
            // or held back by a reader), and it copies it between two batches: a few more short
            // passes leave it little.
            for _ in 0..<3 {
                guard let last = passive, last.walFrameCount > restartFrames,
                    last.walFrameCount - last.checkpointedFrameCount > 32
                else { break }
                passive = try? connection.writeWithoutTransaction { try $0.checkpoint(.passive) }
            }
            // The file's size is looked at on every pass: a log that a long reader let grow past
            // the bound may have been started again by SQLite since, and still be that big.
            var info = stat()
            if stat(logPath, &info) == 0, Int(info.st_size) > truncateBytes {
                logAction.store(Self.truncate, ordering: .releasing)
            } else if let passive, passive.walFrameCount > restartFrames {
                logAction.store(Self.restart, ordering: .releasing)
            }
            // Taken before the wipe, so that a request made while it runs is not lost.
            if wipeWanted.exchange(false, ordering: .acquiringAndReleasing) {
                if tryWipe() {
                    onWiped.withLock { $0 }?()
                } else {
                    wipeWanted.store(true, ordering: .releasing)
                }
            }
        }

        /// One TRUNCATE checkpoint, without waiting: true if the whole log was copied into the
        /// database file (whose freed pages `secure_delete` has zeroed) and the log emptied.
        func tryWipe() -> Bool { checkpointWithoutWaiting(.truncate) }

        /// One checkpoint of `mode` on the wiper's connection: false if the writer or a reader
        /// was busy (a reader's snapshot may still need the log), and it is tried again later.
        /// RESTART makes the next commit write the log from its start; TRUNCATE also empties it.
        func checkpointWithoutWaiting(_ mode: Database.CheckpointMode) -> Bool {
            (try? wiper.writeWithoutTransaction { db -> Bool in
                let result = try db.checkpoint(mode)
                return result.walFrameCount == 0 || result.walFrameCount == result.checkpointedFrameCount
            }) ?? false
        }
    }

    private let shared: Shared

    /// `restartFrames` is about 4 MiB of log with SQLite's 4 KiB pages.
    init(
        path: String, interval: Double = 0.25, restartFrames: Int = 1024, truncateBytes: Int = 64 * 1024 * 1024
    ) throws {
        var config = Configuration()
        config.label = "coffer.checkpoint"
        config.busyMode = .timeout(1)
        var wiperConfig = Configuration()
        wiperConfig.label = "coffer.wipe"
        wiperConfig.busyMode = .immediateError
        let shared = Shared(
            connection: try DatabaseQueue(path: path, configuration: config),
            wiper: try DatabaseQueue(path: path, configuration: wiperConfig), logPath: path + "-wal",
            restartFrames: restartFrames, truncateBytes: truncateBytes)
        self.shared = shared
        let thread = Thread {
            while !shared.stopped.load(ordering: .acquiring) {
                shared.pass()
                _ = shared.wake.wait(timeout: .now() + interval)
            }
            shared.done.signal()
        }
        thread.name = "coffer-checkpoint"
        thread.start()
    }

    func tryWipe() -> Bool { shared.tryWipe() }

    /// A plain load: the writer asks after every batch, and there is seldom anything to do.
    var logActionRequested: Bool { shared.logAction.load(ordering: .relaxed) != 0 }

    /// Called by the writer between transactions, so the checkpoint never waits for it. If a
    /// reader is busy it does nothing, and the next pass asks again.
    func boundLog() {
        switch shared.logAction.exchange(0, ordering: .acquiringAndReleasing) {
        case Shared.restart: _ = shared.checkpointWithoutWaiting(.restart)
        case Shared.truncate: _ = shared.tryWipe()
        default: break
        }
    }

    /// One background pass now. Only tests call it.
    func passNow() { shared.pass() }

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
