import CofferCore
import Foundation
import Testing

/// TOKENIZE, DETOKENIZE and TOKEN.REVOKE through the vault API.
@Suite struct TokenTests {
    static let pan = "4111111111111111"

    /// A vault with subject `s` holding a card, and a client of every built-in role.
    static func vault() throws -> TestVault {
        let t = try TestVault()
        _ = try t.put("s", [("card.pan", pan)], as: TestVault.billing)
        _ = try t.vault.addClient(name: "marketing1", role: "marketing", as: .localOperator)
        return t
    }

    static func detokenize(_ t: TestVault, _ token: String, as caller: Caller) throws -> (String, String)? {
        try t.vault.detokenize(Array(token.utf8), as: caller).map {
            ($0.subject, String(decoding: $0.value, as: UTF8.self))
        }
    }

    @Test(arguments: CardToken.Format.allCases)
    func detokenizeAnswersAtEachRolesReadLevel(format: CardToken.Format) throws {
        let t = try Self.vault()
        let token = try #require(
            try t.vault.tokenize(subject: "s", field: "card.pan", format: format, as: TestVault.billing))
        #expect(token != Self.pan)
        let billing = try #require(try Self.detokenize(t, token, as: TestVault.billing))
        #expect(billing == ("s", Self.pan))
        let support = try #require(try Self.detokenize(t, token, as: TestVault.support))
        #expect(support == ("s", "************1111"))
        for caller in [TestVault.admin, TestVault.auditor, Caller.client("marketing1")] {
            expectError(.noPermission, "\(caller)") { _ = try Self.detokenize(t, token, as: caller) }
        }
        // Only billing may make tokens.
        for caller in [TestVault.support, TestVault.admin, TestVault.auditor, Caller.client("marketing1")] {
            expectError(.noPermission, "\(caller)") {
                _ = try t.vault.tokenize(subject: "s", field: "card.pan", as: caller)
            }
        }
    }

    @Test func formatsAndReuse() throws {
        let t = try Self.vault()
        let first = try #require(try t.vault.tokenize(subject: "s", field: "card.pan", as: TestVault.billing))
        #expect(first.count == 16 && first.hasSuffix("1111"))
        let second = try #require(try t.vault.tokenize(subject: "s", field: "card.pan", as: TestVault.billing))
        #expect(second != first, "without REUSE each TOKENIZE makes a new token")
        let reused = try t.vault.tokenize(subject: "s", field: "card.pan", reuse: true, as: TestVault.billing)
        #expect(reused == second, "REUSE gives the newest token of the format")
        let opaque = try #require(
            try t.vault.tokenize(subject: "s", field: "card.pan", format: .opaque, reuse: true, as: TestVault.billing))
        #expect(opaque.hasPrefix("tok_"), "REUSE with no token of the format makes one")
        #expect(
            try t.vault.tokenize(subject: "s", field: "card.pan", format: .opaque, reuse: true, as: TestVault.billing)
                == opaque)
        for token in [first, second, opaque] {
            #expect(try Self.detokenize(t, token, as: TestVault.billing)?.1 == Self.pan)
        }
    }

    @Test func badRequestsAreRefusedByName() throws {
        let t = try Self.vault()
        #expect(try t.vault.tokenize(subject: "nobody", field: "card.pan", as: TestVault.billing) == nil)
        #expect(throws: VaultError(.invalid, "only card.pan can be tokenized, not 'card.holder'")) {
            _ = try t.vault.tokenize(subject: "s", field: "card.holder", as: TestVault.billing)
        }
        #expect(throws: VaultError(.invalid, "unknown field 'pan'")) {
            _ = try t.vault.tokenize(subject: "s", field: "pan", as: TestVault.billing)
        }
        #expect(throws: VaultError(.invalid, "a token is 1 to 32 bytes long")) {
            _ = try t.vault.detokenize(Array(repeating: 0x31, count: 33), as: TestVault.billing)
        }
    }

    @Test func unknownRevokedAndShreddedTokensAnswerNilAndAreCountedAndAudited() throws {
        let t = try Self.vault()
        _ = try t.put("other", [("card.pan", "5555555555554444")], as: TestVault.billing)
        let token = try #require(try t.vault.tokenize(subject: "s", field: "card.pan", as: TestVault.billing))
        let kept = try #require(try t.vault.tokenize(subject: "other", field: "card.pan", as: TestVault.billing))
        let before = t.vault.unknownTokenCount
        #expect(try Self.detokenize(t, "tok_1111111111111111111111", as: TestVault.billing) == nil)
        #expect(t.vault.unknownTokenCount == before + 1)

        #expect(try t.vault.revokeToken(Array(token.utf8), as: TestVault.billing) == true)
        #expect(try Self.detokenize(t, token, as: TestVault.billing) == nil)
        #expect(try t.vault.revokeToken(Array(token.utf8), as: TestVault.billing) == false)
        #expect(t.vault.unknownTokenCount == before + 3)
        expectError(.noPermission) { _ = try t.vault.revokeToken(Array(kept.utf8), as: TestVault.support) }

        let again = try #require(try t.vault.tokenize(subject: "s", field: "card.pan", as: TestVault.billing))
        #expect(try t.vault.shred(subject: "s", as: TestVault.admin) != .absent)
        #expect(try Self.detokenize(t, again, as: TestVault.billing) == nil)
        #expect(try Self.detokenize(t, kept, as: TestVault.billing)?.0 == "other", "another subject's token lives on")

        let entries = try t.vault.auditTail(1000, as: TestVault.admin).map {
            try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any]
        }
        let tokens = entries.filter { ["TOKENIZE", "DETOKENIZE", "TOKEN.REVOKE"].contains($0["command"] as! String) }
        #expect(
            tokens.map { "\($0["command"]!) \($0["subject"] as? String ?? "-") \($0["outcome"]!)" } == [
                "TOKENIZE s ok", "TOKENIZE other ok", "DETOKENIZE - unknown-token", "TOKEN.REVOKE s ok",
                "DETOKENIZE - unknown-token", "TOKEN.REVOKE - unknown-token", "TOKEN.REVOKE - denied", "TOKENIZE s ok",
                "DETOKENIZE - unknown-token", "DETOKENIZE other ok",
            ])
        // No token ever reaches the trail.
        let trail = try t.vault.auditTail(1000, as: TestVault.admin).joined()
        for value in [token, kept, again] { #expect(!trail.contains(value)) }
        guard case .verified = try t.vault.verifyAudit(as: TestVault.auditor) else {
            Issue.record("the audit chain does not verify")
            return
        }
    }

    @Test func aNewCardEndsTheTokensOfTheOldOne() throws {
        let t = try Self.vault()
        let token = try #require(try t.vault.tokenize(subject: "s", field: "card.pan", as: TestVault.billing))
        _ = try t.put("s", [("card.pan", "4111 1111 1111 1111"), ("card.expiry", "01/30")], as: TestVault.billing)
        #expect(try Self.detokenize(t, token, as: TestVault.billing)?.1 == Self.pan, "the same card keeps its tokens")
        _ = try t.vault.rekey(subject: "s", as: TestVault.admin)
        #expect(try Self.detokenize(t, token, as: TestVault.billing)?.1 == Self.pan, "REKEY keeps them too")
        #expect(
            try t.vault.tokenize(subject: "s", field: "card.pan", reuse: true, as: TestVault.billing) == token)

        _ = try t.put("s", [("card.pan", "5555555555554444")], as: TestVault.billing)
        #expect(try Self.detokenize(t, token, as: TestVault.billing) == nil, "a new card ends the old card's tokens")
        let next = try #require(try t.vault.tokenize(subject: "s", field: "card.pan", as: TestVault.billing))
        #expect(next.hasSuffix("4444"))
        _ = try t.vault.delete(subject: "s", fields: ["card.pan"], as: TestVault.billing)
        #expect(try Self.detokenize(t, next, as: TestVault.billing) == nil, "a deleted card ends its tokens")
    }

    /// A role whose reads depend on consent gets no token, new or reused, and no PAN from one,
    /// once consent is withdrawn.
    @Test func consentConditionsTokensToo() throws {
        var roles = Policy.builtIn.roles
        roles["partner"] = RoleGrants(
            read: [.card: .masked], operations: [.tokenize, .detokenize], consentCondition: "consent.marketing")
        let t = try TestVault(policy: Policy(roles: roles))
        _ = try t.vault.addClient(name: "partner1", role: "partner", as: .localOperator)
        let partner = Caller.client("partner1")
        _ = try t.put("s", [("card.pan", Self.pan)], as: TestVault.billing)
        _ = try t.put("s", [("consent.marketing", "yes")])
        let token = try #require(try t.vault.tokenize(subject: "s", field: "card.pan", as: partner))
        #expect(try Self.detokenize(t, token, as: partner)! == ("s", "************1111"))
        _ = try t.put("s", [("consent.marketing", "no")])
        #expect(try t.vault.tokenize(subject: "s", field: "card.pan", reuse: true, as: partner) == nil)
        #expect(try t.vault.tokenize(subject: "s", field: "card.pan", as: partner) == nil)
        #expect(try Self.detokenize(t, token, as: partner) == nil)
        #expect(try Self.detokenize(t, token, as: TestVault.billing)?.1 == Self.pan, "billing has no condition")
    }

    /// Tokens are stored as keyed hashes and sealed: no token appears in any file of the data
    /// directory, while the scan finds the hash rows it should.
    @Test func noTokenIsInTheDataFiles() throws {
        let t = try Self.vault()
        var tokens: [String] = []
        for i in 0..<50 {
            _ = try t.put("c\(i)", [("card.pan", Self.pan)], as: TestVault.billing)
            for format in CardToken.Format.allCases {
                tokens.append(
                    try #require(
                        try t.vault.tokenize(subject: "c\(i)", field: "card.pan", format: format, as: TestVault.billing)
                    ))
            }
        }
        let hash = try #require(try t.fetchBlob("SELECT hash FROM token LIMIT 1"))
        try t.vault.close()
        let directory = t.configuration.dataDirectory
        #expect(!(try DataFileScan.occurrences(of: hash, under: directory)).isEmpty, "the scan finds stored rows")
        for token in tokens {
            #expect(try DataFileScan.occurrences(of: Array(token.utf8), under: directory).isEmpty, "\(token) on disk")
            // The random middle alone, in case a digit format's last four and length were stored apart.
            let middle = Array(token.utf8.dropFirst(1).dropLast(4))
            #expect(try DataFileScan.occurrences(of: middle, under: directory).isEmpty, "\(token) middle on disk")
        }
        // And they survive a reopen: the hash key is the index key, not a per-process secret.
        let reopened = try Vault.open(t.configuration)
        #expect(try reopened.detokenize(Array(tokens[0].utf8), as: TestVault.billing)?.subject == "c0")
    }
}
