import Foundation
import NIOCore
import PostgresNIO

/// Whole tables in pages, the KEK records replaced whole, and imports of a page in one
/// statement each (`unnest` of one array per column): a copy of a vault into this store
/// (`coffer migrate`). Row by row, a vault of 100,000 subjects was about a million round trips.
/// Arrays carry no NULLs here, so a nullable column travels with a second array saying which
/// rows have a value.
extension PostgresTransaction {
    func subjectKeys(after: String?, limit: Int) throws -> [(subject: String, key: WrappedKey)] {
        let rows =
            try after.map {
                try query(
                    "SELECT id, kek_version, wrapped_dek FROM subject WHERE id > \($0) ORDER BY id LIMIT \(limit)")
            } ?? query("SELECT id, kek_version, wrapped_dek FROM subject ORDER BY id LIMIT \(limit)")
        return try rows.map { row in
            let (id, version, sealed) = try row.decode((String, Int64, ByteBuffer).self)
            return (id, WrappedKey(kekVersion: UInt32(truncatingIfNeeded: version), sealed: Self.bytes(sealed)))
        }
    }

    func storedFields(after: (subject: String, name: String)?, limit: Int) throws -> [StoredField] {
        let rows =
            try after.map {
                try query(
                    """
                    SELECT subject_id, name, sealed, write_seq FROM field WHERE (subject_id, name) > (\($0.subject), \($0.name))
                    ORDER BY subject_id, name LIMIT \(limit)
                    """)
            } ?? query("SELECT subject_id, name, sealed, write_seq FROM field ORDER BY subject_id, name LIMIT \(limit)")
        return try rows.map { row in
            let (subject, name, sealed, writeSeq) = try row.decode((String, String, ByteBuffer, Int64?).self)
            return StoredField(
                subject: subject, name: name, field: SealedField(sealed: Self.bytes(sealed), writeSeq: writeSeq))
        }
    }

    func indexTags(after: IndexTagRecord?, limit: Int) throws -> [IndexTagRecord] {
        let rows =
            try after.map {
                try query(
                    """
                    SELECT kind, tag, subject_id FROM blind_index
                    WHERE (kind, tag, subject_id) > (\($0.kind), \(Self.buffer($0.tag)), \($0.subject))
                    ORDER BY kind, tag, subject_id LIMIT \(limit)
                    """)
            } ?? query("SELECT kind, tag, subject_id FROM blind_index ORDER BY kind, tag, subject_id LIMIT \(limit)")
        return try rows.map { row in
            let (kind, tag, subject) = try row.decode((String, ByteBuffer, String).self)
            return IndexTagRecord(kind: kind, tag: Self.bytes(tag), subject: subject)
        }
    }

    func tokens(after hash: [UInt8]?, limit: Int) throws -> [TokenRecord] {
        let rows =
            try hash.map {
                try query(
                    """
                    SELECT hash, subject_id, field, format, sealed, created_seq FROM token
                    WHERE hash > \(Self.buffer($0)) ORDER BY hash LIMIT \(limit)
                    """)
            }
            ?? query(
                "SELECT hash, subject_id, field, format, sealed, created_seq FROM token ORDER BY hash LIMIT \(limit)")
        return try rows.map { row in
            let (hash, subject, field, format, sealed, created) = try row.decode(
                (ByteBuffer, String, String, String, ByteBuffer, Int64).self)
            return TokenRecord(
                hash: Self.bytes(hash), subject: subject, field: field, format: format, sealed: Self.bytes(sealed),
                createdSeq: created)
        }
    }

    func recordCounts() throws -> StoreCounts {
        guard
            let row = try query(
                """
                SELECT (SELECT count(*) FROM kek), (SELECT count(*) FROM subject), (SELECT count(*) FROM field),
                    (SELECT count(*) FROM blind_index), (SELECT count(*) FROM client), (SELECT count(*) FROM audit),
                    (SELECT count(*) FROM token)
                """
            ).first
        else { throw StoreError("the tables could not be counted") }
        let (keks, subjects, fields, tags, clients, audit, tokens) = try row.decode(
            (Int64, Int64, Int64, Int64, Int64, Int64, Int64).self)
        return StoreCounts(
            kekVersions: Int(keks), subjects: Int(subjects), fields: Int(fields), indexTags: Int(tags),
            clients: Int(clients), auditEntries: Int(audit), tokens: Int(tokens))
    }

    func replaceKEKRecords(_ records: [KEKRecord]) throws {
        try query("DELETE FROM kek")
        for record in records {
            try query(
                """
                INSERT INTO kek (version, state, created_at, retired_at)
                VALUES (\(Int64(record.version)), \(record.state.rawValue), \(record.createdAt), \(record.retiredAt))
                """)
        }
    }

    func importSubjects(_ rows: [(subject: String, key: WrappedKey)]) throws {
        guard !rows.isEmpty else { return }
        try query(
            """
            INSERT INTO subject (id, kek_version, wrapped_dek)
            SELECT * FROM unnest(\(rows.map(\.subject))::text[], \(rows.map { Int64($0.key.kekVersion) })::int8[],
                \(rows.map { Self.buffer($0.key.sealed) })::bytea[])
            """)
    }

    func importFields(_ rows: [StoredField]) throws {
        guard !rows.isEmpty else { return }
        try query(
            """
            INSERT INTO field (subject_id, name, sealed, write_seq)
            SELECT subject_id, name, sealed, CASE WHEN has_write_seq THEN write_seq END
            FROM unnest(\(rows.map(\.subject))::text[], \(rows.map(\.name))::text[],
                \(rows.map { Self.buffer($0.field.sealed) })::bytea[], \(rows.map { $0.field.writeSeq ?? 0 })::int8[],
                \(rows.map { $0.field.writeSeq != nil })::bool[])
                AS t(subject_id, name, sealed, write_seq, has_write_seq)
            """)
    }

    func importIndexTags(_ rows: [IndexTagRecord]) throws {
        guard !rows.isEmpty else { return }
        try query(
            """
            INSERT INTO blind_index (kind, tag, subject_id)
            SELECT * FROM unnest(\(rows.map(\.kind))::text[], \(rows.map { Self.buffer($0.tag) })::bytea[],
                \(rows.map(\.subject))::text[])
            """)
    }

    func importAudit(_ records: [AuditRecord]) throws {
        guard let last = records.last else { return }
        try query(
            """
            INSERT INTO audit (seq, at, client, role, origin, command, subject, fields, outcome, mac, purpose, ticket)
            SELECT seq, at, client, role, origin, command, CASE WHEN has_subject THEN subject END, fields, outcome,
                mac, CASE WHEN has_purpose THEN purpose END, CASE WHEN has_ticket THEN ticket END
            FROM unnest(\(records.map(\.seq))::int8[], \(records.map(\.at))::text[], \(records.map(\.client))::text[],
                \(records.map(\.role))::text[], \(records.map(\.origin))::text[], \(records.map(\.command))::text[],
                \(records.map { $0.subject ?? "" })::text[], \(records.map { $0.subject != nil })::bool[],
                \(records.map(\.fields))::text[], \(records.map(\.outcome))::text[],
                \(records.map { Self.buffer($0.mac) })::bytea[], \(records.map { $0.purpose ?? "" })::text[],
                \(records.map { $0.purpose != nil })::bool[], \(records.map { $0.ticket ?? "" })::text[],
                \(records.map { $0.ticket != nil })::bool[])
                AS t(seq, at, client, role, origin, command, subject, has_subject, fields, outcome, mac, purpose,
                    has_purpose, ticket, has_ticket)
            """)
        memo.lastAudit = .some((last.seq, last.mac))
    }

    func importTokens(_ tokens: [TokenRecord]) throws {
        guard !tokens.isEmpty else { return }
        try query(
            """
            INSERT INTO token (hash, subject_id, field, format, sealed, created_seq)
            SELECT * FROM unnest(\(tokens.map { Self.buffer($0.hash) })::bytea[], \(tokens.map(\.subject))::text[],
                \(tokens.map(\.field))::text[], \(tokens.map(\.format))::text[],
                \(tokens.map { Self.buffer($0.sealed) })::bytea[], \(tokens.map(\.createdSeq))::int8[])
            """)
    }
}
