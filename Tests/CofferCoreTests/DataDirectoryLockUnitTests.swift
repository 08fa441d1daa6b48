import CofferCore
import Foundation
import Testing

@Suite struct DataDirectoryLockUnitTests {
    @Test func oneOwnerAtATimeAndOnlyItChangesKEKs() throws {
        let t = try TestVault()
        let data = t.configuration.dataDirectory
        // TestVault owns the directory as a server would, and the file says so.
        let holder = try #require(try DataDirectoryLock.holder(of: data))
        #expect(holder == DataDirectoryLock.Holder(command: "test"))
        expectError(.setup) { _ = try DataDirectoryLock.acquire(data, for: .init(command: "serve")) }
        do {
            _ = try DataDirectoryLock.acquire(data, for: .init(command: "serve"))
        } catch let error as VaultError {
            #expect(
                error.message
                    == "data directory \(data) is in use by coffer test (pid \(getpid())); one server per data directory, and keys change only through it"
            )
        }
        // A vault opened alongside works but changes no KEK.
        let alongside = try Vault.open(t.configuration)
        expectError(.setup) { _ = try alongside.rotateKEK(as: TestVault.admin) }
        expectError(.setup) { try alongside.retireKEK(1, as: TestVault.admin) }
        expectError(.setup) { _ = try alongside.rewrapBatch() }
        #expect(try alongside.exists(subject: "nobody", as: TestVault.support) == false)
        try alongside.close()
        // Closing the owner gives the directory up.
        try t.vault.close()
        #expect(try DataDirectoryLock.holder(of: data) == nil)
        let next = try DataDirectoryLock.acquire(data, for: .init(command: "serve", socket: "/s"))
        #expect(try DataDirectoryLock.holder(of: data)?.socket == "/s")
        next.release()
        #expect(try DataDirectoryLock.holder(of: data) == nil)
    }

    /// The CLI may look the socket up from another directory than the server started in, so a
    /// relative socket is recorded against the server's working directory.
    @Test func aRelativeSocketIsRecordedAsAnAbsolutePath() throws {
        let t = try TestVault()
        let data = t.configuration.dataDirectory
        try t.vault.close()
        let next = try DataDirectoryLock.acquire(data, for: .init(command: "serve", socket: "d2/coffer.sock"))
        defer { next.release() }
        let working = FileManager.default.currentDirectoryPath
        #expect(try DataDirectoryLock.holder(of: data)?.socket == working + "/d2/coffer.sock")
    }
}
