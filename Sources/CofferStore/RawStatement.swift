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
    private let handle: SQLiteStatement
    private let sql: String

    private init(_ db: Database, _ statement: Statement, _ sql: String) {
        self.db = db
        handle = statement.sqliteStatement
        // Not `statement.sql`: GRDB trims it through Foundation on every call.
        self.sql = sql
    }

    /// Runs `body` with the statement for `sql` (prepared once per connection).
    static func run<T>(_ db: Database, _ sql: String, _ body: (RawStatement) throws -> T) throws -> T {
        let raw = RawStatement(db, try db.cachedStatement(sql: sql), sql)
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
        try check(text.withUTF8 { sqlite3_bind_text(handle, index, $0.baseAddress, Int32($0.count), Self.transient) })
    }

    func bind(_ index: Int32, _ text: String?) throws {
        guard let text else { return try check(sqlite3_bind_null(handle, index)) }
        try bind(index, text)
    }

    func bind(_ index: Int32, _ bytes: [UInt8]) throws {
        // A zero-length blob, not NULL, even for an empty array.
        try check(
            bytes.withUnsafeBytes {
                sqlite3_bind_blob(
                    handle, index, $0.baseAddress ?? UnsafeRawPointer(bitPattern: 1), Int32($0.count), Self.transient)
            })
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
        let count = Int(sqlite3_column_bytes(handle, column))
        guard count > 0, let base = sqlite3_column_blob(handle, column) else { return [] }
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
