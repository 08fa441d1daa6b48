import CofferCore
import Foundation
import Testing

@Suite struct ClientAuthTests {
    @Test func rightSecretAuthenticatesWrongOneDoesNot() throws {
        let t = try TestVault()
        #expect(try t.vault.authenticate(client: "admin", secret: Array(t.adminSecret.utf8)) == .success(role: "admin"))
        #expect(
            try t.vault.authenticate(client: "admin", secret: Array("nope".utf8)) == .failure(consecutiveFailures: 1))
        #expect(
            try t.vault.authenticate(client: "ghost", secret: Array(t.adminSecret.utf8))
                == .failure(consecutiveFailures: 1))
        // The secret is bound to the name: admin's secret does not open another client.
        let other = try t.vault.addClient(name: "b2", role: "billing", as: .localOperator)
        #expect(try t.vault.authenticate(client: "b2", secret: Array(t.adminSecret.utf8)) != .success(role: "billing"))
        #expect(try t.vault.authenticate(client: "b2", secret: Array(other.utf8)) == .success(role: "billing"))
    }

    @Test func tenFailuresLockEvenTheRightSecretUntilUnlockedOrExpired() throws {
        let t = try TestVault()
        let now = Date()
        for attempt in 1...10 {
            #expect(
                try t.vault.authenticate(client: "admin", secret: [0x41], now: now)
                    == .failure(consecutiveFailures: attempt))
        }
        #expect(try t.vault.listClients(as: .localOperator).first { $0.name == "admin" }?.locked == true)
        if case .success = try t.vault.authenticate(client: "admin", secret: Array(t.adminSecret.utf8), now: now) {
            Issue.record("a locked client authenticated")
        }
        // Still locked 29 minutes later; free after 30.
        if case .success = try t.vault.authenticate(
            client: "admin", secret: Array(t.adminSecret.utf8), now: now + 29 * 60)
        {
            Issue.record("the lock lifted early")
        }
        #expect(
            try t.vault.authenticate(client: "admin", secret: Array(t.adminSecret.utf8), now: now + 30 * 60 + 1)
                == .success(role: "admin"))
        // Unlock lifts a lock at once.
        for _ in 1...10 { _ = try t.vault.authenticate(client: "admin", secret: [0x41], now: now) }
        #expect(try t.vault.unlockClient(name: "admin", as: .localOperator))
        #expect(
            try t.vault.authenticate(client: "admin", secret: Array(t.adminSecret.utf8), now: now)
                == .success(role: "admin"))
    }

    @Test func successResetsTheFailureCount() throws {
        let t = try TestVault()
        for _ in 1...9 { _ = try t.vault.authenticate(client: "admin", secret: [0x41]) }
        #expect(try t.vault.authenticate(client: "admin", secret: Array(t.adminSecret.utf8)) == .success(role: "admin"))
        #expect(try t.vault.authenticate(client: "admin", secret: [0x41]) == .failure(consecutiveFailures: 1))
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
        let listed = try t.vault.listClients(as: .localOperator)
        #expect(listed.map(\.name) == ["admin", "auditor1", "billing1", "support1"])
    }
}
