import CofferCrypto
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
    /// copy is written beside `path`, synced, and only then linked to its name (`PrivateFile`);
    /// `path.kek-versions` is written the same way and must not exist either.
    public func backup(to path: String, as caller: Caller) throws -> [UInt32] {
        _ = try audited("BACKUP", caller) { [self] tx, draft in
            try resolve(caller, in: tx, recordingIn: &draft).require(.operation(.keys), "BACKUP")
        }
        let manifest = path + Self.kekVersionsSuffix
        try checkBackupTarget(path)
        try checkBackupTarget(manifest)
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
        // The list of KEK versions beside it, with the same care; without it the backup is
        // removed again, so there is never one without the other.
        let list = versions.map(String.init).joined(separator: " ") + "\n"
        do { try PrivateFile.create(Array(list.utf8), at: manifest, code: .setup) } catch {
            unlink(path)
            throw error
        }
        logger.notice("backup written", metadata: ["kek.versions": "\(versions)"])
        return versions
    }

    /// The file beside a backup that lists the KEK versions it needs, one line, space-separated.
    public static let kekVersionsSuffix = ".kek-versions"

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
    /// once it has shown that it is a Coffer database this key directory can read. Returns the
    /// KEK versions it needs.
    ///
    /// A backup file is untrusted input. Before it is given the name `coffer.db` its schema
    /// must be exactly the one Coffer's migrations build (no trigger, no view, nothing extra or
    /// altered), it must pass `PRAGMA integrity_check`, the key directory must hold every KEK
    /// version it needs, and one data key per version must unwrap. Then it is opened
    /// (migrations and key checks) and its audit chain verified under this `audit.key`.
    ///
    /// The data directory must not exist (it is created, mode 0700) or be an empty, real
    /// directory: a symlink is refused, and so is any entry at all, since a leftover
    /// `coffer.db-wal` would be replayed into the restored database. On any failure everything
    /// restore created is removed again.
    public static func restore(
        from backup: String, into configuration: VaultConfiguration
    ) throws -> [UInt32] {
        try checkSeparate(configuration)
        // A backup file is a SQLite database; a server-backed store restores with its own tool.
        guard let location = configuration.store as? SQLiteLocation else {
            throw VaultError(
                .setup,
                "coffer restore puts a SQLite backup file in place; the store \(configuration.store) is restored with its database's own tools"
            )
        }
        let created = try prepareEmptyDataDirectory(configuration.dataDirectory)
        let database = location.path
        var temporary: String?
        do {
            temporary = try copyBackup(backup, beside: database)
            let inspection: BackupInspection
            do { inspection = try SQLiteStore.inspectBackup(at: temporary!) } catch {
                throw VaultError(.setup, "backup \(backup) cannot be read as a SQLite database: \(error)")
            }
            removeSideFiles(of: temporary!)
            guard inspection.schemaProblems.isEmpty else {
                throw VaultError(
                    .setup,
                    "backup \(backup) is not a Coffer database: \(inspection.schemaProblems.joined(separator: "; "))")
            }
            guard inspection.integrity == "ok" else {
                throw VaultError(.setup, "backup \(backup) fails its integrity check: \(inspection.integrity)")
            }
            let keys = try KeyDirectory.load(from: configuration.keyDirectory, root: configuration.rootKey())
            let missing = inspection.kekVersions.filter { !keys.kekVersions.contains($0) }
            guard missing.isEmpty else {
                throw VaultError(
                    .keys,
                    "backup \(backup) needs KEK versions \(missing.map(String.init).joined(separator: ", ")), which the key directory no longer holds (retired?); its data cannot be read"
                )
            }
            try checkKeysOpen(
                inspection.sampleKeys, with: keys, backup: backup, keyDirectory: configuration.keyDirectory)
            try PrivateFile.place(temporary: temporary!, at: database, code: .setup)
            temporary = nil
            try PrivateFile.syncDirectory(configuration.dataDirectory, code: .setup)
            // Opening runs migrations and the key checks; closing leaves a clean file.
            let vault = try open(configuration)
            let verification: AuditLog.Verification
            do { verification = try storageCall { try vault.audit.verify(vault.store) } } catch {
                try? vault.close()
                throw error
            }
            try vault.close()
            if case .tampered(let seq, let reason) = verification {
                throw VaultError(
                    .integrity,
                    "backup \(backup): its audit trail does not verify under \(KeyDirectory.path(configuration.keyDirectory, KeyDirectory.auditKeyFile)) at entry \(seq) (\(reason)); wrong key directory, or the trail was altered"
                )
            }
            return inspection.kekVersions
        } catch {
            if let temporary {
                unlink(temporary)
                removeSideFiles(of: temporary)
            }
            unlink(database)
            removeSideFiles(of: database)
            if created { rmdir(configuration.dataDirectory) }
            throw error
        }
    }

    /// Unwraps one data key per KEK version with the key directory's KEKs: a key directory
    /// that holds files of the right names but not this vault's keys is caught here.
    static func checkKeysOpen(
        _ samples: [BackupInspection.Sample], with keys: KeyRing, backup: String, keyDirectory: String
    ) throws {
        let envelope = Envelope(keys: keys)
        try KeyScratchPool(limit: 1).withScratch { scratch in
            for sample in samples {
                do { try envelope.unwrapDEK(sample.key, subject: sample.subject, in: scratch) } catch {
                    throw VaultError(
                        .keys,
                        "backup \(backup): the data key of subject '\(sample.subject)' does not open under \(KeyDirectory.path(keyDirectory, KeyDirectory.kekFileName(version: sample.key.kekVersion))); is this the key directory of the vault it was taken from?"
                    )
                }
            }
        }
    }

    /// Creates the data directory for a restore, or checks that an existing one is an empty,
    /// real directory (not a symlink) and makes it private. Returns true if it was created.
    static func prepareEmptyDataDirectory(_ directory: String) throws -> Bool {
        var info = stat()
        guard lstat(LocalPath.trimmed(directory), &info) == 0 else {
            guard errno == ENOENT else {
                throw VaultError(
                    .setup, "data directory \(directory) cannot be checked: \(String(cString: strerror(errno)))")
            }
            try KeyDirectory.makePrivateDirectory(directory)
            return true
        }
        switch info.st_mode & S_IFMT {
        case S_IFLNK:
            throw VaultError(
                .setup,
                "data directory \(directory) is a symlink; restore only into an empty data directory that is a real directory"
            )
        case S_IFDIR:
            break
        default:
            throw VaultError(.setup, "data directory \(directory) is not a directory")
        }
        let entries: [String]
        do { entries = try FileManager.default.contentsOfDirectory(atPath: directory) } catch {
            throw VaultError(.setup, "data directory \(directory) cannot be read")
        }
        guard entries.isEmpty else {
            let shown = entries.sorted().prefix(5).joined(separator: ", ")
            throw VaultError(
                .setup,
                "data directory \(directory) is not empty (it holds \(shown)\(entries.count > 5 ? ", …" : "")); restore only into an empty data directory"
            )
        }
        try KeyDirectory.makePrivateDirectory(directory)
        return false
    }

    /// Copies the backup file into a new private temporary file beside `database`, synced.
    /// Returns its path.
    static func copyBackup(_ backup: String, beside database: String) throws -> String {
        let source = Glibc.open(backup, O_RDONLY | O_CLOEXEC)
        guard source >= 0 else {
            throw VaultError(.setup, "backup file \(backup) cannot be opened: \(String(cString: strerror(errno)))")
        }
        defer { Glibc.close(source) }
        var info = stat()
        guard fstat(source, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else {
            throw VaultError(.setup, "backup file \(backup) is not a regular file")
        }
        let (fd, temporary) = try PrivateFile.createTemporary(beside: database, code: .setup)
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = buffer.withUnsafeMutableBytes { Glibc.read(source, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n == 0 { break }
            guard n > 0,
                buffer.withUnsafeBytes({ PrivateFile.writeAll(fd, UnsafeRawBufferPointer(rebasing: $0[..<n])) })
            else {
                let reason = String(cString: strerror(errno))
                PrivateFile.discard(fd: fd, temporary: temporary)
                throw VaultError(.setup, "backup file \(backup) could not be copied: \(reason)")
            }
        }
        try PrivateFile.finish(fd: fd, temporary: temporary, for: database, code: .setup)
        return temporary
    }

    /// Removes the journal, WAL and shared-memory files SQLite may leave beside `path`.
    static func removeSideFiles(of path: String) {
        for suffix in ["-journal", "-wal", "-shm"] { unlink(path + suffix) }
    }
}
