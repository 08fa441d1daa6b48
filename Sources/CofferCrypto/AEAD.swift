internal import CSodium

/// XChaCha20-Poly1305 (`crypto_aead_xchacha20poly1305_ietf`): authenticated encryption that
/// also authenticates associated data sent in the clear. Sealed key files bind their header
/// (kind, version, seal generation) this way, so a file renamed or copied over another fails to
/// open instead of yielding the wrong key. Laid out as `nonce ‖ ciphertext ‖ MAC`, with a fresh
/// random 24-byte nonce on every seal (random nonces of this size never collide in practice).
public enum AEAD {
    public static let keyLength = Int(crypto_aead_xchacha20poly1305_ietf_KEYBYTES)
    public static let nonceLength = Int(crypto_aead_xchacha20poly1305_ietf_NPUBBYTES)
    public static let macLength = Int(crypto_aead_xchacha20poly1305_ietf_ABYTES)
    public static let overhead = nonceLength + macLength

    public static func seal(
        _ plaintext: UnsafeRawBufferPointer, associatedData: [UInt8], key: UnsafeRawBufferPointer
    ) throws -> [UInt8] {
        try Sodium.ensureInitialized()
        guard key.count == keyLength, let keyBase = key.baseAddress else { throw CryptoError(.wrongKeyLength) }
        let total = overhead + plaintext.count
        var rc: Int32 = -1
        let sealed = [UInt8](unsafeUninitializedCapacity: total) { out, initialized in
            let base = out.baseAddress!
            randombytes_buf(base, nonceLength)
            var written: UInt64 = 0
            rc = associatedData.withUnsafeBufferPointer { ad in
                crypto_aead_xchacha20poly1305_ietf_encrypt(
                    base + nonceLength, &written,
                    plaintext.baseAddress?.assumingMemoryBound(to: UInt8.self), UInt64(plaintext.count),
                    ad.baseAddress, UInt64(ad.count), nil, base,
                    keyBase.assumingMemoryBound(to: UInt8.self))
            }
            initialized = total
        }
        guard rc == 0 else { throw CryptoError(.authenticationFailed) }
        return sealed
    }

    /// The plaintext length a sealed message of `sealedCount` bytes holds, or nil if too short.
    public static func plaintextLength(ofSealed sealedCount: Int) -> Int? {
        sealedCount >= overhead ? sealedCount - overhead : nil
    }

    /// Opens `sealed` straight into `output` (guarded memory for keys), which must hold exactly
    /// the plaintext length. Fails if the key, the ciphertext or the associated data differ.
    public static func open(
        _ sealed: UnsafeRawBufferPointer, associatedData: [UInt8], key: UnsafeRawBufferPointer,
        into output: UnsafeMutableRawBufferPointer
    ) throws {
        try Sodium.ensureInitialized()
        guard key.count == keyLength, let keyBase = key.baseAddress else { throw CryptoError(.wrongKeyLength) }
        guard let length = plaintextLength(ofSealed: sealed.count), let base = sealed.baseAddress else {
            throw CryptoError(.ciphertextTooShort)
        }
        precondition(output.count == length, "output buffer must match the plaintext length")
        let bytes = base.assumingMemoryBound(to: UInt8.self)
        var written: UInt64 = 0
        let rc = associatedData.withUnsafeBufferPointer { ad in
            crypto_aead_xchacha20poly1305_ietf_decrypt(
                output.baseAddress?.assumingMemoryBound(to: UInt8.self), &written, nil,
                bytes + nonceLength, UInt64(sealed.count - nonceLength),
                ad.baseAddress, UInt64(ad.count), bytes,
                keyBase.assumingMemoryBound(to: UInt8.self))
        }
        guard rc == 0 else { throw CryptoError(.authenticationFailed) }
    }
}
