import CofferCrypto

/// The root keys of an open vault, each held once in guarded memory.
public final class KeyRing: Sendable {
    let keks: [UInt32: SymmetricKey]
    /// New and rewrapped DEKs are wrapped under this version: the highest one present.
    public let currentKEKVersion: UInt32
    let indexKey: SymmetricKey
    let authKey: SymmetricKey

    init(keks: [UInt32: SymmetricKey], indexKey: SymmetricKey, authKey: SymmetricKey) {
        self.keks = keks
        self.currentKEKVersion = keks.keys.max() ?? 0
        self.indexKey = indexKey
        self.authKey = authKey
    }

    public var kekVersions: [UInt32] { keks.keys.sorted() }

    func kek(version: UInt32) throws -> SymmetricKey {
        guard let key = keks[version] else {
            throw VaultError(.keys, "KEK version \(version) is not in the key directory")
        }
        return key
    }
}
