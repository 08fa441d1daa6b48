import CofferCrypto

/// The audit side of sealing. A sealed vault has no audit key in memory, so an unseal is
/// recorded once it has succeeded, by the vault it opened; a seal is decided and recorded
/// before the keys go.
extension Vault {
    /// Records a completed unseal: first each share entry refused while the vault was sealed
    /// (its origin and why, as a failed `UNSEAL`: there was no audit key to chain it with then),
    /// then the unseal itself, with the origins the shares came from. Never a share.
    public func recordUnseal(origins: [String], refused: [(origin: String, error: VaultError)] = []) throws {
        for attempt in refused {
            // Each refusal is written as a failed UNSEAL (outcome from its error code); the
            // error `audited` rethrows is the refusal itself, answered long ago.
            _ = try? audited("UNSEAL", .anonymous(origin: attempt.origin)) { _, _ in throw attempt.error }
        }
        let caller = Caller.localOperator
        try audited("UNSEAL", caller) { [self] tx, draft in
            _ = try resolve(caller, in: tx, recordingIn: &draft)
            draft.origin = Array(Set(origins)).sorted().joined(separator: ",")
        }
    }

    /// `SEAL`: allowed to the roles that may manage keys (admin), and audited before the server
    /// drops the keys, so the trail shows who sealed the vault even though it is then unreadable
    /// until the next unseal.
    public func authorizeSeal(as caller: Caller) throws {
        _ = try audited("SEAL", caller) { [self] tx, draft in
            try resolve(caller, in: tx, recordingIn: &draft).require(.operation(.keys), "SEAL")
        }
    }
}

/// Sealing an existing key directory and rekeying the shares: offline, by the holder of the data
/// directory's lock, crash-safe (see `KeyDirectory.reseal`).
extension Vault {
    /// `coffer seal migrate`: seals a key directory of raw key files under a fresh root key split
    /// into `shares` shares. `deliver` gets the shares' text before the commit point; if it
    /// throws, nothing changes.
    public static func sealKeyDirectory(
        _ configuration: VaultConfiguration, holding lock: DataDirectoryLock, shares: Int, threshold: Int,
        deliver: ([String]) throws -> Void
    ) throws {
        try checkLock(lock, configuration)
        try checkShareCounts(shares: shares, threshold: threshold)
        if try KeyDirectory.manifest(in: configuration.keyDirectory) != nil {
            throw VaultError(.invalid, "key directory \(configuration.keyDirectory) is sealed already")
        }
        try reseal(configuration, from: nil, generation: 1, shares: shares, threshold: threshold, deliver: deliver)
    }

    /// `coffer operator rekey`: a fresh root key, its new shares, every key file re-sealed under
    /// it, the generation one up: the old shares (and any copy of the old key files) are of no
    /// more use once it has committed.
    public static func rekeyShares(
        _ configuration: VaultConfiguration, holding lock: DataDirectoryLock, root: RootKey, shares: Int,
        threshold: Int, deliver: ([String]) throws -> Void
    ) throws {
        try checkLock(lock, configuration)
        try checkShareCounts(shares: shares, threshold: threshold)
        try reseal(
            configuration, from: root, generation: root.generation + 1, shares: shares, threshold: threshold,
            deliver: deliver)
    }

    /// Finishes (after its commit point) or undoes (before it) a reseal that was interrupted;
    /// true if there was one. `coffer serve` calls it once it holds the lock.
    public static func recoverInterruptedReseal(
        _ configuration: VaultConfiguration, holding lock: DataDirectoryLock
    ) throws -> Bool {
        try checkLock(lock, configuration)
        return try KeyDirectory.recoverReseal(configuration.keyDirectory)
    }

    static func checkShareCounts(shares: Int, threshold: Int) throws {
        guard (1...Shamir.maximumShares).contains(shares) else {
            throw VaultError(.invalid, "--shares must be between 1 and \(Shamir.maximumShares), not \(shares)")
        }
        guard (1...shares).contains(threshold) else {
            throw VaultError(.invalid, "--threshold must be between 1 and --shares (\(shares)), not \(threshold)")
        }
        guard threshold >= 2 || shares == 1 else {
            throw VaultError(
                .invalid,
                "a threshold of 1 gives every share the whole root key; it is allowed only for a dev vault with --shares 1"
            )
        }
    }

    private static func checkLock(_ lock: DataDirectoryLock, _ configuration: VaultConfiguration) throws {
        guard lock.path == DataDirectoryLock.path(in: configuration.dataDirectory) else {
            throw VaultError(.setup, "the lock \(lock.path) is not the lock of \(configuration.dataDirectory)")
        }
    }

    private static func reseal(
        _ configuration: VaultConfiguration, from old: RootKey?, generation: UInt32, shares: Int, threshold: Int,
        deliver: ([String]) throws -> Void
    ) throws {
        _ = try KeyDirectory.recoverReseal(configuration.keyDirectory)
        let root = try RootKey(key: SymmetricKey.random(), generation: generation)
        let split = try root.key.withUnsafeBytes { try Shamir.split($0, shares: shares, threshold: threshold) }
        let manifest = try SealManifest(root: root, threshold: threshold, shares: split)
        let texts = try split.map { try ShareText.encode($0, generation: generation) }
        try KeyDirectory.reseal(configuration.keyDirectory, from: old, to: root, manifest: manifest) {
            try deliver(texts)
        }
    }
}
