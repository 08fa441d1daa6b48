import CofferStore
import Foundation

@_exported import protocol CofferStore.CompletionExecutor
@_exported import protocol CofferStore.CompletionHop

extension Caller {
    /// How the caller appears in the audit trail.
    var auditName: String {
        switch identity {
        case .client(let name, _): name
        case .localOperator: "(operator)"
        case .anonymous: "-"
        }
    }
}

/// One audited command, described once and run blocking (CLI, tests), async, or with a
/// completion on the caller's executor (the server's event loops).
public struct Call<T: Sendable>: Sendable {
    let command: String
    let caller: Caller
    let subject: String?
    let fields: [String]
    /// The body writes nothing (GET, EXISTS, FIND, EXPORT): if it fails there is nothing to roll
    /// back, so it runs without a savepoint of its own and only its audit entry is written.
    let readOnly: Bool
    let body: @Sendable (any StoreWriting, inout AuditDraft) throws -> T

    init(
        _ command: String, _ caller: Caller, subject: String? = nil, fields: [String] = [], readOnly: Bool = false,
        _ body: @escaping @Sendable (any StoreWriting, inout AuditDraft) throws -> T
    ) {
        self.command = command
        self.caller = caller
        self.subject = subject
        self.fields = fields
        self.readOnly = readOnly
        self.body = body
    }
}

extension Vault {
    func run<T: Sendable>(_ call: Call<T>) throws -> T {
        try audited(
            call.command, call.caller, subject: call.subject, fields: call.fields, readOnly: call.readOnly, call.body)
    }

    func run<T: Sendable>(_ call: Call<T>) async throws -> T {
        try await audited(
            call.command, call.caller, subject: call.subject, fields: call.fields, readOnly: call.readOnly, call.body)
    }

    /// Runs `call` in the next group-commit batch and calls `completion` on `executor` once
    /// that batch is durable: the reply (and any value in it) leaves only after its audit entry
    /// is on disk, and if the entry cannot be written the command fails.
    public func submit<T: Sendable>(
        _ call: Call<T>, on executor: any CompletionExecutor,
        completion: @escaping @Sendable (Result<T, VaultError>) -> Void
    ) {
        let draft = auditDraft(call.command, call.caller, subject: call.subject, fields: call.fields)
        committer.submit(
            ownSavepoint: true, on: executor,
            { tx in
                self.auditedUnit(tx, draft, readOnly: call.readOnly, call.body)
            }
        ) {
            switch $0 {
            case .success(.success(let value)): completion(.success(value))
            case .success(.failure(let error)), .failure(let error): completion(.failure(Self.mapped(error)))
            }
        }
    }

    /// Runs one command in one write transaction that also appends its audit entry, so the
    /// command's effect and its entry commit together or not at all. If the command fails, its
    /// entry (denied, invalid, error) is written in a transaction of its own. If no entry can be
    /// written, the command fails and returns nothing: the vault fails closed.
    ///
    /// Subject ids and field names go into the entry only once validated, so a mistyped email
    /// in place of an id never reaches the trail.
    func audited<T: Sendable>(
        _ command: String, _ caller: Caller, subject: String? = nil, fields: [String] = [], readOnly: Bool = false,
        _ body: @escaping @Sendable (any StoreWriting, inout AuditDraft) throws -> T
    ) throws -> T {
        let draft = auditDraft(command, caller, subject: subject, fields: fields)
        return try Self.storageCall {
            try committer.perform(ownSavepoint: true) { tx in self.auditedUnit(tx, draft, readOnly: readOnly, body) }
        }.get()
    }

    /// The same, for async callers (the server): the calling task is suspended, not a thread.
    func audited<T: Sendable>(
        _ command: String, _ caller: Caller, subject: String? = nil, fields: [String] = [], readOnly: Bool = false,
        _ body: @escaping @Sendable (any StoreWriting, inout AuditDraft) throws -> T
    ) async throws -> T {
        let draft = auditDraft(command, caller, subject: subject, fields: fields)
        do {
            return try await committer.perform(ownSavepoint: true) { tx in
                self.auditedUnit(tx, draft, readOnly: readOnly, body)
            }.get()
        } catch let error as VaultError {
            throw error
        } catch {
            throw VaultError(.storage, "storage failed: \(error)")
        }
    }

    /// `kek:N`, which the key commands record in place of field names.
    static func isKEKLabel(_ text: String) -> Bool {
        text.hasPrefix("kek:") && text.count <= 14 && UInt32(text.dropFirst(4)) != nil
    }

    /// At most this many field names go into one entry; the rest are counted, so a command
    /// naming a thousand fields writes a small entry, not a 15 KB one. It is never less than the
    /// catalogue, so a PUT's entry names every field it wrote (AUDIT.VERIFY relies on that).
    static let auditedFieldNames = max(16, FieldCatalogue.all.count)

    private func auditDraft(_ command: String, _ caller: Caller, subject: String?, fields: [String]) -> AuditDraft {
        var shown = fields.prefix(Self.auditedFieldNames).map {
            (try? FieldCatalogue.field(named: $0)) != nil || Self.isKEKLabel($0) ? $0 : "(unknown)"
        }
        if fields.count > Self.auditedFieldNames { shown.append("(+\(fields.count - Self.auditedFieldNames) more)") }
        return AuditDraft(
            client: caller.auditName, role: "-", origin: caller.origin, command: command,
            subject: subject.map { (try? SubjectID.validate($0)) != nil ? $0 : "(invalid)" }, fields: shown,
            purpose: caller.purpose)
    }

    /// One command inside a group-commit batch. The command and its entry share a savepoint;
    /// if the command fails, its savepoint is rolled back and the failure's entry is appended
    /// instead. The outcome is returned, not thrown, so the failure's entry commits with the
    /// batch. A read-only body has nothing to roll back, and where a failed statement undoes only
    /// itself (SQLite) the store runs it without a savepoint (`readingSavepoint`).
    private func auditedUnit<T>(
        _ tx: any StoreWriting, _ initial: AuditDraft, readOnly: Bool,
        _ body: (any StoreWriting, inout AuditDraft) throws -> T
    ) -> Result<T, any Error> {
        var draft = initial
        var bodyFailed = false
        func unit() throws -> T {
            let result: T
            do { result = try body(tx, &draft) } catch {
                bodyFailed = true
                throw error
            }
            try audit.append(draft, in: tx)
            return result
        }
        do {
            return .success(try readOnly ? tx.readingSavepoint(unit) : tx.savepoint(unit))
        } catch {
            guard bodyFailed else {
                logger.error(
                    "audit entry could not be written; command refused", metadata: ["command": "\(draft.command)"])
                return .failure(
                    VaultError(.storage, "the audit entry could not be written, so the command was not carried out"))
            }
            draft.outcome = AuditOutcome(error)
            do {
                let append = { [audit, draft] in try audit.append(draft, in: tx) }
                _ = try readOnly ? tx.readingSavepoint(append) : tx.savepoint(append)
            } catch {
                logger.error(
                    "audit entry of a failed command could not be written", metadata: ["command": "\(draft.command)"])
            }
            return .failure(Self.mapped(error))
        }
    }

    /// `AUDIT.TAIL`: the newest `count` entries (1…1000) before its own, oldest first, as JSON
    /// lines. Only the check and its own entry go through the commit batch; the entries are
    /// read and formatted afterwards on a read snapshot, so a TAIL never holds up the commands
    /// that share its batch (it held every GET, PUT and AUTH for 132 ms).
    public func auditTail(_ count: Int, as caller: Caller) throws -> [String] {
        let before = try audited("AUDIT.TAIL", caller) { [self] tx, draft in
            let role = try resolve(caller, in: tx)
            draft.role = role.name
            try role.require(.operation(.audit), "AUDIT.TAIL")
            // After the role check, so that a client without the audit grant learns NOPERM.
            guard (1...1000).contains(count) else {
                throw VaultError(.invalid, "AUDIT.TAIL count must be 1 to 1000")
            }
            // The entry just before this command's own, which is appended right after.
            return try tx.lastAudit()?.seq ?? 0
        }
        let records = try Self.storageCall {
            try store.read { try $0.auditRecords(after: max(0, before - Int64(count)), limit: count) }
        }
        return records.filter { $0.seq <= before }.map(AuditLog.json)
    }

    /// The result of walking the audit chain.
    public enum AuditVerification: Sendable, Equatable {
        case verified(count: Int)
        case tampered(seq: Int64, reason: String)
    }

    /// `AUDIT.VERIFY`: recomputes every MAC of the chain, page by page on read snapshots (never
    /// inside a commit batch). A client runs one VERIFY at a time: another one from the same
    /// client while the first runs gets `BUSY`.
    public func verifyAudit(as caller: Caller) throws -> AuditVerification {
        try audited("AUDIT.VERIFY", caller) { [self] tx, draft in
            let role = try resolve(caller, in: tx)
            draft.role = role.name
            try role.require(.operation(.audit), "AUDIT.VERIFY")
        }
        let runner = caller.auditName
        guard longCommands.withLock({ $0.insert(runner).inserted }) else {
            throw VaultError(.busy, "an AUDIT.VERIFY of client '\(runner)' is running already")
        }
        defer { _ = longCommands.withLock { $0.remove(runner) } }
        switch try Self.storageCall({ try audit.verify(store) }) {
        case .ok(let count):
            if let rolledBack = try Self.storageCall({ try firstRolledBackField() }) { return rolledBack }
            return .verified(count: count)
        case .tampered(let seq, let reason): return .tampered(seq: seq, reason: reason)
        }
    }

    /// Every stored field sealed bound to a write (its key derived from that write's audit
    /// sequence number) must be the latest write of that subject and field in the verified
    /// chain. A field copied back from an older copy of the database opens (it is a genuine
    /// old write), but is caught here. Fields sealed before write numbers existed are skipped.
    func firstRolledBackField() throws -> AuditVerification? {
        var written: [String: [String: Int64]] = [:]
        var rekeyed: [String: Int64] = [:]
        var after: Int64 = 0
        while true {
            let page = try store.read { try $0.auditRecords(after: after, limit: 5000) }
            guard let last = page.last else { break }
            after = last.seq
            for record in page where record.outcome == AuditOutcome.ok.rawValue {
                guard let subject = record.subject else { continue }
                let fields = record.fields.split(separator: ",").map(String.init)
                switch record.command {
                case "PUT": for field in fields { written[subject, default: [:]][field] = record.seq }
                case "DEL": for field in fields { written[subject]?[field] = nil }
                case "REKEY": rekeyed[subject] = record.seq
                case "SHRED":
                    written[subject] = nil
                    rekeyed[subject] = nil
                default: break
                }
            }
        }
        var position: (subject: String, name: String)?
        while true {
            let page = try store.read { try $0.fieldWrites(after: position, limit: 5000) }
            guard let last = page.last else { return nil }
            position = (last.subject, last.name)
            for row in page {
                guard let writeSeq = row.writeSeq else { continue }
                let expected = max(written[row.subject]?[row.name] ?? 0, rekeyed[row.subject] ?? 0)
                if writeSeq != expected {
                    return .tampered(
                        seq: writeSeq,
                        reason:
                            "field '\(row.name)' of subject '\(row.subject)' holds the write of entry \(writeSeq), but the trail's latest write of it is entry \(expected) (rolled back?)"
                    )
                }
            }
        }
    }

    /// `coffer audit export`: entries after `since`, as JSON lines, in pages.
    public func exportAudit(since: Int64, as caller: Caller, page: (_ lines: [String]) throws -> Void) throws {
        try audited("AUDIT.EXPORT", caller) { [self] tx, draft in
            let role = try resolve(caller, in: tx)
            draft.role = role.name
            try role.require(.operation(.audit), "AUDIT.EXPORT")
        }
        var after = since
        while true {
            let records = try Self.storageCall { try store.read { try $0.auditRecords(after: after, limit: 5000) } }
            if records.isEmpty { return }
            try page(records.map(AuditLog.json))
            after = records.last!.seq
        }
    }
}
