import Foundation
import Testing

/// Every role × every command × every category, over the socket against the real server, checked
/// against a table written out here independently of the vault's built-in policy.
@Suite struct RoleMatrixTests {
    enum Level { case plain, masked, none }

    static let read: [String: [String: Level]] = [
        "billing": ["contact": .masked, "card": .plain, "consent": .plain],
        "support": ["contact": .plain, "card": .masked, "consent": .plain],
        "admin": [:], "auditor": [:],
    ]
    static let write: [String: Set<String>] = [
        "billing": ["card"], "support": ["contact", "consent"], "admin": [], "auditor": [],
    ]
    static let operations: [String: Set<String>] = [
        "billing": ["EXISTS", "TOKENIZE", "TOKEN.REVOKE", "DETOKENIZE"], "support": ["EXISTS", "FIND", "DETOKENIZE"],
        "admin": [
            "SHRED", "CLIENT.ADD", "CLIENT.LIST", "CLIENT.REVOKE", "KEYS.STATUS", "REKEY", "AUDIT.TAIL", "AUDIT.VERIFY",
        ],
        "auditor": ["AUDIT.TAIL", "AUDIT.VERIFY"],
    ]
    /// One sample value per field, and the category it belongs to.
    static let fields: [(name: String, category: String, value: String)] = [
        ("name", "contact", "Jane Doe"), ("email", "contact", "jane@example.com"), ("phone", "contact", "+17189429990"),
        ("organization", "contact", "Acme"), ("postal_address", "contact", "1 Main St"),
        ("birthday", "contact", "1990-01-02"),
        ("gender", "contact", "female"), ("card.pan", "card", "4111111111111111"), ("card.expiry", "card", "07/29"),
        ("card.holder", "card", "JANE DOE"), ("consent.marketing", "consent", "yes"),
    ]

    @Test(arguments: ["billing", "support", "admin", "auditor"], TestBackend.allCases)
    func matrix(role: String, backend: TestBackend) throws {
        let server = try TestServer(backend: backend)
        let support = try server.authenticated("support", secret: try server.addClient("support", role: "support"))
        let billing = try server.authenticated("billing", secret: try server.addClient("billing", role: "billing"))
        for field in Self.fields {
            let writer = field.category == "card" ? billing : support
            #expect(try writer.call("PUT", "s", field.name, field.value) == .integer(1))
        }
        let probe = try server.authenticated("probe", secret: try server.addClient("probe", role: role))
        func denied(_ reply: RESPClient.Reply) -> Bool { reply.errorText?.hasPrefix("NOPERM") == true }

        for field in Self.fields {
            let level = Self.read[role]![field.category] ?? .none
            let got = try probe.call("GET", "s", field.name)
            switch level {
            case .none: #expect(denied(got), "\(role) GET \(field.name): \(got)")
            case .plain: #expect(got == .array([.bulk(field.value)]), "\(role) GET \(field.name)")
            case .masked:
                #expect(
                    !denied(got) && got != .array([.bulk(field.value)]), "\(role) GET \(field.name) not masked: \(got)")
            }
            let put = try probe.call("PUT", "w", field.name, field.value)
            let del = try probe.call("DEL", "w", field.name)
            if Self.write[role]!.contains(field.category) {
                #expect(put == .integer(1) && del == .integer(1), "\(role) PUT/DEL \(field.name): \(put) \(del)")
            } else {
                #expect(denied(put) && denied(del), "\(role) PUT/DEL \(field.name): \(put) \(del)")
            }
        }
        let export = try probe.call("EXPORT", "s")
        let visible = Self.fields.filter { (Self.read[role]![$0.category] ?? .none) != .none }.map(\.name)
        if visible.isEmpty {
            #expect(denied(export), "\(role) EXPORT")
        } else if case .array(let flat) = export {
            #expect(stride(from: 0, to: flat.count, by: 2).map { flat[$0] } == visible.map { .bulk($0) })
        } else {
            Issue.record("\(role) EXPORT: \(export)")
        }

        // A token billing made answers each role at its read level of card.pan, or NOPERM.
        guard case .bulk(let token) = try billing.call("TOKENIZE", "s", "card.pan", "FORMAT", "luhn9") else {
            Issue.record("billing TOKENIZE")
            return
        }
        let detokenized = try probe.call("DETOKENIZE", token)
        switch Self.read[role]!["card"] ?? .none {
        case .none: #expect(denied(detokenized), "\(role) DETOKENIZE: \(detokenized)")
        case .plain: #expect(detokenized == .array([.bulk("s"), .bulk("4111111111111111")]), "\(role) DETOKENIZE")
        case .masked: #expect(detokenized == .array([.bulk("s"), .bulk("************1111")]), "\(role) DETOKENIZE")
        }

        let commands: [(String, [String])] = [
            ("EXISTS", ["EXISTS", "s"]), ("FIND", ["FIND", "email", "jane@example.com"]),
            ("CLIENT.LIST", ["CLIENT.LIST"]), ("CLIENT.ADD", ["CLIENT.ADD", "extra", "auditor"]),
            ("CLIENT.REVOKE", ["CLIENT.REVOKE", "extra"]), ("KEYS.STATUS", ["KEYS.STATUS"]), ("REKEY", ["REKEY", "s"]),
            ("AUDIT.TAIL", ["AUDIT.TAIL", "3"]), ("AUDIT.VERIFY", ["AUDIT.VERIFY"]),
            ("TOKENIZE", ["TOKENIZE", "s", "card.pan", "FORMAT", "opaque"]),
            ("TOKEN.REVOKE", ["TOKEN.REVOKE", "tok_unknown"]), ("DETOKENIZE", ["DETOKENIZE", "tok_unknown"]),
            ("SHRED", ["SHRED", "s"]),
        ]
        for (name, words) in commands {
            let reply = try probe.call(words.map { Array($0.utf8) })
            if Self.operations[role]!.contains(name) {
                #expect(!denied(reply) && reply.errorText == nil, "\(role) \(name): \(reply)")
            } else {
                #expect(denied(reply), "\(role) \(name): \(reply)")
            }
        }
    }
}
