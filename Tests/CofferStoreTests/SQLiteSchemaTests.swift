import Foundation
import GRDB
import Testing

@testable import CofferStore

/// A vault written before migration v8 (fields in a rowid table) opens with its fields intact,
/// clustered on their key, and still removed with their subject.
@Suite final class SQLiteSchemaTests {
    let directory: TemporaryDirectory

    init() throws { directory = try TemporaryDirectory("coffer-schema") }

    @Test func fieldsWrittenBeforeV8SurviveTheMoveToAClusteredTable() throws {
        let path = directory.path + "/coffer.db"
        do {
            let queue = try DatabaseQueue(path: path)
            try SQLiteSchema.migrator.migrate(queue, upTo: "v7-audit-purpose")
            try queue.write { db in
                for subject in 0..<50 {
                    try db.execute(
                        sql: "INSERT INTO subject (id, kek_version, wrapped_dek) VALUES (?, 1, ?)",
                        arguments: ["s\(subject)", Data(repeating: UInt8(subject), count: 72)])
                    for name in ["name", "email", "card.pan"] {
                        try db.execute(
                            sql: "INSERT INTO field (subject_id, name, sealed, write_seq) VALUES (?, ?, ?, ?)",
                            arguments: [
                                "s\(subject)", name, Data(repeating: UInt8(subject), count: 41 + name.count),
                                subject % 2 == 0 ? Int64(subject + 1) : nil,
                            ])
                    }
                }
            }
            #expect(try queue.read { try Int.fetchOne($0, sql: "SELECT count(*) FROM field") } == 150)
        }

        let store = try SQLiteStore(path: path, create: false)
        defer { try? store.close() }
        for subject in 0..<50 {
            let fields = try store.read {
                try $0.sealedFields("s\(subject)", names: ["name", "email", "card.pan", "phone"])
            }
            #expect(fields.count == 3)
            for name in ["name", "email", "card.pan"] {
                #expect(fields[name]?.sealed == [UInt8](repeating: UInt8(subject), count: 41 + name.count))
                #expect(fields[name]?.writeSeq == (subject % 2 == 0 ? Int64(subject + 1) : nil))
            }
        }
        // A WITHOUT ROWID table has no rowid to select.
        #expect(throws: DatabaseError.self) {
            try DatabaseQueue(path: path).read { try Int.fetchOne($0, sql: "SELECT rowid FROM field LIMIT 1") }
        }
        // SHRED still removes the fields.
        #expect(try store.write { try $0.deleteSubject("s7") })
        #expect(try store.read { try $0.sealedFields("s7", names: ["name", "email", "card.pan"]) }.isEmpty)
        #expect(try store.read { try $0.sealedFields("s8", names: ["name"]) }.count == 1)
    }
}
