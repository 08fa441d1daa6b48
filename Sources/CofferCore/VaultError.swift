/// Every error the vault reports. `code` decides the first word of the protocol error
/// (`NOPERM`, `INVALID`, …); `message` says what is wrong and never contains a value, a secret
/// or a key.
public struct VaultError: Error, Hashable, Sendable, CustomStringConvertible {
    public enum Code: String, Hashable, Sendable {
        /// The caller has not authenticated, or its client was revoked.
        case noAuth = "NOAUTH"
        /// AUTH failed: unknown client, wrong secret, or locked out.
        case wrongPass = "WRONGPASS"
        /// The role may not do this.
        case noPermission = "NOPERM"
        /// The role may do this only for certain purposes, and the command stated none.
        case noPurpose = "NOPURPOSE"
        /// Bad input: a subject id, field name or value that fails validation.
        case invalid = "INVALID"
        /// The vault's key directory or data directory is not usable.
        case keys = "KEYS"
        /// A stored ciphertext failed to open: tampered, moved, or under a missing key.
        case integrity = "INTEGRITY"
        /// The vault exists already (init) or does not exist (open).
        case setup = "SETUP"
        /// Storage failed; nothing was written.
        case storage = "STORAGE"
        /// The client already runs this long command; try again when it has answered.
        case busy = "BUSY"
        /// The vault is sealed: its keys are not in memory until enough key shares are entered.
        case sealed = "SEALED"
    }

    public let code: Code
    public let message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    /// `CODE message`, the form a RESP error takes.
    public var description: String { "\(code.rawValue) \(message)" }
}
