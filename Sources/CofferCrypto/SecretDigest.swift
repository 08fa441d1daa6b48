internal import CSodium

/// Unkeyed BLAKE2b-256 of a label, some public parts and one secret, framed as `KeyedHash`
/// frames its input (each piece length-prefixed). The message is assembled in guarded memory
/// because it holds the secret; only the digest leaves.
///
/// For digests of secrets with 256 bits of entropy (key shares), which nobody can invert or
/// guess; never for low-entropy values such as emails.
public enum SecretDigest {
    public static let length = 32

    public static func compute(label: String, parts: [[UInt8]], secret: UnsafeRawBufferPointer) throws -> [UInt8] {
        try Sodium.ensureInitialized()
        var framed: [UInt8] = []
        func absorb<C: Collection<UInt8>>(_ bytes: C) {
            withUnsafeBytes(of: UInt64(bytes.count).littleEndian) { framed.append(contentsOf: $0) }
            framed.append(contentsOf: bytes)
        }
        absorb(label.utf8)
        for part in parts { absorb(part) }
        withUnsafeBytes(of: UInt64(secret.count).littleEndian) { framed.append(contentsOf: $0) }
        let message = try SecureBytes(count: framed.count + max(secret.count, 1))
        let total = framed.count + secret.count
        message.withUnsafeMutableBytes { out in
            out.copyBytes(from: framed)
            if let base = secret.baseAddress, secret.count > 0 {
                (out.baseAddress! + framed.count).copyMemory(from: base, byteCount: secret.count)
            }
        }
        var digest = [UInt8](repeating: 0, count: length)
        let rc = message.withUnsafeBytes { input in
            digest.withUnsafeMutableBytes { out in
                crypto_generichash(
                    out.baseAddress!.assumingMemoryBound(to: UInt8.self), length,
                    input.baseAddress!.assumingMemoryBound(to: UInt8.self), UInt64(total), nil, 0)
            }
        }
        guard rc == 0 else { throw CryptoError(.hashFailed) }
        return digest
    }
}
