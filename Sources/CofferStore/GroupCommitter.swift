import Foundation
import Metrics
import Synchronization

/// Runs many small units of work in one write transaction, so that concurrent requests share
/// one commit and one fsync instead of paying one each ("group commit").
///
/// A unit that throws is rolled back alone (it runs in a savepoint of its own), and the units
/// before and after it in the batch still commit. Units that take their own savepoint (the
/// vault's audited commands do) can say so and skip this one. Every unit learns its fate only
/// after the whole batch is durable (or has failed): a reply is never sent for work that might
/// still be lost.
public final class GroupCommitter: Sendable {
    /// One unit of work and how to report its fate. A class, not two closures around a boxed
    /// result: each command's job is then one allocation, not three, and the event loop that
    /// frees a finished batch releases a third as many objects.
    class Job: @unchecked Sendable {
        // `@unchecked`: the only mutable state is `TypedJob.result`; see there why it is safe.
        let executor: (any CompletionExecutor)?

        init(executor: (any CompletionExecutor)?) { self.executor = executor }

        /// Runs the unit inside the batch's transaction, on the committer's thread.
        func run(_ tx: any StoreWriting) {}

        /// Reports the unit's fate once its batch is durable (`nil`) or has failed.
        func finish(_ batchError: (any Error)?) {}
    }

    private final class TypedJob<T: Sendable>: Job, @unchecked Sendable {
        let ownSavepoint: Bool
        let body: @Sendable (any StoreWriting) throws -> T
        let completion: @Sendable (Result<T, any Error>) -> Void
        // Safe without a lock: `run` writes it once, on the committer's thread, before the job's
        // batch is handed on; `finish` reads it once, after the batch has passed through
        // `syncQueue` (a Mutex) and, for a job with an executor, the hop's own task queue. Each
        // hand-off is a lock release and acquire, so the write happens before the read, and no
        // two threads ever touch it at the same time.
        private var result: Result<T, any Error>?

        init(
            ownSavepoint: Bool, executor: (any CompletionExecutor)?,
            body: @escaping @Sendable (any StoreWriting) throws -> T,
            completion: @escaping @Sendable (Result<T, any Error>) -> Void
        ) {
            self.ownSavepoint = ownSavepoint
            self.body = body
            self.completion = completion
            super.init(executor: executor)
        }

        override func run(_ tx: any StoreWriting) {
            let body = self.body
            result = ownSavepoint ? Result { try body(tx) } : Result { try tx.savepoint { try body(tx) } }
        }

        override func finish(_ batchError: (any Error)?) {
            if let batchError {
                completion(.failure(batchError))
            } else if let result {
                completion(result)
            } else {
                // Unreachable: `finish` runs only after the batch ran every job's `run`, which
                // sets the result; a missing one is reported, not trapped on.
                completion(.failure(StoreError("the commit batch did not run this command")))
            }
        }
    }

    private struct State {
        var queue: [Job] = []
        var stopped = false
    }

    private let store: any VaultStore
    private let maximumBatch: Int
    private let state = Mutex(State())
    private let wakeUp = DispatchSemaphore(value: 0)
    private let finished = DispatchSemaphore(value: 0)
    private let completions = DispatchQueue(label: "coffer.commit.completions")
    private let committed = Atomic<Int>(0)
    /// How many batches have been committed so far: background work (the rewrap) that sees it
    /// move knows that commands were waiting for the writer, and yields to them.
    public var batchesCommitted: Int { committed.load(ordering: .relaxed) }
    /// Commands per transaction: how well group commit is sharing fsyncs.
    private let batchSizes = Recorder(label: "coffer_commit_batch_size")

    /// Batches committed but not yet synced, oldest first, with the error of any that failed.
    private let syncQueue = Mutex(SyncState())
    private let syncWake = DispatchSemaphore(value: 0)
    private let syncFinished = DispatchSemaphore(value: 0)

    private struct SyncState {
        var batches: [(jobs: [Job], error: (any Error)?)] = []
        var stopped = false
    }

    /// Starts the committer's thread, and the thread that fsyncs what it committed.
    public init(store: any VaultStore, maximumBatch: Int = 512) {
        self.store = store
        self.maximumBatch = maximumBatch
        let thread = Thread { [self] in self.loop() }
        thread.name = "coffer-commit"
        thread.start()
        let syncer = Thread { [self] in self.syncLoop() }
        syncer.name = "coffer-sync"
        syncer.start()
    }

    /// Runs `body` in the next batch and waits, blocking this thread, until the batch is durable.
    public func perform<T: Sendable>(
        ownSavepoint: Bool = false, _ body: @escaping @Sendable (any StoreWriting) throws -> T
    ) throws -> T {
        let done = DispatchSemaphore(value: 0)
        let outcome = Mutex<Result<T, any Error>?>(nil)
        enqueue(ownSavepoint: ownSavepoint, body) { result in
            outcome.withLock { $0 = result }
            done.signal()
        }
        done.wait()
        // `done` is signalled only after `outcome` is set, so it holds a value here.
        guard let result = outcome.withLock({ $0 }) else { throw StoreError("the commit batch lost a result") }
        return try result.get()
    }

    /// Runs `body` in the next batch and calls `completion` once the batch is durable, on
    /// `executor`: every job of one batch with the same executor completes in one call of its
    /// `execute`, so a connection with many pipelined requests in a batch is woken once.
    public func submit<T: Sendable>(
        ownSavepoint: Bool = false, on executor: any CompletionExecutor,
        _ body: @escaping @Sendable (any StoreWriting) throws -> T,
        completion: @escaping @Sendable (Result<T, any Error>) -> Void
    ) {
        enqueue(ownSavepoint: ownSavepoint, executor: executor, body, completion: completion)
    }

    /// Runs `body` in the next batch and resumes once the batch is durable.
    public func perform<T: Sendable>(
        ownSavepoint: Bool = false, _ body: @escaping @Sendable (any StoreWriting) throws -> T
    ) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            enqueue(ownSavepoint: ownSavepoint, body) { continuation.resume(with: $0) }
        }
    }

    private func enqueue<T: Sendable>(
        ownSavepoint: Bool, executor: (any CompletionExecutor)? = nil,
        _ body: @escaping @Sendable (any StoreWriting) throws -> T,
        completion: @escaping @Sendable (Result<T, any Error>) -> Void
    ) {
        let job = TypedJob(ownSavepoint: ownSavepoint, executor: executor, body: body, completion: completion)
        let accepted = state.withLock { state -> Bool in
            guard !state.stopped else { return false }
            state.queue.append(job)
            return true
        }
        if accepted {
            wakeUp.signal()
        } else {
            completion(.failure(StoreError("the vault is closing")))
        }
    }

    private static let threadMarker = "coffer.commit.thread"

    private func loop() {
        Thread.current.threadDictionary[Self.threadMarker] = true
        while true {
            wakeUp.wait()
            let (jobs, stop) = state.withLock { state -> ([Job], Bool) in
                let take = Array(state.queue.prefix(maximumBatch))
                state.queue.removeFirst(take.count)
                return (take, state.stopped && state.queue.isEmpty)
            }
            if !jobs.isEmpty {
                // Each semaphore signal stands for one job; consume the extra ones this batch took.
                for _ in 1..<jobs.count { wakeUp.wait() }
                batchSizes.record(jobs.count)
                // The batch's fsync, and then waking its waiters, run on the sync thread while
                // this one starts the next batch: one batch's work overlaps the last one's fsync.
                do {
                    try store.writeDeferringSync { tx in for job in jobs { job.run(tx) } }
                    committed.add(1, ordering: .relaxed)
                    handToSync(jobs, nil)
                    store.boundLog()
                } catch {
                    handToSync(jobs, error)
                }
            }
            if stop {
                syncQueue.withLock { $0.stopped = true }
                syncWake.signal()
                syncFinished.wait()
                finished.signal()
                return
            }
        }
    }

    private func handToSync(_ jobs: [Job], _ error: (any Error)?) {
        syncQueue.withLock { $0.batches.append((jobs, error)) }
        syncWake.signal()
    }

    /// One fsync covers every batch committed before it began, however many queued up while
    /// the last one ran. Batches complete in commit order; a batch whose commit failed needs
    /// no sync but still waits its turn. If the fsync fails, no batch it covers is
    /// acknowledged: each of their commands fails.
    private func syncLoop() {
        // The last reference to the vault can be dropped here too (with a batch's jobs).
        Thread.current.threadDictionary[Self.threadMarker] = true
        while true {
            syncWake.wait()
            let (batches, stop) = syncQueue.withLock { state in
                defer { state.batches.removeAll() }
                return (state.batches, state.stopped)
            }
            if !batches.isEmpty {
                // Each signal stands for one batch; consume the extra ones taken here.
                for _ in 1..<batches.count { syncWake.wait() }
                var syncError: (any Error)?
                if batches.contains(where: { $0.error == nil }) {
                    do { try store.syncCommitted() } catch { syncError = error }
                }
                for batch in batches { complete(batch.jobs, batch.error ?? syncError) }
            }
            if stop && syncQueue.withLock({ $0.batches.isEmpty }) {
                syncFinished.signal()
                return
            }
        }
    }

    /// Hands each job its fate: jobs with an executor in one hop per thread they complete on
    /// (for the server, one task per event loop, however many connections it serves), each
    /// executor's jobs together inside it; the others on the completion queue.
    private func complete(_ jobs: [Job], _ error: (any Error)?) {
        var plain: [Job] = []
        var hops: [ObjectIdentifier: (hop: any CompletionHop, executors: [ObjectIdentifier: ExecutorJobs])] = [:]
        for job in jobs {
            guard let executor = job.executor else {
                plain.append(job)
                continue
            }
            let hop = executor.hop
            hops[ObjectIdentifier(hop), default: (hop, [:])].executors[
                ObjectIdentifier(executor), default: ExecutorJobs(executor: executor)
            ].jobs.append(job)
        }
        for (hop, executors) in hops.values {
            let groups = Array(executors.values)
            hop.execute {
                for group in groups {
                    group.executor.complete { for job in group.jobs { job.finish(error) } }
                }
            }
        }
        if !plain.isEmpty {
            let rest = plain
            completions.async { for job in rest { job.finish(error) } }
        }
    }

    private struct ExecutorJobs: Sendable {
        let executor: any CompletionExecutor
        var jobs: [Job] = []
    }

    /// Finishes the queued work and stops the thread. Work submitted afterwards fails.
    public func stop() {
        let alreadyStopped = state.withLock { state -> Bool in
            defer { state.stopped = true }
            return state.stopped
        }
        guard !alreadyStopped else { return }
        wakeUp.signal()
        // Called on the committer's or the sync thread (the vault's last reference released
        // with a finished batch), waiting would wait for itself: the loops see `stopped` and
        // end alone. The vault then holds no batch, so nothing is left to commit.
        if Thread.current.threadDictionary[Self.threadMarker] != nil { return }
        finished.wait()
    }
}

/// Where a batch's completions run: for the server, one per connection. Every executor of one
/// hop completes in the same task, so a batch wakes each event loop once, not each connection.
public protocol CompletionExecutor: AnyObject, Sendable {
    /// The thread (or event loop) this executor's completions run on.
    var hop: any CompletionHop { get }
    /// Runs `work` (this executor's completions of one batch), called on `hop`.
    func complete(_ work: () -> Void)
}

/// A thread that completions are handed to, in one task per batch.
public protocol CompletionHop: AnyObject, Sendable {
    func execute(_ work: @escaping @Sendable () -> Void)
}
