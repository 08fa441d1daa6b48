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

    /// An empty string or byte array binds as an empty value of its type, never as NULL (no
    /// column of the schema takes an empty blob, so this asks SQLite what it was given).
    @Test func emptyTextAndBlobsAreBoundAsEmptyNotNull() throws {
        let seen = try store.write { tx -> [Int64] in
            guard let transaction = tx as? SQLiteTransaction else { throw StoreError("not SQLite") }
            return try RawStatement.run(
                transaction.db,
                "SELECT ?1 IS NULL, typeof(?1) = 'text', length(?1), ?2 IS NULL, typeof(?2) = 'blob', length(?2)"
            ) { statement in
                try statement.bind(1, "")
                try statement.bind(2, [UInt8]())
                guard try statement.step() else { throw StoreError("no row") }
                return (0..<6).map { statement.int64(Int32($0)) }
            }
        }
        #expect(seen == [0, 1, 0, 0, 1, 0])
    }

    /// The statements a transaction keeps after their first use answer each later use with its
    /// own bindings, also after a savepoint that used them was rolled back.
    @Test func keptStatementsAnswerEachUseWithItsOwnBindings() throws {
        let seen = try store.write { tx -> [WrappedKey?] in
            try tx.insertSubject("a", key: Self.key(1))
            try tx.insertSubject("b", key: Self.key(2))
            var seen = [try tx.subjectKey("a"), try tx.subjectKey("b"), try tx.subjectKey("none")]
            let rolledBack = Result {
                try tx.savepoint {
                    try tx.upsertSealedField(
                        subject: "a", name: "name", sealed: [UInt8](repeating: 7, count: 41), writeSeq: 1)
                    seen.append(try tx.subjectKey("b"))
                    throw StoreError("rolled back")
                }
            }
            guard case .failure = rolledBack else { throw StoreError("the savepoint was not rolled back") }
            try tx.savepoint {
                try tx.upsertSealedField(
                    subject: "b", name: "name", sealed: [UInt8](repeating: 8, count: 41), writeSeq: 2)
            }
            seen.append(try tx.subjectKey("a"))
            #expect(try tx.sealedFields("a", names: ["name"]).isEmpty)
            #expect(try tx.sealedFields("b", names: ["name"])["name"]?.writeSeq == 2)
            return seen
        }
        #expect(seen == [Self.key(1), Self.key(2), nil, Self.key(2), Self.key(1)])
        #expect(try store.read { try $0.sealedFields("b", names: ["name"]) }["name"]?.sealed.first == 8)
    }
}
