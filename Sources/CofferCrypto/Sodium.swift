internal import CSodium

/// libsodium must be initialised once per process before any other call; `sodium_init`
/// is idempotent and thread-safe, and a global `let` is initialised exactly once.
private let sodiumInitResult: Int32 = sodium_init()

package enum Sodium {
    /// Throws if libsodium could not initialise (for example no entropy source).
    package static func ensureInitialized() throws {
        if sodiumInitResult < 0 { throw CryptoError(.initializationFailed) }
    }
}
