import CofferCore
import Foundation
import GRDB
import Testing

@Suite struct AuditTests {
    func entries(_ t: TestVault) throws -> [[String: Any]] {
        try t.vault.auditTail(1000, as: TestVault.admin).map {
            try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any]
        }
    }

    @Test func everyCommandIsAuditedWithItsOutcomeAndNoValues() throws {
        let t = try TestVault()
        _ = try t.put("c1", [("name", "Secret Name"), ("email", "secret@example.com")])
        _ = try t.get("c1", ["name"], as: TestVault.support)
        expectError(.noPermission) { _ = try t.get("c1", ["name"], as: TestVault.admin) }
        expectError(.invalid) { _ = try t.put("c1", [("phone", "not a phone")]) }
        expectError(.invalid) { _ = try t.put("jane@example.com", [("name", "x")]) }
        _ = try t.vault.find(.email, value: Array("secret@example.com".utf8), as: TestVault.support)
        _ = try t.vault.authenticate(client: "admin", secret: Array("wrong".utf8), origin: "tcp 127.0.0.1:5000")
        #expect(try t.vault.shred(subject: "c1", as: TestVault.admin) != .absent)
        // A wipe left pending (a busy moment) adds its SHRED.WIPED entry when done: wait for it.
        let deadline = Date().addingTimeInterval(10)
        while t.vault.wipePending && Date() < deadline { usleep(20_000) }
        let log = try entries(t)
        let put = log.first { $0["command"] as? String == "PUT" }!
        #expect(put["subject"] as? String == "c1")
        #expect(put["fields"] as? [String] == ["name", "email"])
        let commands = log.map { "\($0["command"]!)/\($0["outcome"]!)" }
        // (The AUDIT.TAIL that read the log is recorded after its own read.)
        #expect(
            Array(commands.suffix(8)) == [
                "PUT/ok", "GET/ok", "GET/denied", "PUT/invalid", "PUT/invalid", "FIND/ok", "AUTH/denied", "SHRED/ok",
            ])
        let auth = log.first { $0["command"] as? String == "AUTH" }!
        #expect(auth["origin"] as? String == "tcp 127.0.0.1:5000")
        #expect(auth["client"] as? String == "admin")
        let denied = log.first { $0["outcome"] as? String == "denied" && $0["command"] as? String == "GET" }!
        #expect(denied["role"] as? String == "admin")
        // The invalid subject id (an email) never reached the trail, nor did any value.
        let text = try t.vault.auditTail(1000, as: TestVault.admin).joined(separator: "\n")
        for secret in ["Secret Name", "secret@example.com", "jane@example.com", "not a phone", "wrong"] {
            #expect(!text.contains(secret), "'\(secret)' leaked into the audit trail")
        }
        // Everything read above, the two AUDIT.TAILs, and the AUDIT.VERIFY itself.
        #expect(try t.vault.verifyAudit(as: TestVault.auditor) == .verified(count: log.count + 3))
    }

    @Test func lockOutIsAudited() throws {
        let t = try TestVault()
        for guess in 0..<10 { _ = try t.vault.authenticate(client: "support1", secret: [UInt8(guess)]) }
        let commands = try entries(t).map { "\($0["command"]!)/\($0["outcome"]!)" }
        // The first failure of the window at once, the lock-out at once; the eight between are
        // counted and written as one entry when the window closes (or at shutdown).
        #expect(commands.suffix(2) == ["AUTH/denied", "AUTH.LOCKOUT/denied"])
        try t.vault.flushAuthFailures(all: true)
        let last = try #require(try entries(t).last { $0["command"] as? String == "AUTH.REPEATED" })
        #expect(last["fields"] as? [String] == ["count:8"])
        #expect(last["client"] as? String == "support1")
    }

    /// A command naming a thousand fields writes a small entry: at most 16 names and a count.
    @Test func anEntryListsAtMostEightFieldNames() throws {
        let t = try TestVault()
        let names = (0..<1022).map { "f\($0)" }
        expectError(.invalid) { _ = try t.get("c1", names, as: TestVault.support) }
        let entry = try #require(try entries(t).last { $0["command"] as? String == "GET" })
        #expect(entry["fields"] as? [String] == Array(repeating: "(unknown)", count: 16) + ["(+1006 more)"])
    }

    /// Write access to coffer.db and no keys: `UPDATE client SET role='admin'` made a marketing
    /// client an admin. Client rows now carry a MAC under a key from the key directory, checked
    /// whenever the row is used.
    @Test func aClientRowChangedOutsideCofferIsRefused() throws {
        let t = try TestVault()
        _ = try t.put("a", [("name", "N")])
        try t.sql("UPDATE client SET role = 'billing' WHERE name = 'support1'")
        expectError(.integrity) { _ = try t.get("a", ["name"], as: TestVault.support) }
        expectError(.integrity) { _ = try t.vault.listClients(as: .localOperator) }
        // Another client's secret hash copied in, or the MAC removed: refused too.
        try t.sql("UPDATE client SET role = 'support' WHERE name = 'support1'")
        #expect(try t.get("a", ["name"], as: TestVault.support) == ["N"])
        try t.sql(
            "UPDATE client SET secret_hash = (SELECT secret_hash FROM client WHERE name = 'admin') WHERE name = 'billing1'"
        )
        expectError(.integrity) { _ = try t.vault.authenticate(client: "billing1", secret: Array(t.adminSecret.utf8)) }
        try t.sql("UPDATE client SET mac = NULL WHERE name = 'auditor1'")
        expectError(.integrity) { _ = try t.vault.auditTail(1, as: TestVault.auditor) }
    }

    /// With write access to coffer.db and no keys: copying back an older sealed value of the
    /// same field (a withdrawn consent) let marketing read again, and AUDIT.VERIFY said OK. The
    /// old value still opens (it is a genuine old write), but VERIFY now names it; and an old
    /// ciphertext moved under the newer write's number does not open at all.
    @Test func aRolledBackFieldIsCaughtByVerify() throws {
        let t = try TestVault()
        _ = try t.put("a", [("name", "N"), ("consent.marketing", "yes")])
        let old = try #require(
            try t.fetchBlob("SELECT sealed FROM field WHERE subject_id = 'a' AND name = 'consent.marketing'"))
        let oldSeq = try #require(
            try t.fetchBlob(
                "SELECT CAST(write_seq AS TEXT) FROM field WHERE subject_id = 'a' AND name = 'consent.marketing'"))
        _ = try t.put("a", [("consent.marketing", "no")])
        guard case .verified = try t.vault.verifyAudit(as: TestVault.auditor) else {
            Issue.record("an untouched vault failed verification")
            return
        }
        // The old ciphertext under the new write number: it does not open.
        try t.sql("UPDATE field SET sealed = ? WHERE subject_id = 'a' AND name = 'consent.marketing'", [Data(old)])
        expectError(.integrity) { _ = try t.get("a", ["consent.marketing"], as: TestVault.support) }
        // The old ciphertext with its own write number: it opens, and VERIFY names it.
        try t.sql(
            "UPDATE field SET write_seq = ? WHERE subject_id = 'a' AND name = 'consent.marketing'",
            [Int64(String(decoding: oldSeq, as: UTF8.self))!])
        #expect(try t.get("a", ["consent.marketing"], as: TestVault.support) == ["yes"])
        guard case .tampered(_, let reason) = try t.vault.verifyAudit(as: TestVault.auditor) else {
            Issue.record("the rolled-back field was not caught")
            return
        }
        #expect(reason.contains("field 'consent.marketing' of subject 'a'"), "\(reason)")
        // REKEY re-seals every field under its own entry; DEL and SHRED are followed too.
        let u = try TestVault()
        _ = try u.put("b", [("name", "B"), ("email", "b@example.com")])
        #expect(try u.vault.rekey(subject: "b", as: TestVault.admin))
        _ = try u.vault.delete(subject: "b", fields: ["email"], as: TestVault.support)
        _ = try u.put("c", [("name", "C")])
        #expect(try u.vault.shred(subject: "c", as: TestVault.admin) != .absent)
        _ = try u.put("c", [("name", "C2")])
        guard case .verified = try u.vault.verifyAudit(as: TestVault.auditor) else {
            Issue.record("an untouched vault failed verification")
            return
        }
    }

    /// A vault from before client MACs gets them once, when the migration adds the column.
    @Test func rowsFromBeforeClientMACsGetThemOnce() throws {
        let t = try TestVault()
        try t.vault.close()
        try t.sql("ALTER TABLE client DROP COLUMN mac")
        try t.sql("DELETE FROM grdb_migrations WHERE identifier = 'v4-client-record-mac'")
        let reopened = try Vault.open(t.configuration)
        #expect(try reopened.listClients(as: .localOperator).count == 4)
        #expect(try reopened.role(of: TestVault.support) == "support")
        try reopened.close()
        // From then on a missing MAC is refused, not recomputed.
        try t.sql("UPDATE client SET mac = NULL WHERE name = 'support1'")
        let again = try Vault.open(t.configuration)
        expectError(.integrity) { _ = try again.role(of: TestVault.support) }
        try again.close()
    }

    func tamperedAt(_ t: TestVault) throws -> Int64? {
        if case .tampered(let seq, _) = try t.vault.verifyAudit(as: TestVault.admin) { return seq }
        return nil
    }

    @Test func editingDeletingReorderingOrInsertingIsDetected() throws {
        let t = try TestVault()
        for i in 0..<10 { _ = try t.put("s\(i)", [("name", "N")]) }
        #expect(try tamperedAt(t) == nil)
        let snapshot = t.root + "/snapshot.db"
        let database = t.configuration.dataDirectory + "/coffer.db"
        try t.vault.close()
        try t.snapshot(to: snapshot)

        func restore() throws -> TestVault {
            for suffix in ["", "-wal", "-shm"] where FileManager.default.fileExists(atPath: database + suffix) {
                try FileManager.default.removeItem(atPath: database + suffix)
            }
            try FileManager.default.copyItem(atPath: snapshot, toPath: database)
            return t
        }
        func check(_ sql: String, expect seq: Int64) throws {
            _ = try restore()
            try t.sql(sql)
            let vault = try Vault.open(t.configuration)
            if case .tampered(let at, _) = try vault.verifyAudit(as: TestVault.admin) {
                #expect(at == seq, "\(sql)")
            } else {
                Issue.record("not detected: \(sql)")
            }
            try vault.close()
        }
        try check("UPDATE audit SET outcome = 'denied' WHERE seq = 8", expect: 8)
        try check("UPDATE audit SET subject = 's99' WHERE seq = 6", expect: 6)
        try check("DELETE FROM audit WHERE seq = 5", expect: 5)
        // Swap two entries' contents (a reordering), keeping their MACs.
        try check(
            """
            UPDATE audit SET subject = CASE seq WHEN 7 THEN (SELECT subject FROM audit WHERE seq = 9)
                                                ELSE (SELECT subject FROM audit WHERE seq = 7) END
            WHERE seq IN (7, 9)
            """, expect: 7)
        // An inserted entry, with a made-up MAC, in the middle of the chain.
        try check(
            """
            UPDATE audit SET seq = seq + 1000000 WHERE seq >= 4;
            UPDATE audit SET seq = seq - 999999 WHERE seq >= 1000000;
            INSERT INTO audit (seq, at, client, role, origin, command, subject, fields, outcome, mac) SELECT 4, at, client, role, origin, command, subject, fields, outcome, mac FROM audit WHERE seq = 3
            """, expect: 4)
    }

    @Test func failsClosedWhenTheAuditEntryCannotBeWritten() throws {
        let t = try TestVault()
        _ = try t.put("a", [("name", "Alice")])
        try t.sql("CREATE TRIGGER audit_jam BEFORE INSERT ON audit BEGIN SELECT RAISE(ABORT, 'audit disk full'); END")
        // No data is returned, and no write lands, when the entry cannot be written.
        expectError(.storage) { _ = try t.get("a", ["name"], as: TestVault.support) }
        expectError(.storage) { _ = try t.put("a", [("name", "Mallory")]) }
        expectError(.storage) { _ = try t.vault.shred(subject: "a", as: TestVault.admin) }
        try t.sql("DROP TRIGGER audit_jam")
        #expect(try t.get("a", ["name"], as: TestVault.support) == ["Alice"])
    }
}

@Suite struct ConsentTests {
    @Test func marketingSeesNameAndEmailOnlyWithConsent() throws {
        let t = try TestVault()
        _ = try t.vault.addClient(name: "mkt", role: "marketing", as: .localOperator)
        let marketing = Caller.client("mkt")
        _ = try t.put(
            "yes",
            [("name", "Ann"), ("email", "ann@example.com"), ("phone", "+15550000001"), ("consent.marketing", "yes")])
        _ = try t.put("no", [("name", "Bob"), ("email", "bob@example.com"), ("consent.marketing", "no")])
        _ = try t.put("unset", [("name", "Cy"), ("email", "cy@example.com")])
        #expect(try t.get("yes", ["name", "email"], as: marketing) == ["Ann", "ann@example.com"])
        #expect(try t.get("no", ["name", "email"], as: marketing) == [nil, nil])
        #expect(try t.get("unset", ["name", "email"], as: marketing) == [nil, nil])
        #expect(try t.vault.export(subject: "yes", as: marketing).map(\.field) == ["name", "email"])
        #expect(try t.vault.export(subject: "no", as: marketing).isEmpty)
        expectError(.noPermission) { _ = try t.get("yes", ["phone"], as: marketing) }
        expectError(.noPermission) { _ = try t.get("yes", ["consent.marketing"], as: marketing) }
        expectError(.noPermission) { _ = try t.put("yes", [("name", "X")], as: marketing) }
        // Withdrawing consent takes effect at once.
        _ = try t.put("yes", [("consent.marketing", "no")])
        #expect(try t.get("yes", ["name"], as: marketing) == [nil])
        let outcomes = try t.vault.auditTail(20, as: TestVault.admin).filter {
            $0.contains("\"client\":\"mkt\"") && $0.contains("GET")
        }
        #expect(outcomes.filter { $0.contains("no-consent") }.count == 3)
    }
}
