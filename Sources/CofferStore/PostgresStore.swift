import Foundation
import Logging
import NIOCore
import NIOPosix
import PostgresNIO
import Synchronization

/// The PostgreSQL implementation of `VaultStore`, for several `coffer serve` nodes on one
/// database. It keeps the SQLite store's model: one serialised writer for everything that
/// appends to the audit chain, readers on a consistent snapshot.
///
/// - Every write transaction that may append to the audit chain first locks the chain's single
///   head row (`audit_head`, `FOR UPDATE`), so the batches of all nodes are applied one after
///   another and see each other's commits (READ COMMITTED reads the newest committed rows once
///   the lock is held): the chain never forks, and no node acts on a row another node changed.
/// - The rewrap writes through `writeUnchained`, which takes no head lock and claims its rows
///   with `FOR NO KEY UPDATE SKIP LOCKED`, so every node shares the rewrap without waiting for the
///   serving batches or for each other.
/// - Nothing read is kept past its transaction (`TransactionMemo` dies with it).
///
/// The vault core calls the store synchronously from its committer thread and thread pools,
/// never from an event loop; each call leases a connection from postgres-nio's `PostgresClient`
/// pool and waits on its futures.
public final class PostgresStore: VaultStore {
    let location: PostgresLocation
    private let client: PostgresClient
    private let group: MultiThreadedEventLoopGroup
    private let running: Task<Void, Never>
    private let closed = Mutex(false)
    let logger: Logger
    /// How long a call waits for a connection before failing (the database is down or every
    /// connection is busy): clients get an error instead of a hang.
    let leaseSeconds: Int64 = 2

    init(location: PostgresLocation, durability: StoreDurability) throws {
        self.location = location
        var logger = Logger(label: "coffer.postgres")
        logger.logLevel = .critical
        self.logger = logger
        let configuration: PostgresClient.Configuration
        let probe: PostgresConnection.Configuration
        do {
            configuration = try location.clientConfiguration()
            probe = try location.connectionConfiguration()
        } catch let error as StoreError {
            throw error
        } catch {
            throw StoreError("the PostgreSQL TLS settings cannot be used: \(error)")
        }
        group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        // One connection first: a database that cannot be reached, or that refuses TLS, or a
        // certificate that does not verify, is reported with its reason.
        do {
            let connection = try PostgresConnection.connect(
                on: group.next(), configuration: probe, id: 0, logger: logger
            ).wait()
            try? connection.close().wait()
        } catch {
            try? group.syncShutdownGracefully()
            throw StoreError("cannot connect to PostgreSQL at \(location): \(PostgresTransaction.describe(error))")
        }
        client = PostgresClient(configuration: configuration, eventLoopGroup: group, backgroundLogger: logger)
        let client = self.client
        running = Task { await client.run() }
        self.durability = durability
        // Fails fast, with PostgreSQL's own words, when the database cannot be reached.
        do {
            _ = try withConnection { connection in try PostgresTransaction.run(connection, "SELECT 1", logger) }
        } catch {
            try? close()
            throw error
        }
    }

    private let durability: StoreDurability

    /// Runs `body` with a store opened for it alone, then closes it.
    static func withTemporaryStore<T>(_ location: PostgresLocation, _ body: (PostgresStore) throws -> T) throws -> T {
        let store = try PostgresStore(location: location, durability: .full)
        defer { try? store.close() }
        return try body(store)
    }

    public var clientMACsNeeded: Bool { false }

    /// Leases a connection for `body`, blocking this thread (never an event loop) until one is
    /// free or `leaseSeconds` have passed.
    func withConnection<T>(_ body: (PostgresConnection) throws -> T) throws -> T {
        if closed.withLock({ $0 }) { throw StoreError("the PostgreSQL store is closed") }
        let loop = group.next()
        let leased = loop.makePromise(of: PostgresConnection.self)
        let release = loop.makePromise(of: Void.self)
        let settled = Mutex(false)
        @Sendable func settle(_ result: Result<PostgresConnection, any Error>) {
            guard
                settled.withLock({ done in
                    defer { done = true }; return !done
                })
            else { return }
            leased.completeWith(result)
        }
        let client = self.client
        let task = Task {
            do {
                try await client.withConnection { connection in
                    settle(.success(connection))
                    try await release.futureResult.get()
                }
            } catch {
                settle(.failure(error))
            }
        }
        let seconds = leaseSeconds
        let timeout = loop.scheduleTask(in: .seconds(seconds)) {
            settle(.failure(StoreError("no PostgreSQL connection within \(seconds) s (is the database up?)")))
            task.cancel()
        }
        defer { release.succeed(()) }
        let connection: PostgresConnection
        do {
            connection = try leased.futureResult.wait()
        } catch let error as StoreError {
            throw error
        } catch {
            throw StoreError("cannot connect to PostgreSQL: \(PostgresTransaction.describe(error))")
        }
        timeout.cancel()
        return try body(connection)
    }

    public func read<T>(_ body: (any StoreReading) throws -> T) throws -> T {
        try transaction(opening: ["BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"], body)
    }

    public func write<T>(_ body: (any StoreWriting) throws -> T) throws -> T {
        // Every node's batches queue at the head row, one at a time: see the type's comment.
        try transaction(opening: writeOpening + ["SELECT 1 FROM audit_head WHERE id = 1 FOR UPDATE"], body)
    }

    public func writeUnchained<T>(_ body: (any StoreWriting) throws -> T) throws -> T {
        try transaction(opening: writeOpening, claimsRows: true, body)
    }

    private var writeOpening: [String] {
        durability == .normal ? ["BEGIN", "SET LOCAL synchronous_commit = off"] : ["BEGIN"]
    }

    /// One transaction on a leased connection: `opening` is sent without waiting (the
    /// connection runs it in order before the body's first statement, whose answer settles it);
    /// a reply is sent only after COMMIT returned, so the commit is durable (or, with `normal`,
    /// at least accepted by the server).
    private func transaction<T>(
        opening: [String], claimsRows: Bool = false, _ body: (PostgresTransaction) throws -> T
    ) throws -> T {
        try withConnection { connection in
            let tx = PostgresTransaction(
                connection: connection, logger: logger, memo: TransactionMemo(), claimsRows: claimsRows)
            for statement in opening { tx.send(PostgresQuery(unsafeSQL: statement)) }
            do {
                let result = try body(tx)
                try tx.execute("COMMIT")
                return result
            } catch {
                Self.rollBack(tx)
                throw error
            }
        }
    }

    /// Ends a failed transaction. A connection that cannot even roll back (it lost the server
    /// mid-statement, say) is closed, so the pool never lends it out in an aborted state.
    private static func rollBack(_ tx: PostgresTransaction) {
        // What was sent without waiting may have failed (that is often why we are here).
        try? tx.settle()
        do { try tx.execute("ROLLBACK") } catch { try? tx.connection.close().wait() }
    }

    /// Runs `body` while this process holds the database-wide KEK-change lock (a session-level
    /// advisory lock on a connection kept for the call), so rotations, retirements and the
    /// repair of interrupted ones never run on two nodes at once. Throws at once if another
    /// node holds it. A node that dies loses its session and with it the lock.
    public func withKeyChangeLock<T>(_ body: () throws -> T) throws -> T {
        try withConnection { connection in
            let rows = try PostgresTransaction.run(
                connection, "SELECT pg_try_advisory_lock(\(Self.keyChangeLockID))", logger)
            guard let row = rows.first, try row.decode(Bool.self) else {
                throw StoreError("another node is changing KEKs right now; try again when it has finished")
            }
            defer {
                _ = try? PostgresTransaction.run(
                    connection, "SELECT pg_advisory_unlock(\(Self.keyChangeLockID))", logger)
            }
            return try body()
        }
    }

    public func recordNode(_ id: String, currentKEK: UInt32, at time: Double) throws {
        try withConnection { connection in
            _ = try PostgresTransaction.run(
                connection,
                """
                INSERT INTO node (id, current_kek, seen_at) VALUES (\(id), \(Int64(currentKEK)), \(time))
                ON CONFLICT (id) DO UPDATE SET current_kek = excluded.current_kek, seen_at = excluded.seen_at
                """, logger)
        }
    }

    public func nodesUsing(kek version: UInt32, seenSince time: Double) throws -> [String] {
        try withConnection { connection in
            try PostgresTransaction.run(
                connection,
                "SELECT id FROM node WHERE current_kek = \(Int64(version)) AND seen_at >= \(time) ORDER BY id", logger
            ).map { try $0.decode(String.self) }
        }
    }

    /// The advisory lock key of KEK changes ("coffer" in ASCII).
    static let keyChangeLockID: Int64 = 0x636f_6666_6572

    /// Dead tuples, the WAL, archives and replicas keep what a deleted row held: PostgreSQL
    /// offers no wipe. What is left of a shredded subject is its data key wrapped under a KEK,
    /// so the shred completes when those KEK versions are retired (`shreddedAwaitingRetirement`).
    public func tryWipe() -> Bool { true }
    public func requestWipe() {}
    public var wipePending: Bool { false }
    public func onWipeCompleted(_ body: @escaping @Sendable () -> Void) {}
    /// PostgreSQL bounds its own WAL (checkpoints and `max_wal_size`).
    public func boundLog() {}

    public func backup(into path: String) throws -> [UInt32] {
        throw StoreError(
            "a PostgreSQL vault is backed up with PostgreSQL's own tools (pg_dump, or base backups and WAL archiving), together with a copy of the key directory kept apart; see Deploy/OPERATIONS.md"
        )
    }

    public func close() throws {
        let wasClosed = closed.withLock { closed in
            defer { closed = true }; return closed
        }
        guard !wasClosed else { return }
        running.cancel()
        let done = DispatchSemaphore(value: 0)
        let running = self.running
        Task {
            await running.value
            done.signal()
        }
        _ = done.wait(timeout: .now() + 10)
        try? group.syncShutdownGracefully()
    }

    deinit { try? close() }

    // MARK: Schema

    func hasTables() throws -> Bool {
        try withConnection { connection in
            let rows = try PostgresTransaction.run(
                connection,
                "SELECT count(*) FROM pg_tables WHERE schemaname = current_schema()", logger)
            return try (rows.first?.decode(Int64.self) ?? 0) > 0
        }
    }

    /// Runs the pending migrations; `creating` is false when opening, which then refuses a
    /// database that holds no vault.
    func migrate(creating: Bool) throws {
        try withConnection { connection in
            try PostgresSchema.migrate(connection, creating: creating, logger: logger)
        }
    }

    func dropSchema() throws {
        try withConnection { connection in
            try PostgresSchema.drop(connection, logger: logger)
        }
    }
}
