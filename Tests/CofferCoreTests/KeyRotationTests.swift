import CofferCore
import Foundation
import Testing

@Suite struct KeyRotationTests {
    @Test func rotateRewrapRetireKeepsDataReadable() throws {
        let t = try TestVault()
        for i in 0..<50 { _ = try t.put("s\(i)", [("name", "Person \(i)")]) }
        #expect(try t.vault.rotateKEK(as: TestVault.admin) == 2)
        #expect(FileManager.default.fileExists(atPath: t.configuration.keyDirectory + "/kek-2.key"))
        let mode =
            try FileManager.default.attributesOfItem(atPath: t.configuration.keyDirectory + "/kek-2.key")[
                .posixPermissions] as? Int
        #expect(mode == 0o600)
        // New subjects go under the new version at once; old ones wait for the rewrap.
        _ = try t.put("new", [("name", "New")])
        #expect(try t.fetchBlob("SELECT CAST(kek_version AS BLOB) FROM subject WHERE id='new'") == Array("2".utf8))
        var status = try t.vault.keyStatus(as: TestVault.admin)
        #expect(status.current == 2 && status.pending == 50)
        // Retiring is refused while the version is current or still wraps a DEK.
        expectError(.invalid) { try t.vault.retireKEK(2, as: TestVault.admin) }
        expectError(.invalid) { try t.vault.retireKEK(1, as: TestVault.admin) }
        // Data stays readable in the middle of the rewrap.
        #expect(try t.vault.rewrapBatch(limit: 20) == 20)
        #expect(try t.get("s7", ["name"], as: TestVault.support) == ["Person 7"])
        #expect(try t.get("s49", ["name"], as: TestVault.support) == ["Person 49"])
        while try t.vault.rewrapBatch(limit: 20) > 0 {}
        status = try t.vault.keyStatus(as: TestVault.admin)
        #expect(status.pending == 0)
        #expect(status.versions.map(\.dataKeys) == [0, 51])
        try t.vault.retireKEK(1, as: TestVault.admin)
        #expect(!FileManager.default.fileExists(atPath: t.configuration.keyDirectory + "/kek-1.key"))
        #expect(try t.vault.keyStatus(as: TestVault.admin).versions.map(\.state) == ["retired", "current"])
        for i in 0..<50 { #expect(try t.get("s\(i)", ["name"], as: TestVault.support) == ["Person \(i)"]) }
        // And after a restart.
        try t.vault.close()
        let reopened = try Vault.open(
            t.configuration, owner: .init(command: "test")
        )
        #expect(try reopened.get(subject: "s3", fields: ["name"], as: TestVault.support) == [Array("Person 3".utf8)])
        expectError(.invalid) { try reopened.retireKEK(1, as: TestVault.admin) }
        expectError(.noPermission) { _ = try reopened.rotateKEK(as: TestVault.support) }
    }

    /// A batch stops once it has held the writer for its budget, but always advances: with no
    /// time at all it rewraps exactly one DEK per call, and the keys it left stay pending.
    @Test func aRewrapBatchStopsAtItsTimeBudgetAndStillAdvances() throws {
        let t = try TestVault()
        for i in 0..<10 { _ = try t.put("s\(i)", [("name", "Person \(i)")]) }
        _ = try t.vault.rotateKEK(as: TestVault.admin)
        #expect(try t.vault.rewrapBatch(limit: 1000, budget: .zero) == 1)
        #expect(try t.vault.keyStatus(as: TestVault.admin).pending == 9)
        #expect(try t.vault.rewrapBatch(limit: 1000, budget: .zero) == 1)
        #expect(try t.vault.rewrapBatch(limit: 1000, budget: .seconds(60)) == 8)
        #expect(try t.vault.keyStatus(as: TestVault.admin).pending == 0)
        for i in 0..<10 { #expect(try t.get("s\(i)", ["name"], as: TestVault.support) == ["Person \(i)"]) }
    }

    @Test func rewrapNeverTouchesFieldCiphertexts() throws {
        let t = try TestVault()
        _ = try t.put("a", [("name", "Alice"), ("email", "a@example.com")])
        let before = try t.fetchBlob("SELECT sealed FROM field WHERE subject_id='a' AND name='name'")
        let dekBefore = try t.fetchBlob("SELECT wrapped_dek FROM subject WHERE id='a'")
        _ = try t.vault.rotateKEK(as: TestVault.admin)
        #expect(try t.vault.rewrapBatch() == 1)
        #expect(try t.fetchBlob("SELECT sealed FROM field WHERE subject_id='a' AND name='name'") == before)
        #expect(try t.fetchBlob("SELECT wrapped_dek FROM subject WHERE id='a'") != dekBefore)
        #expect(try t.get("a", ["name"], as: TestVault.support) == ["Alice"])
    }

    @Test func rekeyGivesAFreshDEKAndResealsEveryField() throws {
        let t = try TestVault()
        _ = try t.put("a", [("name", "Alice"), ("phone", "+15551234567")])
        let dek = try t.fetchBlob("SELECT wrapped_dek FROM subject WHERE id='a'")
        let sealed = try t.fetchBlob("SELECT sealed FROM field WHERE subject_id='a' AND name='name'")
        #expect(try t.vault.rekey(subject: "a", as: TestVault.admin))
        #expect(try t.vault.rekey(subject: "nobody", as: TestVault.admin) == false)
        #expect(try t.fetchBlob("SELECT wrapped_dek FROM subject WHERE id='a'") != dek)
        #expect(try t.fetchBlob("SELECT sealed FROM field WHERE subject_id='a' AND name='name'") != sealed)
        #expect(try t.get("a", ["name", "phone"], as: TestVault.support) == ["Alice", "+15551234567"])
        #expect(try t.vault.find(.phone, value: Array("+15551234567".utf8), as: TestVault.support) == ["a"])
    }

    @Test func keyDirectoryAndDatabaseMustAgreeOnTheCurrentKEK() throws {
        let t = try TestVault()
        _ = try t.vault.rotateKEK(as: TestVault.admin)
        try t.vault.close()
        let dir = t.configuration.keyDirectory
        // The current key file vanished (an old key directory restored).
        try FileManager.default.moveItem(atPath: dir + "/kek-2.key", toPath: t.root + "/kek-2.saved")
        expectError(.keys) { _ = try Vault.open(t.configuration) }
        try FileManager.default.moveItem(atPath: t.root + "/kek-2.saved", toPath: dir + "/kek-2.key")
        // A key file two versions ahead of the database (a newer key directory).
        try FileManager.default.copyItem(atPath: dir + "/kek-2.key", toPath: dir + "/kek-4.key")
        expectError(.keys) { _ = try Vault.open(t.configuration) }
        try FileManager.default.removeItem(atPath: dir + "/kek-4.key")
        // A newer file the database never recorded is refused, not adopted, even by the owner.
        try FileManager.default.copyItem(atPath: dir + "/kek-2.key", toPath: dir + "/kek-3.key")
        #expect {
            _ = try Vault.open(
                t.configuration, owner: .init(command: "test"))
        } throws: { error in
            (error as? VaultError)?.message.hasPrefix(
                "key file \(dir)/kek-3.key is not recorded in the database: no rotation to KEK version 3 was begun")
                == true
        }
        expectError(.keys) { _ = try Vault.open(t.configuration) }
        // Recorded as pending, it is a rotation interrupted after its file was written: finished.
        try t.sql("INSERT INTO kek (version, state, created_at) VALUES (3, 'pending', 0)")
        let alongside = try Vault.open(t.configuration)
        #expect(alongside.currentKEKVersion == 2, "only the owner repairs")
        try alongside.close()
        let vault = try Vault.open(
            t.configuration, owner: .init(command: "test")
        )
        #expect(vault.currentKEKVersion == 3)
        #expect(try vault.keyStatus(as: TestVault.admin).versions.map(\.state) == ["active", "active", "current"])
        try vault.close()
    }

    @Test func interruptedRotationsAndRetirementsAreRepairedByTheOwner() throws {
        let t = try TestVault()
        _ = try t.put("a", [("name", "A")])
        try t.vault.close()
        let dir = t.configuration.keyDirectory
        func openOwning() throws -> Vault {
            try Vault.open(
                t.configuration,
                owner: .init(command: "test"))
        }
        // Pending without its file: the rotation stopped before the file was written; forgotten.
        try t.sql("INSERT INTO kek (version, state, created_at) VALUES (2, 'pending', 0)")
        var vault = try openOwning()
        #expect(vault.currentKEKVersion == 1)
        #expect(try vault.keyStatus(as: TestVault.admin).versions.map(\.state) == ["current"])
        // The next rotation takes the number again and works.
        #expect(try vault.rotateKEK(as: TestVault.admin) == 2)
        while try vault.rewrapBatch() > 0 {}
        try vault.close()
        // Retired in the database while its file survived (a crash between the commit and the
        // file's destruction): the alongside open leaves it, the owner destroys it.
        try t.sql("UPDATE kek SET state = 'retired', retired_at = 0 WHERE version = 1")
        try Vault.open(t.configuration).close()
        #expect(FileManager.default.fileExists(atPath: dir + "/kek-1.key"))
        vault = try openOwning()
        #expect(!FileManager.default.fileExists(atPath: dir + "/kek-1.key"))
        #expect(try vault.get(subject: "a", fields: ["name"], as: TestVault.support) == [Array("A".utf8)])
        try vault.close()
    }

    @Test func concurrentRotationsEndOnTheVersionTheDatabaseCallsCurrent() throws {
        let t = try TestVault()
        let vault = t.vault
        var expected: UInt32 = 1
        for round in 0..<7 {
            // Eight threads released at once, so their rotations share commit batches.
            let start = DispatchSemaphore(value: 0)
            let done = DispatchGroup()
            for _ in 0..<8 {
                done.enter()
                Thread {
                    start.wait()
                    _ = try? vault.rotateKEK(as: TestVault.admin)
                    done.leave()
                }.start()
            }
            for _ in 0..<8 { start.signal() }
            done.wait()
            expected += 8
            let status = try vault.keyStatus(as: TestVault.admin)
            #expect(status.current == expected, "round \(round)")
            #expect(status.versions.filter { $0.state == "current" }.map(\.version) == [expected], "round \(round)")
        }
        _ = try t.put("after", [("name", "After")])
        #expect(try t.fetchBlob("SELECT CAST(kek_version AS BLOB) FROM subject WHERE id='after'") == Array("57".utf8))
    }
}

@Suite struct RetiredKEKTests {
    /// A vault opened alongside the owner keeps the keyring it loaded; once the owner retires
    /// that keyring's current version, a new data key wrapped under it would be lost for good.
    /// The schema refuses it.
    @Test func noDataKeyIsStoredUnderARetiredVersion() throws {
        let t = try TestVault()
        let alongside = try Vault.open(t.configuration)
        #expect(try t.vault.rotateKEK(as: TestVault.admin) == 2)
        try t.vault.retireKEK(1, as: TestVault.admin)
        #expect(alongside.currentKEKVersion == 1)
        expectError(.storage) {
            _ = try alongside.put(subject: "late", values: [("name", Array("L".utf8))], as: TestVault.support)
        }
        #expect(try t.vault.exists(subject: "late", as: TestVault.support) == false)
        #expect(try t.put("fresh", [("name", "F")]) == 1)
        try alongside.close()
    }
}

@Suite struct KEKLimitTests {
    @Test func rotationStopsAtTheLiveVersionLimitUntilOldOnesAreRetired() throws {
        #expect(VaultConfiguration(dataDirectory: "d", keyDirectory: "k").maximumLiveKEKVersions == 64)
        let t = try TestVault()
        try t.vault.close()
        var configuration = t.configuration
        configuration.maximumLiveKEKVersions = 3
        let vault = try Vault.open(
            configuration, owner: .init(command: "test"))
        #expect(try vault.rotateKEK(as: TestVault.admin) == 2)
        #expect(try vault.rotateKEK(as: TestVault.admin) == 3)
        #expect {
            _ = try vault.rotateKEK(as: TestVault.admin)
        } throws: { error in
            error as? VaultError
                == VaultError(
                    .invalid,
                    "3 KEK versions are live, the most allowed (3); retire old versions (KEYS.RETIRE) once KEYS.STATUS shows they wrap 0 data keys"
                )
        }
        #expect(!FileManager.default.fileExists(atPath: configuration.keyDirectory + "/kek-4.key"))
        #expect(try vault.keyStatus(as: TestVault.admin).versions.map(\.state) == ["active", "active", "current"])
        try vault.retireKEK(1, as: TestVault.admin)
        #expect(try vault.rotateKEK(as: TestVault.admin) == 4)
        try vault.close()
    }
}
