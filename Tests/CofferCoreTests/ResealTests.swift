import CofferCore
import CofferCrypto
import Foundation
import Testing

/// `coffer seal migrate` and `coffer operator rekey` in the core: what they do, and that the
/// key directory is usable whatever point a crash stops them at. Each crash state is rebuilt on
/// disk exactly as the reseal leaves it at that point (stage written, commit marker written,
/// some of the files already swapped), then recovered as the next holder of the lock does.
@Suite struct ResealTests {
    let directory = TemporaryDirectory("coffer-reseal")
    var configuration: VaultConfiguration {
        VaultConfiguration(dataDirectory: directory.path + "/data", keyDirectory: directory.path + "/keys")
    }
    var keys: String { configuration.keyDirectory }

    /// A raw vault (as made before sealing) with one subject.
    func rawVault() throws {
        _ = try Vault.initialize(configuration)
        let vault = try Vault.open(configuration, owner: .init(command: "test"))
        _ = try vault.addClient(name: "support1", role: "support", as: .localOperator)
        _ = try vault.put(subject: "s1", values: [("name", Array("Ada Lovelace".utf8))], as: .client("support1"))
        try vault.close()
    }

    func root(_ shares: [String]) throws -> RootKey {
        let manifest = try #require(try SealManifest.load(keyDirectory: keys))
        let state = SealState(manifest: manifest)
        for share in shares { if case .unsealed(let root) = try state.submit(share) { return root } }
        throw VaultError(.sealed, "not enough shares")
    }

    func reads(_ configuration: VaultConfiguration) throws -> Bool {
        let vault = try Vault.open(configuration)
        defer { try? vault.close() }
        return try vault.get(subject: "s1", fields: ["name"], as: .client("support1")) == [Array("Ada Lovelace".utf8)]
    }

    func with(_ root: RootKey) -> VaultConfiguration {
        var c = configuration
        c.root = root
        return c
    }

    func copyTree(_ from: String, _ to: String) throws {
        try? FileManager.default.removeItem(atPath: to)
        try FileManager.default.copyItem(atPath: from, toPath: to)
    }

    @Test func migrateSealsARawDirectoryAndShredsTheRawFiles() throws {
        try rawVault()
        let rawBytes = try Data(contentsOf: URL(fileURLWithPath: keys + "/kek-1.key"))
        let lock = try DataDirectoryLock.acquire(configuration.dataDirectory, for: .init(command: "test"))
        var shares: [String] = []
        try Vault.sealKeyDirectory(configuration, holding: lock, shares: 3, threshold: 2) { shares = $0 }
        #expect(shares.count == 3)
        #expect(!FileManager.default.fileExists(atPath: keys + "/.reseal"))
        let sealed = try Data(contentsOf: URL(fileURLWithPath: keys + "/kek-1.key"))
        #expect(sealed.count == 90 && sealed != rawBytes)
        lock.release()
        expectError(.keys) { _ = try reads(configuration) }
        #expect(try reads(with(root([shares[2], shares[0]]))))
    }

    @Test func aFailureBeforeTheCommitChangesNothing() throws {
        try rawVault()
        let lock = try DataDirectoryLock.acquire(configuration.dataDirectory, for: .init(command: "test"))
        expectError(.invalid) {
            try Vault.sealKeyDirectory(configuration, holding: lock, shares: 3, threshold: 2) { _ in
                throw VaultError(.invalid, "the operator's terminal went away")
            }
        }
        lock.release()
        #expect(!FileManager.default.fileExists(atPath: keys + "/.reseal"))
        #expect(try reads(configuration))
    }

    /// Every point a kill can stop a migrate at, rebuilt and recovered: before the commit marker
    /// the raw directory comes back; from the marker on, the sealed one, whichever files were
    /// already swapped.
    @Test func everyCrashPointLeavesTheOldOrTheNewGeneration() throws {
        try rawVault()
        let snapshot = directory.path + "/snapshot"
        let lock = try DataDirectoryLock.acquire(configuration.dataDirectory, for: .init(command: "test"))
        var shares: [String] = []
        // The moment before the commit: the stage is complete, the shares are out.
        try Vault.sealKeyDirectory(configuration, holding: lock, shares: 2, threshold: 2) {
            shares = $0
            try copyTree(keys, snapshot)
        }
        let staged = try FileManager.default.contentsOfDirectory(atPath: snapshot + "/.reseal")
            .filter { $0.hasSuffix(".key") }.sorted()
        #expect(staged == ["audit.key", "auth.key", "index.key", "kek-1.key"])
        // States: no marker; marker and 0…4 files swapped; all swapped and the manifest moved.
        var states: [(name: String, committed: Bool, prepare: () throws -> Void)] = [
            ("stage without commit marker", false, {})
        ]
        for swapped in 0...staged.count {
            states.append(
                (
                    "commit marker, \(swapped) files swapped", true,
                    { [keys] in
                        _ = FileManager.default.createFile(atPath: keys + "/.reseal/COMMIT", contents: Data())
                        for name in staged.prefix(swapped) {
                            try FileManager.default.removeItem(atPath: keys + "/" + name)
                            try FileManager.default.moveItem(
                                atPath: keys + "/.reseal/" + name, toPath: keys + "/" + name)
                        }
                    }
                ))
        }
        states.append(
            (
                "manifest moved, stage not yet removed", true,
                { [keys] in
                    _ = FileManager.default.createFile(atPath: keys + "/.reseal/COMMIT", contents: Data())
                    for name in staged {
                        try FileManager.default.removeItem(atPath: keys + "/" + name)
                        try FileManager.default.moveItem(atPath: keys + "/.reseal/" + name, toPath: keys + "/" + name)
                    }
                    try FileManager.default.moveItem(
                        atPath: keys + "/.reseal/seal.manifest", toPath: keys + "/seal.manifest")
                }
            ))
        for state in states {
            try copyTree(snapshot, keys)
            try state.prepare()
            // Nothing opens the directory mid-reseal.
            expectError(.keys, "\(state.name)") { _ = try Vault.open(configuration) }
            #expect(try Vault.recoverInterruptedReseal(configuration, holding: lock), "\(state.name)")
            #expect(!FileManager.default.fileExists(atPath: keys + "/.reseal"), "\(state.name)")
            if state.committed {
                #expect(try reads(with(root(shares))), "\(state.name)")
                expectError(.keys, "\(state.name)") { _ = try reads(configuration) }
            } else {
                #expect(try reads(configuration), "\(state.name)")
                #expect(try SealManifest.load(keyDirectory: keys) == nil, "\(state.name)")
            }
        }
        lock.release()
    }

    @Test func rekeyRetiresTheOldSharesAndTheOldKeyFiles() throws {
        let made = try Vault.initializeSealed(configuration, shares: 3, threshold: 2)
        let old = try root([made.shares[0], made.shares[1]])
        let oldFiles = directory.path + "/old-keys"
        try copyTree(keys, oldFiles)
        let lock = try DataDirectoryLock.acquire(configuration.dataDirectory, for: .init(command: "test"))
        var fresh: [String] = []
        try Vault.rekeyShares(configuration, holding: lock, root: old, shares: 5, threshold: 3) { fresh = $0 }
        lock.release()
        #expect(fresh.count == 5 && fresh.allSatisfy { $0.hasPrefix("coffer-share-2-") })
        let manifest = try #require(try SealManifest.load(keyDirectory: keys))
        #expect(manifest.generation == 2 && manifest.threshold == 3 && manifest.shareCount == 5)
        // Old shares are refused by name; the old root key opens nothing.
        let state = SealState(manifest: manifest)
        #expect(throws: VaultError.self) { try state.submit(made.shares[0]) }
        expectError(.keys) { _ = try Vault.open(with(old)) }
        let new = try root([fresh[4], fresh[1], fresh[2]])
        let vault = try Vault.open(with(new))
        try vault.close()
        // A copy of the old key files is of no use under the new root either.
        var stale = with(new)
        stale.keyDirectory = oldFiles
        expectError(.keys) { _ = try Vault.open(stale) }
    }
}
