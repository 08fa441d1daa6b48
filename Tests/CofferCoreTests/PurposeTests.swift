import CofferCore
import Foundation
import Testing

/// Purpose of access: validation, purpose-conditioned grants, and the purpose in the audit trail.
@Suite struct PurposeTests {
    /// The built-in roles, with support's contact reads plain only for `support` and
    /// `subject-request` (masked otherwise), a fraud role that reads contact masked only for
    /// `fraud`, and an analyst role that must state a purpose for anything.
    static let policy: Policy = {
        var roles = Policy.builtIn.roles
        roles["support"]!.read[.contact] = .masked
        roles["support"]!.purposeReads = [.contact: [.plain: [.support, .subjectRequest]]]
        roles["fraud"] = RoleGrants(operations: [.exists], purposeReads: [.contact: [.masked: [.fraud]]])
        roles["analyst"] = RoleGrants(read: [.contact: .masked], operations: [.exists], requiresPurpose: true)
        return Policy(roles: roles)
    }()

    static func caller(_ name: String, _ purpose: AccessPurpose?) -> Caller {
        var caller = Caller.client(name)
        caller.purpose = purpose
        return caller
    }

    static let purposes: [AccessPurpose?] =
        [nil]
        + Purpose.allCases.map { $0 == .other ? try! AccessPurpose(name: "other", ticket: "INC-1") : AccessPurpose($0) }

    @Test func purposesAreAFixedListAndOtherNeedsATicket() throws {
        #expect(try AccessPurpose(name: "Subject-Request", ticket: nil).purpose == .subjectRequest)
        #expect(try AccessPurpose(name: "other", ticket: "JIRA-42/b#3").ticket == "JIRA-42/b#3")
        let list = "billing, support, fraud, subject-request, marketing, maintenance, other"
        #expect(throws: VaultError(.invalid, "unknown purpose 'curiosity' (purposes: \(list))")) {
            _ = try AccessPurpose(name: "curiosity", ticket: nil)
        }
        #expect(throws: VaultError(.invalid, "PURPOSE other needs a ticket: PURPOSE other <ticket>")) {
            _ = try AccessPurpose(name: "other", ticket: nil)
        }
        #expect(throws: VaultError(.invalid, "only PURPOSE other takes a ticket")) {
            _ = try AccessPurpose(name: "billing", ticket: "T-1")
        }
        for ticket in ["", "jane@example.com", "a b", String(repeating: "x", count: 65)] {
            #expect(throws: VaultError(.invalid, "a ticket is 1 to 64 of A-Z a-z 0-9 . _ : / # -")) {
                _ = try AccessPurpose(name: "other", ticket: ticket)
            }
        }
    }

    /// Every role × every purpose (and none) × GET of a contact field, through the vault API.
    @Test(arguments: ["support", "fraud", "analyst", "billing"])
    func readsFollowPurposeConditionedGrants(role: String) throws {
        let t = try TestVault(policy: Self.policy)
        _ = try t.put("s", [("name", "Jane Doe")])
        _ = try t.vault.addClient(name: "probe", role: role, as: .localOperator)
        for purpose in Self.purposes {
            let probe = Self.caller("probe", purpose)
            let expected: String?  // nil: refused with `refusal`
            var refusal = VaultError.Code.noPermission
            switch (role, purpose?.purpose) {
            case ("support", .support?), ("support", .subjectRequest?): expected = "Jane Doe"
            case ("support", _), ("billing", _): expected = "J. D."
            case ("fraud", .fraud?): expected = "J. D."
            case ("fraud", nil), ("analyst", nil):
                expected = nil
                refusal = .noPurpose
            case ("fraud", _): expected = nil
            case ("analyst", _): expected = "J. D."
            default: Issue.record("no expectation for \(role)"); return
            }
            let label = "\(role) \(purpose?.purpose.rawValue ?? "none")"
            if let expected {
                #expect(try t.get("s", ["name"], as: probe) == [expected], "\(label)")
            } else {
                expectError(refusal, "\(label)") { _ = try t.vault.get(subject: "s", fields: ["name"], as: probe) }
                expectError(refusal, "\(label) EXPORT") { _ = try t.vault.export(subject: "s", as: probe) }
            }
        }
        // A role that must state a purpose needs one for operations too.
        if role == "analyst" {
            expectError(.noPurpose) { _ = try t.vault.exists(subject: "s", as: Self.caller("probe", nil)) }
            #expect(try t.vault.exists(subject: "s", as: Self.caller("probe", AccessPurpose(.fraud))) == true)
        }
    }

    @Test func builtInRolesWorkWithoutAPurposeAndAPurposeChangesNothingThere() throws {
        let t = try TestVault()
        _ = try t.put("s", [("name", "Jane Doe")])
        for purpose in Self.purposes {
            var support = TestVault.support
            support.purpose = purpose
            #expect(try t.get("s", ["name"], as: support) == ["Jane Doe"])
            var billing = TestVault.billing
            billing.purpose = purpose
            #expect(try t.get("s", ["name"], as: billing) == ["J. D."])
        }
    }

    static func entries(_ t: TestVault) throws -> [[String: Any]] {
        try t.vault.auditTail(1000, as: TestVault.admin).map {
            try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any]
        }
    }

    @Test func thePurposeAndTicketAreInTheAuditEntryUnderTheMAC() throws {
        let t = try TestVault(policy: Self.policy)
        _ = try t.put("s", [("name", "Jane Doe")])  // no purpose: a v1 entry
        _ = try t.vault.export(subject: "s", as: Self.caller("support1", AccessPurpose(.subjectRequest)))
        _ = try t.vault.get(
            subject: "s", fields: ["name"],
            as: Self.caller("support1", try AccessPurpose(name: "other", ticket: "INC-7")))
        let all = try Self.entries(t)
        let export = try #require(all.first { $0["command"] as? String == "EXPORT" })
        #expect(export["purpose"] as? String == "subject-request")
        #expect(export["ticket"] is NSNull)
        let get = try #require(all.last { $0["command"] as? String == "GET" })
        #expect(get["purpose"] as? String == "other" && get["ticket"] as? String == "INC-7")
        let put = try #require(all.first { $0["command"] as? String == "PUT" })
        #expect(put["purpose"] is NSNull && put["ticket"] is NSNull)
        // `coffer audit export` writes the same lines.
        var exported: [String] = []
        try t.vault.exportAudit(since: 0, as: .localOperator) { exported += $0 }
        #expect(exported.contains { $0.contains(#""purpose":"other""#) && $0.contains(#""ticket":"INC-7""#) })
        #expect(try t.vault.verifyAudit(as: TestVault.auditor) == .verified(count: exported.count + 1))

        // Each edit of the purpose columns breaks the chain at that entry: changing a purpose,
        // removing one (which would make the entry look older than it is), adding one.
        let exportSeq = export["seq"] as! Int
        let putSeq = put["seq"] as! Int
        let getSeq = get["seq"] as! Int
        let snapshot = t.root + "/snapshot.db"
        let database = t.configuration.dataDirectory + "/coffer.db"
        try t.vault.close()
        try t.snapshot(to: snapshot)
        for (edit, seq) in [
            ("UPDATE audit SET purpose = 'support' WHERE seq = \(exportSeq)", exportSeq),
            ("UPDATE audit SET purpose = NULL WHERE seq = \(exportSeq)", exportSeq),
            ("UPDATE audit SET ticket = 'INC-8' WHERE seq = \(getSeq)", getSeq),
            ("UPDATE audit SET purpose = 'billing' WHERE seq = \(putSeq)", putSeq),
        ] {
            for suffix in ["", "-wal", "-shm"] where FileManager.default.fileExists(atPath: database + suffix) {
                try FileManager.default.removeItem(atPath: database + suffix)
            }
            try FileManager.default.copyItem(atPath: snapshot, toPath: database)
            try t.sql(edit)
            let vault = try Vault.open(t.configuration)
            #expect(
                try vault.verifyAudit(as: TestVault.admin)
                    == .tampered(seq: Int64(seq), reason: "entry \(seq) does not match its MAC"), "\(edit)")
            try vault.close()
        }
    }

    @Test func policyFilesGrantByPurpose() throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("coffer-policy-\(UUID()).json")
        defer { try? FileManager.default.removeItem(at: file) }
        try Data(
            #"{"roles":{"support":{"read":{"contact":"masked"},"purposes":{"contact":{"plain":["support","subject-request"]}}},"analyst":{"read":{"contact":"masked"},"requiresPurpose":true}}}"#
                .utf8
        ).write(to: file)
        let policy = try Policy.load(path: file.path)
        let name = try FieldCatalogue.field(named: "name")
        #expect(policy.decide(role: "support", .read(name)) == .allow(.masked))
        #expect(policy.decide(role: "support", .read(name), purpose: .support) == .allow(.plain))
        #expect(policy.decide(role: "support", .read(name), purpose: .marketing) == .allow(.masked))
        #expect(policy.decide(role: "analyst", .read(name)) == .noPurpose)
        #expect(policy.decide(role: "analyst", .read(name), purpose: .fraud) == .allow(.masked))
        for (json, reason) in [
            (#"{"roles":{"x":{"purposes":{"contact":{"plain":["gossip"]}}}}}"#, "role x: unknown purpose 'gossip'"),
            (
                #"{"roles":{"x":{"purposes":{"contact":{"none":["fraud"]}}}}}"#,
                "role x: purposes: level must be plain or masked, not 'none'"
            ),
            (#"{"roles":{"x":{"purposes":{"cards":{"plain":["fraud"]}}}}}"#, "role x: unknown category 'cards'"),
        ] {
            try Data(json.utf8).write(to: file)
            #expect(throws: VaultError(.setup, "policy file \(file.path): \(reason)")) {
                _ = try Policy.load(path: file.path)
            }
        }
    }
}
