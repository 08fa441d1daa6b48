import CofferStore
import Foundation

extension Vault {
    /// `coffer backup`: an online, consistent, integrity-checked copy of the database, taken
    /// while the server runs. It holds only ciphertext and wrapped keys; to read it, the key
    /// directory must still hold every KEK version it needs, which is returned (and recorded
    /// in the audit trail). Retiring those versions makes the backup unreadable for good.
    public func backup(to path: String, as caller: Caller) throws -> [UInt32] {
        _ = try audited("BACKUP", caller) { [self] tx, draft in
            try resolve(caller, in: tx, recordingIn: &draft).require(.operation(.keys), "BACKUP")
        }
        let versions = try Self.storageCall { try store.backup(to: path) }
        logger.notice("backup written", metadata: ["kek.versions": "\(versions)"])
        return versions
    }

    /// `coffer restore`: puts a backup in place as the database of an empty data directory,
    /// after checking its integrity and that the key directory holds every KEK version it
    /// needs. Returns those versions.
    public static func restore(
        from backup: String, into configuration: VaultConfiguration
    ) throws -> [UInt32] {
        try checkSeparate(configuration)
        let database = configuration.databasePath
        if FileManager.default.fileExists(atPath: database) {
            throw VaultError(.setup, "\(database) exists; restore only into an empty data directory")
        }
        guard FileManager.default.fileExists(atPath: backup) else {
            throw VaultError(.setup, "backup file \(backup) does not exist")
        }
        let (integrity, versions) = try storageCall { try SQLiteStore.inspectBackup(at: backup) }
        guard integrity == "ok" else {
            throw VaultError(.setup, "backup \(backup) fails its integrity check: \(integrity)")
        }
        let keys = try KeyDirectory.load(from: configuration.keyDirectory)
        let missing = versions.filter { !keys.kekVersions.contains($0) }
        guard missing.isEmpty else {
            throw VaultError(
                .keys,
                "backup \(backup) needs KEK versions \(missing.map(String.init).joined(separator: ", ")), which the key directory no longer holds (retired?); its data cannot be read"
            )
        }
        try KeyDirectory.makePrivateDirectory(configuration.dataDirectory)
        let partial = database + ".restoring"
        do {
            try FileManager.default.copyItem(atPath: backup, toPath: partial)
            guard chmod(partial, 0o600) == 0 else { throw VaultError(.setup, "cannot set the mode of \(partial)") }
            try storageCall { try SQLiteStore.fsync(partial) }
            guard rename(partial, database) == 0 else {
                throw VaultError(.setup, "cannot move the restored file into place")
            }
        } catch {
            unlink(partial)
            throw error
        }
        // Opening runs migrations and the key checks; closing leaves a clean file.
        try open(configuration).close()
        return versions
    }
}
