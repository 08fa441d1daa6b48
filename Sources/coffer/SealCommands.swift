import ArgumentParser
import CofferCore
import Foundation

struct SealCommands: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "seal",
        abstract: "Seal a vault made before sealing existed.",
        subcommands: [Migrate.self]
    )

    struct Migrate: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Seal a key directory of raw key files under a new root key, split into key shares.",
            discussion: """
                Offline (refused while a server or another command holds the data directory). \
                Every key file is written sealed into KEYS/.reseal, the shares are printed on \
                stdout (one per line; with --shares 1 --threshold 1 --unseal-file FILE, written to \
                FILE instead), and only then is the change committed: each raw file is overwritten \
                with zeros and replaced by its sealed form. A kill at any moment leaves either the \
                raw directory or the sealed one; the next `coffer serve` or `coffer seal migrate` \
                finishes or undoes what was interrupted.
                """
        )

        @OptionGroup var vault: VaultOptions

        @OptionGroup var counts: ShareCounts

        func run() throws {
            let (shares, threshold) = (counts.shares, counts.threshold)
            let configuration = try vault.resolved()
            try refuseSharedStore(configuration, "seal migrate")
            let lock = try reportingErrors {
                try DataDirectoryLock.acquire(configuration.dataDirectory, for: .init(command: "seal migrate"))
            }
            defer { lock.release() }
            // What an interrupted run left is finished or undone first, whatever this run asks.
            if try reportingErrors({ try Vault.recoverInterruptedReseal(configuration, holding: lock) }),
                try reportingErrors({ try SealManifest.load(keyDirectory: configuration.keyDirectory) }) != nil
            {
                note("coffer: an interrupted reseal was finished: the key directory is sealed")
                return
            }
            let shareFile = vault.unsealFilePath
            if shareFile != nil, shares != 1 || threshold != 1 {
                throw ValidationError("--unseal-file is for a dev vault: give --shares 1 --threshold 1 with it")
            }
            try reportingErrors {
                try Vault.sealKeyDirectory(configuration, holding: lock, shares: shares, threshold: threshold) {
                    texts in
                    try Self.deliver(texts, shareFile: shareFile, threshold: threshold)
                }
            }
            note("coffer: the key directory \(configuration.keyDirectory) is sealed; the raw key files are gone")
        }

        /// Prints the shares (or writes the dev share file) before the reseal commits.
        static func deliver(_ texts: [String], shareFile: String?, threshold: Int) throws {
            if let shareFile {
                if FileManager.default.fileExists(atPath: shareFile) {
                    throw VaultError(.invalid, "unseal file \(shareFile) exists already; refusing to overwrite it")
                }
                guard Init.writeShareFile(texts[0], to: shareFile) else {
                    throw VaultError(.keys, "unseal file \(shareFile) could not be written; nothing was changed")
                }
                return
            }
            note(
                "coffer: \(texts.count) key shares follow, any \(threshold) of which unseal the vault; they are stored nowhere: give each to a different person"
            )
            // Written straight to the descriptor, not through stdio's buffer: the shares must be
            // out before the reseal commits, and if they cannot be (stdout closed or full) the
            // reseal is abandoned, leaving the old key files in force.
            try StandardOutput.write(texts.map { $0 + "\n" }.joined())
        }
    }
}

struct OperatorCommands: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "operator",
        abstract: "Operations on the root key and its shares.",
        subcommands: [Rekey.self]
    )

    struct Rekey: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Make new key shares from the threshold of the old ones; the old shares stop working.",
            discussion: """
                Offline (stop the server first). The share holders type the threshold of the \
                current shares (or a dev vault unseals from --unseal-file); a new root key is made \
                and split into --shares shares, every key file is re-sealed under it (crash-safe, \
                as `seal migrate`), and the new shares are printed on stdout before the change \
                commits. The seal generation goes up by one: old shares are refused by name.
                """
        )

        @OptionGroup var vault: VaultOptions

        @OptionGroup var counts: ShareCounts

        func run() throws {
            let (shares, threshold) = (counts.shares, counts.threshold)
            let configuration = try vault.resolved()
            try refuseSharedStore(configuration, "operator rekey")
            let lock = try reportingErrors {
                try DataDirectoryLock.acquire(configuration.dataDirectory, for: .init(command: "operator rekey"))
            }
            defer { lock.release() }
            _ = try reportingErrors { try Vault.recoverInterruptedReseal(configuration, holding: lock) }
            guard
                let manifest = try reportingErrors({ try SealManifest.load(keyDirectory: configuration.keyDirectory) })
            else {
                note("coffer: the key directory is not sealed; seal it with coffer seal migrate")
                throw ExitCode.failure
            }
            let root = try reportingErrors { try Unsealing.root(manifest, file: vault.unsealFilePath) }
            try reportingErrors {
                try Vault.rekeyShares(configuration, holding: lock, root: root, shares: shares, threshold: threshold) {
                    texts in
                    try SealCommands.Migrate.deliver(texts, shareFile: nil, threshold: threshold)
                }
            }
            note(
                "coffer: new shares of seal generation \(manifest.generation + 1) are in force; the old ones no longer unseal the vault"
            )
            if let file = vault.unsealFilePath {
                note("coffer: \(file) holds an old share: replace it with the new one")
            }
        }
    }
}

/// Re-sealing rewrites the key directory, and the data directory's lock is what keeps a server
/// from using it meanwhile. A PostgreSQL vault has no such lock and one copy of the key
/// directory per node, so these commands refuse it rather than re-seal one copy under nodes
/// that may be running.
func refuseSharedStore(_ configuration: VaultConfiguration, _ command: String) throws {
    guard configuration.store.isShared else { return }
    note(
        "coffer: \(command) is for SQLite vaults only: the nodes of a PostgreSQL vault each hold a copy of the key directory, and re-sealing one copy under running nodes is not supported yet"
    )
    throw ExitCode.failure
}
