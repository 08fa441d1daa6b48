import CofferCrypto
import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// Re-sealing every key file under a new root key (sealing a raw directory, or rekeying the
/// shares), so that a kill at any moment leaves the old generation or the new one usable:
///
/// 1. every key, opened under the old root (or read raw), is written sealed under the new root
///    into `<keys>/.reseal/`, with the new manifest, each file synced;
/// 2. the caller hands out the new shares (printed, or the dev share file): before the commit,
///    so a commit never happens with shares nobody received;
/// 3. `.reseal/COMMIT` is written and synced: the commit point;
/// 4. roll forward: each old key file is overwritten with zeros and synced (the raw or old
///    sealed bytes do not linger), then the staged file renamed over it; the manifest last;
///    then `.reseal` is removed.
///
/// Until `.reseal` is gone no vault opens (`checkNoReseal`); whoever takes the data directory's
/// lock next (`coffer serve`, the seal commands) finishes the work: rolls forward with a COMMIT,
/// which needs no key, or throws the stage away without one, leaving the old generation.
extension KeyDirectory {
    static let resealDirectory = ".reseal"
    static let commitMarker = "COMMIT"

    static func reseal(
        _ directory: String, from oldRoot: RootKey?, to newRoot: RootKey, manifest: SealManifest,
        beforeCommit: () throws -> Void
    ) throws {
        try checkNoReseal(directory)
        try checkSealing(directory, root: oldRoot)
        let names = try FileManager.default.contentsOfDirectory(atPath: directory).filter {
            SealedKeyFile.identity(fileName: $0) != nil
        }.sorted()
        guard names.contains(where: { kekVersion(fileName: $0) != nil }) else {
            throw VaultError(.keys, "key directory \(directory) holds no kek-N.key file")
        }
        let stage = path(directory, resealDirectory)
        guard mkdir(stage, 0o700) == 0 else {
            throw VaultError(.keys, "\(stage) cannot be created: \(String(cString: strerror(errno)))")
        }
        do {
            for name in names {
                let key = try readKey(path(directory, name), root: oldRoot)
                try writeKey(key, to: path(stage, name), root: newRoot)
            }
            try writeManifest(manifest, in: stage)
            try syncDirectory(directory)
            try beforeCommit()
        } catch {
            try? FileManager.default.removeItem(atPath: stage)
            throw error
        }
        try PrivateFile.create([], at: path(stage, commitMarker), code: .keys)
        try rollForward(directory)
    }

    /// Finishes or undoes an interrupted reseal; true if there was one. Only for the holder of
    /// the data directory's lock.
    static func recoverReseal(_ directory: String) throws -> Bool {
        let stage = path(directory, resealDirectory)
        guard FileManager.default.fileExists(atPath: stage) else { return false }
        if FileManager.default.fileExists(atPath: path(stage, commitMarker)) {
            try rollForward(directory)
        } else {
            do { try FileManager.default.removeItem(atPath: stage) } catch {
                throw VaultError(.keys, "the interrupted reseal in \(stage) cannot be removed: \(error)")
            }
            try syncDirectory(directory)
        }
        return true
    }

    static func checkNoReseal(_ directory: String) throws {
        guard !FileManager.default.fileExists(atPath: path(directory, resealDirectory)) else {
            throw VaultError(
                .keys,
                "key directory \(directory) holds an interrupted reseal (\(resealDirectory)); start coffer serve, or run the seal command again, to finish or undo it"
            )
        }
    }

    private static func rollForward(_ directory: String) throws {
        let stage = path(directory, resealDirectory)
        let staged = try FileManager.default.contentsOfDirectory(atPath: stage).filter {
            SealedKeyFile.identity(fileName: $0) != nil
        }
        for name in staged {
            let target = path(directory, name)
            if FileManager.default.fileExists(atPath: target) { try overwriteWithZeros(target) }
            guard rename(path(stage, name), target) == 0 else {
                throw VaultError(.keys, "\(target) cannot be replaced: \(String(cString: strerror(errno)))")
            }
        }
        try syncDirectory(directory)
        let manifest = path(stage, SealManifest.fileName)
        if FileManager.default.fileExists(atPath: manifest) {
            guard rename(manifest, path(directory, SealManifest.fileName)) == 0 else {
                throw VaultError(
                    .keys, "the new seal manifest cannot be put in place: \(String(cString: strerror(errno)))")
            }
            try syncDirectory(directory)
        }
        unlink(path(stage, commitMarker))
        guard rmdir(stage) == 0 else {
            throw VaultError(.keys, "\(stage) cannot be removed: \(String(cString: strerror(errno)))")
        }
        try syncDirectory(directory)
    }

    /// Zeros over a key file's bytes, synced, before it is replaced: on storage that overwrites
    /// in place, the old key does not survive in freed blocks.
    private static func overwriteWithZeros(_ target: String) throws {
        let fd = open(target, O_WRONLY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else {
            throw VaultError(.keys, "\(target) cannot be opened to overwrite it: \(String(cString: strerror(errno)))")
        }
        var info = stat()
        let size = fstat(fd, &info) == 0 ? Int(info.st_size) : SealedKeyFile.length
        let zeros = [UInt8](repeating: 0, count: max(size, 1))
        let ok = zeros.withUnsafeBytes { PrivateFile.writeAll(fd, $0) } && fsync(fd) == 0
        close(fd)
        guard ok else { throw VaultError(.keys, "\(target) could not be overwritten and synced") }
    }
}
