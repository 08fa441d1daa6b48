internal import CSodium

/// XSalsa20-Poly1305 authenticated encryption (`crypto_secretbox_easy`). A sealed box is laid
/// out as `nonce ‖ MAC ‖ ciphertext`, with a fresh random nonce on every seal.
public enum SecretBox {
    public static let keyLength = Int(crypto_secretbox_KEYBYTES)
    public static let nonceLength = Int(crypto_secretbox_NONCEBYTES)
    public static let macLength = Int(crypto_secretbox_MACBYTES)
    public static let overhead = nonceLength + macLength

    /// Seals `plaintext` under `key` (exactly `keyLength` bytes).
    public static func seal(_ plaintext: UnsafeRawBufferPointer, key: UnsafeRawBufferPointer) throws
        -> [UInt8]
    {
        try Sodium.ensureInitialized()
        guard key.count == keyLength, let keyBase = key.baseAddress else { throw CryptoError(.wrongKeyLength) }
        let total = overhead + plaintext.count
        var failed = false
        let sealed = [UInt8](unsafeUninitializedCapacity: total) { out, initialized in
            let base = out.baseAddress!
            randombytes_buf(base, nonceLength)
            let rc = crypto_secretbox_easy(
                base + nonceLength,
                plaintext.baseAddress?.assumingMemoryBound(to: UInt8.self),
                UInt64(plaintext.count),
                base,
                keyBase.assumingMemoryBound(to: UInt8.self)
            )
            failed = rc != 0
            initialized = total
        }
        if failed { throw CryptoError(.authenticationFailed) }
        return sealed
    }

    public static func seal(_ plaintext: [UInt8], key: UnsafeRawBufferPointer) throws -> [UInt8] {
        try plaintext.withUnsafeBytes { raw in try seal(raw, key: key) }
    }

    /// The plaintext length a sealed box of `sealedCount` bytes holds, or nil if it is too short.
    public static func plaintextLength(ofSealed sealedCount: Int) -> Int? {
        sealedCount >= overhead ? sealedCount - overhead : nil
    }

    /// Opens `sealed` into `output`, which must hold exactly the plaintext length. Used to unwrap
    /// keys straight into guarded memory.
    public static func open(
        _ sealed: UnsafeRawBufferPointer,
        key: UnsafeRawBufferPointer,
        into output: UnsafeMutableRawBufferPointer
    ) throws {
        try Sodium.ensureInitialized()
        guard key.count == keyLength, let keyBase = key.baseAddress else { throw CryptoError(.wrongKeyLength) }
        guard let length = plaintextLength(ofSealed: sealed.count), let base = sealed.baseAddress else {
            throw CryptoError(.ciphertextTooShort)
        }
        precondition(output.count == length, "output buffer must match the plaintext length")
        let bytes = base.assumingMemoryBound(to: UInt8.self)
        let rc = crypto_secretbox_open_easy(
            output.baseAddress?.assumingMemoryBound(to: UInt8.self),
            bytes + nonceLength,
            UInt64(sealed.count - nonceLength),
            bytes,
            keyBase.assumingMemoryBound(to: UInt8.self)
        )
        guard rc == 0 else { throw CryptoError(.authenticationFailed) }
    }

    /// Opens `sealed` and returns the plaintext. For field values, which are not key material.
    public static func open(_ sealed: [UInt8], key: UnsafeRawBufferPointer) throws -> [UInt8] {
        guard let length = plaintextLength(ofSealed: sealed.count) else { throw CryptoError(.ciphertextTooShort) }
        var plaintext = [UInt8](repeating: 0, count: length)
        try sealed.withUnsafeBytes { raw in
            try plaintext.withUnsafeMutableBytes { out in
                try open(raw, key: key, into: out)
            }
        }
        return plaintext
    }
}
