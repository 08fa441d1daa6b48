import ArgumentParser
import CofferCore
import CofferProtocol
import Foundation

/// How a CLI command authenticates to a running server. Secrets never go on the command line
/// (where `ps` shows them): they come from `COFFER_SECRET`, or a file, or stdin (`-`).
struct ServerCredentials: ParsableArguments {
    @Option(name: .long, help: "Client to authenticate as when a server is running (an admin).")
    var client = "admin"

    @Option(
        name: .long,
        help: ArgumentHelp(
            "File holding the client's secret, or - for stdin (default: $COFFER_SECRET).", valueName: "file"))
    var secretFile: String?

    func secret() throws -> String {
        if let secretFile {
            let data =
                secretFile == "-"
                ? FileHandle.standardInput.readDataToEndOfFile() : FileManager.default.contents(atPath: secretFile)
            guard let data else { throw ValidationError("cannot read the secret from \(secretFile)") }
            return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        }
        if let secret = ProcessInfo.processInfo.environment["COFFER_SECRET"], !secret.isEmpty { return secret }
        throw ValidationError(
            "a server is running: give the secret of client '\(client)' with --secret-file FILE or COFFER_SECRET")
    }

    /// Connects and authenticates if a server answers on the vault's socket; nil if none runs.
    func connectIfServing(_ configuration: VaultConfiguration, socket: String?) throws -> ServerConnection? {
        let path = socket ?? (configuration.dataDirectory as NSString).appendingPathComponent("coffer.sock")
        guard let connection = ServerConnection(socketPath: path) else { return nil }
        do {
            _ = try connection.expect("AUTH", client, try secret())
        } catch let error as CLIError {
            note("coffer: the running server refused AUTH: \(error)")
            throw ExitCode.failure
        }
        return connection
    }
}
