import ArgumentParser
import CofferCore
import Foundation

struct Backup: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Take an online, consistent copy of the vault's database while it serves.",
        discussion: """
            Uses SQLite's backup API from a read snapshot, so the server goes on serving. The copy is \
            written beside FILE, fsynced, checked with PRAGMA integrity_check and only then linked to \
            FILE (mode 0600). FILE must be a new name outside the data and key directories: an \
            existing file is never replaced. It holds ciphertext and wrapped keys only, never a key; \
            the KEK versions it needs are printed on stdout and written to FILE.kek-versions (mode \
            0600, written the same way, never over an existing file). Keep backups apart from the \
            key directory.
            """)

    @OptionGroup var vault: VaultOptions
    @Option(name: .long, help: ArgumentHelp("Where to write the backup.", valueName: "file")) var to: String

    func run() throws {
        let opened = try reportingErrors { try Vault.open(vault.resolved()) }
        defer { try? opened.close() }
        let versions = try reportingErrors { try opened.backup(to: to, as: .localOperator) }
        let list = versions.map(String.init).joined(separator: " ")
        note("coffer: backup written to \(to); it needs KEK versions: \(list.isEmpty ? "(none)" : list)")
        print(list)
    }
}

struct Restore: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Restore a backup into an empty data directory.",
        discussion: """
            The data directory must not exist (it is created, mode 0700) or be an empty, real \
            directory (not a symlink). The backup is treated as untrusted: its schema must be exactly \
            Coffer's (no trigger, no view, nothing added or altered), it must pass PRAGMA \
            integrity_check, the key directory must still hold every KEK version it needs (a backup \
            whose versions were retired can no longer be read, by design) and open one data key per \
            version, and its audit chain must verify under this key directory's audit.key. Only then \
            is it put in place; on any failure restore removes what it created and exits non-zero.
            """)

    @OptionGroup var vault: VaultOptions
    @Option(name: .long, help: ArgumentHelp("The backup file.", valueName: "file")) var from: String

    func run() throws {
        let versions = try reportingErrors { try Vault.restore(from: from, into: vault.resolved()) }
        let list = versions.map(String.init).joined(separator: " ")
        note("coffer: restored \(from); KEK versions in use: \(list.isEmpty ? "(none)" : list)")
    }
}
