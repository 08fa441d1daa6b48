import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// A full disk, on a small tmpfs (mounting needs root; CI runs as root). Writes fail with a
/// clear STORAGE error and nothing already stored is lost or corrupted. While the disk refuses
/// writes, reads fail too: every read appends an audit entry, and a command whose entry cannot
/// be written returns no data (fail closed).
@Suite(.enabled(if: geteuid() == 0, "mounting a tmpfs needs root"), .serialized)
struct DiskFaultTests {
    func shell(_ command: String) -> Int32 {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", command]
        try? process.run()
        process.waitUntilExit()
        return process.terminationStatus
    }

    func withTmpfs(sizeKiB: Int, _ body: (String) throws -> Void) throws {
        let mountPoint = CofferBinary.temporaryDirectory("tmpfs")
        #expect(shell("mount -t tmpfs -o size=\(sizeKiB)k tmpfs \(mountPoint)") == 0)
        defer { _ = shell("umount -l \(mountPoint)") }
        try body(mountPoint)
    }

    func integrity(_ database: String) -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/sqlite3")
        process.arguments = [database, "PRAGMA integrity_check;"]
        let out = Pipe()
        process.standardOutput = out
        try? process.run()
        process.waitUntilExit()
        return String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    }

    @Test func aFullDiskFailsWritesClearlyAndLosesNothing() throws {
        try withTmpfs(sizeKiB: 4096) { mount in
            let root = CofferBinary.temporaryDirectory("full")
            let server = try TestServer(root: root, dataOverride: mount + "/data", keysOverride: root + "/keys")
            let secret = try server.addClient("s", role: "support")
            let c = try server.authenticated("s", secret: secret)
            var acknowledged = 0
            var failure: RESPClient.Reply?
            let value = String(repeating: "v", count: 8000)
            for i in 0..<2000 {
                let reply = try c.call("PUT", "s\(i)", "postal_address", value)
                if reply != .integer(1) {
                    failure = reply
                    break
                }
                acknowledged += 1
            }
            #expect(failure?.errorText?.hasPrefix("STORAGE") == true, "\(String(describing: failure))")
            #expect(failure?.errorText?.contains("full") == true, "\(String(describing: failure))")
            #expect(acknowledged > 10)
            // Make room again: everything acknowledged is intact, and the vault serves again.
            #expect(shell("mount -o remount,size=65536k \(mount)") == 0)
            for i in 0..<acknowledged {
                #expect(try c.call("GET", "s\(i)", "postal_address") == .array([.bulk(value)]))
            }
            #expect(try c.call("PUT", "after", "name", "After") == .integer(1))
            #expect(try server.authenticated().call("AUDIT.VERIFY").description.hasPrefix("+OK"))
            #expect(integrity(server.data + "/coffer.db") == "ok\n")
            print("disk full: \(acknowledged) acknowledged writes before the disk filled, all intact")
            server.stop()
        }
    }

    /// A mount cannot be made read-only under a process holding files open for writing, so
    /// this covers a data directory that is read-only when the vault starts: refused, clearly.
    @Test func aReadOnlyDataDirectoryIsRefusedClearlyAndLosesNothing() throws {
        try withTmpfs(sizeKiB: 65536) { mount in
            let root = CofferBinary.temporaryDirectory("ro")
            var server = try TestServer(root: root, dataOverride: mount + "/data", keysOverride: root + "/keys")
            let admin = server.adminSecret
            let secret = try server.addClient("s", role: "support")
            let c = try server.authenticated("s", secret: secret)
            for i in 0..<50 { #expect(try c.call("PUT", "s\(i)", "name", "Name \(i)") == .integer(1)) }
            #expect(server.stop() == 0)
            #expect(shell("mount -o remount,ro \(mount)") == 0)
            let refused = try CofferBinary.run(
                ["serve", "--no-socket", "--listen", "127.0.0.1:0"] + CofferBinary.rootFlag,
                environment: ["COFFER_DATA": mount + "/data", "COFFER_KEYS": root + "/keys"])
            #expect(refused.status != 0)
            #expect(refused.stderr.contains("is not writable"), "\(refused.stderr)")
            #expect(shell("mount -o remount,rw \(mount)") == 0)
            server = try TestServer(
                root: root, adminSecret: admin, dataOverride: mount + "/data", keysOverride: root + "/keys")
            let reader = try server.authenticated("s", secret: secret)
            for i in 0..<50 { #expect(try reader.call("GET", "s\(i)", "name") == .array([.bulk("Name \(i)")])) }
            #expect(try server.authenticated().call("AUDIT.VERIFY").description.hasPrefix("+OK"))
            #expect(integrity(server.data + "/coffer.db") == "ok\n")
            server.stop()
        }
    }
}
