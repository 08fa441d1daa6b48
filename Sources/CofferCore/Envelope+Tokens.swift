import CofferCrypto
import CofferStore

/// Card tokens under the index key, beside the blind index: neither ever holds a value, and
/// neither depends on a subject's DEK, so REKEY and KEK rotation leave tokens alone.
///
/// - Lookup: `hash = BLAKE2b(index.key, "coffer.token.v1", token)`, the row's primary key.
///   Without the key, the hash cannot be checked against guessed tokens.
/// - `sealed = secretbox(token, BLAKE2b(index.key, "coffer.token-seal.v1", subject, format,
///   created_seq))`, so that `REUSE` can give the token out again; bound to its row, so a sealed
///   token moved to another subject or format does not open.
extension Envelope {
    static let tokenHashLabel = "coffer.token.v1"
    static let tokenSealLabel = "coffer.token-seal.v1"

    func tokenHash(_ token: [UInt8]) throws -> [UInt8] {
        try keys.indexKey.withUnsafeBytes { key in
            try KeyedHash.hash(key: key, label: Self.tokenHashLabel, parts: [token])
        }
    }

    func sealToken(
        _ token: [UInt8], subject: String, format: String, createdSeq: Int64, in scratch: KeyScratch
    ) throws -> [UInt8] {
        try deriveTokenKey(subject: subject, format: format, createdSeq: createdSeq, in: scratch)
        return try scratch.withSlot(2) { key in try SecretBox.seal(token, key: UnsafeRawBufferPointer(key)) }
    }

    /// Opens a stored token and checks it against the row's hash.
    func openToken(_ record: TokenRecord, in scratch: KeyScratch) throws -> [UInt8] {
        try deriveTokenKey(subject: record.subject, format: record.format, createdSeq: record.createdSeq, in: scratch)
        let token: [UInt8]
        do {
            token = try scratch.withSlot(2) { key in
                try SecretBox.open(record.sealed, key: UnsafeRawBufferPointer(key))
            }
        } catch let error as CryptoError {
            throw VaultError(.integrity, "a token of subject '\(record.subject)' failed to open: \(error)")
        }
        guard ConstantTime.equals(try tokenHash(token), record.hash) else {
            throw VaultError(.integrity, "a token of subject '\(record.subject)' does not match its hash")
        }
        return token
    }

    private func deriveTokenKey(subject: String, format: String, createdSeq: Int64, in scratch: KeyScratch) throws {
        try keys.indexKey.withUnsafeBytes { key in
            try scratch.withSlot(2) { out in
                try KeyedHash.hash(
                    key: key, label: Self.tokenSealLabel,
                    parts: [Array(subject.utf8), Array(format.utf8), Array(String(createdSeq).utf8)], into: out)
            }
        }
    }
}
