import CofferCore
import Foundation
import GRDB
import Testing

/// A vault in a fresh temporary directory, with one client per built-in data role. The vault
/// closes itself when released (`Vault.deinit`); the directory goes with the last copy of this
/// value (keep `directory` to use the files after that).
struct TestVault {
    let directory: TemporaryDirectory
    var root: String { directory.path }
    let configuration: VaultConfiguration
    let vault: Vault
    let adminSecret: String

    static let billing = Caller.client("billing1")
    static let support = Caller.client("support1")
    static let admin = Caller.client("admin")
    static let auditor = Caller.client("auditor1")

    init(policy: Policy = .builtIn) throws {
        directory = TemporaryDirectory("coffer-core")
        let root = directory.path
        configuration = VaultConfiguration(
            dataDirectory: root + "/data", keyDirectory: root + "/keys", policy: policy)
        adminSecret = try Vault.initialize(configuration)
        // The test owns the data directory, as a server would; other opens work alongside it.
        vault = try Vault.open(
            configuration, owner: .init(command: "test"))
        for (name, role) in [("billing1", "billing"), ("support1", "support"), ("auditor1", "auditor")]
        where policy.isKnownRole(role) {
            _ = try vault.addClient(name: name, role: role, as: .localOperator)
        }
    }

    /// Direct SQL on the database file, as an attacker with write access to it would do.
    func sql(_ statement: String, _ arguments: StatementArguments = []) throws {
        let queue = try DatabaseQueue(path: configuration.dataDirectory + "/coffer.db")
        try queue.write { try $0.execute(sql: statement, arguments: arguments) }
        try queue.close()
    }

    /// A consistent copy of the database file (SQLite's VACUUM INTO).
    func snapshot(to path: String) throws {
        let queue = try DatabaseQueue(path: configuration.dataDirectory + "/coffer.db")
        try queue.writeWithoutTransaction { try $0.execute(sql: "VACUUM INTO ?", arguments: [path]) }
        try queue.close()
    }

    func fetchBlob(_ query: String, _ arguments: StatementArguments = []) throws -> [UInt8]? {
        let queue = try DatabaseQueue(path: configuration.dataDirectory + "/coffer.db")
        defer { try? queue.close() }
        return try queue.read { try Data.fetchOne($0, sql: query, arguments: arguments) }.map { [UInt8]($0) }
    }

    func put(_ subject: String, _ pairs: [(String, String)], as caller: Caller = TestVault.support) throws -> Int {
        try vault.put(subject: subject, values: pairs.map { ($0.0, Array($0.1.utf8)) }, as: caller)
    }

    func get(_ subject: String, _ fields: [String], as caller: Caller) throws -> [String?] {
        try vault.get(subject: subject, fields: fields, as: caller).map {
            $0.map { String(decoding: $0, as: UTF8.self) }
        }
    }
}

/// A fresh directory under the system's temporary folder, removed with everything in it when the
/// last reference to it goes.
final class TemporaryDirectory: Sendable {
    let path: String

    init(_ prefix: String) {
        path = FileManager.default.temporaryDirectory.appendingPathComponent("\(prefix)-\(UUID())").path
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }
}

/// Expects `body` to throw a `VaultError` with `code`.
func expectError(
    _ code: VaultError.Code, _ comment: Comment? = nil, sourceLocation: SourceLocation = #_sourceLocation,
    _ body: () throws -> Void
) {
    do {
        try body()
        Issue.record(
            "expected \(code.rawValue), nothing was thrown. \(comment.map { "\($0)" } ?? "")",
            sourceLocation: sourceLocation)
    } catch let error as VaultError {
        #expect(error.code == code, "\(error) \(comment.map { "\($0)" } ?? "")", sourceLocation: sourceLocation)
    } catch {
        Issue.record("expected \(code.rawValue), got \(error)", sourceLocation: sourceLocation)
    }
}
