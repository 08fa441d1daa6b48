import Foundation
import Synchronization
import Testing

@testable import CofferStore

/// A batch's replies wait for the fsync that covers it: the committer hands the fsync to the
/// sync thread and goes on with the next batch, but nothing it committed is acknowledged
/// before `syncCommitted` has returned, and a failed fsync fails every command it covered.
@Suite final class GroupCommitterSyncTests {
    /// A SQLite store whose `syncCommitted` can be held and made to fail, and which records
    /// the order of commits and syncs.
    final class GatedStore: VaultStore {
        let inner: SQLiteStore
        let events = Mutex<[String]>([])
        let gate = DispatchSemaphore(value: 0)
        let failNextSync = Atomic<Bool>(false)
        let holding = Atomic<Bool>(true)

        init(_ inner: SQLiteStore) { self.inner = inner }

        func writeDeferringSync<T>(_ body: (any StoreWriting) throws -> T) throws -> T {
            let result = try inner.writeDeferringSync(body)
            events.withLock { $0.append("commit") }
            return result
        }

        func syncCommitted() throws {
            if holding.load(ordering: .acquiring) { gate.wait() }
            try inner.syncCommitted()
            events.withLock { $0.append("sync") }
            if failNextSync.exchange(false, ordering: .acquiringAndReleasing) {
                // What SQLiteStore does when fdatasync fails.
                inner.latchSyncFailure("EIO (test)")
                throw StoreError("fsync failed (test)")
            }
        }

        func read<T>(_ body: (any StoreReading) throws -> T) throws -> T { try inner.read(body) }
        func write<T>(_ body: (any StoreWriting) throws -> T) throws -> T { try inner.write(body) }
        func writeUnchained<T>(_ body: (any StoreWriting) throws -> T) throws -> T { try inner.writeUnchained(body) }
        func withKeyChangeLock<T>(_ body: () throws -> T) throws -> T { try inner.withKeyChangeLock(body) }
        func recordNode(_ id: String, currentKEK: UInt32, at time: Double) throws {}
        func nodesUsing(kek version: UInt32, seenSince time: Double) throws -> [String] { [] }
        func tryWipe() -> Bool { inner.tryWipe() }
        func requestWipe() { inner.requestWipe() }
        var wipePending: Bool { inner.wipePending }
        func onWipeCompleted(_ body: @escaping @Sendable () -> Void) { inner.onWipeCompleted(body) }
        func boundLog() { inner.boundLog() }
        var clientMACsNeeded: Bool { inner.clientMACsNeeded }
        func backup(into path: String) throws -> [UInt32] { try inner.backup(into: path) }
        func close() throws { try inner.close() }
    }

    let directory: TemporaryDirectory
    let store: GatedStore
    let committer: GroupCommitter

    init() throws {
        directory = try TemporaryDirectory("coffer-sync")
        store = GatedStore(try SQLiteStore(path: directory.path + "/coffer.db"))
        committer = GroupCommitter(store: store)
    }

    deinit {
        store.holding.store(false, ordering: .releasing)
        store.gate.signal()
        committer.stop()
        try? store.close()
    }

    private static func key(_ byte: UInt8) -> WrappedKey {
        WrappedKey(kekVersion: 1, sealed: [UInt8](repeating: byte, count: 72))
    }

    @Test func noCommandIsAcknowledgedBeforeTheFsyncThatCoversIt() throws {
        let outcomes = Mutex<[Result<Int, StoreError>]>([])
        let done = DispatchGroup()
        for index in 0..<3 {
            done.enter()
            Thread.detachNewThread { [committer] in
                let result: Result<Int, StoreError>
                do {
                    result = .success(
                        try committer.perform { tx in
                            try tx.insertSubject("s\(index)", key: Self.key(UInt8(index)))
                            return index
                        })
                } catch {
                    result = .failure(StoreError("\(error)"))
                }
                outcomes.withLock { $0.append(result) }
                done.leave()
            }
        }
        // Every write is committed (the committer does not wait for the fsync)...
        let deadline = Date().addingTimeInterval(30)
        while store.events.withLock({ $0.filter { $0 == "commit" }.count }) < 1 && Date() < deadline { usleep(5_000) }
        #expect(store.events.withLock { $0.contains("commit") })
        // ...but while the fsync is held, no command has its answer.
        usleep(300_000)
        #expect(outcomes.withLock { $0.isEmpty })
        #expect(!store.events.withLock { $0.contains("sync") })

        store.holding.store(false, ordering: .releasing)
        store.gate.signal()
        #expect(done.wait(timeout: .now() + 30) == .success)
        #expect(outcomes.withLock { $0.allSatisfy { (try? $0.get()) != nil } })
        #expect(store.events.withLock { $0.last } == "sync")
        #expect(
            try store.read { try [$0.subjectKey("s0"), $0.subjectKey("s1"), $0.subjectKey("s2")] }.allSatisfy {
                $0 != nil
            })
    }

    /// Linux reports a writeback error once and then marks the pages clean: a later fsync
    /// would succeed without them. So after one failure nothing more is acknowledged.
    @Test func afterAFailedFsyncNothingMoreIsAcknowledged() throws {
        store.holding.store(false, ordering: .releasing)
        try committer.perform { tx in try tx.insertSubject("before", key: Self.key(7)) }
        store.failNextSync.store(true, ordering: .releasing)
        #expect(throws: StoreError.self) {
            try committer.perform { tx in try tx.insertSubject("lost", key: Self.key(9)) }
        }
        let later = #expect(throws: StoreError.self) {
            try committer.perform { tx in try tx.insertSubject("later", key: Self.key(8)) }
        }
        #expect(later?.description.contains("restart") == true)
        #expect(throws: StoreError.self) { try self.store.inner.write { _ in } }
        #expect(throws: StoreError.self) { try self.store.inner.syncCommitted() }
        // What was acknowledged before is still read.
        #expect(try store.read { try $0.subjectKey("before") } != nil)
    }
}
