#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// The system calls whose failure must fail a file operation. Production code uses `system`;
/// a test puts a failing one in place to check that the operation fails cleanly.
struct FileCalls: Sendable {
    var fsync: @Sendable (Int32) -> Int32
    var close: @Sendable (Int32) -> Int32
    var link: @Sendable (String, String) -> Int32

    static let system = FileCalls(
        fsync: { fd in
            #if canImport(Glibc)
                Glibc.fsync(fd)
            #elseif canImport(Musl)
                Musl.fsync(fd)
            #else
                Darwin.fsync(fd)
            #endif
        },
        close: { fd in
            #if canImport(Glibc)
                Glibc.close(fd)
            #elseif canImport(Musl)
                Musl.close(fd)
            #else
                Darwin.close(fd)
            #endif
        },
        link: { from, to in
            #if canImport(Glibc)
                Glibc.link(from, to)
            #elseif canImport(Musl)
                Musl.link(from, to)
            #else
                Darwin.link(from, to)
            #endif
        })
}

/// A new file (a key, a backup, its list of KEK versions) that appears under its final name
/// complete, synced and mode 0600, or not at all, and never in place of an existing file.
///
/// The bytes go to a temporary file beside the target, created with `O_EXCL` (so it follows no
/// symlink) and mode 0600 whatever the umask. It is fsynced and closed, then hard-linked to the
/// target name, which fails if anything (a file, a symlink, a directory) is already there: a
/// rename would silently replace it. The temporary name is then removed and the directory
/// fsynced, so the new name survives a power loss. Any failure removes what was created.
enum PrivateFile {
    /// Creates the temporary file beside `target`. The caller writes through `fd`, then calls
    /// `install` (or `discard` on an error of its own).
    static func createTemporary(beside target: String, code: VaultError.Code) throws(VaultError) -> (
        fd: Int32, path: String
    ) {
        var template = Array((LocalPath.trimmed(target) + ".tmp-XXXXXX").utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard fd >= 0 else {
            throw VaultError(
                code, "a temporary file beside \(target) cannot be created: \(String(cString: strerror(errno)))")
        }
        let path = String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        // Swift's Glibc module has no mkostemp. Coffer starts no child processes, so the moment
        // before the flag is set exposes nothing; the flag keeps it that way if that changes.
        guard fcntl(fd, F_SETFD, FD_CLOEXEC) == 0 else {
            let reason = String(cString: strerror(errno))
            discard(fd: fd, temporary: path)
            throw VaultError(code, "a temporary file beside \(target) cannot be set up: \(reason)")
        }
        return (fd, path)
    }

    /// Writes all of `bytes` to `fd`, retrying short writes and EINTR.
    static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) -> Bool {
        var done = 0
        while done < bytes.count {
            let n = write(fd, bytes.baseAddress! + done, bytes.count - done)
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return false }
            done += n
        }
        return true
    }

    /// Syncs and closes `fd` (the temporary file at `temporary`); on failure removes it.
    static func finish(
        fd: Int32, temporary: String, for target: String, code: VaultError.Code, calls: FileCalls = .system
    ) throws(VaultError) {
        let synced = calls.fsync(fd) == 0 ? 0 : errno
        let closed = calls.close(fd) == 0 ? 0 : errno
        guard synced == 0, closed == 0 else {
            unlink(temporary)
            let reason = String(cString: strerror(synced != 0 ? synced : closed))
            throw VaultError(code, "\(target) could not be \(synced != 0 ? "synced" : "closed") to disk: \(reason)")
        }
    }

    /// Gives the finished temporary file its final name, refusing to replace anything there.
    /// On failure the temporary file is removed and the target left as it was.
    static func place(
        temporary: String, at target: String, code: VaultError.Code, calls: FileCalls = .system
    ) throws(VaultError) {
        guard calls.link(temporary, LocalPath.trimmed(target)) == 0 else {
            let reason = errno
            unlink(temporary)
            if reason == EEXIST {
                throw VaultError(code, "\(target) exists; refusing to replace it")
            }
            throw VaultError(code, "\(target) cannot be created: \(String(cString: strerror(reason)))")
        }
        guard unlink(temporary) == 0 else {
            let reason = String(cString: strerror(errno))
            unlink(target)
            throw VaultError(code, "the temporary file \(temporary) cannot be removed: \(reason)")
        }
    }

    /// Fsyncs a directory, so that names created or removed in it survive a power loss.
    static func syncDirectory(_ directory: String, code: VaultError.Code, calls: FileCalls = .system)
        throws(VaultError)
    {
        let fd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else {
            throw VaultError(code, "directory \(directory) cannot be opened: \(String(cString: strerror(errno)))")
        }
        let synced = calls.fsync(fd) == 0 ? 0 : errno
        let closed = calls.close(fd) == 0 ? 0 : errno
        guard synced == 0, closed == 0 else {
            throw VaultError(
                code,
                "directory \(directory) could not be synced to disk: \(String(cString: strerror(synced != 0 ? synced : closed)))"
            )
        }
    }

    /// The whole sequence for one file: finish, place, sync the directory. If the directory
    /// cannot be synced, the new name is removed again: the operation has failed.
    static func install(
        fd: Int32, temporary: String, at target: String, code: VaultError.Code, calls: FileCalls = .system
    ) throws(VaultError) {
        try finish(fd: fd, temporary: temporary, for: target, code: code, calls: calls)
        try place(temporary: temporary, at: target, code: code, calls: calls)
        do { try syncDirectory(LocalPath.parent(target), code: code, calls: calls) } catch {
            unlink(LocalPath.trimmed(target))
            throw VaultError(code, "\(target) was removed again: \(error.message)")
        }
    }

    /// Closes and removes a temporary file after an error of the caller's own.
    static func discard(fd: Int32, temporary: String) {
        _ = close(fd)
        unlink(temporary)
    }

    /// Writes `bytes` as a new private file at `target` (see the type's comment).
    static func create(
        _ bytes: [UInt8], at target: String, code: VaultError.Code, calls: FileCalls = .system
    ) throws(VaultError) {
        let (fd, temporary) = try createTemporary(beside: target, code: code)
        guard bytes.withUnsafeBytes({ writeAll(fd, $0) }) else {
            let reason = String(cString: strerror(errno))
            discard(fd: fd, temporary: temporary)
            throw VaultError(code, "\(target) could not be written: \(reason)")
        }
        try install(fd: fd, temporary: temporary, at: target, code: code, calls: calls)
    }
}
