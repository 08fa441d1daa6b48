import Foundation
import GRDB

extension SQLiteStore {
    /// An online, consistent copy of the database into `partial`, an empty file the caller
    /// has created (and will sync and give its final name). SQLite's backup API copies from a
    /// read snapshot, so writers go on meanwhile. The copy is left in rollback-journal mode
    /// (one self-contained file) and checked with `PRAGMA integrity_check`. Returns the KEK
    /// versions the copy's data keys are wrapped under.
    public func backup(into partial: String) throws -> [UInt32] {
        // A copy never holds a commit that a power loss could still take from the vault (its
        // audit chain would then fork from the vault's).
        try syncCommitted()
        // SQLite's transient journal beside the copy holds page images: owner-only as well.
        let oldMask = umask(0o077)
        defer { umask(oldMask) }
        var config = Configuration()
        config.journalMode = .default
        let copy = try DatabaseQueue(path: partial, configuration: config)
        do {
            try pool.backup(to: copy)
            let (check, versions) = try copy.writeWithoutTransaction { db -> (String, [UInt32]) in
                try db.execute(sql: "PRAGMA journal_mode = DELETE")
                let check = try String.fetchOne(db, sql: "PRAGMA integrity_check") ?? "no answer"
                let versions = try Int64.fetchAll(db, sql: "SELECT DISTINCT kek_version FROM subject ORDER BY 1")
                return (check, versions.map { UInt32(truncatingIfNeeded: $0) })
            }
            try copy.close()
            guard check == "ok" else { throw StoreError("the backup copy failed its integrity check: \(check)") }
            return versions
        } catch {
            try? copy.close()
            throw error
        }
    }

    /// Inspects a backup file before it is restored. Nothing in it is trusted: the schema is
    /// read from `sqlite_master` alone and compared with the one Coffer's own migrations
    /// build, and only if they match exactly is anything else read. A trigger, a view, an
    /// extra or altered table or index could otherwise run an attacker's SQL on every later
    /// write of the live vault.
    public static func inspectBackup(at path: String) throws -> BackupInspection {
        var config = Configuration()
        config.readonly = true
        config.prepareDatabase { db in
            // Functions with side effects may not run from the schema (views, triggers, CHECKs).
            try db.execute(sql: "PRAGMA trusted_schema = OFF")
        }
        let queue = try DatabaseQueue(path: path, configuration: config)
        defer { try? queue.close() }
        return try queue.read { db in
            let problems = try schemaDifferences(db)
            guard problems.isEmpty else {
                return BackupInspection(
                    integrity: "not checked", kekVersions: [], sampleKeys: [], schemaProblems: problems)
            }
            let check = try String.fetchOne(db, sql: "PRAGMA integrity_check") ?? "no answer"
            let versions = try Int64.fetchAll(db, sql: "SELECT DISTINCT kek_version FROM subject ORDER BY 1")
            // One subject per KEK version: enough to tell whether the key directory's KEKs are
            // the ones this backup's data keys were wrapped under.
            let samples = try Row.fetchAll(
                db,
                sql: """
                    SELECT id, kek_version, wrapped_dek FROM subject
                    WHERE id IN (SELECT MIN(id) FROM subject GROUP BY kek_version) ORDER BY kek_version
                    """
            ).map { row -> BackupInspection.Sample in
                let version: Int64 = row[1]
                let sealed: Data = row[2]
                return BackupInspection.Sample(
                    subject: row[0],
                    key: WrappedKey(kekVersion: UInt32(truncatingIfNeeded: version), sealed: [UInt8](sealed)))
            }
            return BackupInspection(
                integrity: check, kekVersions: versions.map { UInt32(truncatingIfNeeded: $0) }, sampleKeys: samples,
                schemaProblems: [])
        }
    }

    /// One row of `sqlite_master`.
    private struct SchemaEntry: Hashable, Comparable {
        let type: String
        let name: String
        let table: String
        let sql: String?

        static func < (a: SchemaEntry, b: SchemaEntry) -> Bool { (a.type, a.name) < (b.type, b.name) }

        static func all(_ db: Database) throws -> Set<SchemaEntry> {
            Set(
                try Row.fetchAll(db, sql: "SELECT type, name, tbl_name, sql FROM sqlite_master").map {
                    SchemaEntry(type: $0[0], name: $0[1], table: $0[2], sql: $0[3])
                })
        }
    }

    /// How the schema of `db` differs from the one Coffer's migrations build, in words; empty
    /// if it is exactly that schema. The reference is built fresh, in memory, by the same
    /// migrator, up to the last migration the backup records (an older backup is migrated
    /// forward when it is opened).
    static func schemaDifferences(_ db: Database) throws -> [String] {
        let actual: Set<SchemaEntry>
        do { actual = try SchemaEntry.all(db) } catch {
            return ["its schema cannot be read (\(error))"]
        }
        let migrator = SQLiteSchema.migrator
        let full = try DatabaseQueue()
        try migrator.migrate(full)
        let fullSchema = try full.read { try SchemaEntry.all($0) }
        var problems: [String] = []
        // Coffer's own triggers (its schema's invariants), exactly as its migrations write them,
        // are the only ones allowed.
        for entry in actual.sorted()
        where (entry.type == "trigger" || entry.type == "view") && !fullSchema.contains(entry) {
            problems.append("it has a \(entry.type) '\(entry.name)'")
        }
        guard problems.isEmpty else { return problems }

        let bookkeeping = fullSchema.filter { $0.name == "grdb_migrations" }
        guard bookkeeping.isSubset(of: actual) else {
            return ["it has no record of Coffer's migrations"]
        }
        let applied = try String.fetchAll(db, sql: "SELECT identifier FROM grdb_migrations")
        let known = migrator.migrations
        guard !applied.isEmpty, Set(applied) == Set(known.prefix(applied.count)) else {
            return [
                "it records migrations Coffer does not know or out of order (\(applied.sorted().joined(separator: ", ")))"
            ]
        }
        let reference = try DatabaseQueue()
        try migrator.migrate(reference, upTo: known[applied.count - 1])
        let expected = try reference.read { try SchemaEntry.all($0) }

        let expectedNames = Set(expected.map { [$0.type, $0.name] })
        let actualNames = Set(actual.map { [$0.type, $0.name] })
        for entry in actual.sorted() where !expectedNames.contains([entry.type, entry.name]) {
            problems.append("it has the \(entry.type) '\(entry.name)', which Coffer's schema does not have")
        }
        for entry in expected.sorted() where !actualNames.contains([entry.type, entry.name]) {
            problems.append("it lacks the \(entry.type) '\(entry.name)'")
        }
        for entry in actual.sorted()
        where expectedNames.contains([entry.type, entry.name]) && !expected.contains(entry) {
            problems.append("its \(entry.type) '\(entry.name)' differs from Coffer's")
        }
        return problems
    }
}

/// What `SQLiteStore.inspectBackup` found in a backup file.
public struct BackupInspection: Sendable {
    public struct Sample: Sendable {
        public let subject: String
        public let key: WrappedKey
    }

    /// `PRAGMA integrity_check`'s answer ("ok").
    public let integrity: String
    /// The KEK versions the backup's data keys are wrapped under.
    public let kekVersions: [UInt32]
    /// One wrapped data key per KEK version in use.
    public let sampleKeys: [Sample]
    /// How its schema differs from Coffer's; if not empty, nothing else was read.
    public let schemaProblems: [String]
}
