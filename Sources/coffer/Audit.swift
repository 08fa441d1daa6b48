import ArgumentParser
import CofferCore
import Foundation

struct Audit: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Verify and export the tamper-evident audit trail.",
        discussion: """
            These read the database directly, which is safe while a server runs (SQLite WAL). Each \
            run is itself recorded in the trail.
            """,
        subcommands: [Verify.self, Export.self]
    )

    struct Verify: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Recompute the MAC chain; exit non-zero naming the first bad entry if it was altered.")
        @OptionGroup var vault: VaultOptions

        func run() throws {
            let opened = try reportingErrors { try Vault.open(vault.resolved()) }
            defer { try? opened.close() }
            switch try reportingErrors({ try opened.verifyAudit(as: .localOperator) }) {
            case .verified(let count):
                print("OK \(count) entries verified")
            case .tampered(let seq, let reason):
                print("TAMPERED at seq \(seq): \(reason)")
                throw ExitCode.failure
            }
        }
    }

    struct Export: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write audit entries as JSON lines to stdout, for a log shipper.")
        @OptionGroup var vault: VaultOptions
        @Option(name: .long, help: "Only entries with a sequence number greater than this.") var since: Int64 = 0

        func run() throws {
            let opened = try reportingErrors { try Vault.open(vault.resolved()) }
            defer { try? opened.close() }
            try reportingErrors {
                try opened.exportAudit(since: since, as: .localOperator) { lines in
                    // A closed pipe (`| head`) or a full disk ends the export with an error, not a trap.
                    try StandardOutput.write(lines.joined(separator: "\n") + "\n")
                }
            }
        }
    }
}
