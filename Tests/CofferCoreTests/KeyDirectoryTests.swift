import CofferCore
import Foundation
import Testing

@Suite struct KeyDirectoryTests {
    func expectOpenRefused(_ t: TestVault, mentioning fragment: String) {
        #expect {
            _ = try Vault.open(t.configuration)
        } throws: { error in
            guard let e = error as? VaultError, e.code == .keys else { return false }
            return e.message.contains(fragment)
        }
    }

    @Test func initCreatesPrivateDirectoriesAndKeys() throws {
        let t = try TestVault()
        for dir in [t.configuration.dataDirectory, t.configuration.keyDirectory] {
            let mode = try FileManager.default.attributesOfItem(atPath: dir)[.posixPermissions] as! Int
            #expect(mode == 0o700)
        }
        for file in ["kek-1.key", "index.key", "auth.key"] {
            let attributes = try FileManager.default.attributesOfItem(atPath: t.configuration.keyDirectory + "/" + file)
            #expect(attributes[.posixPermissions] as! Int == 0o600)
            #expect(attributes[.size] as! Int == 32)
        }
        #expect(t.adminSecret.count == 64)
    }

    @Test func secondInitRefusesAndTouchesNothing() throws {
        let t = try TestVault()
        let before = FileManager.default.contents(atPath: t.configuration.keyDirectory + "/kek-1.key")
        expectError(.setup) { _ = try Vault.initialize(t.configuration) }
        #expect(FileManager.default.contents(atPath: t.configuration.keyDirectory + "/kek-1.key") == before)
        // A fresh data directory next to an existing key directory is refused too.
        var other = t.configuration
        other.dataDirectory = t.root + "/data2"
        expectError(.setup) { _ = try Vault.initialize(other) }
        #expect(!FileManager.default.fileExists(atPath: other.dataDirectory))
    }

    @Test func dataAndKeysMustBeSeparate() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("coffer-sep-\(UUID())").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        for (data, keys) in [(root, root), (root + "/d", root + "/d/keys"), (root + "/k/data", root + "/k")] {
            expectError(.setup) {
                _ = try Vault.initialize(VaultConfiguration(dataDirectory: data, keyDirectory: keys))
            }
        }
    }

    @Test(arguments: ["kek-1.key", "index.key", "auth.key"])
    func refusesKeyFileReadableByOthers(file: String) throws {
        let t = try TestVault()
        let path = t.configuration.keyDirectory + "/" + file
        #expect(chmod(path, 0o640) == 0)
        expectOpenRefused(t, mentioning: path)
        #expect(chmod(path, 0o604) == 0)
        expectOpenRefused(t, mentioning: "group or others")
        #expect(chmod(path, 0o600) == 0)
        _ = try Vault.open(t.configuration)
    }

    @Test func refusesAKeyDirectoryOthersMayUseOrThatAnotherUserOwns() throws {
        let t = try TestVault()
        let dir = t.configuration.keyDirectory
        #expect(chmod(dir, 0o750) == 0)
        #expect(
            throws: VaultError(.keys, "key directory \(dir) is accessible by group or others (mode 750); chmod 700 it")
        ) {
            _ = try Vault.open(t.configuration)
        }
        #expect(chmod(dir, 0o701) == 0)
        expectOpenRefused(t, mentioning: "(mode 701)")
        #expect(chmod(dir, 0o700) == 0)
        try Vault.open(t.configuration).close()
        // Ownership can only be handed to another user by root.
        guard geteuid() == 0 else { return }
        let me = geteuid()
        #expect(chown(dir + "/audit.key", 4242, 4242) == 0)
        #expect(
            throws: VaultError(
                .keys,
                "key file \(dir)/audit.key is owned by uid 4242, not by the user coffer runs as (uid \(me)); chown it")
        ) { _ = try Vault.open(t.configuration) }
        #expect(chown(dir + "/audit.key", me, me) == 0)
        #expect(chown(dir, 4242, 4242) == 0)
        #expect(
            throws: VaultError(
                .keys, "key directory \(dir) is owned by uid 4242, not by the user coffer runs as (uid \(me)); chown it"
            )
        ) { _ = try Vault.open(t.configuration) }
        #expect(chown(dir, me, me) == 0)
        try Vault.open(t.configuration).close()
    }

    @Test(arguments: [0, 31, 33, 64])
    func refusesKeyFileOfWrongSize(size: Int) throws {
        let t = try TestVault()
        let path = t.configuration.keyDirectory + "/index.key"
        try Data(repeating: 1, count: size).write(to: URL(fileURLWithPath: path))
        #expect(chmod(path, 0o600) == 0)
        expectOpenRefused(t, mentioning: "wrong size")
    }

    @Test func refusesWhenAReferencedKEKVersionIsMissing() throws {
        let t = try TestVault()
        _ = try t.put("a", [("name", "A")])
        // Pretend a newer KEK exists, then lose the one the data was wrapped under.
        let dir = t.configuration.keyDirectory
        try FileManager.default.copyItem(atPath: dir + "/kek-1.key", toPath: dir + "/kek-2.key")
        try FileManager.default.removeItem(atPath: dir + "/kek-1.key")
        expectOpenRefused(t, mentioning: "KEK version 1")
    }

    @Test func refusesWhenNoVaultExists() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("coffer-none-\(UUID())").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        expectError(.setup) {
            _ = try Vault.open(VaultConfiguration(dataDirectory: root + "/d", keyDirectory: root + "/k"))
        }
    }
}
