import ArgumentParser
import CofferCore

struct Init: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Create a new vault: data directory, key directory and the first admin client.",
        discussion: """
            Creates the data directory (mode 0700) with its SQLite database, and the key directory \
            (mode 0700) with KEK version 1, the blind-index key and the client-auth key (each 32 random \
            bytes, mode 0600). Then registers a client named 'admin' and prints its secret, alone, on \
            stdout; it is shown only this once. Refuses, touching nothing, if a vault exists already.
            """
    )

    @OptionGroup var vault: VaultOptions

    func run() throws {
        let configuration = try vault.resolved()
        let secret = try reportingErrors { try Vault.initialize(configuration) }
        note("coffer: vault created in \(configuration.dataDirectory), keys in \(configuration.keyDirectory)")
        note("coffer: the secret of client 'admin' follows; it is shown only once")
        print(secret)
    }
}
