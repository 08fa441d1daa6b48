import Foundation
import Testing

@Suite struct CLITests {
    @Test func initPrintsOnlyTheAdminSecretAndRefusesASecondTime() throws {
        let root = CofferBinary.temporaryDirectory("init")
        let first = try CofferBinary.run(["init", "--data", root + "/data", "--keys", root + "/keys"])
        #expect(first.status == 0, "\(first.stderr)")
        let secret = first.stdout.trimmingCharacters(in: .newlines)
        #expect(
            secret.count == 64 && secret.allSatisfy(\.isHexDigit), "stdout must hold the secret alone: \(first.stdout)")
        #expect(!first.stderr.contains(secret), "the secret leaked into stderr")
        let keyFile = root + "/keys/kek-1.key"
        let before = FileManager.default.contents(atPath: keyFile)
        let dbBefore = FileManager.default.contents(atPath: root + "/data/coffer.db")

        let second = try CofferBinary.run(["init", "--data", root + "/data", "--keys", root + "/keys"])
        #expect(second.status != 0)
        #expect(second.stdout.isEmpty)
        #expect(second.stderr.contains("already exists"))
        #expect(FileManager.default.contents(atPath: keyFile) == before)
        #expect(FileManager.default.contents(atPath: root + "/data/coffer.db") == dbBefore)
    }

    /// The admin secret and the shares exist nowhere else: if stdout cannot take them, init
    /// removes the vault it made (one nobody could ever unseal), and seal migrate keeps the old
    /// key files; both fail with a message, neither traps.
    @Test func secretsThatCannotBeWrittenLeaveNothingBehind() throws {
        let root = CofferBinary.temporaryDirectory("full")
        let full = try #require(FileHandle(forWritingAtPath: "/dev/full"))
        func coffer(_ arguments: [String]) throws -> (status: Int32, stderr: String) {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: CofferBinary.path)
            process.arguments = arguments
            process.standardOutput = full
            let errors = Pipe()
            process.standardError = errors
            try process.run()
            let text = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            process.waitUntilExit()
            return (process.terminationStatus, text)
        }
        let made = try coffer(["init", "--data", root + "/data", "--keys", root + "/keys"])
        #expect(made.status == 1, "\(made.stderr)")
        #expect(made.stderr.contains("standard output could not be written"), "\(made.stderr)")
        #expect(!FileManager.default.fileExists(atPath: root + "/data/coffer.db"))
        #expect(!FileManager.default.fileExists(atPath: root + "/keys/kek-1.key"))
        #expect(!FileManager.default.fileExists(atPath: root + "/keys/seal.manifest"))
        // Nothing left in the way: the same init to a real stdout works.
        #expect(try CofferBinary.run(["init", "--data", root + "/data", "--keys", root + "/keys"]).status == 0)
    }

    @Test func environmentVariablesAndClientCommands() throws {
        let root = CofferBinary.temporaryDirectory("env")
        let env = ["COFFER_DATA": root + "/data", "COFFER_KEYS": root + "/keys"]
        #expect(try CofferBinary.run(["init"], environment: env).status == 0)
        let added = try CofferBinary.run(["clients", "add", "billing-job", "--role", "billing"], environment: env)
        #expect(added.status == 0, "\(added.stderr)")
        #expect(added.stdout.trimmingCharacters(in: .newlines).count == 64)
        let listed = try CofferBinary.run(["clients", "list"], environment: env)
        #expect(listed.stdout == "admin admin\nbilling-job billing\n")
        #expect(!listed.stdout.contains(added.stdout.trimmingCharacters(in: .newlines)))
        let badRole = try CofferBinary.run(["clients", "add", "x", "--role", "superuser"], environment: env)
        #expect(badRole.status != 0 && badRole.stderr.contains("unknown role"))
        #expect(try CofferBinary.run(["clients", "revoke", "billing-job"], environment: env).status == 0)
        #expect(try CofferBinary.run(["clients", "revoke", "billing-job"], environment: env).status != 0)
        #expect(try CofferBinary.run(["clients", "unlock", "admin"], environment: env).status == 0)
    }

    @Test func refusesExposedKeysWithTheFileNamed() throws {
        let root = CofferBinary.temporaryDirectory("perm")
        #expect(try CofferBinary.run(["init", "--data", root + "/d", "--keys", root + "/k"]).status == 0)
        chmod(root + "/k/auth.key", 0o644)
        let result = try CofferBinary.run(["clients", "list", "--data", root + "/d", "--keys", root + "/k"])
        #expect(result.status != 0)
        #expect(result.stderr.contains(root + "/k/auth.key"))
    }

    @Test func missingDirectoriesAreExplained() throws {
        let result = try CofferBinary.run(["clients", "list"])
        #expect(result.status != 0)
        #expect(result.stderr.contains("COFFER_DATA"))
        // An offline command on a data directory that holds no vault says so (not "lock file …").
        let root = CofferBinary.temporaryDirectory("none")
        let none = try CofferBinary.run(["keys", "status", "--data", root + "/d", "--keys", root + "/k"])
        #expect(none.status == 1)
        #expect(
            none.stderr.contains("no vault at \(root)/d (\(root)/d/coffer.db is missing); run coffer init"),
            "\(none.stderr)")
        let help = try CofferBinary.run(["init", "--help"])
        #expect(help.status == 0 && help.stdout.contains("--keys"))
    }
}
