/// A long-lived 32-byte key (a KEK, the index key, the auth key) shared by reference, so the
/// key bytes exist exactly once in guarded memory however many tasks use them.
///
/// `@unchecked Sendable` is safe because `bytes` is a `let` written only during `init`;
/// afterwards every access is a read, and the memory is released only in `deinit`, when no
/// reference (and so no concurrent reader) remains.
public final class SymmetricKey: @unchecked Sendable {
    public static let length = 32

    private let bytes: SecureBytes

    /// Takes ownership of `bytes`, which must hold exactly `SymmetricKey.length` bytes.
    public init(_ bytes: consuming SecureBytes) throws {
        guard bytes.count == Self.length else { throw CryptoError(.wrongKeyLength) }
        self.bytes = bytes
    }

    /// False if the key's page could not be locked out of swap (see `SecureBytes`).
    public var isLockedInMemory: Bool { bytes.isLockedInMemory }

    public static func random() throws -> SymmetricKey {
        try SymmetricKey(SecureBytes(randomCount: length))
    }

    public func withUnsafeBytes<R, E: Error>(_ body: (UnsafeRawBufferPointer) throws(E) -> R) throws(E) -> R {
        try bytes.withUnsafeBytes(body)
    }
}
