/// A failure in a cryptographic primitive. A struct wrapping a private code, so that new
/// cases can be added without breaking callers that switch over `code`.
public struct CryptoError: Error, Hashable, CustomStringConvertible, Sendable {
    public enum Code: Hashable, Sendable {
        case initializationFailed
        case allocationFailed
        case wrongKeyLength
        case ciphertextTooShort
        case authenticationFailed
        case hashFailed
    }

    public let code: Code

    package init(_ code: Code) { self.code = code }

    public var description: String {
        switch code {
        case .initializationFailed: "libsodium could not be initialised"
        case .allocationFailed: "guarded memory could not be allocated"
        case .wrongKeyLength: "key has the wrong length"
        case .ciphertextTooShort: "ciphertext is too short to hold a nonce and a MAC"
        case .authenticationFailed: "ciphertext failed authentication (wrong key, tampered or moved)"
        case .hashFailed: "hash computation failed"
        }
    }
}
