import CofferCore
import Foundation
import Testing

/// The role × command × category matrix, driven through the vault API (not the policy alone),
/// so the test proves that every entry point asks the decision function.
@Suite struct PolicyMatrixTests {
    static let roles = ["billing", "support", "admin", "auditor"]

    /// What the built-in policy grants, written out independently of `Policy.builtIn`.
    static let expectedRead: [String: [DataCategory: ReadLevel]] = [
        "billing": [.card: .plain, .contact: .masked, .consent: .plain],
        "support": [.contact: .plain, .card: .masked, .consent: .plain],
        "admin": [:], "auditor": [:],
    ]
    static let expectedWrite: [String: Set<DataCategory>] = [
        "billing": [.card], "support": [.contact, .consent], "admin": [], "auditor": [],
    ]
    static let expectedOperations: [String: Set<Privilege>] = [
        "billing": [.exists, .tokenize, .detokenize], "support": [.exists, .find, .detokenize],
        "admin": [.shred, .clients, .keys, .audit],
        "auditor": [.audit],
    ]

    static let sample: [String: String] = [
        "name": "Jane Doe", "email": "jane@example.com", "phone": "+17189429990", "organization": "Acme",
        "postal_address": "1 Main St", "birthday": "1990-01-02", "gender": "female", "card.pan": "4111111111111111",
        "card.expiry": "07/29", "card.holder": "JANE DOE", "consent.marketing": "yes",
    ]

    @Test(arguments: roles)
    func readAndWriteFollowTheGrants(role: String) throws {
        let t = try TestVault()
        _ = try t.vault.addClient(name: "probe", role: role, as: .localOperator)
        let probe = Caller.client("probe")
        // Seed every field with the roles allowed to write it.
        _ = try t.put("s", FieldCatalogue.all.filter { $0.category != .card }.map { ($0.name, Self.sample[$0.name]!) })
        _ = try t.put(
            "s", FieldCatalogue.all.filter { $0.category == .card }.map { ($0.name, Self.sample[$0.name]!) },
            as: TestVault.billing)
        for field in FieldCatalogue.all {
            let level = Self.expectedRead[role]![field.category] ?? .none
            let plain = Self.sample[field.name]!
            switch level {
            case .none:
                expectError(.noPermission, "\(role) read \(field.name)") {
                    _ = try t.vault.get(subject: "s", fields: [field.name], as: probe)
                }
            case .plain:
                #expect(try t.get("s", [field.name], as: probe) == [plain], "\(role) read \(field.name)")
            case .masked:
                let got = try t.get("s", [field.name], as: probe)[0]
                #expect(got == String(decoding: Masking.mask(Array(plain.utf8), for: field), as: UTF8.self))
                #expect(got != plain, "\(role) saw \(field.name) in the clear")
            }
            let canWrite = Self.expectedWrite[role]!.contains(field.category)
            if canWrite {
                #expect(
                    try t.vault.put(
                        subject: "w", values: [(field.name, Array(Self.sample[field.name]!.utf8))], as: probe) == 1)
                #expect(try t.vault.delete(subject: "w", fields: [field.name], as: probe) == 1)
            } else {
                expectError(.noPermission, "\(role) write \(field.name)") {
                    _ = try t.vault.put(
                        subject: "w", values: [(field.name, Array(Self.sample[field.name]!.utf8))], as: probe)
                }
                expectError(.noPermission, "\(role) delete \(field.name)") {
                    _ = try t.vault.delete(subject: "s", fields: [field.name], as: probe)
                }
            }
        }
        // EXPORT shows exactly the readable fields, masked as GET would.
        let readable = FieldCatalogue.all.filter { (Self.expectedRead[role]![$0.category] ?? .none) != .none }
        if readable.isEmpty {
            expectError(.noPermission) { _ = try t.vault.export(subject: "s", as: probe) }
        } else {
            #expect(try t.vault.export(subject: "s", as: probe).map(\.field) == readable.map(\.name))
        }
    }

    @Test(arguments: roles)
    func operationsFollowTheGrants(role: String) throws {
        let t = try TestVault()
        _ = try t.vault.addClient(name: "probe", role: role, as: .localOperator)
        let probe = Caller.client("probe")
        let ops = Self.expectedOperations[role]!
        let checks: [(Privilege, () throws -> Void)] = [
            (.exists, { _ = try t.vault.exists(subject: "s", as: probe) }),
            (.find, { _ = try t.vault.find(.email, value: Array("a@example.com".utf8), as: probe) }),
            (.shred, { _ = try t.vault.shred(subject: "s", as: probe) }),
            (.clients, { _ = try t.vault.listClients(as: probe) }),
            (
                .clients,
                { _ = try t.vault.addClient(name: "new-\(UUID().uuidString.prefix(6))", role: "billing", as: probe) }
            ),
            (.clients, { _ = try t.vault.revokeClient(name: "nobody", as: probe) }),
            (.keys, { _ = try t.vault.keyStatus(as: probe) }),
            (.keys, { _ = try t.vault.rekey(subject: "s", as: probe) }),
            (.audit, { _ = try t.vault.auditTail(5, as: probe) }),
            (.audit, { _ = try t.vault.verifyAudit(as: probe) }),
            (.tokenize, { _ = try t.vault.tokenize(subject: "s", field: "card.pan", as: probe) }),
            (.tokenize, { _ = try t.vault.revokeToken(Array("tok_unknown".utf8), as: probe) }),
            (.detokenize, { _ = try t.vault.detokenize(Array("tok_unknown".utf8), as: probe) }),
        ]
        for (operation, call) in checks {
            if ops.contains(operation) {
                #expect(throws: Never.self, "\(role) \(operation)") { try call() }
            } else {
                expectError(.noPermission, "\(role) \(operation)") { try call() }
            }
        }
    }

    /// What a client whose role the policy no longer names is decided on: every read, write and
    /// operation, with no purpose and with each purpose, is denied (never NOPURPOSE, never
    /// allowed). Fails if a field added to `RoleGrants` defaults to granting something.
    @Test func noGrantsDenyEveryAccessForEveryPurpose() {
        let policy = Policy(roles: ["nothing": .none])
        var accesses: [Access] = FieldCatalogue.all.flatMap { [Access.read($0), .write($0)] }
        accesses += Privilege.allCases.map(Access.operation)
        for access in accesses {
            for purpose in [nil] + Purpose.allCases.map(Optional.some) {
                #expect(
                    policy.decide(role: "nothing", access, purpose: purpose) == .deny, "\(access) \(purpose as Any)")
                #expect(policy.decide(role: "ghost", access, purpose: purpose) == .deny)
            }
        }
    }

    @Test func unknownRoleIsDeniedEverything() throws {
        let t = try TestVault(
            policy: Policy(roles: Policy.builtIn.roles.merging(["ghost": RoleGrants()]) { a, _ in a }))
        _ = try t.vault.addClient(name: "g", role: "ghost", as: .localOperator)
        // The role disappears from the policy (a new policy file) while the client remains.
        var configuration = t.configuration
        configuration.policy = .builtIn
        try t.vault.close()
        let vault = try Vault.open(configuration)
        #expect(try vault.clientsWithUnknownRoles().map(\.name) == ["g"])
        #expect(try vault.clientsWithUnknownRoles().map(\.role) == ["ghost"])
        let ghost = Caller.client("g")
        expectError(.noPermission) { _ = try vault.get(subject: "s", fields: ["name"], as: ghost) }
        expectError(.noPermission) { _ = try vault.exists(subject: "s", as: ghost) }
        expectError(.noPermission) { _ = try vault.put(subject: "s", values: [("name", Array("x".utf8))], as: ghost) }
        expectError(.noPermission) { _ = try vault.delete(subject: "s", fields: ["name"], as: ghost) }
        expectError(.noPermission) { _ = try vault.export(subject: "s", as: ghost) }
        expectError(.noPermission) { _ = try vault.find(.email, value: Array("a@example.com".utf8), as: ghost) }
        expectError(.noPermission) { _ = try vault.shred(subject: "s", as: ghost) }
        expectError(.noPermission) { _ = try vault.auditTail(1, as: ghost) }
        expectError(.noPermission) { _ = try vault.listClients(as: ghost) }
        expectError(.noPermission) { _ = try vault.keyStatus(as: ghost) }
    }

    @Test func policyFileIsParsedStrictly() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("coffer-policy-\(UUID())")
        defer { try? FileManager.default.removeItem(at: dir) }
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let good = dir.appendingPathComponent("good.json")
        try Data(
            #"{"roles":{"fraud":{"read":{"card":"masked","contact":"plain"},"write":[],"operations":["find"]}}}"#.utf8
        ).write(to: good)
        let policy = try Policy.load(path: good.path)
        #expect(policy.decide(role: "fraud", .read(try FieldCatalogue.field(named: "card.pan"))) == .allow(.masked))
        #expect(policy.decide(role: "fraud", .write(try FieldCatalogue.field(named: "name"))) == .deny)
        #expect(policy.decide(role: "billing", .operation(.find)) == .deny)
        let bad = dir.appendingPathComponent("bad.json")
        try Data(#"{"roles":{"fraud":{"read":{"cards":"plain"}}}}"#.utf8).write(to: bad)
        #expect(throws: VaultError.self) { _ = try Policy.load(path: bad.path) }
    }

    /// A typo'd key is refused, not dropped: `requireConsent` would have left marketing's
    /// consent condition off and opened its access.
    @Test(arguments: [
        (
            #"{"roles":{"marketing":{"fields":{"name":"plain"},"requireConsent":"consent.marketing"}}}"#,
            "unknown key 'requireConsent' in role 'marketing' (known: fields, operations, purposes, read, requiresConsent, requiresPurpose, write)"
        ),
        (#"{"roles":{},"role":{}}"#, "unknown key 'role' in the top level (known: roles)"),
        (
            #"{"roles":{"fraud":{"operations":["find"],"operations":["shred"]}}}"#,
            "key 'operations' appears twice in roles.fraud"
        ),
        (
            #"{"roles":{"fraud":{"read":{"card":"none","c\u0061rd":"plain"}}}}"#,
            "key 'card' appears twice in roles.fraud.read"
        ),
        (#"{"roles":{"a":{}},"roles":{"b":{}}}"#, "key 'roles' appears twice in the top level"),
    ])
    func policyFileRefusesUnknownAndDuplicateKeys(json: String, reason: String) throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("coffer-policy-\(UUID()).json")
        try Data(json.utf8).write(to: file)
        #expect(throws: VaultError(.setup, "policy file \(file.path): \(reason)")) {
            _ = try Policy.load(path: file.path)
        }
        // The same keys once each, spelled right, load.
        let fine =
            #"{"roles":{"fraud":{"read":{"card":"none"},"operations":["find"],"requiresConsent":"consent.marketing"},"x":{"fields":{"name":"plain"}}}}"#
        try Data(fine.utf8).write(to: file)
        #expect(try Policy.load(path: file.path).roles.count == 2)
    }

    /// Role names that would read like the vault's own audit markers, or that listings could not
    /// tell apart, are refused by name; ordinary ones load.
    @Test(arguments: [
        "(local operator)", "(operator)", "-", "admin ", " admin", "x\ny", "adm\u{131}n", "billing locked", "",
        String(repeating: "r", count: 65), ".hidden", "a/b",
    ])
    func policyFileRefusesRoleNamesOutsideTheClientNameSet(name: String) throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("coffer-policy-\(UUID()).json")
        defer { try? FileManager.default.removeItem(at: file) }
        let json = try JSONSerialization.data(withJSONObject: ["roles": [name: [String: Any]()]])
        try json.write(to: file)
        do {
            _ = try Policy.load(path: file.path)
            Issue.record("role name \(String(reflecting: name)) was accepted")
        } catch let error as VaultError {
            #expect(error.code == .setup)
            #expect("\(error)".contains("must be 1 to 64 letters, digits and . _ : -"), "\(error)")
        }
        let fine = try JSONSerialization.data(
            withJSONObject: ["roles": ["fraud-team": [String: Any](), "ops.2": [:], "a_b:c": [:]]])
        try fine.write(to: file)
        #expect(try Policy.load(path: file.path).roles.count == 3)
    }

    @Test func deployExamplePolicyLoads() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let policy = try Policy.load(path: root.appendingPathComponent("Deploy/policy.example.json").path)
        #expect(Set(policy.roles.keys) == Set(Policy.builtIn.roles.keys))
        for role in Policy.builtIn.roles.keys {
            #expect(policy.roles[role] == Policy.builtIn.roles[role], "example differs from built-in for \(role)")
        }
    }
}
