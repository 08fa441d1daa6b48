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

    /// The framed message of a hash, written part by part: the same bytes `parts` would give,
    /// without an array per part (the audit MAC hashes a dozen parts for every command).
    public struct Message {
        fileprivate var bytes: [UInt8] = []

        /// One part: its length, then its bytes.
        public mutating func part<C: Collection<UInt8>>(_ part: C) {
            withUnsafeBytes(of: UInt64(part.count).littleEndian) { bytes.append(contentsOf: $0) }
            bytes.append(contentsOf: part)
        }

        /// One part made of `tag` followed by `rest`, as `part([tag] + rest)` would write it.
        public mutating func part<C: Collection<UInt8>>(tag: UInt8, _ rest: C) {
            withUnsafeBytes(of: UInt64(rest.count + 1).littleEndian) { bytes.append(contentsOf: $0) }
            bytes.append(tag)
            bytes.append(contentsOf: rest)
        }
    }

    /// The 32-byte hash of `label` and the parts `write` adds, as an array (values that are not
    /// secret keys: audit MACs).
    public static func hash(
        key: UnsafeRawBufferPointer, label: String, capacity: Int = 256, writing write: (inout Message) -> Void
    ) throws -> [UInt8] {
        try Sodium.ensureInitialized()
        guard key.count >= Int(crypto_generichash_KEYBYTES_MIN), key.count <= Int(crypto_generichash_KEYBYTES_MAX)
        else { throw CryptoError(.wrongKeyLength) }
        var message = Message()
        message.bytes.reserveCapacity(capacity)
        message.part(label.utf8)
        write(&message)
        defer { Random.wipe(&message.bytes) }
        var out = [UInt8](repeating: 0, count: outputLength)
        let rc = out.withUnsafeMutableBytes { output in
            message.bytes.withUnsafeBytes { input in
                crypto_generichash(
                    output.baseAddress!.assumingMemoryBound(to: UInt8.self), outputLength,
                    input.baseAddress!.assumingMemoryBound(to: UInt8.self), UInt64(input.count),
                    key.baseAddress!.assumingMemoryBound(to: UInt8.self), key.count)
            }
        }
        guard rc == 0 else { throw CryptoError(.hashFailed) }
        return out
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
