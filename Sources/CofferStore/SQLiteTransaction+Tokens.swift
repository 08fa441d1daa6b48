import Foundation
import GRDB

/// Card tokens: rows keyed by the token's keyed hash.
extension SQLiteTransaction {
    private static let tokenColumns = "hash, subject_id, field, format, sealed, created_seq"

    private static func tokenRecord(_ row: Row) -> TokenRecord {
        let hash: Data = row[0]
        let sealed: Data = row[4]
        return TokenRecord(
            hash: [UInt8](hash), subject: row[1], field: row[2], format: row[3], sealed: [UInt8](sealed),
            createdSeq: row[5])
    }

    func token(hash: [UInt8]) throws -> TokenRecord? {
        let statement = try db.cachedStatement(sql: "SELECT \(Self.tokenColumns) FROM token WHERE hash = ?")
        return try Row.fetchOne(statement, arguments: [Data(hash)]).map(Self.tokenRecord)
    }

    func newestToken(subject: String, format: String) throws -> TokenRecord? {
        // An index scan of (subject_id, format, created_seq) from its end: one row read.
        let statement = try db.cachedStatement(
            sql: """
                SELECT \(Self.tokenColumns) FROM token WHERE subject_id = ? AND format = ?
                ORDER BY created_seq DESC LIMIT 1
                """)
        return try Row.fetchOne(statement, arguments: [subject, format]).map(Self.tokenRecord)
    }

    func insertToken(_ token: TokenRecord) throws {
        let statement = try db.cachedStatement(
            sql: "INSERT INTO token (\(Self.tokenColumns)) VALUES (?, ?, ?, ?, ?, ?)")
        try statement.execute(arguments: [
            Data(token.hash), token.subject, token.field, token.format, Data(token.sealed), token.createdSeq,
        ])
    }

    func deleteToken(hash: [UInt8]) throws -> Bool {
        try db.cachedStatement(sql: "DELETE FROM token WHERE hash = ?").execute(arguments: [Data(hash)])
        return db.changesCount > 0
    }

    func deleteTokens(subject: String) throws -> Int {
        try db.cachedStatement(sql: "DELETE FROM token WHERE subject_id = ?").execute(arguments: [subject])
        return db.changesCount
    }
}
