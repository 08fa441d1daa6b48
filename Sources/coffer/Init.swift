import ArgumentParser
import CofferCore
import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

struct Init: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract:
            "Create a new vault: data directory, key directory sealed under a root key, and the first admin client.",
        discussion: """
            Creates the data directory (mode 0700) with its SQLite database (or, with --store, the \
            tables of a PostgreSQL vault in an empty database), and the key directory \
            (mode 0700) with KEK version 1, the blind-index, client-auth and audit keys (32 random \
            bytes each), every one sealed under a fresh root key that is never written anywhere. \
            The root key is split into --shares key shares (default 5), any --threshold of which \
            (default 3) unseal the vault. Prints the secret of client 'admin' on the first line of \
            stdout, then one share per line; none of them is stored, and they are shown only this \
            once: give each share to a different person. --shares 1 --threshold 1 makes a dev vault; \
            with --unseal-file its one share goes to that file (mode 0600) instead of stdout, for \
            `serve --unseal-file` (not dual control). Refuses, touching nothing, if a vault exists.
            """
    )

    @OptionGroup var vault: VaultOptions

    @OptionGroup var counts: ShareCounts

    func run() throws {
        let (shares, threshold) = (counts.shares, counts.threshold)
        let configuration = try vault.resolved()
        let shareFile = vault.unsealFilePath
        if let shareFile {
            guard shares == 1 && threshold == 1 else {
                throw ValidationError("--unseal-file is for a dev vault: give --shares 1 --threshold 1 with it")
            }
            // An existing vault is refused below, by name, before anything is written.
            guard (try? configuration.store.isOccupied) == true || !FileManager.default.fileExists(atPath: shareFile)
            else {
                throw ValidationError("unseal file \(shareFile) exists already; refusing to overwrite it")
            }
        }
        if threshold == 1 {
            note(
                "coffer: WARNING: a dev vault: its one share is the whole root key; anyone with it and the key directory has every key"
            )
        }
        // The secret and the shares exist nowhere else: if they cannot be handed out (stdout
        // closed or full), the vault is removed again rather than left unopenable.
        try reportingErrors {
            try Vault.initializeSealed(configuration, shares: shares, threshold: threshold) { secret, texts in
                note("coffer: the secret of client 'admin' follows; it is shown only once")
                try StandardOutput.write(secret + "\n")
                if let shareFile, Self.writeShareFile(texts[0], to: shareFile) {
                    note("coffer: the key share is in \(shareFile) (mode 0600)")
                    return
                }
                note(
                    "coffer: \(shares) key shares follow, any \(threshold) of which unseal the vault; they are stored nowhere: give each to a different person"
                )
                try StandardOutput.write(texts.map { $0 + "\n" }.joined())
            }
        }
        let place = configuration.store.isShared ? "\(configuration.store)" : configuration.dataDirectory
        note("coffer: vault created in \(place), keys in \(configuration.keyDirectory)")
    }

    /// Writes the dev share to a new file of mode 0600; false (with the reason) if it cannot.
    static func writeShareFile(_ share: String, to path: String) -> Bool {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            note(
                "coffer: unseal file \(path) cannot be created: \(String(cString: strerror(errno))); printing the share"
            )
            return false
        }
        let bytes = Array((share + "\n").utf8)
        let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        let synced = fsync(fd) == 0
        close(fd)
        guard written == bytes.count, synced else {
            unlink(path)
            note("coffer: unseal file \(path) could not be written; printing the share")
            return false
        }
        return true
    }
}
