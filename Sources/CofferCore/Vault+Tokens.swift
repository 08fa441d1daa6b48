import CofferCrypto
import CofferStore
import Synchronization

/// What DETOKENIZE answers: the subject a token stands for, and its card number at the
/// caller's read level.
public struct Detokenized: Sendable, Hashable {
    public let subject: String
    public let value: [UInt8]
}

extension Vault {
    /// The one field a token may stand for.
    static let tokenizableField = "card.pan"

    /// `TOKENIZE`: a token for the subject's stored card number, or nil if it has none. Needs the
    /// `tokenize` operation and a read grant (plain or masked) on the field, since the token shows
    /// its last four digits. With `reuse`, the subject's newest token of that format, if any, is
    /// returned instead of a new one.
    public func tokenize(
        subject: String, field: String, format: CardToken.Format = .last4, reuse: Bool = false, as caller: Caller
    ) throws -> String? {
        try run(tokenizeCall(subject: subject, field: field, format: format, reuse: reuse, as: caller))
    }

    public func tokenizeCall(
        subject: String, field name: String, format: CardToken.Format, reuse: Bool, as caller: Caller
    ) -> Call<String?> {
        Call("TOKENIZE", caller, subject: subject, fields: [name]) { [self] tx, draft in
            let role = try resolve(caller, in: tx, recordingIn: &draft)
            try role.require(.operation(.tokenize), "TOKENIZE")
            try SubjectID.validate(subject)
            let field = try Self.tokenField(named: name)
            let grant = try role.requireRead(field)
            // The plain number is needed for its length and last four digits, whatever the
            // caller's level; the consent condition of the caller's grant still applies, to REUSE
            // too.
            let opened = try readFields(
                subject, [(field, ReadGrant(level: .plain, requiresConsent: grant.requiresConsent))], tx, &draft)
            guard var pan = opened.first?.value else { return nil }
            defer { Random.wipe(&pan) }
            if reuse, let newest = try tx.newestToken(subject: subject, format: format.rawValue) {
                return try scratch.withScratch {
                    String(decoding: try envelope.openToken(newest, in: $0), as: UTF8.self)
                }
            }
            let token = try CardToken.mint(format, pan: pan) {
                try tx.token(hash: envelope.tokenHash(Array($0.utf8))) != nil
            }
            // Its audit entry is appended right after this body: the seal is bound to that number.
            let createdSeq = try (tx.lastAudit()?.seq ?? 0) + 1
            let bytes = Array(token.utf8)
            let sealed = try scratch.withScratch {
                try envelope.sealToken(bytes, subject: subject, format: format.rawValue, createdSeq: createdSeq, in: $0)
            }
            try tx.insertToken(
                TokenRecord(
                    hash: envelope.tokenHash(bytes), subject: subject, field: field.name, format: format.rawValue,
                    sealed: sealed, createdSeq: createdSeq))
            return token
        }
    }

    /// `DETOKENIZE`: the subject and card number a token stands for, at the caller's read level
    /// of the field (plain, masked, or NOPERM), decided before the token is looked up. An
    /// unknown, revoked or ended token answers nil, is audited `unknown-token` and counted.
    public func detokenize(_ token: [UInt8], as caller: Caller) throws -> Detokenized? {
        try run(detokenizeCall(token, as: caller))
    }

    public func detokenizeCall(_ token: [UInt8], as caller: Caller) -> Call<Detokenized?> {
        Call("DETOKENIZE", caller) { [self] tx, draft in
            let role = try resolve(caller, in: tx, recordingIn: &draft)
            try role.require(.operation(.detokenize), "DETOKENIZE")
            let grant = try role.requireRead(try FieldCatalogue.field(named: Self.tokenizableField))
            guard let record = try storedToken(token, tx, &draft) else { return nil }
            let field = try Self.tokenField(named: record.field)
            guard let value = try readFields(record.subject, [(field, grant)], tx, &draft).first?.value else {
                return nil
            }
            return Detokenized(subject: record.subject, value: value)
        }
    }

    /// `TOKEN.REVOKE`: ends a token; false if it was unknown (or ended already). Needs `tokenize`.
    public func revokeToken(_ token: [UInt8], as caller: Caller) throws -> Bool {
        try run(revokeTokenCall(token, as: caller))
    }

    public func revokeTokenCall(_ token: [UInt8], as caller: Caller) -> Call<Bool> {
        Call("TOKEN.REVOKE", caller) { [self] tx, draft in
            try resolve(caller, in: tx, recordingIn: &draft).require(.operation(.tokenize), "TOKEN.REVOKE")
            guard let record = try storedToken(token, tx, &draft) else { return false }
            return try tx.deleteToken(hash: record.hash)
        }
    }

    /// How many DETOKENIZE and TOKEN.REVOKE calls named a token the vault does not know, since
    /// it opened: many of them mean someone is guessing.
    public var unknownTokenCount: Int { unknownTokens.load(ordering: .relaxed) }

    /// The row of `token`, naming its subject and field in the audit entry; nil (audited as
    /// `unknown-token` and counted) if there is none. The token itself is never audited.
    private func storedToken(_ token: [UInt8], _ tx: any StoreReading, _ draft: inout AuditDraft) throws
        -> TokenRecord?
    {
        guard (1...CardToken.maximumLength).contains(token.count) else {
            throw VaultError(.invalid, "a token is 1 to \(CardToken.maximumLength) bytes long")
        }
        guard let record = try tx.token(hash: envelope.tokenHash(token)) else {
            draft.outcome = .unknownToken
            unknownTokens.add(1, ordering: .relaxed)
            return nil
        }
        draft.subject = record.subject
        draft.fields = [record.field]
        return record
    }

    static func tokenField(named name: String) throws -> Field {
        let field = try FieldCatalogue.field(named: name)
        guard field.name == tokenizableField else {
            throw VaultError(.invalid, "only \(tokenizableField) can be tokenized, not '\(field.name)'")
        }
        return field
    }

    /// A token stands for the card stored when it was made: writing a different card number ends
    /// the subject's tokens (the same number again keeps them). Called by PUT with the subject's
    /// DEK in slot 1.
    func endTokensIfCardChanges(
        _ subject: String, _ writes: some Sequence<(Field, [UInt8])>, _ tx: any StoreWriting, _ scratch: KeyScratch
    ) throws {
        guard let new = writes.first(where: { $0.0.name == Self.tokenizableField })?.1,
            let old = try tx.sealedFields(subject, names: [Self.tokenizableField])[Self.tokenizableField]
        else { return }
        var plain = try envelope.open(old, subject: subject, name: Self.tokenizableField, in: scratch)
        defer { Random.wipe(&plain) }
        if !ConstantTime.equals(plain, new) { _ = try tx.deleteTokens(subject: subject) }
    }
}
