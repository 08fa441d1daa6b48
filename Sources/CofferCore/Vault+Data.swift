import CofferCrypto
import CofferStore

extension Vault {
    /// Writes several fields of one subject atomically: every field is checked (known,
    /// permitted, valid) before anything is written, and all are committed in one transaction.
    /// Returns the number of distinct fields written.
    public func put(subject: String, values: [(field: String, value: [UInt8])], as caller: Caller) throws -> Int {
        try SubjectID.validate(subject)
        guard !values.isEmpty else { throw VaultError(.invalid, "PUT needs at least one field and value") }
        // Last value wins when a field is repeated, as in HSET.
        var order: [String] = []
        var latest: [String: [UInt8]] = [:]
        for (field, value) in values {
            if latest.updateValue(value, forKey: field) == nil { order.append(field) }
        }
        let fields = try order.map { try FieldCatalogue.field(named: $0) }
        return try Self.storageCall {
            try store.write { tx in
                let role = try resolve(caller, in: tx)
                for field in fields { try role.require(.write(field), "write field '\(field.name)'") }
                let normalized = try fields.map { try FieldValidator.normalize(latest[$0.name]!, for: $0) }
                try scratch.withScratch { scratch in
                    if let wrapped = try tx.subjectKey(subject) {
                        try envelope.unwrapDEK(wrapped, subject: subject, in: scratch)
                    } else {
                        try tx.insertSubject(subject, key: envelope.newDEK(subject: subject, in: scratch))
                    }
                    for (field, value) in zip(fields, normalized) {
                        let sealed = try envelope.seal(value, subject: subject, field: field.name, in: scratch)
                        try tx.upsertSealedField(subject: subject, name: field.name, sealed: sealed)
                        if let kind = field.indexKind {
                            try tx.setIndexTag(
                                subject: subject, kind: kind, tag: envelope.indexTag(kind: kind, normalized: value))
                        }
                    }
                }
                return fields.count
            }
        }
    }

    /// Reads fields, plain or masked as the role allows; nil where a field (or the subject) is
    /// absent. A field the role may not read at all refuses the whole command.
    public func get(subject: String, fields names: [String], as caller: Caller) throws -> [[UInt8]?] {
        try SubjectID.validate(subject)
        let fields = try names.map { try FieldCatalogue.field(named: $0) }
        return try Self.storageCall {
            try store.read { tx in
                let role = try resolve(caller, in: tx)
                let levels = try fields.map { try role.require(.read($0), "read field '\($0.name)'") }
                guard let wrapped = try tx.subjectKey(subject) else {
                    return Array(repeating: nil, count: fields.count)
                }
                let sealed = try tx.sealedFields(subject, names: names)
                return try scratch.withScratch { scratch in
                    try envelope.unwrapDEK(wrapped, subject: subject, in: scratch)
                    return try zip(fields, levels).map { field, level -> [UInt8]? in
                        guard let box = sealed[field.name] else { return nil }
                        let plain = try envelope.open(box, subject: subject, field: field.name, in: scratch)
                        return level == .masked ? Masking.mask(plain, for: field) : plain
                    }
                }
            }
        }
    }

    /// Every field of the subject the role may see, in catalogue order; fields the role may not
    /// read are left out. A role that may read nothing at all is refused.
    public func export(subject: String, as caller: Caller) throws -> [(field: String, value: [UInt8])] {
        try SubjectID.validate(subject)
        return try Self.storageCall {
            try store.read { tx in
                let role = try resolve(caller, in: tx)
                let readable = FieldCatalogue.all.compactMap { field -> (Field, ReadLevel)? in
                    guard let level = try? role.require(.read(field), "") else { return nil }
                    return (field, level)
                }
                guard !readable.isEmpty else { throw VaultError(.noPermission, "role '\(role.name)' may not EXPORT") }
                guard let wrapped = try tx.subjectKey(subject) else { return [] }
                let sealed = try tx.sealedFields(subject, names: readable.map { $0.0.name })
                return try scratch.withScratch { scratch in
                    try envelope.unwrapDEK(wrapped, subject: subject, in: scratch)
                    return try readable.compactMap { field, level -> (field: String, value: [UInt8])? in
                        guard let box = sealed[field.name] else { return nil }
                        let plain = try envelope.open(box, subject: subject, field: field.name, in: scratch)
                        return (field.name, level == .masked ? Masking.mask(plain, for: field) : plain)
                    }
                }
            }
        }
    }

    /// Removes fields (and their index entries). Needs write access to each field's category.
    public func delete(subject: String, fields names: [String], as caller: Caller) throws -> Int {
        try SubjectID.validate(subject)
        guard !names.isEmpty else { throw VaultError(.invalid, "DEL needs at least one field") }
        let fields = try names.map { try FieldCatalogue.field(named: $0) }
        return try Self.storageCall {
            try store.write { tx in
                let role = try resolve(caller, in: tx)
                for field in fields { try role.require(.write(field), "delete field '\(field.name)'") }
                let removed = try tx.deleteFields(subject: subject, names: fields.map(\.name))
                for kind in Set(fields.compactMap(\.indexKind)) {
                    try tx.setIndexTag(subject: subject, kind: kind, tag: nil)
                }
                return removed
            }
        }
    }

    /// Subjects whose email or phone equals `value` after normalisation, found through the blind
    /// index without decrypting anything.
    public func find(_ kind: IndexKind, value: [UInt8], as caller: Caller) throws -> [String] {
        let field = try FieldCatalogue.field(named: kind.rawValue)
        let normalized = try FieldValidator.normalize(value, for: field)
        let tag = try envelope.indexTag(kind: kind, normalized: normalized)
        return try Self.storageCall {
            try store.read { tx in
                try resolve(caller, in: tx).require(.operation(.find), "FIND")
                return try tx.subjects(indexKind: kind, tag: tag)
            }
        }
    }

    public func exists(subject: String, as caller: Caller) throws -> Bool {
        try SubjectID.validate(subject)
        return try Self.storageCall {
            try store.read { tx in
                try resolve(caller, in: tx).require(.operation(.exists), "EXISTS")
                return try tx.subjectKey(subject) != nil
            }
        }
    }

    /// Crypto-shreds a subject: its wrapped DEK, every ciphertext and every index entry go in one
    /// transaction, with `secure_delete` zeroing the freed space, and the WAL is then
    /// checkpointed and truncated so no page image of them survives on disk.
    public func shred(subject: String, as caller: Caller) throws -> Bool {
        try SubjectID.validate(subject)
        let existed = try Self.storageCall {
            try store.write { tx in
                try resolve(caller, in: tx).require(.operation(.shred), "SHRED")
                return try tx.deleteSubject(subject)
            }
        }
        if existed {
            let complete = try Self.storageCall { try store.checkpoint() }
            if !complete {
                logger.warning("WAL checkpoint after shred was partial; a later checkpoint will finish it")
            }
        }
        return existed
    }
}
