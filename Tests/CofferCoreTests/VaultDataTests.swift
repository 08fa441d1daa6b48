import CofferCore
import Foundation
import Testing

@Suite struct VaultDataTests {
    /// Nothing inside the vault (its committer, checkpointer or finished jobs) keeps it alive, so
    /// a vault dropped without close() is deinitialised (fails on a retain cycle), and what it
    /// acknowledged is in its files. That the deinit then stops the threads is not observable
    /// from here; this proves it gets the chance to.
    @Test func aDroppedVaultIsReleasedAndReopens() throws {
        weak var dropped: Vault?
        let configuration: VaultConfiguration
        let directory: TemporaryDirectory  // the files outlive the TestVault
        do {
            let v = try TestVault()
            configuration = v.configuration
            directory = v.directory
            #expect(try v.put("drop-1", [("name", "Ada")]) == 1)
            dropped = v.vault
        }
        // The committer thread may still hold the last finished job (and through it the vault)
        // for a moment after the call returned; then the vault's deinit runs on that thread.
        let deadline = Date().addingTimeInterval(10)
        while dropped != nil && Date() < deadline { usleep(10_000) }
        #expect(dropped == nil)
        // Its connections are closed: the same files open again and hold the write.
        let reopened = try Vault.open(configuration)
        #expect(try reopened.exists(subject: "drop-1", as: TestVault.support) == true)
        try reopened.close()
        withExtendedLifetime(directory) {}
    }

    @Test func putGetExportRoundTrip() throws {
        let t = try TestVault()
        #expect(
            try t.put("cust-1", [("name", "Jane Doe"), ("email", "Jane@Example.com"), ("phone", "+1 718 942 9990")])
                == 3)
        #expect(
            try t.put(
                "cust-1", [("card.pan", "4111 1111 1111 1111"), ("card.expiry", "07/2029")], as: TestVault.billing) == 2
        )
        #expect(
            try t.get("cust-1", ["name", "email", "birthday"], as: TestVault.support) == [
                "Jane Doe", "Jane@example.com", nil,
            ])
        #expect(
            try t.get("cust-1", ["card.pan", "card.expiry"], as: TestVault.billing) == ["4111111111111111", "07/29"])
        // Masked for the roles that only see the shape.
        #expect(try t.get("cust-1", ["card.pan"], as: TestVault.support) == ["************1111"])
        #expect(
            try t.get("cust-1", ["email", "phone"], as: TestVault.billing) == ["J***@example.com", "+*******9990"])
        let exported = try t.vault.export(subject: "cust-1", as: TestVault.support)
        #expect(exported.map(\.field) == ["name", "email", "phone", "card.pan", "card.expiry"])
        #expect(try t.get("nobody", ["name"], as: TestVault.support) == [nil])
        #expect(try t.vault.export(subject: "nobody", as: TestVault.support).isEmpty)
    }

    /// A field named twice refuses the whole command, naming the field (or "(unknown)" for a
    /// name outside the catalogue), however many names there are and wherever the repeat sits.
    @Test func aFieldNamedTwiceIsRefusedByName() throws {
        let t = try TestVault()
        _ = try t.put("a", [("name", "Alice"), ("email", "a@example.com")])
        let many = (0..<20).map { "x\($0)" }
        for (names, shown) in [
            (["name", "name"], "name"), (["name", "email", "name"], "name"), (["email", "name", "name"], "name"),
            (["phone", "email", "name", "email"], "email"), (["nope", "nope"], "(unknown)"),
            (["name"] + many + ["name"], "name"), (many + ["x3"], "(unknown)"),
        ] {
            for command in ["GET", "DEL"] {
                do {
                    if command == "GET" {
                        _ = try t.vault.get(subject: "a", fields: names, as: TestVault.support)
                    } else {
                        _ = try t.vault.delete(subject: "a", fields: names, as: TestVault.support)
                    }
                    Issue.record("\(command) \(names) was not refused")
                } catch let error as VaultError {
                    #expect(error.code == .invalid)
                    #expect("\(error)".contains("\(command) names field '\(shown)' more than once"), "\(error)")
                }
            }
        }
        #expect(try t.get("a", ["name", "email"], as: TestVault.support) == ["Alice", "a@example.com"])
    }

    /// A PUT's values are validated before it reaches the committer, but the outcome is
    /// looked at only after the caller's checks: one who may not write a field learns nothing
    /// of whether its value was valid, and an unknown field is named before any bad value.
    @Test func aPutIsRefusedForPermissionBeforeItsValuesAreJudged() throws {
        let t = try TestVault()
        for values in [[("card.pan", "not a card")], [("email", "not-an-email"), ("card.pan", "4111")]] {
            do {
                _ = try t.vault.put(
                    subject: "w", values: values.map { ($0.0, Array($0.1.utf8)) }, as: TestVault.support)
                Issue.record("\(values) was written")
            } catch let error as VaultError {
                #expect(error.code == .noPermission, "\(error)")
            }
        }
        for values in [[("shoe_size", "9"), ("email", "bad")], [("email", "bad"), ("shoe_size", "9")]] {
            #expect(throws: VaultError(.invalid, "unknown field 'shoe_size'")) {
                _ = try t.vault.put(
                    subject: "w", values: values.map { ($0.0, Array($0.1.utf8)) }, as: TestVault.support)
            }
        }
        #expect(throws: VaultError(.invalid, "email: must contain exactly one @")) {
            _ = try t.put("w", [("name", "Ann"), ("email", "bad")])
        }
        #expect(try t.vault.exists(subject: "w", as: TestVault.support) == false)
    }

    @Test func multiFieldWriteIsAllOrNothing() throws {
        let t = try TestVault()
        _ = try t.put("c", [("name", "Old Name")])
        #expect {
            _ = try t.put("c", [("name", "New Name"), ("email", "not-an-email")])
        } throws: { ($0 as? VaultError)?.message.hasPrefix("email:") == true }
        #expect(try t.get("c", ["name", "email"], as: TestVault.support) == ["Old Name", nil])
        // A refused field also stops the whole write, as does a forbidden one.
        #expect(throws: VaultError.self) { _ = try t.put("c", [("name", "X"), ("card.cvv", "123")]) }
        #expect(throws: VaultError.self) { _ = try t.put("d", [("name", "X"), ("card.pan", "4111111111111111")]) }
        #expect(try t.get("c", ["name"], as: TestVault.support) == ["Old Name"])
        #expect(try t.vault.exists(subject: "d", as: TestVault.support) == false)
    }

    @Test func findByEmailAndPhoneAfterNormalisation() throws {
        let t = try TestVault()
        _ = try t.put("a", [("email", "jane@example.com"), ("phone", "+17189429990")])
        _ = try t.put("b", [("email", "jane@EXAMPLE.com")])
        _ = try t.put("c", [("email", "other@example.com")])
        #expect(try t.vault.find(.email, value: Array("jane@Example.Com".utf8), as: TestVault.support) == ["a", "b"])
        #expect(try t.vault.find(.phone, value: Array("+1 (718) 942-9990".utf8), as: TestVault.support) == ["a"])
        // Changing or deleting the value moves the index with it.
        _ = try t.put("a", [("email", "new@example.com")])
        #expect(try t.vault.find(.email, value: Array("jane@example.com".utf8), as: TestVault.support) == ["b"])
        #expect(try t.vault.delete(subject: "a", fields: ["phone"], as: TestVault.support) == 1)
        #expect(try t.vault.find(.phone, value: Array("+17189429990".utf8), as: TestVault.support).isEmpty)
        #expect(throws: VaultError.self) {
            _ = try t.vault.find(.email, value: Array("garbage".utf8), as: TestVault.support)
        }
    }

    @Test func deleteAndExists() throws {
        let t = try TestVault()
        _ = try t.put("a", [("name", "N"), ("organization", "O")])
        #expect(try t.vault.exists(subject: "a", as: TestVault.billing))
        #expect(try t.vault.delete(subject: "a", fields: ["name", "gender"], as: TestVault.support) == 1)
        #expect(try t.get("a", ["name", "organization"], as: TestVault.support) == [nil, "O"])
    }

    @Test func ciphertextSwappedBetweenFieldsOrSubjectsFailsToOpen() throws {
        let t = try TestVault()
        _ = try t.put("a", [("name", "Alice A"), ("organization", "Acme")])
        _ = try t.put("b", [("name", "Bob B")])
        let aName = try #require(try t.fetchBlob("SELECT sealed FROM field WHERE subject_id='a' AND name='name'"))
        // Moved to another field of the same subject.
        try t.sql("UPDATE field SET sealed = ? WHERE subject_id='a' AND name='organization'", [Data(aName)])
        expectError(.integrity) { _ = try t.get("a", ["organization"], as: TestVault.support) }
        // Moved to the same field of another subject.
        try t.sql("UPDATE field SET sealed = ? WHERE subject_id='b' AND name='name'", [Data(aName)])
        expectError(.integrity) { _ = try t.get("b", ["name"], as: TestVault.support) }
        // The original still opens.
        #expect(try t.get("a", ["name"], as: TestVault.support) == ["Alice A"])
    }

    @Test func tamperedCiphertextAndSwappedDEKFail() throws {
        let t = try TestVault()
        _ = try t.put("a", [("name", "Alice")])
        _ = try t.put("b", [("name", "Bob")])
        var sealed = try #require(try t.fetchBlob("SELECT sealed FROM field WHERE subject_id='a' AND name='name'"))
        sealed[sealed.count - 1] ^= 0x80
        try t.sql("UPDATE field SET sealed = ? WHERE subject_id='a' AND name='name'", [Data(sealed)])
        expectError(.integrity) { _ = try t.get("a", ["name"], as: TestVault.support) }
        // b's wrapped DEK copied onto a's row: the wrap is bound to the subject, so it fails.
        let bKey = try #require(try t.fetchBlob("SELECT wrapped_dek FROM subject WHERE id='b'"))
        try t.sql("UPDATE subject SET wrapped_dek = ? WHERE id='a'", [Data(bKey)])
        expectError(.integrity) { _ = try t.get("a", ["name"], as: TestVault.support) }
        #expect(try t.get("b", ["name"], as: TestVault.support) == ["Bob"])
    }

    @Test func plaintextNeverReachesTheDataFiles() throws {
        let t = try TestVault()
        let marker = "PLAINTEXT-MARKER-\(UUID().uuidString)"
        _ = try t.put("a", [("name", marker), ("email", "marker.\(UUID().uuidString.prefix(8))@example.com")])
        _ = try t.get("a", ["name"], as: TestVault.support)
        let hits = try DataFileScan.occurrences(of: Array(marker.utf8), under: t.configuration.dataDirectory)
        #expect(hits.isEmpty, "plaintext found in \(hits)")
    }
}

enum DataFileScan {
    /// Every file under `directory` that contains `needle` anywhere in its bytes.
    static func occurrences(of needle: [UInt8], under directory: String) throws -> [String] {
        precondition(!needle.isEmpty)
        var found: [String] = []
        let names = try FileManager.default.subpathsOfDirectory(atPath: directory)
        for name in names {
            let path = directory + "/" + name
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), !isDirectory.boolValue,
                let data = FileManager.default.contents(atPath: path)
            else { continue }
            if data.range(of: Data(needle)) != nil { found.append(name) }
        }
        return found
    }
}
