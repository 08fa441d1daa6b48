import ArgumentParser
import CofferCore
import CofferStore
import Foundation

/// The options every subcommand shares.
struct VaultOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("The data directory (default: $COFFER_DATA).", valueName: "dir"))
    var data: String?

    @Option(name: .long, help: ArgumentHelp("The key directory (default: $COFFER_KEYS).", valueName: "dir"))
    var keys: String?

    @Option(
        name: .long,
        help: ArgumentHelp(
            "A PostgreSQL vault shared by several nodes (default: $COFFER_STORE), instead of SQLite in --data, as a libpq URI or key=value string: postgresql://USER@HOST[:PORT]/DB (TLS required and verified; sslmode=, sslrootcert=), postgresql://USER@/DB?host=/run/postgresql (a Unix socket), or 'host=/run/postgresql dbname=DB user=USER'. Put a password in PGPASSWORD, not here.",
            valueName: "uri"))
    var store: String?

    @Option(
        name: .long,
        help: ArgumentHelp("A JSON policy file of role grants (default: the built-in roles).", valueName: "file"))
    var policy: String?

    @OptionGroup var unseal: UnsealFileOption

    /// The share file, if one is given, for the vault's root key.
    var unsealFilePath: String? { unseal.path }

    func resolved() throws -> VaultConfiguration {
        let environment = ProcessInfo.processInfo.environment
        let uri = (store ?? environment["COFFER_STORE"]).flatMap { $0.isEmpty ? nil : $0 }
        let dataDirectory = data ?? environment["COFFER_DATA"]
        if uri == nil && dataDirectory?.isEmpty != false {
            throw ValidationError(
                "no vault: pass --data DIR (or set COFFER_DATA), or --store URI (or set COFFER_STORE)")
        }
        guard let keys = keys ?? environment["COFFER_KEYS"], !keys.isEmpty else {
            throw ValidationError("no key directory: pass --keys DIR or set COFFER_KEYS")
        }
        let policy = try policy.map { try Policy.load(path: $0) } ?? .builtIn
        var configuration: VaultConfiguration
        if let uri {
            if data != nil { throw ValidationError("--data and --store name two vaults: give one") }
            let location: PostgresLocation
            do { location = try PostgresLocation(uri: uri, password: environment["PGPASSWORD"]) } catch {
                throw ValidationError("--store: \(error)")
            }
            if store != nil && location.passwordInURI {
                note(
                    "coffer: WARNING: the --store URI carries a password, which every local user can read in the process list; put it in PGPASSWORD (or COFFER_STORE) instead"
                )
            }
            configuration = VaultConfiguration(dataDirectory: "", keyDirectory: keys, policy: policy, store: location)
        } else {
            guard let data = dataDirectory, !data.isEmpty else {
                throw ValidationError(
                    "no vault: pass --data DIR (or set COFFER_DATA), or --store URI (or set COFFER_STORE)")
            }
            configuration = VaultConfiguration(dataDirectory: data, keyDirectory: keys, policy: policy)
        }
        configuration.unsealer = Unsealing.unsealer(file: unsealFilePath)
        return configuration
    }
}

/// `--unseal-file`, shared by every command that opens a vault.
struct UnsealFileOption: ParsableArguments {
    @Option(
        name: .long,
        help: ArgumentHelp(
            "Dev vaults of one share only: unseal from this share file (mode 0600; default: $COFFER_UNSEAL_FILE). Not dual control.",
            valueName: "file"))
    var unsealFile: String?

    /// The share file, if one is given.
    var path: String? {
        let path = unsealFile ?? ProcessInfo.processInfo.environment["COFFER_UNSEAL_FILE"]
        return path?.isEmpty == false ? path : nil
    }
}

extension VaultConfiguration {
    /// Opens the vault as the owner of its data directory, for a CLI command that changes it
    /// while no server runs. Refused, naming the holder, if a server or another command has it.
    func openOwning(as command: String) throws -> Vault {
        try reportingErrors { try Vault.open(self, owner: .init(command: command)) }
    }

    /// For commands that change only database rows (clients): alongside a running server, the
    /// vault is opened without the lock (SQLite serialises the writers, and no key changes);
    /// with none, the command takes the lock like any offline writer.
    func openForRecords(as command: String) throws -> Vault {
        if try holder() != nil { return try reportingErrors { try Vault.open(self) } }
        return try openOwning(as: command)
    }

    /// Who holds the data directory now (a running server, or another command), if anyone.
    func holder() throws -> DataDirectoryLock.Holder? {
        // A shared store has no data directory: its nodes and commands meet in the database.
        if store.isShared { return nil }
        return try reportingErrors { try DataDirectoryLock.holder(of: dataDirectory) }
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
