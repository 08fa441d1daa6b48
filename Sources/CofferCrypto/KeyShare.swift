/// One Shamir share of a secret: its x coordinate (public, 1…255) and its y bytes (secret,
/// in guarded memory).
///
/// `@unchecked Sendable` is safe for the reason `SymmetricKey`'s is: `y` is a `let` written
/// only during `init`, read afterwards, and freed in `deinit` when no reference remains.
public final class KeyShare: @unchecked Sendable {
    public let x: UInt8
    private let y: SecureBytes

    public init(x: UInt8, y: consuming SecureBytes) {
        self.x = x
        self.y = y
    }

    public var count: Int { y.count }

    public func withUnsafeBytes<R, E: Error>(_ body: (UnsafeRawBufferPointer) throws(E) -> R) throws(E) -> R {
        try y.withUnsafeBytes(body)
    }
}
