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

    /// The running server, found through the data directory's lock file, connected and
    /// authenticated; nil if no process holds the data directory (then the caller may take it
    /// and act offline). Whenever something holds it, this never returns nil: it connects to the
    /// server or refuses, so a command never acts on the keys behind a server's back.
    func connectIfServing(_ configuration: VaultConfiguration, socket: String?) throws -> ServerConnection? {
        guard let holder = try configuration.holder() else { return nil }
        guard holder.isServer else {
            note(
                "coffer: data directory \(configuration.dataDirectory) is in use by \(holder); try again when it has finished"
            )
            throw ExitCode.failure
        }
        guard let path = socket ?? holder.socket else {
            note(
                "coffer: \(holder) serves \(configuration.dataDirectory) without a Unix socket; send the command over one of its listeners with a Redis client, or give --socket"
            )
            throw ExitCode.failure
        }
        guard let connection = ServerConnection(socketPath: path) else {
            note(
                "coffer: \(holder) holds \(configuration.dataDirectory) but does not answer on \(path); try again when it is ready"
            )
            throw ExitCode.failure
        }
        do {
            _ = try connection.expect("AUTH", client, try secret())
        } catch let error as CLIError {
            note("coffer: the running server refused AUTH: \(error)")
            throw ExitCode.failure
        }
        return connection
    }
}
