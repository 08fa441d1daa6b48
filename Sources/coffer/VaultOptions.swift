import ArgumentParser
import CofferCore
import Foundation

/// The options every subcommand shares.
struct VaultOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("The data directory (default: $COFFER_DATA).", valueName: "dir"))
    var data: String?

    @Option(name: .long, help: ArgumentHelp("The key directory (default: $COFFER_KEYS).", valueName: "dir"))
    var keys: String?

    @Option(
        name: .long,
        help: ArgumentHelp("A JSON policy file of role grants (default: the built-in roles).", valueName: "file"))
    var policy: String?

    func resolved() throws -> VaultConfiguration {
        let environment = ProcessInfo.processInfo.environment
        guard let data = data ?? environment["COFFER_DATA"], !data.isEmpty else {
            throw ValidationError("no data directory: pass --data DIR or set COFFER_DATA")
        }
        guard let keys = keys ?? environment["COFFER_KEYS"], !keys.isEmpty else {
            throw ValidationError("no key directory: pass --keys DIR or set COFFER_KEYS")
        }
        let policy = try policy.map { try Policy.load(path: $0) } ?? .builtIn
        return VaultConfiguration(dataDirectory: data, keyDirectory: keys, policy: policy)
    }
}

/// Prints a message to stderr: stdout is kept for the one value a command outputs (a secret).
func note(_ message: String) {
    FileHandle.standardError.write(Data((message + "\n").utf8))
}

/// Runs `body`, turning a vault error into a message on stderr and a non-zero exit.
func reportingErrors<T>(_ body: () throws -> T) throws -> T {
    do { return try body() } catch let error as VaultError {
        note("coffer: \(error.message)")
        throw ExitCode.failure
    }
}
