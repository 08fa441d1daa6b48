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
        let capacity = label.utf8.count + parts.reduce(8) { $0 + $1.count + 8 }
        try hash(key: key, label: label, capacity: capacity, into: output) { message in
            for part in parts { message.part(part) }
        }
    }

    /// The framed message of a hash, written part by part: each part is its length, then its
    /// bytes. The audit MAC writes a dozen parts for every command without an array for each.
    ///
    /// Inlinable so that each caller's collection type (a `String.UTF8View`, an array) is
    /// specialised where it is used: unspecialised, appending walked the collection through
    /// its protocol witnesses byte by byte, a tenth of the committer's time per GET.
    public struct Message {
        @usableFromInline var bytes: [UInt8] = []

        @usableFromInline init() {}

        /// One part: its length, then its bytes.
        @inlinable public mutating func part<C: Collection<UInt8>>(_ part: C) {
            withUnsafeBytes(of: UInt64(part.count).littleEndian) { bytes.append(contentsOf: $0) }
            bytes.append(contentsOf: part)
        }

        /// One part made of `tag` followed by `rest`, as `part([tag] + rest)` would write it.
        @inlinable public mutating func part<C: Collection<UInt8>>(tag: UInt8, _ rest: C) {
            withUnsafeBytes(of: UInt64(rest.count + 1).littleEndian) { bytes.append(contentsOf: $0) }
            bytes.append(tag)
            bytes.append(contentsOf: rest)
        }
    }

    /// The 32-byte hash of `label` and the parts `write` adds, into `output`. One-shot over the
    /// framed message: libsodium's state struct is over-aligned and does not import.
    public static func hash(
        key: UnsafeRawBufferPointer, label: String, capacity: Int = 256, into output: UnsafeMutableRawBufferPointer,
        writing write: (inout Message) -> Void
    ) throws {
        try Sodium.ensureInitialized()
        guard key.count >= Int(crypto_generichash_KEYBYTES_MIN), key.count <= Int(crypto_generichash_KEYBYTES_MAX)
        else { throw CryptoError(.wrongKeyLength) }
        precondition(output.count == outputLength)
        var message = Message()
        message.bytes.reserveCapacity(capacity)
        message.part(label.utf8)
        write(&message)
        defer { Random.wipe(&message.bytes) }
        let rc = message.bytes.withUnsafeBytes { input in
            crypto_generichash(
                output.baseAddress!.assumingMemoryBound(to: UInt8.self), outputLength,
                input.baseAddress!.assumingMemoryBound(to: UInt8.self), UInt64(input.count),
                key.baseAddress!.assumingMemoryBound(to: UInt8.self), key.count)
        }
        guard rc == 0 else { throw CryptoError(.hashFailed) }
    }

    /// The same, as an array (values that are not secret keys: audit MACs).
    public static func hash(
        key: UnsafeRawBufferPointer, label: String, capacity: Int = 256, writing write: (inout Message) -> Void
    ) throws -> [UInt8] {
        var out = [UInt8](repeating: 0, count: outputLength)
        try out.withUnsafeMutableBytes {
            try hash(key: key, label: label, capacity: capacity, into: $0, writing: write)
        }
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
