import CofferCore
import Foundation
import GRDB
import Testing

/// Issues 17.4 and 10.8: a backup file is untrusted input. Restore accepts only Coffer's exact
/// schema, a key directory that opens its data keys, and an audit chain that verifies; whatever
/// it refuses, it leaves nothing behind.
@Suite struct RestoreTests {
    /// A vault with one subject, and a backup of it taken through the vault.
    func backedUp() throws -> (vault: TestVault, backup: String) {
        let t = try TestVault()
        _ = try t.put("cust-1", [("name", "Jane Doe")])
        let backup = t.root + "/backup.db"
        #expect(try t.vault.backup(to: backup, as: .localOperator) == [1])
        return (t, backup)
    }

    /// Changes the backup file as an attacker who can write it would.
    func tamper(_ backup: String, _ sql: String) throws {
        let queue = try DatabaseQueue(path: backup)
        try queue.write { try $0.execute(sql: sql) }
        try queue.close()
    }

    func restore(_ backup: String, keys: String, into data: String) throws -> [UInt32] {
        try Vault.restore(from: backup, into: VaultConfiguration(dataDirectory: data, keyDirectory: keys))
    }

    /// Expects `body` to throw a `VaultError` with `code` whose message contains `fragment`.
    func expectRefusal(
        _ code: VaultError.Code, _ fragment: String, sourceLocation: SourceLocation = #_sourceLocation,
        _ body: () throws -> Void
    ) {
        do {
            try body()
            Issue.record(
                "restore was accepted; expected \(code.rawValue) '\(fragment)'", sourceLocation: sourceLocation)
        } catch let error as VaultError {
            #expect(error.code == code, "\(error)", sourceLocation: sourceLocation)
            #expect(error.message.contains(fragment), "\(error.message)", sourceLocation: sourceLocation)
        } catch {
            Issue.record("expected \(code.rawValue), got \(error)", sourceLocation: sourceLocation)
        }
    }

    static let alterations: [(String, String)] = [
        (
            "CREATE TRIGGER evil AFTER INSERT ON audit BEGIN DELETE FROM client; END",
            "it has a trigger 'evil'"
        ),
        ("CREATE TABLE extra (x)", "it has the table 'extra', which Coffer's schema does not have"),
        ("CREATE VIEW peek AS SELECT name, secret_hash FROM client", "it has a view 'peek'"),
        ("CREATE INDEX audit_client ON audit(client)", "it has the index 'audit_client'"),
        ("ALTER TABLE client ADD COLUMN note TEXT", "its table 'client' differs from Coffer's"),
        ("DROP INDEX subject_kek_version", "it lacks the index 'subject_kek_version'"),
        ("INSERT INTO grdb_migrations VALUES ('v9-unknown')", "it records migrations Coffer does not know"),
        ("DROP TABLE grdb_migrations", "it has no record of Coffer's migrations"),
    ]

    @Test(arguments: 0..<alterations.count)
    func aBackupWhoseSchemaIsNotCoffersIsRefused(index: Int) throws {
        let (sql, problem) = Self.alterations[index]
        let (t, backup) = try backedUp()
        try tamper(backup, sql)
        let data = t.root + "/restored"
        expectRefusal(.setup, "is not a Coffer database: \(problem)") {
            _ = try restore(backup, keys: t.configuration.keyDirectory, into: data)
        }
        #expect(!FileManager.default.fileExists(atPath: data), "restore left its data directory behind")
    }

    @Test func aFileThatIsNotADatabaseIsRefused() throws {
        let (t, backup) = try backedUp()
        #expect(FileManager.default.createFile(atPath: backup + ".junk", contents: Data(repeating: 0x5a, count: 4096)))
        let data = t.root + "/restored"
        expectRefusal(.setup, "cannot be read as a SQLite database") {
            _ = try restore(backup + ".junk", keys: t.configuration.keyDirectory, into: data)
        }
        #expect(!FileManager.default.fileExists(atPath: data))
    }

    @Test func aBackupRestoredWithAnotherVaultsKeysIsRefused() throws {
        let (t, backup) = try backedUp()
        let other = try TestVault()
        // Same file names (kek-1.key, audit.key, …), other keys: the data key does not open.
        let data = t.root + "/restored"
        expectRefusal(.keys, "the data key of subject 'cust-1' does not open under") {
            _ = try restore(backup, keys: other.configuration.keyDirectory, into: data)
        }
        #expect(!FileManager.default.fileExists(atPath: data))
        // With no subject there is no data key to try: the audit chain catches it.
        let empty = other.root + "/empty.db"
        _ = try other.vault.backup(to: empty, as: .localOperator)
        expectRefusal(.integrity, "its audit trail does not verify") {
            _ = try restore(empty, keys: t.configuration.keyDirectory, into: data)
        }
        #expect(!FileManager.default.fileExists(atPath: data))
    }

    @Test func aBackupWithAnAlteredAuditTrailIsRefused() throws {
        let (t, backup) = try backedUp()
        try tamper(backup, "UPDATE audit SET client = 'mallory' WHERE seq = 2")
        let data = t.root + "/restored"
        #expect(mkdir(data, 0o700) == 0)
        expectRefusal(.integrity, "at entry 2") {
            _ = try restore(backup, keys: t.configuration.keyDirectory, into: data)
        }
        // The directory existed before: it stays, empty.
        #expect(try FileManager.default.contentsOfDirectory(atPath: data) == [])
    }

    @Test func aGoodBackupRestoresAndReads() throws {
        let (t, backup) = try backedUp()
        let data = t.root + "/restored"
        #expect(try restore(backup, keys: t.configuration.keyDirectory, into: data) == [1])
        let restored = try Vault.open(
            VaultConfiguration(dataDirectory: data, keyDirectory: t.configuration.keyDirectory))
        defer { try? restored.close() }
        let values = try restored.get(subject: "cust-1", fields: ["name"], as: TestVault.support)
        #expect(values.map { $0.map { String(decoding: $0, as: UTF8.self) } } == ["Jane Doe"])
        #expect(try restored.verifyAudit(as: TestVault.auditor) == .verified(count: try auditCount(data)))
    }

    func auditCount(_ data: String) throws -> Int {
        let queue = try DatabaseQueue(path: data + "/coffer.db")
        defer { try? queue.close() }
        return try queue.read { try Int.fetchOne($0, sql: "SELECT COUNT(*) FROM audit") ?? 0 }
    }
}
