import ArgumentParser
import CofferCore
import CofferStore
import Foundation

struct Migrate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Copy a SQLite vault into an empty PostgreSQL database, and verify the copy.",
        discussion: """
            Stop the server first: migrate takes the data directory's lock, and is refused, naming \
            the holder, while a server or another command holds it. The source is only read, never \
            changed: keep it until the PostgreSQL nodes serve. The database named by --to must be \
            empty (no tables); migrate refuses any other, touching nothing. Everything is copied as \
            it is, in one transaction: wrapped data keys (nothing is re-encrypted), sealed fields, \
            blind-index tags, clients (their secrets still work), tokens, the KEK versions and their \
            states, and the whole audit trail with its sequence numbers and MACs. Then the copy is \
            opened as a node opens it and checked: every table holds as many rows as the source, \
            every data key unwraps, every field and token opens (values are never shown), every \
            client row matches its MAC, and the audit trail verifies end to end. Only then is a \
            MIGRATE entry appended to the copied trail. On any failure, what was created in the \
            database is dropped again, and the first problem is named. A summary of the counts goes \
            to stderr. The key directory is not copied: the PostgreSQL nodes use this same one \
            (`coffer serve --store URI --keys DIR`, one copy of it on each node's host). A sealed \
            key directory is unsealed as other commands do: its share holders type their shares, \
            or a dev vault reads --unseal-file.
            """)

    @Option(
        name: .long, help: ArgumentHelp("The data directory of the SQLite vault to copy.", valueName: "dir"))
    var from: String

    @Option(
        name: .long,
        help: ArgumentHelp(
            "The empty PostgreSQL database, as a libpq URI: postgresql://USER@HOST[:PORT]/DB (TLS required and verified) or postgresql://USER@/DB?host=/run/postgresql (a Unix socket). Put a password in PGPASSWORD, not here.",
            valueName: "uri"))
    var to: String

    @Option(
        name: .long,
        help: ArgumentHelp(
            "The vault's key directory, which the PostgreSQL nodes then use (default: $COFFER_KEYS).", valueName: "dir"
        ))
    var keys: String?

    @OptionGroup var unseal: UnsealFileOption

    func run() throws {
        let environment = ProcessInfo.processInfo.environment
        guard let keys = keys ?? environment["COFFER_KEYS"], !keys.isEmpty else {
            throw ValidationError("no key directory: pass --keys DIR or set COFFER_KEYS")
        }
        let destination: PostgresLocation
        do { destination = try PostgresLocation(uri: to, password: environment["PGPASSWORD"]) } catch {
            throw ValidationError("--to: \(error)")
        }
        var source = VaultConfiguration(dataDirectory: from, keyDirectory: keys)
        source.unsealer = Unsealing.unsealer(file: unseal.path)
        let summary = try reportingErrors { try Vault.migrate(from: source, to: destination) }
        note(
            "coffer: migrated \(from) to \(destination): \(summary); every field and token opened and the audit trail verified; MIGRATE appended. Start the nodes with coffer serve --store and the same key directory"
        )
    }
}
