import CofferCrypto
import Foundation
import Synchronization
import Testing

@testable import CofferCore

/// Issue 16.2: every fsync, close, link and directory sync on the key path is checked, and a
/// failure leaves nothing behind. The failures are injected through `FileCalls`.
@Suite struct PrivateFileTests {
    enum Syscall: Sendable { case fsync, close, link }

    /// The real calls, except that the `n`th call of `syscall` (1-based) fails with EIO after
    /// doing its work (a close still releases the descriptor, as Linux's does).
    final class Failing: Sendable {
        let syscall: Syscall
        let n: Int
        private let seen = Mutex(0)

        init(_ syscall: Syscall, at n: Int = 1) {
            self.syscall = syscall
            self.n = n
        }

        private func fails(_ call: Syscall) -> Bool {
            guard call == syscall else { return false }
            return seen.withLock { count in
                count += 1
                return count == n
            }
        }

        var calls: FileCalls {
            let real = FileCalls.system
            return FileCalls(
                fsync: { fd in
                    let result = real.fsync(fd)
                    guard self.fails(.fsync) else { return result }
                    errno = EIO
                    return -1
                },
                close: { fd in
                    let result = real.close(fd)
                    guard self.fails(.close) else { return result }
                    errno = EIO
                    return -1
                },
                link: { from, to in
                    guard self.fails(.link) else { return real.link(from, to) }
                    errno = EIO
                    return -1
                })
        }
    }

    func freshDirectory() throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("coffer-pf-\(UUID())").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: false)
        return path
    }

    func entries(_ directory: String) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: directory).sorted()
    }

    /// fsync of the file (1st fsync), its close (1st close), the link, the directory's fsync
    /// (2nd fsync) and the directory's close (2nd close).
    static let failures: [(Syscall, Int, String)] = [
        (.fsync, 1, "could not be synced"), (.close, 1, "could not be closed"), (.link, 1, "cannot be created"),
        (.fsync, 2, "could not be synced"), (.close, 2, "could not be synced"),
    ]

    @Test(arguments: 0..<failures.count)
    func aFailedSyscallFailsTheKeyWriteAndLeavesNothing(index: Int) throws {
        let (syscall, n, message) = Self.failures[index]
        let directory = try freshDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/kek-2.key"
        do {
            try KeyDirectory.writeKey(SymmetricKey.random(), to: path, calls: Failing(syscall, at: n).calls)
            Issue.record("the failed \(syscall) was ignored")
        } catch let error as VaultError {
            #expect(error.code == .keys)
            #expect(error.message.contains(path) && error.message.contains(message), "\(error.message)")
        }
        #expect(try entries(directory) == [], "a failed write left files behind")
        // With working calls the same write succeeds: the failure left no debris in the way.
        try KeyDirectory.writeKey(SymmetricKey.random(), to: path)
        #expect(try entries(directory) == ["kek-2.key"])
    }

    @Test func anExistingFileIsNeverReplaced() throws {
        let directory = try freshDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/index.key"
        #expect(FileManager.default.createFile(atPath: path, contents: Data("precious".utf8)))
        #expect(symlink("/nonexistent", directory + "/auth.key") == 0)
        for target in [path, directory + "/auth.key"] {
            expectError(.keys) { try KeyDirectory.writeKey(SymmetricKey.random(), to: target) }
        }
        #expect(FileManager.default.contents(atPath: path) == Data("precious".utf8))
        #expect(try entries(directory) == ["auth.key", "index.key"])
    }

    @Test func createRemovesTheKeysItWroteWhenALaterOneFails() throws {
        let root = try freshDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        // The third key file's fsync (each key costs a file fsync and a directory fsync).
        expectError(.keys) { try KeyDirectory.create(at: root + "/keys", calls: Failing(.fsync, at: 5).calls) }
        #expect(try entries(root + "/keys") == [])
    }

    @Test func aFailedDirectorySyncIsAnError() throws {
        let directory = try freshDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        do {
            try KeyDirectory.syncDirectory(directory, calls: Failing(.fsync).calls)
            Issue.record("a failed directory fsync was ignored")
        } catch let error as VaultError {
            #expect(error.code == .keys && error.message.contains("could not be synced"))
        }
    }

    @Test func aFailedSyncWhileDestroyingAKeyKeepsTheFileAndFails() throws {
        let directory = try freshDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/kek-1.key"
        try KeyDirectory.writeKey(SymmetricKey.random(), to: path)
        expectError(.keys) { try KeyDirectory.destroyKey(at: path, calls: Failing(.fsync).calls) }
        #expect(FileManager.default.fileExists(atPath: path), "the key was unlinked though its overwrite failed")
        try KeyDirectory.destroyKey(at: path)
        #expect(try entries(directory) == [])
    }
}
