import CofferCrypto
import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// The key directory's on-disk layout and its rules. Each key is a file of exactly 32 raw
/// bytes, mode 0600, in a directory of mode 0700 that is kept apart from the data directory:
///
/// - `kek-<version>.key`: the key-encrypting keys, one per version (1, 2, …);
/// - `index.key`: the blind-index key (keyed BLAKE2b of normalised emails and phones);
/// - `auth.key`: the key under which client secrets are hashed;
/// - `audit.key`: the key of the audit trail's MAC chain.
public enum KeyDirectory {
    public static let indexKeyFile = "index.key"
    public static let authKeyFile = "auth.key"
    public static let auditKeyFile = "audit.key"

    public static func kekFileName(version: UInt32) -> String { "kek-\(version).key" }

    /// The version a file name denotes, if it names a KEK.
    static func kekVersion(fileName: String) -> UInt32? {
        guard fileName.hasPrefix("kek-"), fileName.hasSuffix(".key") else { return nil }
        let digits = fileName.dropFirst(4).dropLast(4)
        guard !digits.isEmpty, digits.count <= 9, digits.allSatisfy({ $0.isASCII && $0.isNumber }),
            digits.first != "0", let version = UInt32(digits)
        else { return nil }
        return version
    }

    /// True if the directory holds any key file or a seal manifest (so `init` must not touch it).
    static func holdsKeys(_ directory: String) -> Bool {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        return names.contains { $0.hasSuffix(".key") || $0 == SealManifest.fileName }
    }

    /// Creates a fresh key directory with KEK version 1, an index key, an auth key and an audit
    /// key, sealed under `root` (with its manifest) if one is given, else as raw 32-byte files.
    /// If any step fails, the files already written are removed again.
    static func create(
        at directory: String, root: RootKey? = nil, manifest: SealManifest? = nil, calls: FileCalls = .system
    ) throws {
        try makePrivateDirectory(directory)
        var written: [String] = []
        do {
            if let manifest {
                try writeManifest(manifest, in: directory, calls: calls)
                written.append(path(directory, SealManifest.fileName))
            }
            for name in [kekFileName(version: 1), indexKeyFile, authKeyFile, auditKeyFile] {
                try writeKey(SymmetricKey.random(), to: path(directory, name), root: root, calls: calls)
                written.append(path(directory, name))
            }
        } catch {
            for file in written { unlink(file) }
            throw error
        }
    }

    /// The seal manifest, if the directory is sealed.
    static func manifest(in directory: String) throws -> SealManifest? {
        try checkNoReseal(directory)
        let file = path(directory, SealManifest.fileName)
        let fd = open(file, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
        if fd < 0 && errno == ENOENT { return nil }
        guard fd >= 0 else {
            throw VaultError(.keys, "seal manifest \(file) cannot be opened: \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        let size = try checkedSize(fd, file, what: "seal manifest")
        guard size <= 64 * 1024 else { throw VaultError(.keys, "seal manifest \(file) is too large (\(size) bytes)") }
        let bytes = try readAll(fd, count: size, file)
        return try SealManifest(parsing: String(decoding: bytes, as: UTF8.self), path: file)
    }

    static func writeManifest(_ manifest: SealManifest, in directory: String, calls: FileCalls = .system) throws {
        let file = path(directory, SealManifest.fileName)
        let (fd, temporary) = try PrivateFile.createTemporary(beside: file, code: .keys)
        guard Array(manifest.text.utf8).withUnsafeBytes({ PrivateFile.writeAll(fd, $0) }) else {
            let reason = String(cString: strerror(errno))
            PrivateFile.discard(fd: fd, temporary: temporary)
            throw VaultError(.keys, "seal manifest \(file) could not be written: \(reason)")
        }
        try PrivateFile.install(fd: fd, temporary: temporary, at: file, code: .keys, calls: calls)
    }

    /// Loads every key, refusing a directory whose key files are exposed or malformed. A sealed
    /// directory (one with a seal manifest) needs its root key, and the root key a sealed one.
    static func load(from directory: String, root: RootKey? = nil) throws -> KeyRing {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory), isDirectory.boolValue
        else { throw VaultError(.keys, "key directory \(directory) does not exist") }
        // Whoever else may write the directory may swap or plant key files in it; whoever else
        // owns it may change its mode back.
        var info = stat()
        guard stat(directory, &info) == 0 else {
            throw VaultError(
                .keys, "key directory \(directory) cannot be examined: \(String(cString: strerror(errno)))")
        }
        guard info.st_mode & 0o077 == 0 else {
            throw VaultError(
                .keys,
                "key directory \(directory) is accessible by group or others (mode \(String(info.st_mode & 0o777, radix: 8))); chmod 700 it"
            )
        }
        guard info.st_uid == geteuid() else {
            throw VaultError(
                .keys,
                "key directory \(directory) is owned by uid \(info.st_uid), not by the user coffer runs as (uid \(geteuid())); chown it"
            )
        }
        let names: [String]
        do { names = try FileManager.default.contentsOfDirectory(atPath: directory) } catch {
            throw VaultError(.keys, "key directory \(directory) cannot be read")
        }
        try checkSealing(directory, root: root)
        var keks: [UInt32: SymmetricKey] = [:]
        for name in names {
            if let version = kekVersion(fileName: name) {
                keks[version] = try readKey(path(directory, name), root: root)
            }
        }
        guard !keks.isEmpty else { throw VaultError(.keys, "key directory \(directory) holds no kek-N.key file") }
        let index = try readKey(path(directory, indexKeyFile), root: root)
        let auth = try readKey(path(directory, authKeyFile), root: root)
        let audit = try readKey(path(directory, auditKeyFile), root: root)
        return KeyRing(keks: keks, indexKey: index, authKey: auth, auditKey: audit, root: root)
    }

    /// A sealed directory is opened only with the root key its manifest was made for; R is
    /// checked here, before any key file is opened with it.
    static func checkSealing(_ directory: String, root: RootKey?) throws {
        let manifest = try manifest(in: directory)
        switch (manifest, root) {
        case (nil, nil): return
        case (let manifest?, nil):
            throw VaultError(
                .keys,
                "key directory \(directory) is sealed: unseal it with \(manifest.threshold) of its \(manifest.shareCount) key shares"
            )
        case (nil, _?):
            throw VaultError(.keys, "key directory \(directory) is not sealed (it has no \(SealManifest.fileName))")
        case (let manifest?, let root?):
            guard manifest.generation == root.generation, manifest.isMade(for: root.key) else {
                throw VaultError(
                    .keys, "the root key is not the one \(path(directory, SealManifest.fileName)) was made for")
            }
        }
    }

    static func path(_ directory: String, _ name: String) -> String {
        LocalPath.join(directory, name)
    }

    /// Reads a key file, after checking its mode and size on the open descriptor (so the
    /// checks and the read see the same file): a raw one straight into guarded memory, a sealed
    /// one (under `root`) into a buffer of ciphertext that is then opened into guarded memory.
    static func readKey(_ path: String, root: RootKey? = nil) throws -> SymmetricKey {
        let fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else {
            throw VaultError(.keys, "key file \(path) cannot be opened: \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        let size = try checkedSize(fd, path, what: "key file")
        if let root {
            guard size == SealedKeyFile.length else {
                throw VaultError(
                    .keys,
                    "key file \(path) has the wrong size for a sealed key file: \(size) bytes, expected \(SealedKeyFile.length)"
                )
            }
            let bytes = try readAll(fd, count: size, path)
            return try SealedKeyFile.open(bytes, path: path, fileName: LocalPath.lastComponent(path), root: root)
        }
        guard size == SymmetricKey.length else {
            throw VaultError(
                .keys, "key file \(path) has the wrong size: \(size) bytes, expected \(SymmetricKey.length)")
        }
        let bytes = try SecureBytes(count: SymmetricKey.length)
        let complete = bytes.withUnsafeMutableBytes { readFully(fd, $0) }
        guard complete else { throw VaultError(.keys, "key file \(path) could not be read in full") }
        return try SymmetricKey(bytes)
    }

    /// The size of an open key-directory file, refusing one that is not a regular file, that
    /// group or others may use, or that another user owns.
    private static func checkedSize(_ fd: Int32, _ path: String, what: String) throws -> Int {
        var info = stat()
        guard fstat(fd, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else {
            throw VaultError(.keys, "\(what) \(path) is not a regular file")
        }
        guard info.st_mode & 0o077 == 0 else {
            throw VaultError(
                .keys,
                "\(what) \(path) is readable or writable by group or others (mode \(String(info.st_mode & 0o777, radix: 8))); chmod 600 it"
            )
        }
        guard info.st_uid == geteuid() else {
            throw VaultError(
                .keys,
                "\(what) \(path) is owned by uid \(info.st_uid), not by the user coffer runs as (uid \(geteuid())); chown it"
            )
        }
        return Int(info.st_size)
    }

    private static func readFully(_ fd: Int32, _ buffer: UnsafeMutableRawBufferPointer) -> Bool {
        var filled = 0
        while filled < buffer.count {
            let n = read(fd, buffer.baseAddress! + filled, buffer.count - filled)
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return false }
            filled += n
        }
        return true
    }

    /// For files that hold no plaintext key (sealed key files, the manifest).
    private static func readAll(_ fd: Int32, count: Int, _ path: String) throws -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        guard count == 0 || bytes.withUnsafeMutableBytes({ readFully(fd, $0) }) else {
            throw VaultError(.keys, "\(path) could not be read in full")
        }
        return bytes
    }

    /// Writes a key file with mode 0600, refusing to overwrite one, and syncs it and its
    /// directory to disk. The key appears under its name complete or not at all: if a write,
    /// fsync, close, link or directory sync fails, nothing is left behind (see `PrivateFile`).
    /// Under a root key, the file written is the sealed form (see `SealedKeyFile`).
    static func writeKey(_ key: SymmetricKey, to path: String, root: RootKey? = nil, calls: FileCalls = .system) throws
    {
        let sealed = try root.map { try SealedKeyFile.seal(key, fileName: LocalPath.lastComponent(path), root: $0) }
        let (fd, temporary) = try PrivateFile.createTemporary(beside: path, code: .keys)
        let written =
            if let sealed { sealed.withUnsafeBytes { PrivateFile.writeAll(fd, $0) } } else {
                key.withUnsafeBytes { PrivateFile.writeAll(fd, $0) }
            }
        guard written else {
            let reason = String(cString: strerror(errno))
            PrivateFile.discard(fd: fd, temporary: temporary)
            throw VaultError(.keys, "key file \(path) could not be written: \(reason)")
        }
        try PrivateFile.install(fd: fd, temporary: temporary, at: path, code: .keys, calls: calls)
    }

    /// Overwrites a key file with zeros, syncs, and unlinks it (retirement). On flash storage
    /// the old blocks may survive the overwrite; the data directory's own encryption and the
    /// separation of key and data backups are what protect against that.
    static func destroyKey(at path: String, calls: FileCalls = .system) throws {
        let fd = open(path, O_WRONLY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else {
            throw VaultError(
                .keys, "key file \(path) cannot be opened to destroy it: \(String(cString: strerror(errno)))")
        }
        var info = stat()
        let size = fstat(fd, &info) == 0 ? max(Int(info.st_size), SymmetricKey.length) : SealedKeyFile.length
        let zeros = [UInt8](repeating: 0, count: size)
        let written = zeros.withUnsafeBytes { PrivateFile.writeAll(fd, $0) } ? 0 : errno
        let synced = calls.fsync(fd) == 0 ? 0 : errno
        let closed = calls.close(fd) == 0 ? 0 : errno
        guard written == 0, synced == 0, closed == 0 else {
            let reason = String(cString: strerror([written, synced, closed].first { $0 != 0 } ?? EIO))
            throw VaultError(.keys, "key file \(path) could not be overwritten and synced: \(reason)")
        }
        guard unlink(path) == 0 else {
            throw VaultError(.keys, "key file \(path) could not be deleted: \(String(cString: strerror(errno)))")
        }
        try syncDirectory(LocalPath.parent(path), calls: calls)
    }

    /// Creates `directory` (and any missing parents) with mode 0700, or tightens an existing
    /// one to 0700. Relative paths are taken against the working directory.
    static func makePrivateDirectory(_ directory: String) throws {
        guard !directory.isEmpty else { throw VaultError(.setup, "a directory name is empty") }
        try LocalPath.makeDirectories(LocalPath.parent(directory))
        if mkdir(directory, 0o700) != 0 && errno != EEXIST {
            throw VaultError(.setup, "directory \(directory) cannot be created: \(String(cString: strerror(errno)))")
        }
        guard chmod(directory, 0o700) == 0 else {
            throw VaultError(.setup, "directory \(directory) cannot be set to mode 0700")
        }
    }

    /// Fsyncs the key directory, failing if the sync (or the close) does.
    static func syncDirectory(_ directory: String, calls: FileCalls = .system) throws {
        try PrivateFile.syncDirectory(directory, code: .keys, calls: calls)
    }
}
