import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

@Suite struct BackupTests {
    @Test func backupUnderLoadRestoresEverything() throws {
        let server = try TestServer()
        let secret = try server.addClient("s", role: "support")
        let writer = try server.authenticated("s", secret: secret)
        for i in 0..<300 { _ = try writer.call("PUT", "b\(i)", "name", "Before \(i)") }
        // Writes keep landing while the backup runs.
        let stop = LinesCollector()
        let socket = server.socketPath
        let load = Thread {
            guard let c = try? RESPClient(unixPath: socket), (try? c.call("AUTH", "s", secret)) == .simple("OK") else {
                return
            }
            var i = 0
            while stop.text.isEmpty {
                _ = try? c.call("PUT", "during\(i)", "name", "During \(i)")
                i += 1
            }
        }
        load.start()
        let file = server.root + "/backup.db"
        let taken = try CofferBinary.run(["backup", "--to", file], environment: server.env)
        stop.append(Data("stop".utf8))
        #expect(taken.status == 0, "\(taken.stderr)")
        #expect(taken.stdout == "1\n")
        let mode = try FileManager.default.attributesOfItem(atPath: file)[.posixPermissions] as? Int
        #expect(mode == 0o600)
        #expect(try FileManager.default.contentsOfDirectory(atPath: server.root).filter { $0.contains(".tmp-") } == [])
        // Restore into a fresh data directory next to the same keys, and read it all back.
        let restoredData = server.root + "/restored"
        let env = ["COFFER_DATA": restoredData, "COFFER_KEYS": server.keys]
        let restored = try CofferBinary.run(["restore", "--from", file], environment: env)
        #expect(restored.status == 0, "\(restored.stderr)")
        let again = try CofferBinary.run(["restore", "--from", file], environment: env)
        #expect(again.status != 0 && again.stderr.contains("empty data directory"))
        server.stop()
        let second = try TestServer(
            root: server.root + "/restored-run", dataOverride: restoredData, keysOverride: server.keys)
        let reader = try second.authenticated("s", secret: secret)
        for i in 0..<300 { #expect(try reader.call("GET", "b\(i)", "name") == .array([.bulk("Before \(i)")])) }
        #expect(try second.authenticated("s", secret: secret).call("EXISTS", "during0") == .integer(1))
        #expect(try CofferBinary.run(["audit", "verify"], environment: env).status == 0)
    }

    @Test func aBackupFromBeforeAShredIsDeadOnceItsKEKIsRetired() throws {
        let server = try TestServer()
        var env = server.env
        env["COFFER_SECRET"] = server.adminSecret
        let secret = try server.addClient("s", role: "support")
        let c = try server.authenticated("s", secret: secret)
        _ = try c.call("PUT", "victim", "name", "Victim Name")
        _ = try c.call("PUT", "keeper", "name", "Keeper Name")
        let old = server.root + "/before-shred.db"
        #expect(try CofferBinary.run(["backup", "--to", old], environment: server.env).status == 0)
        #expect(try server.authenticated().call("SHRED", "victim") == .integer(1))
        // While KEK 1 exists, the old backup still opens, shredded subject included: the gap.
        let peek = server.root + "/peek"
        #expect(
            try CofferBinary.run(
                ["restore", "--from", old], environment: ["COFFER_DATA": peek, "COFFER_KEYS": server.keys]
            ).status == 0)
        // Rotate, let the rewrap finish, retire KEK 1: the gap closes.
        #expect(try CofferBinary.run(["keys", "rotate", "--wait"], environment: env).status == 0)
        #expect(try CofferBinary.run(["keys", "retire", "1"], environment: env).status == 0)
        let dead = try CofferBinary.run(
            ["restore", "--from", old], environment: ["COFFER_DATA": server.root + "/dead", "COFFER_KEYS": server.keys])
        #expect(dead.status != 0)
        #expect(dead.stderr.contains("needs KEK versions 1"), "\(dead.stderr)")
        // The peeked copy can no longer be opened either.
        let open = try CofferBinary.run(
            ["clients", "list"], environment: ["COFFER_DATA": peek, "COFFER_KEYS": server.keys])
        #expect(open.status != 0 && open.stderr.contains("kek-1.key"))
        // The live vault is unaffected.
        #expect(try c.call("GET", "keeper", "name") == .array([.bulk("Keeper Name")]))
        #expect(try c.call("GET", "victim", "name") == .array([.null]))
    }

    /// Issue 17.5: `backup --to DATA/coffer.db` renamed the copy over the live database. A
    /// target inside the data or key directory (directly or through a symlink), or one that
    /// exists in any form, is refused, and nothing is left behind.
    @Test func aBackupNeverReplacesAFileNorLandsInTheDataOrKeyDirectory() throws {
        let server = try TestServer()
        let secret = try server.addClient("s", role: "support")
        let c = try server.authenticated("s", secret: secret)
        _ = try c.call("PUT", "kept", "name", "Kept Name")
        let root = server.root
        let live = server.data + "/coffer.db"
        func inode(_ path: String) -> UInt {
            var info = stat()
            return lstat(path, &info) == 0 ? UInt(info.st_ino) : 0
        }
        let liveInode = inode(live)
        #expect(symlink(server.data, root + "/data-link") == 0)
        #expect(symlink(live, root + "/alias.db") == 0)
        #expect(symlink(root + "/nowhere", root + "/dangling.db") == 0)
        #expect(FileManager.default.createFile(atPath: root + "/existing.db", contents: Data("keep".utf8)))
        let refusals: [(String, String)] = [
            (live, "exists; a backup never replaces a file"),
            (server.data + "/coffer.db-wal", "exists; a backup never replaces a file"),
            (server.data + "/new.db", "is inside the data directory"),
            (server.data + "/./../data/new.db", "is inside the data directory"),
            (root + "/data-link/new.db", "is inside the data directory"),
            (server.keys + "/new.db", "is inside the key directory"),
            (root + "/alias.db", "exists; a backup never replaces a file"),
            (root + "/dangling.db", "exists; a backup never replaces a file"),
            (root + "/existing.db", "exists; a backup never replaces a file"),
            (root + "/no-such-directory/b.db", "does not exist"),
            (root + "/", "is not a file name"),
        ]
        for (target, message) in refusals {
            let result = try CofferBinary.run(["backup", "--to", target], environment: server.env)
            #expect(result.status == 1, "\(target) was accepted")
            #expect(result.stderr.contains(message), "\(target): \(result.stderr)")
        }
        #expect(inode(live) == liveInode, "the live database was replaced")
        #expect(FileManager.default.contents(atPath: root + "/existing.db") == Data("keep".utf8))
        for directory in [root, server.data, server.keys] {
            let debris = try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.contains(".tmp-") }
            #expect(debris.isEmpty, "left behind in \(directory): \(debris)")
        }
        #expect(try c.call("GET", "kept", "name") == .array([.bulk("Kept Name")]))
        #expect(try CofferBinary.run(["backup", "--to", root + "/fine.db"], environment: server.env).status == 0)
    }

    /// Issue 17.6: restore only checked that `coffer.db` was absent, so a leftover
    /// `coffer.db-wal` was replayed into the restored vault, and a symlinked non-empty directory
    /// was accepted and re-moded. Only a missing or an empty, real directory is accepted.
    @Test func restoreOnlyIntoAnEmptyRealDirectory() throws {
        let root = CofferBinary.temporaryDirectory("restore-dir")
        defer { try? FileManager.default.removeItem(atPath: root) }
        let keys = root + "/keys"
        #expect(try CofferBinary.run(["init", "--data", root + "/data", "--keys", keys]).status == 0)
        let backup = root + "/backup.db"
        #expect(try CofferBinary.run(["backup", "--data", root + "/data", "--keys", keys, "--to", backup]).status == 0)
        func mode(_ path: String) -> mode_t {
            var info = stat()
            return stat(path, &info) == 0 ? info.st_mode & 0o7777 : 0
        }
        func restore(into data: String) throws -> CofferBinary.Result {
            try CofferBinary.run(["restore", "--data", data, "--keys", keys, "--from", backup])
        }

        // A leftover WAL in an otherwise empty directory.
        let leftover = root + "/leftover"
        #expect(mkdir(leftover, 0o700) == 0)
        #expect(FileManager.default.createFile(atPath: leftover + "/coffer.db-wal", contents: Data("old wal".utf8)))
        let withWAL = try restore(into: leftover)
        #expect(withWAL.status == 1)
        #expect(withWAL.stderr.contains("is not empty (it holds coffer.db-wal)"), "\(withWAL.stderr)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: leftover) == ["coffer.db-wal"])

        // A symlink, to a non-empty and to an empty directory: refused, and not re-moded.
        for (name, contents) in [("full", ["notes.txt"]), ("empty", [])] {
            let target = root + "/" + name
            #expect(mkdir(target, 0o755) == 0)
            #expect(chmod(target, 0o755) == 0)
            for file in contents { #expect(FileManager.default.createFile(atPath: target + "/" + file, contents: nil)) }
            #expect(symlink(target, root + "/link-" + name) == 0)
            for spelling in [root + "/link-" + name, root + "/link-" + name + "/"] {
                let result = try restore(into: spelling)
                #expect(result.status == 1, "\(spelling) was accepted")
                #expect(result.stderr.contains("is a symlink"), "\(spelling): \(result.stderr)")
            }
            #expect(mode(target) == 0o755, "the symlink's target was re-moded")
            #expect(try FileManager.default.contentsOfDirectory(atPath: target) == contents)
        }

        // A plain file where the directory should be.
        #expect(FileManager.default.createFile(atPath: root + "/file", contents: nil))
        #expect(try restore(into: root + "/file").stderr.contains("is not a directory"))

        // An empty real directory is accepted and made private; a missing one is created.
        #expect(mkdir(root + "/ready", 0o755) == 0)
        #expect(try restore(into: root + "/ready").status == 0)
        #expect(mode(root + "/ready") == 0o700)
        #expect(try restore(into: root + "/new/nested").status == 0)
        #expect(mode(root + "/new/nested") == 0o700)
        let restored = try FileManager.default.contentsOfDirectory(atPath: root + "/ready")
        #expect(restored.contains("coffer.db") && !restored.contains { $0.contains(".tmp-") }, "\(restored)")
    }

    /// Issue 17.7: FILE.kek-versions was written with the process umask, in place, following a
    /// planted symlink. It now gets the backup's care: 0600, a temporary file, fsync, a link
    /// that never replaces anything.
    @Test func theKEKVersionsFileIsPrivateAndFollowsNoSymlink() throws {
        let root = CofferBinary.temporaryDirectory("manifest")
        defer { try? FileManager.default.removeItem(atPath: root) }
        let env = ["COFFER_DATA": root + "/data", "COFFER_KEYS": root + "/keys"]
        #expect(try CofferBinary.run(["init"], environment: env).status == 0)
        func mode(_ path: String) -> mode_t {
            var info = stat()
            return lstat(path, &info) == 0 ? info.st_mode & 0o7777 : 0
        }
        /// `coffer backup --to FILE` under umask 0.
        func backupWithUmaskZero(to file: String) throws -> CofferBinary.Result {
            try CofferBinary.run(
                ["backup", "--to", file], environment: env,
                wrappedIn: ["/bin/sh", "-c", "umask 000 && exec \"$0\" \"$@\""])
        }

        let file = root + "/b.db"
        let taken = try backupWithUmaskZero(to: file)
        #expect(taken.status == 0, "\(taken.stderr)")
        // No subject yet, so no version is needed: the list is one empty line.
        #expect(FileManager.default.contents(atPath: file + ".kek-versions") == Data("\n".utf8))
        #expect(mode(file) == 0o600)
        #expect(mode(file + ".kek-versions") == 0o600)

        // A symlink planted where the list goes, to a file and to nowhere: refused before
        // anything is written, the victim untouched, no backup without its list.
        let victim = root + "/victim"
        #expect(FileManager.default.createFile(atPath: victim, contents: Data("precious".utf8)))
        for (name, target) in [("to-file", victim), ("to-nowhere", root + "/created-through-link")] {
            let planted = root + "/" + name + ".db"
            #expect(symlink(target, planted + ".kek-versions") == 0)
            let result = try backupWithUmaskZero(to: planted)
            #expect(result.status == 1)
            #expect(result.stderr.contains("\(planted).kek-versions exists; a backup never replaces a file"))
            #expect(!FileManager.default.fileExists(atPath: planted), "a backup was left without its list")
        }
        #expect(FileManager.default.contents(atPath: victim) == Data("precious".utf8))
        #expect(!FileManager.default.fileExists(atPath: root + "/created-through-link"))
        #expect(try FileManager.default.contentsOfDirectory(atPath: root).filter { $0.contains(".tmp-") } == [])
    }

    /// Issue 17.4: a backup with a planted trigger restored fine. The CLI refuses it with a
    /// message naming the problem, a non-zero exit, and no data directory left behind.
    @Test func restoreRefusesABackupWithAPlantedTrigger() throws {
        let root = CofferBinary.temporaryDirectory("hostile-backup")
        defer { try? FileManager.default.removeItem(atPath: root) }
        let env = ["COFFER_DATA": root + "/data", "COFFER_KEYS": root + "/keys"]
        #expect(try CofferBinary.run(["init"], environment: env).status == 0)
        let backup = root + "/backup.db"
        #expect(try CofferBinary.run(["backup", "--to", backup], environment: env).status == 0)
        let planted = Process()
        planted.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        planted.arguments = [
            "python3", "-c",
            "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); c.execute(\"CREATE TRIGGER evil AFTER INSERT ON audit BEGIN DELETE FROM client; END\"); c.commit()",
            backup,
        ]
        try planted.run()
        planted.waitUntilExit()
        #expect(planted.terminationStatus == 0)
        let restored = try CofferBinary.run(
            ["restore", "--from", backup],
            environment: ["COFFER_DATA": root + "/restored", "COFFER_KEYS": root + "/keys"])
        #expect(restored.status == 1)
        #expect(
            restored.stderr == "coffer: backup \(backup) is not a Coffer database: it has a trigger 'evil'\n",
            "\(restored.stderr)")
        #expect(!FileManager.default.fileExists(atPath: root + "/restored"))
    }
}
