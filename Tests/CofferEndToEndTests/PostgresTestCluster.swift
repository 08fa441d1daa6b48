import Foundation
import Synchronization
import Testing

/// The vault backends the end-to-end tests run against.
enum TestBackend: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case sqlite
    case postgres

    var testDescription: String { rawValue }
}

/// The PostgreSQL cluster the tests use: the one `.ci/test` started (`COFFER_TEST_POSTGRES`), or
/// else one this test process starts with `.ci/postgres start` and stops when it exits. Each
/// vault gets a database of its own.
enum PostgresTestCluster {
    struct Cluster: Sendable {
        let directory: String
        let port: Int
        let url: String
        /// The same cluster over TCP on 127.0.0.1, with a password and no TLS.
        let tcpURL: String?
    }

    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path

    private static let started = Mutex<Result<Cluster, TestFailure>?>(nil)

    static func cluster() throws -> Cluster {
        try started.withLock { started in
            if let started { return try started.get() }
            let result = Result { try find() }.mapError { $0 as? TestFailure ?? TestFailure("\($0)") }
            started = result
            return try result.get()
        }
    }

    private static func find() throws -> Cluster {
        let environment = ProcessInfo.processInfo.environment
        if let url = environment["COFFER_TEST_POSTGRES"], let directory = environment["COFFER_TEST_PG_DIR"],
            let port = environment["COFFER_TEST_PG_PORT"].flatMap(Int.init)
        {
            return Cluster(directory: directory, port: port, url: url, tcpURL: environment["COFFER_TEST_POSTGRES_TCP"])
        }
        return try startCluster()
    }

    /// Starts a new cluster with `.ci/postgres start`; it is stopped when the test process exits
    /// unless `stop(_:)` stops it first.
    static func startCluster() throws -> Cluster {
        let (status, output) = try Shell.run("\(repository)/.ci/postgres", ["start", "--tcp"])
        guard status == 0 else { throw TestFailure(".ci/postgres start failed: \(output)") }
        var values: [String: String] = [:]
        for line in output.split(separator: "\n") where line.hasPrefix("export ") {
            let pair = line.dropFirst("export ".count)
            guard let equals = pair.firstIndex(of: "=") else { continue }
            values[String(pair[..<equals])] = String(pair[pair.index(after: equals)...])
                .trimmingCharacters(in: CharacterSet(charactersIn: "'"))
        }
        guard let directory = values["COFFER_TEST_PG_DIR"], let port = values["COFFER_TEST_PG_PORT"].flatMap(Int.init)
        else { throw TestFailure(".ci/postgres start printed no cluster: \(output)") }
        stopAtExit(directory)
        return Cluster(
            directory: directory, port: port, url: "postgresql://postgres@/postgres?host=\(directory)&port=\(port)",
            tcpURL: values["COFFER_TEST_POSTGRES_TCP"])
    }

    /// The clusters this process started and has not stopped yet.
    private static let toStop = Mutex<Set<String>>([])

    private static func stopAtExit(_ directory: String) {
        let first = toStop.withLock { toStop in
            defer { toStop.insert(directory) }
            return toStop.isEmpty
        }
        guard first else { return }
        atexit {
            for directory in PostgresTestCluster.toStop.withLock({ $0 }) {
                _ = try? Shell.run("\(PostgresTestCluster.repository)/.ci/postgres", ["stop", directory])
            }
        }
    }

    /// Stops and removes a cluster `startCluster()` made.
    static func stop(_ cluster: Cluster) throws {
        let (status, output) = try Shell.run("\(repository)/.ci/postgres", ["stop", cluster.directory])
        guard status == 0 else { throw TestFailure(".ci/postgres stop failed: \(output)") }
        _ = toStop.withLock { $0.remove(cluster.directory) }
    }

    /// Runs SQL as the cluster's superuser in database `database`; throws with psql's message.
    @discardableResult
    static func psql(_ sql: String, database: String = "postgres") throws -> String {
        try psql(sql, database: database, on: try cluster())
    }

    /// Runs SQL as the superuser of `cluster` in database `database`; throws with psql's message.
    @discardableResult
    static func psql(_ sql: String, database: String, on cluster: Cluster) throws -> String {
        let (status, output) = try Shell.run(
            "psql",
            [
                "-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1", "-h", cluster.directory, "-p", "\(cluster.port)",
                "-U", "postgres", "-d", database, "-c", sql,
            ])
        guard status == 0 else { throw TestFailure("psql failed: \(output)") }
        return output.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// A new, empty database and the URI that names it.
    static func freshDatabase() throws -> (name: String, url: String) {
        try freshDatabase(on: try cluster())
    }

    static func freshDatabase(on cluster: Cluster) throws -> (name: String, url: String) {
        let name = "coffer_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(16).lowercased()
        try psql("CREATE DATABASE \(name)", database: "postgres", on: cluster)
        return (name, url(database: name, cluster))
    }

    static func url(database: String, _ cluster: Cluster) -> String {
        "postgresql://postgres@/\(database)?host=\(cluster.directory)&port=\(cluster.port)"
    }

    /// `pg_ctl restart` of the shared cluster (fault tests).
    static func restart() throws {
        let cluster = try cluster()
        let (status, output) = try Shell.run("\(repository)/.ci/postgres", ["restart", cluster.directory])
        guard status == 0 else { throw TestFailure(".ci/postgres restart failed: \(output)") }
    }
}

/// A PostgreSQL cluster of one test's own, for tests that stop or restart PostgreSQL: the shared
/// cluster is never stopped or restarted, because other suites run on it at the same time.
/// Stopped and removed when the last reference goes (or when the test process exits).
final class PrivatePostgresCluster: Sendable {
    let cluster: PostgresTestCluster.Cluster

    init() throws { cluster = try PostgresTestCluster.startCluster() }

    deinit { try? PostgresTestCluster.stop(cluster) }

    @discardableResult
    func psql(_ sql: String, database: String = "postgres") throws -> String {
        try PostgresTestCluster.psql(sql, database: database, on: cluster)
    }

    func freshDatabase() throws -> (name: String, url: String) {
        try PostgresTestCluster.freshDatabase(on: cluster)
    }

    /// `pg_ctl restart -m fast`: open transactions rolled back, a checkpoint, a new server.
    func restart() throws { try ciPostgres(["restart", cluster.directory]) }

    /// Stops the server, fast (open transactions rolled back, a checkpoint) or immediately (a
    /// crash: the next start recovers from the WAL); the cluster's files stay.
    func down(immediate: Bool = false) throws {
        try ciPostgres(["down", cluster.directory] + (immediate ? ["--immediate"] : []))
    }

    /// Starts the server that `down` stopped, on the same socket and port.
    func up() throws { try ciPostgres(["up", cluster.directory]) }

    private func ciPostgres(_ arguments: [String]) throws {
        let (status, output) = try Shell.run("\(PostgresTestCluster.repository)/.ci/postgres", arguments)
        guard status == 0 else {
            throw TestFailure(".ci/postgres \(arguments.joined(separator: " ")) failed: \(output)")
        }
    }
}
