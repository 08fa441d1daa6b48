import CofferCrypto
import CofferStore
import Foundation

extension Vault {
    /// Writes several fields of one subject atomically: every field is checked (known,
    /// permitted, valid) before anything is written, and all are committed in one transaction
    /// together with the audit entry. Returns the number of distinct fields written.
    public func put(subject: String, values: [(field: String, value: [UInt8])], as caller: Caller) throws -> Int {
        try run(putCall(subject: subject, values: values, as: caller))
    }

    public func put(subject: String, values: [(field: String, value: [UInt8])], as caller: Caller) async throws -> Int {
        try await run(putCall(subject: subject, values: values, as: caller))
    }

    public func putCall(subject: String, values: [(field: String, value: [UInt8])], as caller: Caller) -> Call<Int> {
        // Last value wins when a field is repeated, as in HSET.
        var firstSeen: [String] = []
        var lastValue: [String: [UInt8]] = [:]
        for (field, value) in values where lastValue.updateValue(value, forKey: field) == nil {
            firstSeen.append(field)
        }
        let order = firstSeen
        // Validated here, before the command reaches the committer (which every command waits
        // on, and where validation was 12 % of a PUT's time); the outcome is only looked at in
        // the body, after the caller's checks, so that a caller who may not write learns nothing
        // of whether a value would have been valid, and errors come in the same order as before.
        let validated = order.map { name in
            Result { () throws -> [UInt8] in
                // An unknown field is refused in the body, before its value is looked at.
                guard let field = try? FieldCatalogue.field(named: name) else { return [] }
                return try FieldValidator.normalize(lastValue[name]!, for: field)
            }
        }
        return Call("PUT", caller, subject: subject, fields: order) { [self] tx, draft in
            let role = try resolve(caller, in: tx, recordingIn: &draft)
            try SubjectID.validate(subject)
            guard !order.isEmpty else { throw VaultError(.invalid, "PUT needs at least one field and value") }
            let fields = try order.map { try FieldCatalogue.field(named: $0) }
            for field in fields { try role.require(.write(field), "write field '\(field.name)'") }
            let normalized = try validated.map { try $0.get() }
            // This write's audit entry is appended right after this body, in the same savepoint:
            // its sequence number is the next one. Each field is sealed bound to it.
            let writeSeq = try (tx.lastAudit()?.seq ?? 0) + 1
            try scratch.withScratch { scratch in
                if let wrapped = try tx.subjectKey(subject) {
                    try envelope.unwrapDEK(wrapped, subject: subject, in: scratch)
                    try endTokensIfCardChanges(subject, zip(fields, normalized), tx, scratch)
                } else {
                    try tx.insertSubject(subject, key: envelope.newDEK(subject: subject, in: scratch))
                }
                for (field, value) in zip(fields, normalized) {
                    let sealed = try envelope.seal(
                        value, subject: subject, field: field.name, writeSeq: writeSeq, in: scratch)
                    try tx.upsertSealedField(subject: subject, name: field.name, sealed: sealed, writeSeq: writeSeq)
                    if let kind = field.indexKind {
                        try tx.setIndexTag(
                            subject: subject, kind: kind.rawValue, tag: envelope.indexTag(kind: kind, normalized: value)
                        )
                    }
                }
            }
            return fields.count
        }
    }

    /// Reads fields, plain or masked as the role allows; nil where a field (or the subject) is
    /// absent. A field the role may not read at all refuses the whole command.
    public func get(subject: String, fields names: [String], as caller: Caller) throws -> [[UInt8]?] {
        try run(getCall(subject: subject, fields: names, as: caller))
    }

    public func get(subject: String, fields names: [String], as caller: Caller) async throws -> [[UInt8]?] {
        try await run(getCall(subject: subject, fields: names, as: caller))
    }

    public func getCall(subject: String, fields names: [String], as caller: Caller) -> Call<[[UInt8]?]> {
        Call("GET", caller, subject: subject, fields: names, readOnly: true) { [self] tx, draft in
            let role = try resolve(caller, in: tx, recordingIn: &draft)
            try SubjectID.validate(subject)
            try Self.refuseDuplicates(names, "GET")
            let fields = try names.map { try FieldCatalogue.field(named: $0) }
            let grants = try fields.map { try role.requireRead($0) }
            return try readFields(subject, Array(zip(fields, grants)), tx, &draft).map(\.value)
        }
    }

    /// Every field of the subject the role may see, in catalogue order; fields the role may not
    /// read are left out. A role that may read nothing at all is refused.
    public func export(subject: String, as caller: Caller) throws -> [(field: String, value: [UInt8])] {
        try run(exportCall(subject: subject, as: caller))
    }

    public func export(subject: String, as caller: Caller) async throws -> [(field: String, value: [UInt8])] {
        try await run(exportCall(subject: subject, as: caller))
    }

    public func exportCall(subject: String, as caller: Caller) -> Call<[(field: String, value: [UInt8])]> {
        Call("EXPORT", caller, subject: subject, readOnly: true) { [self] tx, draft in
            let role = try resolve(caller, in: tx, recordingIn: &draft)
            try SubjectID.validate(subject)
            var needsPurpose = false
            let readable = FieldCatalogue.all.compactMap { field -> (Field, ReadGrant)? in
                do { return (field, try role.requireRead(field)) } catch let error as VaultError {
                    if error.code == .noPurpose { needsPurpose = true }
                    return nil
                } catch { return nil }
            }
            guard !readable.isEmpty else {
                if needsPurpose {
                    throw VaultError(.noPurpose, "role '\(role.name)' may EXPORT only for a stated purpose")
                }
                throw VaultError(.noPermission, "role '\(role.name)' may not EXPORT")
            }
            return try readFields(subject, readable, tx, &draft).compactMap { field, value in
                value.map { (field.name, $0) }
            }
        }
    }

    /// Most bytes of field values one command may return. With duplicates refused a GET can
    /// name each field once, so this bounds what one request of a few KB can make the vault
    /// decrypt and hold (it was 6,500× the request's size).
    public static let maximumReplyBytes = 8 * 1024 * 1024

    /// GET and DEL name each field at most once.
    static func refuseDuplicates(_ names: [String], _ command: String) throws {
        func refuse(_ name: String) -> VaultError {
            let shown = (try? FieldCatalogue.field(named: name)) != nil ? name : "(unknown)"
            return VaultError(.invalid, "\(command) names field '\(shown)' more than once")
        }
        // Most commands name one field or a few: comparing them in pairs costs less than
        // hashing each into a set (the set and its hashing were 2 % of the committer per GET).
        if names.count <= 8 {
            for index in names.indices.dropFirst() where names[..<index].contains(names[index]) {
                throw refuse(names[index])
            }
            return
        }
        var seen = Set<String>()
        for name in names where !seen.insert(name).inserted { throw refuse(name) }
    }

    /// Opens the requested fields under the grants given. A grant conditioned on consent answers
    /// as though the field were absent unless the subject's consent field says `yes`, and marks
    /// the audit entry `no-consent`.
    func readFields(
        _ subject: String, _ requested: [(Field, ReadGrant)], _ tx: any StoreReading, _ draft: inout AuditDraft
    ) throws -> [(field: Field, value: [UInt8]?)] {
        guard let wrapped = try tx.subjectKey(subject) else { return requested.map { ($0.0, nil) } }
        let consentFields = Set(requested.compactMap { $0.1.requiresConsent })
        let sealed = try tx.sealedFields(subject, names: requested.map(\.0.name) + consentFields)
        // Sealed sizes bound the plaintext sizes (plaintext = sealed - nonce - MAC), so this is checked
        // before anything is decrypted.
        let total = requested.reduce(0) { $0 + max(0, (sealed[$1.0.name]?.sealed.count ?? 0) - SecretBox.overhead) }
        guard total <= Self.maximumReplyBytes else {
            throw VaultError(
                .invalid,
                "the reply would hold \(total) bytes, more than \(Self.maximumReplyBytes); ask for fewer fields")
        }
        return try scratch.withScratch { scratch in
            try envelope.unwrapDEK(wrapped, subject: subject, in: scratch)
            var consent: [String: Bool] = [:]
            for name in consentFields {
                let value = try sealed[name].map { try envelope.open($0, subject: subject, name: name, in: scratch) }
                consent[name] = value == Array("yes".utf8)
            }
            return try requested.map { field, grant in
                if let condition = grant.requiresConsent, consent[condition] != true {
                    draft.outcome = .noConsent
                    return (field, nil)
                }
                guard let box = sealed[field.name] else { return (field, nil) }
                let plain = try envelope.open(box, subject: subject, name: field.name, in: scratch)
                return (field, grant.level == .masked ? Masking.mask(plain, for: field) : plain)
            }
        }
    }

    /// Removes fields (and their index entries). Needs write access to each field's category.
    public func delete(subject: String, fields names: [String], as caller: Caller) throws -> Int {
        try run(deleteCall(subject: subject, fields: names, as: caller))
    }

    public func delete(subject: String, fields names: [String], as caller: Caller) async throws -> Int {
        try await run(deleteCall(subject: subject, fields: names, as: caller))
    }

    public func deleteCall(subject: String, fields names: [String], as caller: Caller) -> Call<Int> {
        Call("DEL", caller, subject: subject, fields: names) { [self] tx, draft in
            let role = try resolve(caller, in: tx, recordingIn: &draft)
            try SubjectID.validate(subject)
            guard !names.isEmpty else { throw VaultError(.invalid, "DEL needs at least one field") }
            try Self.refuseDuplicates(names, "DEL")
            let fields = try names.map { try FieldCatalogue.field(named: $0) }
            for field in fields { try role.require(.write(field), "delete field '\(field.name)'") }
            let removed = try tx.deleteFields(subject: subject, names: fields.map(\.name))
            for kind in Set(fields.compactMap(\.indexKind)) {
                try tx.setIndexTag(subject: subject, kind: kind.rawValue, tag: nil)
            }
            // A token stands for the card stored when it was made; with the card gone, it ends.
            if fields.contains(where: { $0.name == Self.tokenizableField }) {
                _ = try tx.deleteTokens(subject: subject)
            }
            return removed
        }
    }

    /// Subjects whose email or phone equals `value` after normalisation, found through the blind
    /// index without decrypting anything. The value itself is never audited.
    public func find(_ kind: IndexKind, value: [UInt8], as caller: Caller) throws -> [String] {
        try run(findCall(kind, value: value, as: caller))
    }

    public func find(_ kind: IndexKind, value: [UInt8], as caller: Caller) async throws -> [String] {
        try await run(findCall(kind, value: value, as: caller))
    }

    public func findCall(_ kind: IndexKind, value: [UInt8], as caller: Caller) -> Call<[String]> {
        Call("FIND", caller, fields: [kind.rawValue], readOnly: true) { [self] tx, draft in
            try resolve(caller, in: tx, recordingIn: &draft).require(.operation(.find), "FIND")
            let field = try FieldCatalogue.field(named: kind.rawValue)
            let normalized = try FieldValidator.normalize(value, for: field)
            return try tx.subjects(indexKind: kind.rawValue, tag: envelope.indexTag(kind: kind, normalized: normalized))
        }
    }

    public func exists(subject: String, as caller: Caller) throws -> Bool {
        try run(existsCall(subject: subject, as: caller))
    }

    public func exists(subject: String, as caller: Caller) async throws -> Bool {
        try await run(existsCall(subject: subject, as: caller))
    }

    public func existsCall(subject: String, as caller: Caller) -> Call<Bool> {
        Call("EXISTS", caller, subject: subject, readOnly: true) { [self] tx, draft in
            try resolve(caller, in: tx, recordingIn: &draft).require(.operation(.exists), "EXISTS")
            try SubjectID.validate(subject)
            return try tx.subjectKey(subject) != nil
        }
    }

    /// Crypto-shreds a subject: its wrapped DEK, every ciphertext and every index entry go in one
    /// transaction, with `secure_delete` zeroing the freed space; from then on nothing of it can
    /// be read. The page images from before the shred that the WAL still holds are then wiped by
    /// a TRUNCATE checkpoint, tried at once without waiting: if a reader (a long backup) still
    /// holds an older snapshot, the wipe is left to the background checkpointer, which retries
    /// without blocking anyone and audits `SHRED.WIPED` when the bytes are gone. No other
    /// client ever waits on a wipe. The subject's audit entries (no personal data) stay.
    public func shred(subject: String, as caller: Caller) throws -> ShredOutcome {
        let existed = try audited("SHRED", caller, subject: subject) { [self] tx, draft in
            try resolve(caller, in: tx, recordingIn: &draft).require(.operation(.shred), "SHRED")
            try SubjectID.validate(subject)
            // The wipe it owes is recorded with the shred itself, so that whichever process
            // owns the vault next knows of it if this one stops before the wipe.
            guard try tx.deleteSubject(subject) else { return (existed: false, recorded: false) }
            return (existed: true, recorded: try tx.addPendingWipe(subject))
        }
        guard existed.existed else { return .absent }
        // Tries for up to a second, never waiting on a lock (so nobody waits on this SHRED): the
        // background checkpoint or a commit batch holds what a TRUNCATE needs for moments only,
        // while a reader's old snapshot (a backup) lasts; then the wipe is left pending.
        for attempt in 0..<50 where !store.wipePending {
            if attempt > 0 { usleep(20_000) }
            if store.tryWipe() {
                // Owed no more. Were this lost, the next owner would audit a wipe that did happen.
                if existed.recorded { try? committer.perform { tx in try tx.removePendingWipes([subject]) } }
                return .wiped
            }
        }
        pendingWipes.withLock { $0.append(subject) }
        store.requestWipe()
        logger.notice("shred committed; the WAL wipe waits for a reader to finish")
        return .pending
    }

    /// Takes over, in the process that owns the vault, the wipes a previous one left owed (it
    /// stopped or was killed while a reader held the log): wiped and audited now, before `open`
    /// returns, or as soon as that reader lets go.
    func takeOverPendingWipes() throws {
        let persisted = try Self.storageCall { try store.read { try $0.pendingWipes() } }
        guard !persisted.isEmpty else { return }
        pendingWipes.withLock { pending in pending += persisted.filter { !pending.contains($0) } }
        // Tried for up to a second, as SHRED does: the background checkpointer's first pass,
        // which starts with the store, holds the checkpoint lock for a moment, and a command
        // run offline exits before any retry of its own.
        var wiped = false
        for attempt in 0..<50 where !wiped {
            if attempt > 0 { usleep(20_000) }
            wiped = store.tryWipe()
        }
        if wiped {
            // The list was read before this wipe, which so covers every subject on it.
            auditWipes(pendingWipes.withLock { $0 })
        } else {
            logger.notice("shreds whose WAL wipe waits for a reader", metadata: ["count": "\(persisted.count)"])
            store.requestWipe()
        }
    }

    /// True while a shred's wipe waits behind a reader.
    public var wipePending: Bool { store.wipePending || !pendingWipes.withLock(\.isEmpty) }

    /// Called by the store once a requested wipe has completed: audits it for every subject
    /// whose shred was waiting.
    func auditCompletedWipes() {
        // Taken off the list only once audited, so `wipePending` stays true until then.
        let subjects = pendingWipes.withLock { $0 }
        guard !subjects.isEmpty else { return }
        // A shred listed while the wipe that called this ran may have page images it did not
        // reach: wiped again now that the list is read (quick: the log is nearly empty).
        guard store.tryWipe() else {
            store.requestWipe()
            return
        }
        auditWipes(subjects)
    }

    /// Audits `SHRED.WIPED` for `subjects` (the first ones of the pending list), whose page
    /// images a wipe begun after they were listed has removed.
    private func auditWipes(_ subjects: [String]) {
        guard !subjects.isEmpty else { return }
        defer { pendingWipes.withLock { $0.removeFirst(min(subjects.count, $0.count)) } }
        do {
            try committer.perform { [audit] tx in
                for subject in subjects {
                    try audit.append(
                        AuditDraft(
                            client: "(vault)", role: "-", origin: "local", command: "SHRED.WIPED", subject: subject,
                            fields: []), in: tx)
                }
                try tx.removePendingWipes(subjects)
            }
        } catch {
            logger.error("the audit entries of completed shred wipes could not be written")
        }
    }
}

/// What SHRED did.
public enum ShredOutcome: Sendable, Hashable {
    /// No such subject.
    case absent
    /// Shredded, and no byte of it remains in any file of the data directory.
    case wiped
    /// Shredded (nothing of it can be read any more), but old page images wait in the WAL for a
    /// reader's snapshot to end; the background checkpointer wipes them and audits `SHRED.WIPED`.
    case pending
}
