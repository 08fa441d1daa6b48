import CofferStore
import Foundation
import Synchronization
import Testing

/// A batch's completions reach each hop (for the server, an event loop) in one task, and each
/// executor (a connection) its own jobs together and in order.
@Suite final class GroupCommitterTests {
    final class RecordingHop: CompletionHop {
        let tasks = Mutex(0)
        let queue = DispatchQueue(label: "hop")
        func execute(_ work: @escaping @Sendable () -> Void) {
            tasks.withLock { $0 += 1 }
            queue.async(execute: work)
        }
    }

    final class RecordingExecutor: CompletionExecutor {
        let hop: any CompletionHop
        let completions = Mutex<[[Int]]>([])
        let current = Mutex<[Int]?>(nil)
        init(hop: any CompletionHop) { self.hop = hop }
        func complete(_ work: () -> Void) {
            current.withLock { $0 = [] }
            work()
            let finished = current.withLock { value -> [Int] in
                defer { value = nil }
                return value ?? []
            }
            completions.withLock { $0.append(finished) }
        }
        func record(_ job: Int) { current.withLock { $0?.append(job) } }
    }

    let directory: String
    let store: SQLiteStore
    let committer: GroupCommitter

    init() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("coffer-commit-\(UUID())").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        store = try SQLiteStore(path: directory + "/coffer.db")
        committer = GroupCommitter(store: store)
    }

    deinit {
        committer.stop()
        try? store.close()
        try? FileManager.default.removeItem(atPath: directory)
    }

    @Test func oneTaskPerHopAndOneCallPerExecutorPerBatch() throws {
        let loopA = RecordingHop()
        let loopB = RecordingHop()
        let executors = [RecordingExecutor(hop: loopA), RecordingExecutor(hop: loopA), RecordingExecutor(hop: loopB)]
        // The first job holds the committer inside its batch until every other job is queued,
        // so that they all land in the next batch together.
        let started = DispatchSemaphore(value: 0)
        let release = DispatchSemaphore(value: 0)
        let done = DispatchGroup()
        done.enter()
        committer.submit(
            on: executors[0],
            { _ in
                started.signal()
                release.wait()
            }, completion: { _ in done.leave() })
        #expect(started.wait(timeout: .now() + 10) == .success)
        var expected: [[Int]] = [[], [], []]
        for job in 0..<30 {
            let executor = executors[job % 3]
            expected[job % 3].append(job)
            done.enter()
            committer.submit(on: executor, { _ in job }) { result in
                if case .success(let value) = result { executor.record(value) }
                done.leave()
            }
        }
        release.signal()
        #expect(done.wait(timeout: .now() + 10) == .success)
        loopA.queue.sync {}
        loopB.queue.sync {}
        // The blocking job's batch, then one batch of the thirty.
        #expect(loopA.tasks.withLock { $0 } == 2)
        #expect(loopB.tasks.withLock { $0 } == 1)
        #expect(executors[0].completions.withLock { $0 } == [[], expected[0]])
        #expect(executors[1].completions.withLock { $0 } == [expected[1]])
        #expect(executors[2].completions.withLock { $0 } == [expected[2]])
    }
}
