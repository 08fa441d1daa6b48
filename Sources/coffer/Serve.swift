import ArgumentParser
import CofferCore

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the vault server.")
    @OptionGroup var vault: VaultOptions

    func run() async throws {
        let opened = try reportingErrors { try Vault.open(vault.resolved()) }
        try opened.close()
        note("coffer: vault opened; the socket server is not built yet")
    }
}
