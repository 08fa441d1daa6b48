import GRDB
import GRDBSQLite

/// One of GRDB's cached statements driven through SQLite's C API, for the few statements
/// every command runs (reading a subject's key and fields, appending its audit entry, its
/// savepoint). There, GRDB's `Row` and `StatementArguments` boxing cost more than SQLite's own
/// work. Everything else goes through GRDB.
///
/// `run` resets the statement and clears its bindings when it returns, so GRDB (which resets
/// a cached statement before each use anyway) always finds it idle.
struct RawStatement {
    private let db: Database
    /// Held, so that the handle lives as long as this value whatever GRDB's cache does.
    private let statement: Statement
    private let handle: SQLiteStatement
    private let sql: String

    private init(_ db: Database, _ statement: Statement, _ sql: String) {
        self.db = db
        self.statement = statement
        handle = statement.sqliteStatement
        // Not `statement.sql`: GRDB trims it through Foundation on every call.
        self.sql = sql
    }

    /// Runs `body` with the statement for `sql` (prepared once per connection).
    static func run<T>(_ db: Database, _ sql: String, _ body: (RawStatement) throws -> T) throws -> T {
        try requireTransaction(db, sql)
        return try run(RawStatement(db, try db.cachedStatement(sql: sql), sql), body)
    }

    /// Runs `body` with one of the statements every command runs, taken from `memo` after its
    /// first use in the transaction: finding it in GRDB's cache hashes its whole SQL text, which
    /// was 3.7 % of the committer's time per GET.
    static func run<T>(
        _ db: Database, _ hot: HotStatement, memo: TransactionMemo, _ body: (RawStatement) throws -> T
    ) throws -> T {
        try requireTransaction(db, hot.sql)
        let statement: Statement
        if let known = memo.statements[hot.rawValue] {
            statement = known
        } else {
            statement = try db.cachedStatement(sql: hot.sql)
            memo.statements[hot.rawValue] = statement
        }
        return try run(RawStatement(db, statement, hot.sql), body)
    }

    /// Every raw statement belongs inside a transaction. After an I/O error SQLite may have
    /// rolled the whole transaction back; a statement run now would start and commit one of its
    /// own (GRDB's own statements check this; raw ones must too).
    private static func requireTransaction(_ db: Database, _ sql: String) throws {
        guard sqlite3_get_autocommit(db.sqliteConnection) == 0 else {
            throw DatabaseError(
                resultCode: .SQLITE_ABORT, message: "the transaction was rolled back by SQLite", sql: sql)
        }
    }

    private static func run<T>(_ raw: RawStatement, _ body: (RawStatement) throws -> T) rethrows -> T {
        defer {
            sqlite3_reset(raw.handle)
            sqlite3_clear_bindings(raw.handle)
        }
        return try body(raw)
    }

    /// SQLite copies the bytes (`SQLITE_TRANSIENT`), so nothing need outlive the call.
    private static let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)

    func bind(_ index: Int32, _ text: String) throws {
        var text = text
        try check(
            text.withUTF8 { utf8 in
                // A nil pointer would bind NULL, not "".
                guard let base = utf8.baseAddress else {
                    return sqlite3_bind_text(
                        handle, index, UnsafeRawPointer(Self.empty.utf8Start).assumingMemoryBound(to: CChar.self), 0,
                        Self.transient)
                }
                return sqlite3_bind_text(handle, index, base, Int32(utf8.count), Self.transient)
            })
    }

    private static let empty: StaticString = ""

    func bind(_ index: Int32, _ text: String?) throws {
        guard let text else { return try check(sqlite3_bind_null(handle, index)) }
        try bind(index, text)
    }

    func bind(_ index: Int32, _ bytes: [UInt8]) throws {
        // A zero-length blob, not NULL, even for an empty array.
        guard !bytes.isEmpty else { return try check(sqlite3_bind_zeroblob(handle, index, 0)) }
        try check(
            bytes.withUnsafeBytes { sqlite3_bind_blob(handle, index, $0.baseAddress, Int32($0.count), Self.transient) })
    }

    func bind(_ index: Int32, _ value: Int64) throws { try check(sqlite3_bind_int64(handle, index, value)) }

    func bind(_ index: Int32, _ value: Int64?) throws {
        guard let value else { return try check(sqlite3_bind_null(handle, index)) }
        try bind(index, value)
    }

    /// Steps once: true if a row is ready, false when the statement is done.
    func step() throws -> Bool {
        switch sqlite3_step(handle) {
        case SQLITE_ROW: return true
        case SQLITE_DONE: return false
        case let code: throw error(code)
        }
    }

    /// Ready to step again, keeping the bindings (a loop rebinding only some of them).
    func reset() { sqlite3_reset(handle) }

    func isNull(_ column: Int32) -> Bool { sqlite3_column_type(handle, column) == SQLITE_NULL }

    func int64(_ column: Int32) -> Int64 { sqlite3_column_int64(handle, column) }

    func bytes(_ column: Int32) -> [UInt8] {
        // The pointer first, then the size, as SQLite asks.
        let base = sqlite3_column_blob(handle, column)
        let count = Int(sqlite3_column_bytes(handle, column))
        guard count > 0, let base else { return [] }
        return [UInt8](UnsafeRawBufferPointer(start: base, count: count))
    }

    private func check(_ code: Int32) throws {
        guard code == SQLITE_OK else { throw error(code) }
    }

    private func error(_ code: Int32) -> DatabaseError {
        DatabaseError(
            resultCode: ResultCode(rawValue: code), message: String(cString: sqlite3_errmsg(db.sqliteConnection)),
            sql: sql)
    }
}

/// The statements every command runs, each with its slot in `TransactionMemo.statements`.
enum HotStatement: Int, CaseIterable {
    case savepoint, release, subjectKey, sealedField, upsertField, insertAudit

    var sql: String {
        switch self {
        case .savepoint: "SAVEPOINT unit"
        case .release: "RELEASE unit"
        case .subjectKey: "SELECT kek_version, wrapped_dek FROM subject WHERE id = ?"
        case .sealedField: "SELECT sealed, write_seq FROM field WHERE subject_id = ? AND name = ?"
        case .upsertField: Self.upsertFieldSQL
        case .insertAudit: Self.insertAuditSQL
        }
    }

    static let auditColumns =
        "seq, at, client, role, origin, command, subject, fields, outcome, mac, purpose, ticket"
    private static let insertAuditSQL =
        "INSERT INTO audit (\(auditColumns)) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    private static let upsertFieldSQL = """
        INSERT INTO field (subject_id, name, sealed, write_seq) VALUES (?, ?, ?, ?)
        ON CONFLICT (subject_id, name) DO UPDATE SET sealed = excluded.sealed, write_seq = excluded.write_seq
        """
}
