/// Row-by-row imports, through the same statements the vault writes with: a store in the same
/// process (SQLite) gains nothing from batching them.
extension StoreWriting {
    public func importSubjects(_ rows: [(subject: String, key: WrappedKey)]) throws {
        for row in rows { try insertSubject(row.subject, key: row.key) }
    }

    public func importFields(_ rows: [StoredField]) throws {
        for row in rows {
            try upsertSealedField(
                subject: row.subject, name: row.name, sealed: row.field.sealed, writeSeq: row.field.writeSeq)
        }
    }

    public func importIndexTags(_ rows: [IndexTagRecord]) throws {
        for row in rows { try setIndexTag(subject: row.subject, kind: row.kind, tag: row.tag) }
    }

    public func importAudit(_ records: [AuditRecord]) throws {
        for record in records { try appendAudit(record) }
    }

    public func importTokens(_ tokens: [TokenRecord]) throws {
        for token in tokens { try insertToken(token) }
    }
}
