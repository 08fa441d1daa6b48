internal import CSodium

public enum Random {
    /// `count` bytes from the operating system's CSPRNG, for values that are not keys
    /// (client secrets are shown once and then only their hash is kept).
    public static func bytes(_ count: Int) throws -> [UInt8] {
        try Sodium.ensureInitialized()
        var out = [UInt8](repeating: 0, count: count)
        if count > 0 { out.withUnsafeMutableBytes { randombytes_buf($0.baseAddress!, $0.count) } }
        return out
    }

    /// Wipes an ordinary array that briefly held something sensitive.
    public static func wipe(_ bytes: inout [UInt8]) {
        if !bytes.isEmpty { bytes.withUnsafeMutableBytes { sodium_memzero($0.baseAddress!, $0.count) } }
    }
}

extension Random {
    /// Fills `buffer` (typically a guarded key slot) with CSPRNG bytes.
    public static func fill(_ buffer: UnsafeMutableRawBufferPointer) throws {
        try Sodium.ensureInitialized()
        guard let base = buffer.baseAddress, buffer.count > 0 else { return }
        randombytes_buf(base, buffer.count)
    }
}
