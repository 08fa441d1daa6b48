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
        #expect(none.stderr.contains("no vault at \(root)/d (\(root)/d/coffer.db is missing); run coffer init"), "\(none.stderr)")
        let help = try CofferBinary.run(["init", "--help"])
        #expect(help.status == 0 && help.stdout.contains("--keys"))
    }
}
