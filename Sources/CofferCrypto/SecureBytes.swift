internal import CSodium

/// Key material in libsodium guarded memory: page-aligned, surrounded by guard pages,
/// locked out of swap, and wiped by `sodium_free` when the value goes away.
///
/// It is `~Copyable` so the bytes can never be duplicated by an innocent assignment, and it
/// lends its bytes only for the length of a closure.
public struct SecureBytes: ~Copyable {
    private let pointer: UnsafeMutableRawPointer
    public let count: Int
    /// False if the pages could not be locked out of swap (`RLIMIT_MEMLOCK` exhausted):
    /// `sodium_malloc` tries to lock them but ignores a failure, so it is checked here.
    public let isLockedInMemory: Bool

    /// Zero-filled guarded memory of `count` bytes.
    public init(count: Int) throws {
        try Sodium.ensureInitialized()
        precondition(count > 0, "SecureBytes needs a positive size")
        guard let raw = sodium_malloc(count) else { throw CryptoError(.allocationFailed) }
        sodium_memzero(raw, count)
        self.pointer = raw
        self.count = count
        // Locks do not stack: this only reports whether sodium_malloc's own mlock took hold.
        self.isLockedInMemory = sodium_mlock(raw, count) == 0
    }

    /// Fresh random bytes from the operating system's CSPRNG.
    public init(randomCount count: Int) throws {
        try self.init(count: count)
        randombytes_buf(pointer, count)
    }

    /// A guarded copy of `source`. The caller remains responsible for wiping `source`.
    public init(copying source: UnsafeRawBufferPointer) throws {
        try self.init(count: max(source.count, 1))
        if let base = source.baseAddress, source.count > 0 {
            pointer.copyMemory(from: base, byteCount: source.count)
        }
    }

    deinit {
        sodium_free(pointer)
    }

    public borrowing func withUnsafeBytes<R, E: Error>(
        _ body: (UnsafeRawBufferPointer) throws(E) -> R
    ) throws(E) -> R {
        try body(UnsafeRawBufferPointer(start: pointer, count: count))
    }

    /// Non-mutating: the struct only holds a pointer, and the guarded memory it points to is
    /// stable for the value's lifetime, so several slots of one buffer may be lent at once.
    public borrowing func withUnsafeMutableBytes<R, E: Error>(
        _ body: (UnsafeMutableRawBufferPointer) throws(E) -> R
    ) throws(E) -> R {
        try body(UnsafeMutableRawBufferPointer(start: pointer, count: count))
    }

    /// Overwrites the bytes with zeros, for scratch buffers that are reused.
    public borrowing func wipe() {
        sodium_memzero(pointer, count)
    }

    /// Constant-time equality; the length is not secret.
    public borrowing func constantTimeEquals(_ other: UnsafeRawBufferPointer) -> Bool {
        guard other.count == count, let base = other.baseAddress else { return false }
        return sodium_memcmp(pointer, base, count) == 0
    }
}
