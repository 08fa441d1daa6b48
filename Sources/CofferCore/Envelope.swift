import CofferCrypto
import CofferStore

/// The envelope scheme: a per-subject DEK wrapped under a KEK, and per-field keys derived
/// from the DEK.
///
/// - The wrapping key is BLAKE2b(KEK, "coffer.wrap.v1", subject), so a wrapped DEK moved onto
///   another subject's row does not open.
/// - The field key is BLAKE2b(DEK, "coffer.field.v1", subject, field), so a sealed value moved
///   to another field or subject does not open.
///
/// Working keys live in the slots of a `KeyScratch`: slot 0 the wrapping key, slot 1 the DEK,
/// slot 2 the field key.
struct Envelope: Sendable {
    static let wrapLabel = "coffer.wrap.v1"
    static let fieldLabel = "coffer.field.v1"
    static let fieldLabelV2 = "coffer.field.v2"

    let keys: KeyRing

    /// Puts a fresh random DEK in slot 1 and returns it wrapped under the current KEK.
    func newDEK(subject: String, in scratch: KeyScratch) throws -> WrappedKey {
        try scratch.withSlot(1) { try Random.fill($0) }
        return try wrapDEK(subject: subject, in: scratch)
    }

    /// Wraps the DEK in slot 1 under the current KEK.
    func wrapDEK(subject: String, in scratch: KeyScratch) throws -> WrappedKey {
        guard let (version, kek) = keys.currentKEK() else {
            throw VaultError(.keys, "the current KEK is not loaded")
        }
        try deriveWrappingKey(kek, subject: subject, in: scratch)
        let sealed = try scratch.withSlot(0) { wrapKey in
            try scratch.withSlot(1) { dek in
                try SecretBox.seal(UnsafeRawBufferPointer(dek), key: UnsafeRawBufferPointer(wrapKey))
            }
        }
        return WrappedKey(kekVersion: version, sealed: sealed)
    }

    /// Unwraps `wrapped` into slot 1.
    func unwrapDEK(_ wrapped: WrappedKey, subject: String, in scratch: KeyScratch) throws {
        try deriveWrappingKey(keys.kek(version: wrapped.kekVersion), subject: subject, in: scratch)
        do {
            try wrapped.sealed.withUnsafeBytes { sealed in
                try scratch.withSlot(0) { wrapKey in
                    try scratch.withSlot(1) { dek in
                        try SecretBox.open(sealed, key: UnsafeRawBufferPointer(wrapKey), into: dek)
                    }
                }
            }
        } catch let error as CryptoError {
            throw VaultError(.integrity, "the data key of subject '\(subject)' failed to open: \(error)")
        }
    }

    private func deriveWrappingKey(_ kek: SymmetricKey, subject: String, in scratch: KeyScratch) throws {
        try kek.withUnsafeBytes { kekBytes in
            try scratch.withSlot(0) { out in
                try KeyedHash.hash(
                    key: kekBytes, label: Self.wrapLabel, capacity: 40 + subject.utf8.count, into: out
                ) { $0.part(subject.utf8) }
            }
        }
    }

    /// Derives the key for (subject, field, write) from the DEK in slot 1 into slot 2. Fields
    /// sealed before write sequence numbers existed (`writeSeq` nil) use the v1 derivation.
    private func deriveFieldKey(subject: String, field: String, writeSeq: Int64?, in scratch: KeyScratch) throws {
        try scratch.withSlot(1) { dek in
            try scratch.withSlot(2) { out in
                // The parts written in place, not gathered into arrays first (this runs for every
                // field of every GET and PUT), into a message sized never to grow: growing would
                // free a copy without wiping it.
                try KeyedHash.hash(
                    key: UnsafeRawBufferPointer(dek), label: writeSeq == nil ? Self.fieldLabel : Self.fieldLabelV2,
                    capacity: 80 + subject.utf8.count + field.utf8.count, into: out
                ) { message in
                    message.part(subject.utf8)
                    message.part(field.utf8)
                    if let writeSeq { message.part(String(writeSeq).utf8) }
                }
            }
        }
    }

    /// Seals a field value under the DEK in slot 1, bound to the audit sequence number of the
    /// write that makes it: the sealed value opens only with that number.
    func seal(_ value: [UInt8], subject: String, field: String, writeSeq: Int64, in scratch: KeyScratch) throws
        -> [UInt8]
    {
        try deriveFieldKey(subject: subject, field: field, writeSeq: writeSeq, in: scratch)
        return try scratch.withSlot(2) { key in try SecretBox.seal(value, key: UnsafeRawBufferPointer(key)) }
    }

    /// Opens a sealed field value under the DEK in slot 1.
    func open(_ field: SealedField, subject: String, name: String, in scratch: KeyScratch) throws -> [UInt8] {
        try open(field.sealed, subject: subject, field: name, writeSeq: field.writeSeq, in: scratch)
    }

    func open(_ sealed: [UInt8], subject: String, field: String, writeSeq: Int64?, in scratch: KeyScratch) throws
        -> [UInt8]
    {
        try deriveFieldKey(subject: subject, field: field, writeSeq: writeSeq, in: scratch)
        do {
            return try scratch.withSlot(2) { key in try SecretBox.open(sealed, key: UnsafeRawBufferPointer(key)) }
        } catch let error as CryptoError {
            throw VaultError(.integrity, "field '\(field)' of subject '\(subject)' failed to open: \(error)")
        }
    }

    /// The blind-index tag of an already normalised email or phone.
    func indexTag(kind: IndexKind, normalized: [UInt8]) throws -> [UInt8] {
        try keys.indexKey.withUnsafeBytes { key in
            try KeyedHash.hash(key: key, label: "coffer.index.\(kind.rawValue).v1", parts: [normalized])
        }
    }
}
