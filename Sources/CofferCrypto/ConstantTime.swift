internal import CSodium

public enum ConstantTime {
    /// Compares two byte strings without leaking, through timing, where they first differ.
    /// Lengths are compared in the open: callers compare fixed-length hashes.
    public static func equals(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        if a.isEmpty { return true }
        return a.withUnsafeBytes { x in
            b.withUnsafeBytes { y in sodium_memcmp(x.baseAddress, y.baseAddress, a.count) == 0 }
        }
    }
}
