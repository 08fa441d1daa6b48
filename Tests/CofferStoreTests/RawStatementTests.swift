import Foundation
import GRDB
import Testing

@testable import CofferStore

/// The hot statements driven through SQLite's C API keep GRDB's guarantees.
@Suite final class RawStatementTests {
    let directory: TemporaryDirectory
    let store: SQLiteStore

    init() throws {
        directory = try TemporaryDirectory("coffer-raw")
        store = try SQLiteStore(path: directory.path + "/coffer.db")
    }

    deinit { try? store.close() }

    static func key(_ byte: UInt8) -> WrappedKey {
        WrappedKey(kekVersion: 1, sealed: [UInt8](repeating: byte, count: 72))
    }

    /// After SQLite has rolled a batch's transaction back (an I/O error does that), a raw
    /// statement must fail, not start and commit a transaction of its own: the rest of the batch
    /// would then be written while every command in it is told it failed.
    @Test func aStatementAfterTheTransactionWasRolledBackFailsInsteadOfCommittingAlone() throws {
        var insertAlone: Result<Void, any Error>?
        var savepointAlone: Result<Void, any Error>?
        let batch = Result {
            try store.writeDeferringSync { tx in
                // What SQLite does by itself after SQLITE_IOERR or SQLITE_FULL without a statement journal.
                guard let transaction = tx as? SQLiteTransaction else { throw StoreError("not SQLite") }
                try transaction.db.execute(sql: "ROLLBACK")
                insertAlone = Result { try tx.insertSubject("alone", key: Self.key(1)) }
                savepointAlone = Result { try tx.savepoint { try tx.insertSubject("alone", key: Self.key(1)) } }
            }
        }
        #expect(throws: DatabaseError.self) { try insertAlone?.get() }
        #expect(throws: DatabaseError.self) { try savepointAlone?.get() }
        #expect(throws: (any Error).self) { try batch.get() }
        #expect(try store.read { try $0.subjectKey("alone") } == nil)
    }

    @Test func emptyTextAndBlobsAreBoundAsEmptyNotNull() throws {
        try store.write { tx in
            try tx.insertSubject("s", key: Self.key(2))
            try tx.appendAudit(
                AuditRecord(
                    seq: 1, at: "", client: "", role: "", origin: "", command: "", subject: nil, fields: "",
                    outcome: "",
                    mac: [UInt8](repeating: 1, count: 32), purpose: nil, ticket: nil))
        }
        let record = try store.read { try $0.auditRecords(after: 0, limit: 1) }.first
        #expect(record?.fields == "")
        #expect(record?.at == "")
        #expect(record?.subject == nil)
    }
}
