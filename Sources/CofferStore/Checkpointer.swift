import Foundation
import GRDB
import Synchronization

/// Copies the write-ahead log back into the database file from a connection of its own, on a
/// thread of its own, so that no commit on the request path ever pays for a checkpoint.
/// (Automatic checkpoints are turned off on the vault's connections.) A PASSIVE checkpoint
/// runs alongside the writer and readers without blocking them.
final class Checkpointer: Sendable {
    private let stopped = Atomic<Bool>(false)
    private let done = DispatchSemaphore(value: 0)
    private let connection: DatabaseQueue

    init(path: String, interval: Double = 0.25) throws {
        var config = Configuration()
        config.label = "coffer.checkpoint"
        config.busyMode = .timeout(1)
        connection = try DatabaseQueue(path: path, configuration: config)
        let thread = Thread { [self] in
            while !stopped.load(ordering: .acquiring) {
                _ = try? connection.writeWithoutTransaction { try $0.checkpoint(.passive) }
                Thread.sleep(forTimeInterval: interval)
            }
            done.signal()
        }
        thread.name = "coffer-checkpoint"
        thread.start()
    }

    func stop() {
        guard !stopped.exchange(true, ordering: .acquiringAndReleasing) else { return }
        done.wait()
        try? connection.close()
    }
}
