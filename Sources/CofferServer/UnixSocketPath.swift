import CofferCore

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// Start-up checks for the Unix socket path: a socket file left by a crashed process is removed,
/// but one that a live server still answers on is never touched.
public enum UnixSocketPath {
    static func prepare(_ path: String) throws {
        var info = stat()
        guard lstat(path, &info) == 0 else { return }
        guard (info.st_mode & S_IFMT) == S_IFSOCK else {
            throw ServerError("\(path) exists and is not a socket; refusing to replace it")
        }
        if isAnswering(path) {
            throw ServerError("another server is already listening on \(path); refusing to start")
        }
        guard unlink(path) == 0 else {
            throw ServerError("stale socket \(path) cannot be removed: \(String(cString: strerror(errno)))")
        }
    }

    /// True if something accepts connections on the socket.
    static func isAnswering(_ path: String) -> Bool {
        guard let fd = UnixSocket.connect(path) else { return false }
        close(fd)
        return true
    }
}
