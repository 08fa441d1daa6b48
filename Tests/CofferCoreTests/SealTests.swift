import CofferCore
import CofferCrypto
import Foundation
import Testing

/// A sealed vault in a temporary directory, made as `coffer init --shares --threshold` makes one.
struct SealedTestVault {
    let directory = TemporaryDirectory("coffer-seal")
    let configuration: VaultConfiguration
    let shares: [String]

    init(shares count: Int = 5, threshold: Int = 3) throws {
        configuration = VaultConfiguration(
            dataDirectory: directory.path + "/data", keyDirectory: directory.path + "/keys")
        shares = try Vault.initializeSealed(configuration, shares: count, threshold: threshold).shares
    }

    func manifest() throws -> SealManifest {
        let text = try String(contentsOfFile: configuration.keyDirectory + "/" + SealManifest.fileName, encoding: .utf8)
        return try SealManifest(parsing: text, path: SealManifest.fileName)
    }

    /// Unseals through `SealState` with the given shares, as the server does.
    func unseal(_ indices: [Int]) throws -> RootKey {
        let state = try SealState(manifest: manifest())
        for index in indices {
            if case .unsealed(let root) = try state.submit(shares[index]) { return root }
        }
        throw VaultError(.sealed, "still \(state.status().progress)")
    }

    func configuration(root: RootKey) -> VaultConfiguration {
        var configuration = self.configuration
        configuration.root = root
        return configuration
    }
}

@Suite struct ShareTextTests {
    let share = try! KeyShare(x: 3, y: SecureBytes(randomCount: 32))

    @Test func roundTripsInEitherCaseWithSurroundingSpace() throws {
        let text = try ShareText.encode(share, generation: 7)
        #expect(text.hasPrefix("coffer-share-7-3-"))
        for variant in [
            text, text.uppercased().replacingOccurrences(of: "COFFER-SHARE", with: "coffer-share"), "  \(text)\n",
        ] {
            let (generation, decoded) = try ShareText.decode(variant)
            #expect(generation == 7 && decoded.x == 3)
            #expect(decoded.withUnsafeBytes { Array($0) } == share.withUnsafeBytes { Array($0) })
        }
    }

    /// Every single mistyped character of the share's digits is refused as mistyped (or as not
    /// a hex digit), never accepted as another share.
    @Test func everySingleTypoIsCaught() throws {
        let text = Array(try ShareText.encode(share, generation: 1))
        let start = "coffer-share-1-3-".count
        var caught = 0
        for index in start..<text.count where text[index] != "-" {
            for replacement in "0123456789abcdefg" where replacement != text[index] {
                var typo = text
                typo[index] = replacement
                #expect(throws: VaultError.self) { try ShareText.decode(String(typo)) }
                caught += 1
            }
        }
        #expect(caught == (64 + 8) * 16)
    }

    @Test func malformedSharesAreNamed() {
        #expect(
            throws: VaultError(
                .invalid, "not a key share: expected coffer-share-<generation>-<n>-<64 hex digits>-<8 hex digits>")
        ) {
            try ShareText.decode("hello")
        }
        #expect(throws: VaultError(.invalid, "the share's number is not between 1 and 255")) {
            try ShareText.decode("coffer-share-1-0-\(String(repeating: "0", count: 64))-00000000")
        }
        #expect(throws: VaultError(.invalid, "the share has the wrong length: expected 64 hex digits, then 8")) {
            try ShareText.decode("coffer-share-1-1-00-00000000")
        }
        #expect(throws: VaultError(.invalid, "the share's generation is not a positive number")) {
            try ShareText.decode("coffer-share-x-1-\(String(repeating: "0", count: 64))-00000000")
        }
    }

    /// A share's generation is covered by its check: changing it is a typo, not another share.
    @Test func theGenerationIsChecked() throws {
        let text = try ShareText.encode(share, generation: 1)
        #expect(throws: VaultError(.invalid, "the share's check does not match: it was mistyped")) {
            try ShareText.decode(text.replacingOccurrences(of: "coffer-share-1-", with: "coffer-share-2-"))
        }
    }
}

@Suite struct SealTests {
    @Test func aSealedVaultOpensOnlyWithItsRootKey() throws {
        let t = try SealedTestVault()
        #expect(t.shares.count == 5)
        #expect(
            throws: VaultError(
                .keys, "key directory \(t.configuration.keyDirectory) is sealed: unseal it with 3 of its 5 key shares")
        ) {
            try Vault.open(t.configuration)
        }
        let root = try t.unseal([4, 0, 2])
        let vault = try Vault.open(t.configuration(root: root), owner: .init(command: "test"))
        _ = try vault.addClient(name: "support1", role: "support", as: .localOperator)
        _ = try vault.put(subject: "s1", values: [("name", Array("Ada Lovelace".utf8))], as: .client("support1"))
        try vault.close()
        // Any other three shares give the same root key.
        let again = try Vault.open(t.configuration(root: try t.unseal([1, 3, 2])))
        #expect(try again.get(subject: "s1", fields: ["name"], as: .client("support1")) == [Array("Ada Lovelace".utf8)])
        try again.close()
    }

    @Test func keyFilesAreSealedNotRaw() throws {
        let t = try SealedTestVault()
        for name in ["kek-1.key", "index.key", "auth.key", "audit.key"] {
            let path = t.configuration.keyDirectory + "/" + name
            let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
            #expect(bytes.count == 90, "\(name)")
            #expect(Array(bytes.prefix(8)) == Array("CFRSEALK".utf8))
            let mode = try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int
            #expect(mode == 0o600)
        }
    }

    @Test func aKeyFileCopiedOverAnotherFailsToOpen() throws {
        let t = try SealedTestVault(shares: 2, threshold: 2)
        let root = try t.unseal([0, 1])
        let keys = t.configuration.keyDirectory
        try FileManager.default.removeItem(atPath: keys + "/auth.key")
        try FileManager.default.copyItem(atPath: keys + "/audit.key", toPath: keys + "/auth.key")
        #expect(
            throws: VaultError(
                .keys, "key file \(keys)/auth.key is another key's file (its header names a different kind or version)")
        ) { try Vault.open(t.configuration(root: root)) }
        // Even with the header rewritten to match its new name, the header is bound to the
        // ciphertext, so it does not open.
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: keys + "/auth.key")))
        bytes[9] = 3
        try FileManager.default.removeItem(atPath: keys + "/auth.key")
        _ = FileManager.default.createFile(
            atPath: keys + "/auth.key", contents: Data(bytes), attributes: [.posixPermissions: 0o600])
        #expect(
            throws: VaultError(
                .keys, "key file \(keys)/auth.key does not open under the root key: altered, or not this vault's")
        ) { try Vault.open(t.configuration(root: root)) }
    }

    @Test func aWrongRootKeyIsReportedNeverUsed() throws {
        let t = try SealedTestVault(shares: 3, threshold: 2)
        let wrong = try RootKey(key: SymmetricKey.random(), generation: 1)
        #expect(
            throws: VaultError(
                .keys, "the root key is not the one \(t.configuration.keyDirectory)/seal.manifest was made for")
        ) { try Vault.open(t.configuration(root: wrong)) }
        // Too few shares combine to a wrong key, which the same check catches.
        let manifest = try t.manifest()
        let one = try ShareText.decode(t.shares[0]).share
        let combined = try SymmetricKey(Shamir.combine([one]))
        #expect(!manifest.isMade(for: combined))
    }

    @Test func aForeignMistypedOrRepeatedShareIsRefusedAtEntry() throws {
        let t = try SealedTestVault()
        let other = try SealedTestVault()
        let state = try SealState(manifest: t.manifest())
        guard case .progress(let first) = try state.submit(t.shares[0]) else {
            Issue.record("one share unsealed a 3-of-5 vault")
            return
        }
        #expect(first.entered == 1 && first.threshold == 3 && first.sealed)
        #expect(throws: VaultError(.invalid, "the share is not one of this vault's shares")) {
            try state.submit(other.shares[1])
        }
        #expect(throws: VaultError(.invalid, "share 1 was entered already")) { try state.submit(t.shares[0]) }
        var typo = Array(t.shares[1])
        typo[20] = typo[20] == "a" ? "b" : "a"
        #expect(throws: VaultError(.invalid, "the share's check does not match: it was mistyped")) {
            try state.submit(String(typo))
        }
        // The refusals kept the progress.
        #expect(state.status().entered == 1)
        _ = try state.submit(t.shares[3])
        guard case .unsealed(let root) = try state.submit(t.shares[4]) else {
            Issue.record("three shares did not unseal")
            return
        }
        _ = try Vault.open(t.configuration(root: root))
    }

    @Test func progressIsDroppedAfterTenIdleMinutesAndOnReset() throws {
        let t = try SealedTestVault()
        let state = try SealState(manifest: t.manifest())
        let start = ContinuousClock.now
        _ = try state.submit(t.shares[0], now: start)
        #expect(state.status(now: start + .seconds(599)).entered == 1)
        #expect(state.status(now: start + .seconds(600)).entered == 0)
        _ = try state.submit(t.shares[0], now: start + .seconds(601))
        #expect(state.status(now: start + .seconds(602)).entered == 1)
        try state.reset(by: nil, now: start + .seconds(602))
        #expect(state.status(now: start + .seconds(603)).entered == 0)
    }

    /// A stranger can neither use up the share holders' allowance nor wipe their progress.
    @Test func strangersCannotStallOrWipeAnUnseal() throws {
        let t = try SealedTestVault()
        let state = try SealState(manifest: t.manifest())
        let start = ContinuousClock.now
        _ = try state.submit(t.shares[0], from: "uid 1000", now: start)
        for i in 0..<SealState.attemptsPerMinute {
            #expect(throws: VaultError.self) { try state.submit("junk \(i)", from: "ip 192.0.2.9", now: start) }
        }
        #expect(throws: VaultError.self) { try state.submit(t.shares[1], from: "ip 192.0.2.9", now: start) }
        #expect(
            throws: VaultError(
                .noPermission,
                "only a share holder who entered a share of this unseal may reset it (it expires after 10 idle minutes)"
            )
        ) { try state.reset(by: "ip 192.0.2.10", now: start) }
        #expect(state.status(now: start).entered == 1)
        // The holders go on from their own addresses.
        guard case .progress(let second) = try state.submit(t.shares[1], from: "ip 198.51.100.7", now: start) else {
            Issue.record("two shares unsealed a 3-of-5 vault")
            return
        }
        #expect(second.entered == 2)
        try state.reset(by: "uid 1000", now: start)
        #expect(state.status(now: start).entered == 0)
    }

    /// Junk from more addresses than the table holds never locks a share holder out.
    @Test func junkFromManyAddressesDoesNotLockTheHoldersOut() throws {
        let t = try SealedTestVault()
        let state = try SealState(manifest: t.manifest())
        let start = ContinuousClock.now
        for address in 0..<(SealState.maximumPeers + 50) {
            #expect(throws: VaultError.self) { try state.submit("junk", from: "ip 10.0.\(address)", now: start) }
        }
        guard case .progress(let status) = try state.submit(t.shares[0], from: "uid 1000", now: start) else {
            Issue.record("one share unsealed a 3-of-5 vault")
            return
        }
        #expect(status.entered == 1)
        _ = try state.submit(t.shares[1], from: "ip 198.51.100.7", now: start)
        #expect(state.status(now: start).entered == 2)
    }

    /// Shares racing the last one cannot start a second unseal while the vault is being opened.
    @Test func noShareIsTakenWhileTheVaultIsBeingOpened() throws {
        let t = try SealedTestVault()
        let state = try SealState(manifest: t.manifest())
        for index in 0..<2 { _ = try state.submit(t.shares[index]) }
        guard case .unsealed = try state.submit(t.shares[2]) else {
            Issue.record("three shares did not unseal a 3-of-5 vault")
            return
        }
        #expect(throws: VaultError(.busy, "the vault is being unsealed; try SEAL.STATUS")) {
            try state.submit(t.shares[3])
        }
        // Opening failed: the server takes shares again.
        state.openFailed()
        guard case .progress(let status) = try state.submit(t.shares[3]) else {
            Issue.record("one share unsealed a 3-of-5 vault")
            return
        }
        #expect(status.entered == 1)
        state.markUnsealed()
        #expect(throws: VaultError(.invalid, "the vault is already unsealed")) { try state.submit(t.shares[4]) }
    }

    @Test func shareEntriesAreRateLimited() throws {
        let t = try SealedTestVault()
        let state = try SealState(manifest: t.manifest())
        let start = ContinuousClock.now
        for i in 0..<SealState.attemptsPerMinute {
            #expect(throws: VaultError.self) { try state.submit("wrong \(i)", now: start + .seconds(i)) }
        }
        #expect(
            throws: VaultError(.busy, "too many key shares entered in the last minute from here (10 at most); wait")
        ) { try state.submit(t.shares[0], now: start + .seconds(30)) }
        guard case .progress(let status) = try state.submit(t.shares[0], now: start + .seconds(61)) else {
            Issue.record("one share unsealed a 3-of-5 vault")
            return
        }
        #expect(status.entered == 1)
    }

    @Test func rotationWritesTheNewKEKSealed() throws {
        let t = try SealedTestVault(shares: 3, threshold: 2)
        let root = try t.unseal([0, 2])
        let vault = try Vault.open(t.configuration(root: root), owner: .init(command: "test"))
        #expect(try vault.rotateKEK(as: .localOperator) == 2)
        try vault.close()
        let bytes = try Data(contentsOf: URL(fileURLWithPath: t.configuration.keyDirectory + "/kek-2.key"))
        #expect(bytes.count == 90 && Array(bytes.prefix(8)) == Array("CFRSEALK".utf8))
        let reopened = try Vault.open(t.configuration(root: root))
        #expect(reopened.currentKEKVersion == 2)
        try reopened.close()
    }

    @Test func aThresholdOfOneIsForASingleDevShareOnly() throws {
        let directory = TemporaryDirectory("coffer-seal")
        let configuration = VaultConfiguration(
            dataDirectory: directory.path + "/d", keyDirectory: directory.path + "/k")
        #expect(
            throws: VaultError(
                .invalid,
                "a threshold of 1 gives every share the whole root key; it is allowed only for a dev vault with --shares 1"
            )
        ) { try Vault.initializeSealed(configuration, shares: 3, threshold: 1) }
        #expect(throws: VaultError(.invalid, "--threshold must be between 1 and --shares (2), not 3")) {
            try Vault.initializeSealed(configuration, shares: 2, threshold: 3)
        }
        #expect(!FileManager.default.fileExists(atPath: directory.path + "/k"))
        let dev = try Vault.initializeSealed(configuration, shares: 1, threshold: 1)
        #expect(dev.shares.count == 1)
    }

    /// Done-when of issue #13, in the core: a copy of the key directory and the database taken
    /// while the vault is open reads nothing without enough shares.
    @Test func aCopyOfKeysAndDatabaseTakenWhileOpenReadsNothing() throws {
        let t = try SealedTestVault(shares: 5, threshold: 3)
        let root = try t.unseal([0, 1, 2])
        let vault = try Vault.open(t.configuration(root: root), owner: .init(command: "test"))
        _ = try vault.addClient(name: "billing1", role: "billing", as: .localOperator)
        _ = try vault.put(
            subject: "s1", values: [("card.pan", Array("4111111111111111".utf8))], as: .client("billing1"))
        let copy = TemporaryDirectory("coffer-seal-copy")
        try FileManager.default.createDirectory(atPath: copy.path, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: t.configuration.keyDirectory, toPath: copy.path + "/keys")
        try FileManager.default.copyItem(atPath: t.configuration.dataDirectory, toPath: copy.path + "/data")
        try? FileManager.default.removeItem(atPath: copy.path + "/data/coffer.lock")
        var stolen = VaultConfiguration(dataDirectory: copy.path + "/data", keyDirectory: copy.path + "/keys")
        expectError(.keys) { _ = try Vault.open(stolen) }
        // No key file holds a key in the clear: reading one as a raw key is refused by size.
        for name in ["kek-1.key", "index.key", "auth.key", "audit.key"] {
            let size = try FileManager.default.attributesOfItem(atPath: copy.path + "/keys/" + name)[.size] as? Int
            #expect(size == 90)
        }
        // Two of the five shares (one short of the threshold) do not make the root key.
        let state = try SealState(manifest: t.manifest())
        _ = try state.submit(t.shares[3])
        _ = try state.submit(t.shares[4])
        #expect(state.status().sealed)
        let two = try [3, 4].map { try ShareText.decode(t.shares[$0]).share }
        stolen.root = try RootKey(key: SymmetricKey(Shamir.combine(two)), generation: 1)
        expectError(.keys) { _ = try Vault.open(stolen) }
        // With the third share the copy opens: the shares, not the files, are what protect it.
        if case .unsealed(let recovered) = try state.submit(t.shares[1]) { stolen.root = recovered }
        let opened = try Vault.open(stolen)
        #expect(
            try opened.get(subject: "s1", fields: ["card.pan"], as: .client("billing1")) == [
                Array("4111111111111111".utf8)
            ])
        try opened.close()
        try vault.close()
    }
}
