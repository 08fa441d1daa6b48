import CofferCrypto
import Synchronization

/// The root keys of an open vault, each held once in guarded memory. KEK versions come and go
/// while the vault serves (rotation adds one, retirement removes one), so they sit behind a
/// mutex; the index, auth and audit keys never change.
public final class KeyRing: Sendable {
    private let state: Mutex<(keks: [UInt32: SymmetricKey], current: UInt32)>
    let indexKey: SymmetricKey
    let authKey: SymmetricKey
    let auditKey: SymmetricKey
    /// The root key the key files are sealed under, if the key directory is sealed: a rotation
    /// writes its new KEK sealed under it.
    let root: RootKey?

    init(
        keks: [UInt32: SymmetricKey], indexKey: SymmetricKey, authKey: SymmetricKey, auditKey: SymmetricKey,
        root: RootKey? = nil
    ) {
        self.state = Mutex((keks, keks.keys.max() ?? 0))
        self.indexKey = indexKey
        self.authKey = authKey
        self.auditKey = auditKey
        self.root = root
    }

    /// New and rewrapped DEKs are wrapped under this version.
    public var currentKEKVersion: UInt32 { state.withLock { $0.current } }

    public var kekVersions: [UInt32] { state.withLock { $0.keks.keys.sorted() } }

    /// How many keys (the root key of a sealed directory included) could not be locked out of
    /// swap (`RLIMIT_MEMLOCK` too small).
    var unlockedKeyCount: Int {
        let keks = state.withLock { $0.keks.values.filter { !$0.isLockedInMemory }.count }
        let root = root.map { $0.key.isLockedInMemory ? 0 : 1 } ?? 0
        return keks + root + [indexKey, authKey, auditKey].filter { !$0.isLockedInMemory }.count
    }

    func kek(version: UInt32) throws -> SymmetricKey {
        guard let key = state.withLock({ $0.keks[version] }) else {
            throw VaultError(.keys, "KEK version \(version) is not in the key directory")
        }
        return key
    }

    /// The current version and its key, read together so a rotation cannot split them.
    func currentKEK() -> (version: UInt32, key: SymmetricKey)? {
        state.withLock { state in state.keks[state.current].map { (state.current, $0) } }
    }

    func add(_ key: SymmetricKey, version: UInt32, makeCurrent: Bool) {
        state.withLock { state in
            state.keks[version] = key
            if makeCurrent { state.current = version }
        }
    }

    func setCurrent(_ version: UInt32) {
        state.withLock { $0.current = version }
    }

    func remove(version: UInt32) {
        _ = state.withLock { $0.keks.removeValue(forKey: version) }
    }
}
