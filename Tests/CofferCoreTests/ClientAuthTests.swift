import CofferCore
import Foundation
import Testing

@Suite struct ClientAuthTests {
    @Test func rightSecretAuthenticatesWrongOneDoesNot() throws {
        let t = try TestVault()
        #expect(try t.vault.authenticate(client: "admin", secret: Array(t.adminSecret.utf8)).role == "admin")
        #expect(
            try t.vault.authenticate(client: "admin", secret: Array("nope".utf8)) == .failure(consecutiveFailures: 1))
        #expect(
            try t.vault.authenticate(client: "ghost", secret: Array(t.adminSecret.utf8))
                == .failure(consecutiveFailures: 1))
        // The secret is bound to the name: admin's secret does not open another client.
        let other = try t.vault.addClient(name: "b2", role: "billing", as: .localOperator)
        #expect(try t.vault.authenticate(client: "b2", secret: Array(t.adminSecret.utf8)).role == nil)
        #expect(try t.vault.authenticate(client: "b2", secret: Array(other.utf8)).role == "billing")
    }

    /// An unknown role is named back only when it could be a role name: a tab, a NUL or a
    /// newline from the caller does not reach the error line (or a log that quotes it).
    @Test(arguments: [
        ("superuser", "unknown role 'superuser';"), ("bad\trole", "unknown role (not a valid role name);"),
        ("a\u{0}b", "unknown role (not a valid role name);"), ("x\r\nERR", "unknown role (not a valid role name);"),
    ])
    func clientAddNamesAnUnknownRoleOnlyIfItCouldBeOne(role: String, expected: String) throws {
        let t = try TestVault()
        do {
            _ = try t.vault.addClient(name: "c1", role: role, as: .localOperator)
            Issue.record("CLIENT.ADD accepted role \(role.debugDescription)")
        } catch let error as VaultError {
            #expect(error.code == .invalid)
            #expect(error.message.hasPrefix(expected), "\(error.message.debugDescription)")
            #expect(!error.message.contains { $0.isNewline || $0 == "\t" || $0 == "\u{0}" })
        }
    }

    /// Ten distinct wrong secrets from one origin: a brute-forcer (PCI DSS 8.3.4).
    static func guesses(_ count: Int) -> [[UInt8]] { (0..<count).map { Array("guess-\($0)".utf8) } }

    @Test func tenDistinctFailuresLockEvenTheRightSecretUntilUnlockedOrExpired() throws {
        let t = try TestVault()
        let now = Date()
        for (attempt, guess) in Self.guesses(10).enumerated() {
            #expect(
                try t.vault.authenticate(client: "admin", secret: guess, peer: "ip 10.0.0.9", now: now)
                    == .failure(consecutiveFailures: attempt + 1))
        }
        #expect(try t.vault.listClients(as: .localOperator).first { $0.name == "admin" }?.locked == true)
        let right = Array(t.adminSecret.utf8)
        #expect(try t.vault.authenticate(client: "admin", secret: right, peer: "ip 10.0.0.9", now: now).role == nil)
        // Still locked 29 minutes later; free after 30.
        #expect(
            try t.vault.authenticate(client: "admin", secret: right, peer: "ip 10.0.0.9", now: now + 29 * 60).role
                == nil)
        #expect(
            try t.vault.authenticate(client: "admin", secret: right, peer: "ip 10.0.0.9", now: now + 30 * 60 + 1).role
                == "admin")
        // Unlock lifts a lock at once.
        for guess in Self.guesses(10) { _ = try t.vault.authenticate(client: "admin", secret: guess, now: now) }
        #expect(try t.vault.unlockClient(name: "admin", as: .localOperator))
        #expect(try t.vault.authenticate(client: "admin", secret: right, now: now).role == "admin")
    }

    /// redis-py retries a failed AUTH ten times: a stale secret repeated must not lock the
    /// service out of its own account.
    @Test func aRepeatedWrongSecretCountsOnce() throws {
        let t = try TestVault()
        for _ in 0..<25 {
            #expect(
                try t.vault.authenticate(client: "admin", secret: Array("stale".utf8), peer: "uid 1000")
                    == .failure(consecutiveFailures: 1))
        }
        #expect(
            try t.vault.authenticate(client: "admin", secret: Array(t.adminSecret.utf8), peer: "uid 1000").role
                == "admin")
    }

    /// Locking a name out from one address does not lock it out from another: an attacker
    /// cannot deny a real client service from elsewhere.
    @Test func aLockOutHoldsOnlyForTheOriginThatEarnedIt() throws {
        let t = try TestVault()
        for guess in Self.guesses(10) {
            _ = try t.vault.authenticate(client: "admin", secret: guess, peer: "ip 127.0.0.2")
        }
        let right = Array(t.adminSecret.utf8)
        #expect(try t.vault.authenticate(client: "admin", secret: right, peer: "ip 127.0.0.2").role == nil)
        #expect(try t.vault.authenticate(client: "admin", secret: right, peer: "ip 127.0.0.1").role == "admin")
    }

    /// Cycling names buys a brute-forcer nothing: one origin's distinct failures across all
    /// names are capped too.
    @Test func oneOriginCyclingNamesIsLockedOut() throws {
        let t = try TestVault()
        for index in 0..<100 {
            _ = try t.vault.authenticate(client: "name\(index)", secret: [UInt8(index)], peer: "ip 10.1.1.1")
        }
        let right = Array(t.adminSecret.utf8)
        #expect(try t.vault.authenticate(client: "admin", secret: right, peer: "ip 10.1.1.1").role == nil)
        #expect(try t.vault.authenticate(client: "admin", secret: right, peer: "ip 10.1.1.2").role == "admin")
        // CLIENT.UNLOCK lifts the origin-wide lock for that name too.
        _ = try t.vault.authenticate(client: "admin", secret: [1], peer: "ip 10.1.1.1")
        #expect(try t.vault.unlockClient(name: "admin", as: .localOperator))
        #expect(try t.vault.authenticate(client: "admin", secret: right, peer: "ip 10.1.1.1").role == "admin")
    }

    /// Known and unknown names fail the same way (the server's delay grows with this count).
    @Test func unknownNamesCountLikeKnownOnes() throws {
        let t = try TestVault()
        for (attempt, guess) in Self.guesses(3).enumerated() {
            #expect(
                try t.vault.authenticate(client: "admin", secret: guess) == .failure(consecutiveFailures: attempt + 1))
            #expect(
                try t.vault.authenticate(client: "nobody", secret: guess) == .failure(consecutiveFailures: attempt + 1))
        }
    }

    @Test func successResetsTheFailureCount() throws {
        let t = try TestVault()
        for guess in Self.guesses(9) { _ = try t.vault.authenticate(client: "admin", secret: guess) }
        #expect(try t.vault.authenticate(client: "admin", secret: Array(t.adminSecret.utf8)).role == "admin")
        #expect(try t.vault.authenticate(client: "admin", secret: [0x41]) == .failure(consecutiveFailures: 1))
    }

    /// A session is bound to the client record it authenticated against: revoking the name and
    /// adding it again (with another role) does not hand the old session the new record.
    @Test func aSessionEndsWhenItsClientIsRevokedAndReAdded() throws {
        let t = try TestVault()
        _ = try t.put("a", [("name", "N")])
        let first = try t.vault.addClient(name: "x", role: "support", as: .localOperator)
        guard case .success(_, let binding) = try t.vault.authenticate(client: "x", secret: Array(first.utf8)) else {
            Issue.record("x did not authenticate")
            return
        }
        let session = Caller.client("x", binding: binding)
        #expect(try t.vault.role(of: session) == "support")
        #expect(try t.vault.revokeClient(name: "x", as: .localOperator))
        let second = try t.vault.addClient(name: "x", role: "billing", as: .localOperator)
        expectError(.noAuth) { _ = try t.vault.role(of: session) }
        expectError(.noAuth) { _ = try t.get("a", ["name"], as: session) }
        // The new record's own session works.
        guard case .success(_, let fresh) = try t.vault.authenticate(client: "x", secret: Array(second.utf8)) else {
            Issue.record("the re-added x did not authenticate")
            return
        }
        #expect(try t.vault.role(of: .client("x", binding: fresh)) == "billing")
    }

    /// An unknown name is audited as `(unknown)`, never as the string sent: with AUTH's
    /// arguments swapped that string is a live secret.
    @Test func aFailedAuthForAnUnknownNameDoesNotRecordTheName() throws {
        let t = try TestVault()
        _ = try t.vault.authenticate(client: t.adminSecret, secret: Array("admin".utf8))
        let text = try t.vault.auditTail(1000, as: TestVault.admin).joined(separator: "\n")
        #expect(!text.contains(t.adminSecret))
        #expect(text.contains("\"client\":\"(unknown)\""))
    }

    @Test func revokedClientIsRefusedOnItsNextCall() throws {
        let t = try TestVault()
        _ = try t.put("a", [("name", "N")])
        #expect(try t.vault.revokeClient(name: "support1", as: .localOperator))
        expectError(.noAuth) { _ = try t.get("a", ["name"], as: TestVault.support) }
    }

    @Test func clientNamesAndRolesAreValidated() throws {
        let t = try TestVault()
        expectError(.invalid) { _ = try t.vault.addClient(name: "bad name", role: "billing", as: .localOperator) }
        expectError(.invalid) { _ = try t.vault.addClient(name: "x", role: "root", as: .localOperator) }
        expectError(.invalid) { _ = try t.vault.addClient(name: "admin", role: "admin", as: .localOperator) }
        // A name that looks like a secret would put one into listings and the trail.
        expectError(.invalid) {
            _ = try t.vault.addClient(name: String(repeating: "ab12", count: 16), role: "billing", as: .localOperator)
        }
        let listed = try t.vault.listClients(as: .localOperator)
        #expect(listed.map(\.name) == ["admin", "auditor1", "billing1", "support1"])
    }
}
