import CofferStore
import Foundation

extension Vault {
    /// `coffer backup`: an online, consistent, integrity-checked copy of the database, taken
    /// while the server runs. It holds only ciphertext and wrapped keys; to read it, the key
    /// directory must still hold every KEK version it needs, which is returned (and recorded
    /// in the audit trail). Retiring those versions makes the backup unreadable for good.
    ///
    /// `path` must be a new name outside the data and key directories: an existing file is
    /// never replaced (a backup written over `coffer.db` once destroyed the live vault). The
    /// copy is written beside `path`, synced, and only then linked to its name (`PrivateFile`).
    public func backup(to path: String, as caller: Caller) throws -> [UInt32] {
        _ = try audited("BACKUP", caller) { [self] tx, draft in
            try resolve(caller, in: tx, recordingIn: &draft).require(.operation(.keys), "BACKUP")
        }
        try checkBackupTarget(path)
        let (fd, temporary) = try PrivateFile.createTemporary(beside: path, code: .setup)
        let versions: [UInt32]
        do {
            versions = try Self.storageCall { try store.backup(into: temporary) }
        } catch {
            PrivateFile.discard(fd: fd, temporary: temporary)
            unlink(temporary + "-journal")
            throw error
        }
        try PrivateFile.install(fd: fd, temporary: temporary, at: path, code: .setup)
        logger.notice("backup written", metadata: ["kek.versions": "\(versions)"])
        return versions
    }

    /// Refuses a backup target that exists (under any type, a dangling symlink included), whose
    /// directory does not exist, or that lies, once symlinks are resolved, inside the data or
    /// the key directory.
    func checkBackupTarget(_ path: String) throws {
        guard !path.isEmpty, !path.hasSuffix("/") else {
            throw VaultError(.setup, "backup target '\(path)' is not a file name")
        }
        var info = stat()
        if lstat(path, &info) == 0 {
            throw VaultError(.setup, "\(path) exists; a backup never replaces a file, choose a new name")
        }
        guard errno == ENOENT else {
            throw VaultError(.setup, "backup target \(path) cannot be checked: \(String(cString: strerror(errno)))")
        }
        let directory = LocalPath.parent(path)
        guard let real = LocalPath.resolved(directory) else {
            throw VaultError(.setup, "directory \(directory) of the backup target does not exist")
        }
        let data = try LocalPath.canonical(configuration.dataDirectory)
        let keys = try LocalPath.canonical(configuration.keyDirectory)
        if LocalPath.isWithin(real, data) {
            throw VaultError(
                .setup, "backup target \(path) is inside the data directory (\(data)); keep backups elsewhere")
        }
        if LocalPath.isWithin(real, keys) {
            throw VaultError(
                .setup, "backup target \(path) is inside the key directory (\(keys)); keep backups apart from the keys")
        }
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
