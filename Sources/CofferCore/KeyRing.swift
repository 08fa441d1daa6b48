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
        if let key = state.withLock({ $0.keks[version] }) { return key }
        // Another node of a shared store rotated: its new key file is in the shared directory.
        if let loader = loader.withLock({ $0 }), let key = loader(version) {
            state.withLock { state in if state.keks[version] == nil { state.keks[version] = key } }
            return key
        }
        throw VaultError(.keys, "KEK version \(version) is not in the key directory")
    }

    private let loader = Mutex<(@Sendable (UInt32) -> SymmetricKey?)?>(nil)

    /// Lets `kek(version:)` read a version it lacks from the key directory (shared stores only).
    func loadsMissingVersions(_ body: @escaping @Sendable (UInt32) -> SymmetricKey?) {
        loader.withLock { $0 = body }
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
