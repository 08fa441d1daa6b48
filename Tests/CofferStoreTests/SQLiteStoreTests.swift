import Foundation
import Testing

@testable import CofferStore

/// A class, so that `deinit` closes each test's store and removes its directory.
@Suite final class SQLiteStoreTests {
    let directory: String
    let store: SQLiteStore

    init() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("coffer-store-\(UUID())").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        store = try SQLiteStore(path: directory + "/coffer.db")
    }

    deinit {
        try? store.close()
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// Descriptors this process holds on `path` or its `-wal` and `-shm` files.
    static func openDescriptors(on path: String) -> Int {
        let descriptors = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
        return descriptors.filter {
            (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/\($0)"))?.hasPrefix(path) == true
        }.count
    }

    /// `full` must fsync every commit: GRDB's pool set its writer back to NORMAL after our
    /// setup had run, so `--durability full` was silently `normal` (no fsync per commit).
    @Test(arguments: [(StoreDurability.full, 2), (StoreDurability.normal, 1)])
    func theWriterCommitsWithTheDurabilityAskedFor(durability: StoreDurability, pragma: Int) throws {
        let path = directory + "/\(durability.rawValue).db"
        let store = try SQLiteStore(path: path, durability: durability)
        defer { try? store.close() }
        #expect(try store.writerSynchronous() == pragma)
        // And again when an existing file is opened.
        try store.close()
        let reopened = try SQLiteStore(path: path, durability: durability, create: false)
        defer { try? reopened.close() }
        #expect(try reopened.writerSynchronous() == pragma)
    }

    /// A store dropped without `close()` (an error path, a test) closes its files: its checkpoint
    /// thread used to hold the checkpointer, and its connection, for the life of the process.
    @Test func aStoreReleasedWithoutCloseClosesItsFiles() throws {
        let path = directory + "/released.db"
        do {
            let released = try SQLiteStore(path: path)
            try released.write { try $0.insertSubject("s1", key: key()) }
            #expect(Self.openDescriptors(on: path) > 0)
        }
        let deadline = Date().addingTimeInterval(5)
        while Self.openDescriptors(on: path) > 0 && Date() < deadline { usleep(10_000) }
        #expect(Self.openDescriptors(on: path) == 0)
    }

    /// Under steady commits a passive checkpoint never catches up, so the log used to grow
    /// until the 64 MiB bound emptied it, and every commit's fsync also journalled the file's
    /// new size. Once a pass has found the log long, the writer's next `boundLog` restarts it:
    /// the commit after that is written from the log's start, over the file's existing blocks.
    @Test func aLongLogIsWrittenAgainFromItsStartNotGrown() throws {
        let path = directory + "/restart.db"
        let store = try SQLiteStore(path: path, durability: .normal, create: true, checkpointInterval: 3600)
        defer { try? store.close() }
        try writeALongLogThePassCannotCopyBack(store)
        let size = try Self.logSize(path)
        #expect(size > 1024 * 4096)

        store.boundLog()
        try store.write { try $0.insertSubject("after-restart", key: key()) }
        #expect(try Self.logFrames(store) < 10)
        #expect(try Self.logSize(path) == size, "the log was truncated, not reused")
        for subject in ["s0", "s1199", "after-pass", "after-restart"] {
            #expect(try store.read { try $0.subjectKey(subject) } != nil)
        }
    }

    /// A log whose file grew past the bound (a long reader held it) is emptied, not kept.
    @Test func aLogPastTheBoundIsEmptied() throws {
        let path = directory + "/truncate.db"
        let store = try SQLiteStore(
            path: path, durability: .normal, create: true, checkpointInterval: 3600, truncateLogBytes: 1024 * 1024)
        defer { try? store.close() }
        try writeALongLogThePassCannotCopyBack(store)
        #expect(try Self.logSize(path) > 1024 * 1024)

        store.boundLog()
        #expect(try Self.logSize(path) == 0)
        try store.write { try $0.insertSubject("after-truncate", key: key()) }
        for subject in ["s0", "s1199", "after-pass", "after-truncate"] {
            #expect(try store.read { try $0.subjectKey(subject) } != nil)
        }
    }

    /// 1,200 commits, then one the background pass cannot copy back, as under load, where
    /// commits land while it runs: a reader's snapshot from before it holds the pass back. (A log
    /// all copied back would be started again by SQLite itself at the next commit.)
    func writeALongLogThePassCannotCopyBack(_ store: SQLiteStore) throws {
        for i in 0..<1200 { try store.write { try $0.insertSubject("s\(i)", key: key()) } }
        let snapshot = try store.pool.makeSnapshot()
        try withExtendedLifetime(snapshot) {
            try store.write { try $0.insertSubject("after-pass", key: key()) }
            store.checkpointer.passNow()
        }
    }

    /// Frames in the write-ahead log now (a passive checkpoint's report; it copies them back,
    /// which does not start the log again).
    static func logFrames(_ store: SQLiteStore) throws -> Int {
        try store.pool.writeWithoutTransaction { try $0.checkpoint(.passive) }.walFrameCount
    }

    static func logSize(_ path: String) throws -> Int {
        (try FileManager.default.attributesOfItem(atPath: path + "-wal")[.size] as? Int) ?? -1
    }

    func key(_ version: UInt32 = 1) -> WrappedKey {
        WrappedKey(kekVersion: version, sealed: Array(repeating: 1, count: 72))
    }

    @Test func writesAreAllOrNothing() throws {
        struct Abort: Error {}
        #expect(throws: Abort.self) {
            try store.write { tx in
                try tx.insertSubject("s1", key: key())
                try tx.upsertSealedField(
                    subject: "s1", name: "name", sealed: Array(repeating: 2, count: 50), writeSeq: 1)
                throw Abort()
            }
        }
        #expect(try store.read { try $0.subjectKey("s1") } == nil)
        #expect(try store.read { try $0.allSealedFields("s1") }.isEmpty)
    }

    @Test func schemaRefusesMalformedRows() throws {
        #expect(throws: (any Error).self) {
            try store.write { try $0.insertSubject("s1", key: WrappedKey(kekVersion: 1, sealed: [1, 2, 3])) }
        }
        #expect(throws: (any Error).self) {
            try store.write { try $0.insertSubject("s1", key: key(0)) }
        }
        // A field cannot exist without its subject (foreign key).
        #expect(throws: (any Error).self) {
            try store.write {
                try $0.upsertSealedField(
                    subject: "ghost", name: "name", sealed: Array(repeating: 1, count: 50), writeSeq: 1)
            }
        }
    }

    @Test func deleteSubjectRemovesFieldsAndIndex() throws {
        try store.write { tx in
            try tx.insertSubject("s1", key: key())
            try tx.upsertSealedField(subject: "s1", name: "email", sealed: Array(repeating: 3, count: 60), writeSeq: 2)
            try tx.setIndexTag(subject: "s1", kind: "email", tag: Array(repeating: 9, count: 32))
        }
        #expect(try store.read { try $0.subjects(indexKind: "email", tag: Array(repeating: 9, count: 32)) } == ["s1"])
        #expect(try store.write { try $0.deleteSubject("s1") })
        #expect(try store.read { try $0.allSealedFields("s1") }.isEmpty)
        #expect(try store.read { try $0.subjects(indexKind: "email", tag: Array(repeating: 9, count: 32)) }.isEmpty)
        #expect(try store.write { try $0.deleteSubject("s1") } == false)
    }

    @Test func indexTagIsReplacedNotAccumulated() throws {
        try store.write { tx in
            try tx.insertSubject("s1", key: key())
            try tx.setIndexTag(subject: "s1", kind: "phone", tag: Array(repeating: 1, count: 32))
            try tx.setIndexTag(subject: "s1", kind: "phone", tag: Array(repeating: 2, count: 32))
        }
        #expect(try store.read { try $0.subjects(indexKind: "phone", tag: Array(repeating: 1, count: 32)) }.isEmpty)
        #expect(try store.read { try $0.subjects(indexKind: "phone", tag: Array(repeating: 2, count: 32)) } == ["s1"])
    }

    /// A data key under a version with no key file (pending, retired or unknown) would be lost.
    @Test func dataKeysGoOnlyUnderCurrentOrActiveKEKVersions() throws {
        try store.write { tx in
            try tx.insertPendingKEK(2, at: 0)
            try tx.promotePendingKEK(2)
            try tx.insertPendingKEK(3, at: 0)
        }
        let refusal = "a data key may be wrapped only under a current or active KEK version"
        for version: UInt32 in [3, 4] {
            #expect {
                try store.write { try $0.insertSubject("s\(version)", key: key(version)) }
            } throws: { "\($0)".contains(refusal) }
        }
        try store.write { tx in
            try tx.insertSubject("a", key: key(1))
            try tx.insertSubject("b", key: key(2))
            try tx.retireKEK(1, at: 0)
        }
        #expect {
            try store.write { try $0.insertSubject("c", key: key(1)) }
        } throws: { "\($0)".contains(refusal) }
        #expect {
            try store.write { try $0.updateSubjectKey("b", key: key(1)) }
        } throws: { "\($0)".contains(refusal) }
        // Rewrapping within live versions and replacing a DEK in place stay allowed.
        try store.write {
            try $0.updateSubjectKey("b", key: WrappedKey(kekVersion: 2, sealed: Array(repeating: 7, count: 72)))
        }
        #expect(try store.read { try $0.referencedKEKVersions() } == [1, 2])
    }

    @Test func referencedVersionsAndClients() throws {
        try store.write { tx in
            try tx.insertPendingKEK(3, at: 0)
            try tx.promotePendingKEK(3)
            try tx.insertSubject("a", key: key(1))
            try tx.insertSubject("b", key: key(3))
            try tx.insertClient(
                ClientRecord(name: "c", role: "billing", secretHash: Array(repeating: 0, count: 32), createdAt: 0))
        }
        #expect(try store.read { try $0.referencedKEKVersions() } == [1, 3])
        let client = try #require(try store.read { try $0.client(named: "c") })
        #expect(client.role == "billing" && client.mac == nil)
        #expect(try store.write { try $0.deleteClient(named: "c") })
        #expect(try store.read { try $0.clients() }.isEmpty)
    }
}

/// A transaction remembers the audit head and the client rows it has read (one lookup per
/// batch, not per command); what it remembers must always be what a fresh query would answer.
@Suite final class TransactionMemoTests {
    let directory: String
    let store: SQLiteStore

    init() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("coffer-memo-\(UUID())").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        store = try SQLiteStore(path: directory + "/coffer.db")
    }

    deinit {
        try? store.close()
        try? FileManager.default.removeItem(atPath: directory)
    }

    func client(_ name: String, role: String = "support") -> ClientRecord {
        ClientRecord(name: name, role: role, secretHash: Array(repeating: 7, count: 32), createdAt: 0)
    }

    func entry(_ seq: Int64) -> AuditRecord {
        AuditRecord(
            seq: seq, at: "t", client: "c", role: "r", origin: "o", command: "GET", subject: nil, fields: "",
            outcome: "ok", mac: Array(repeating: UInt8(truncatingIfNeeded: seq), count: 32))
    }

    struct Abort: Error {}

    @Test func clientRowsFollowWritesAndRollbacksInsideOneTransaction() throws {
        try store.write { tx in
            #expect(try tx.client(named: "a") == nil)
            try tx.insertClient(client("a"))
            #expect(try tx.client(named: "a")?.role == "support")
            // A revocation rolled back leaves the row, and the next lookup sees it.
            #expect(throws: Abort.self) {
                try tx.savepoint {
                    #expect(try tx.deleteClient(named: "a"))
                    #expect(try tx.client(named: "a") == nil)
                    throw Abort()
                }
            }
            #expect(try tx.client(named: "a")?.role == "support")
            // A row added in a savepoint rolled back is gone again.
            #expect(throws: Abort.self) {
                try tx.savepoint {
                    try tx.insertClient(client("b"))
                    #expect(try tx.client(named: "b") != nil)
                    throw Abort()
                }
            }
            #expect(try tx.client(named: "b") == nil)
            // Re-added under another role: the new row, not the remembered one.
            #expect(try tx.deleteClient(named: "a"))
            try tx.insertClient(client("a", role: "billing"))
            #expect(try tx.client(named: "a")?.role == "billing")
            try tx.setClientMAC(name: "a", mac: Array(repeating: 1, count: 32))
            #expect(try tx.client(named: "a")?.mac == Array(repeating: 1, count: 32))
        }
        #expect(try store.read { try $0.client(named: "a")?.role } == "billing")
    }

    @Test func theAuditHeadFollowsAppendsAndRollbacks() throws {
        try store.write { tx in
            #expect(try tx.lastAudit() == nil)
            try tx.appendAudit(entry(1))
            #expect(try tx.lastAudit()?.seq == 1)
            #expect(throws: Abort.self) {
                try tx.savepoint {
                    try tx.appendAudit(entry(2))
                    #expect(try tx.lastAudit()?.seq == 2)
                    throw Abort()
                }
            }
            #expect(try tx.lastAudit()?.seq == 1)
            #expect(try tx.lastAudit()?.mac == entry(1).mac)
            try tx.appendAudit(entry(2))
        }
        // Another transaction starts from the database, not from what the last one remembered.
        #expect(throws: (any Error).self) {
            try self.store.write { tx in
                try tx.appendAudit(self.entry(3)); throw Abort()
            }
        }
        #expect(try store.read { try $0.lastAudit()?.seq } == 2)
        #expect(try store.write { try $0.lastAudit()?.seq } == 2)
    }
}
