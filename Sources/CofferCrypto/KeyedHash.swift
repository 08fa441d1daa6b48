internal import CSodium

/// Keyed BLAKE2b (`crypto_generichash`) over a domain label and a list of parts.
///
/// Each part is length-prefixed, so `("ab", "c")` and `("a", "bc")` never hash alike; the label
/// separates uses of one key (a blind index for emails never collides with one for phones).
public enum KeyedHash {
    public static let outputLength = 32

    /// Writes the 32-byte hash into `output` (for example a guarded buffer for a derived key).
    public static func hash(
        key: UnsafeRawBufferPointer,
        label: String,
        parts: [[UInt8]],
        into output: UnsafeMutableRawBufferPointer
    ) throws {
        try Sodium.ensureInitialized()
        guard key.count >= Int(crypto_generichash_KEYBYTES_MIN), key.count <= Int(crypto_generichash_KEYBYTES_MAX)
        else { throw CryptoError(.wrongKeyLength) }
        precondition(output.count == outputLength)
        // One-shot over a framed message: the state struct is over-aligned and does not import.
        var message: [UInt8] = []
        message.reserveCapacity(label.utf8.count + parts.reduce(8) { $0 + $1.count + 8 })
        func absorb<C: Collection<UInt8>>(_ bytes: C) {
            withUnsafeBytes(of: UInt64(bytes.count).littleEndian) { message.append(contentsOf: $0) }
            message.append(contentsOf: bytes)
        }
        absorb(label.utf8)
        for part in parts { absorb(part) }
        defer { Random.wipe(&message) }
        let rc = message.withUnsafeBytes { input in
            crypto_generichash(
                output.baseAddress!.assumingMemoryBound(to: UInt8.self), outputLength,
                input.baseAddress!.assumingMemoryBound(to: UInt8.self), UInt64(input.count),
                key.baseAddress!.assumingMemoryBound(to: UInt8.self), key.count)
        }
        guard rc == 0 else { throw CryptoError(.hashFailed) }
    }

    /// The 32-byte hash as an array, for values that are not secret keys (index tags, secret hashes).
    public static func hash(key: UnsafeRawBufferPointer, label: String, parts: [[UInt8]]) throws
        -> [UInt8]
    {
        var out = [UInt8](repeating: 0, count: outputLength)
        try out.withUnsafeMutableBytes { raw in
            try hash(key: key, label: label, parts: parts, into: raw)
        }
        return out
    }
}
