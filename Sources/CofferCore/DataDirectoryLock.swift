import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// One process at a time owns a data directory: the server for its whole life, or, when no
/// server runs, the CLI command that changes the vault offline. Ownership is an exclusive
/// `flock` on `DATA/coffer.lock`, which also records who holds it (PID, command, socket), so
/// the CLI finds a running server through this file instead of guessing its socket.
///
/// Only the holder changes KEKs (rotate, retire, rewrap, repairs at open): a second process
/// acting on the key directory while a server serves is how a KEK got retired under a server
/// that still wrapped new data keys with it.
///
/// The kernel drops a `flock` when its holder exits, even after SIGKILL, so a crash never
/// leaves the directory locked; the file itself is never removed (a new file would be a new
/// lock that an old holder does not hold).
public final class DataDirectoryLock: Sendable {
    public static let fileName = "coffer.lock"

    /// Who holds a data directory, as its lock file records it.
    public struct Holder: Sendable, Hashable, Codable, CustomStringConvertible {
        public var pid: Int32
        /// `serve`, or the CLI command that holds the directory (`keys rotate`, `init`, …).
        public var command: String
        /// The Unix socket a server answers on, if it has one, as an absolute path: the CLI that
        /// reads it may run from another directory than the server did.
        public var socket: String?
        /// Every listener of a server once bound, as it logs them (`unix PATH`, `tcp HOST:PORT`).
        public var listeners: [String]

        public init(command: String, socket: String? = nil, listeners: [String] = [], pid: Int32 = getpid()) {
            self.pid = pid
            self.command = command
            // A relative socket was found from the server's working directory only: `coffer
            // unseal --data ../d` run elsewhere looked for it in the wrong place. If the working
            // directory cannot be read the path is kept as given, as it was before.
            self.socket = socket.map { (try? LocalPath.absolute($0)) ?? $0 }
            self.listeners = listeners
        }

        public var isServer: Bool { command == "serve" }

        public var description: String {
            guard pid > 0 else { return "another coffer process" }
            var text = "coffer \(command) (pid \(pid)"
            if !listeners.isEmpty {
                text += ", listening on \(listeners.joined(separator: " and "))"
            } else if let socket {
                text += ", socket \(socket)"
            }
            return text + ")"
        }
    }

    public let path: String
    /// The locked descriptor; nil once released.
    private let descriptor: Mutex<Int32?>

    private init(path: String, descriptor: Int32) {
        self.path = path
        self.descriptor = Mutex(descriptor)
    }

    deinit { release() }

    public static func path(in dataDirectory: String) -> String {
        (dataDirectory as NSString).appendingPathComponent(fileName)
    }

    /// Takes the data directory for `holder`, or throws `SETUP` naming the process that has it.
    /// A process that only looks at the file (`holder(of:)`) holds a shared lock for an instant,
    /// so a refusal is retried for half a second before it is believed.
    public static func acquire(_ dataDirectory: String, for holder: Holder) throws -> DataDirectoryLock {
        let path = path(in: dataDirectory)
        let fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            throw VaultError(.setup, "lock file \(path) cannot be opened: \(String(cString: strerror(errno)))")
        }
        let deadline = Date().addingTimeInterval(0.5)
        while flock(fd, LOCK_EX | LOCK_NB) != 0 {
            let error = errno
            if error == EINTR { continue }
            if error == EWOULDBLOCK && Date() < deadline {
                usleep(10_000)
                continue
            }
            close(fd)
            guard error == EWOULDBLOCK else {
                throw VaultError(.setup, "lock file \(path) cannot be locked: \(String(cString: strerror(error)))")
            }
            let owner = (try? Self.holder(of: dataDirectory)).flatMap { $0 } ?? Holder(command: "?", pid: 0)
            throw VaultError(.setup, busy(dataDirectory, owner))
        }
        let lock = DataDirectoryLock(path: path, descriptor: fd)
        try lock.record(holder)
        return lock
    }

    /// The refusal every second owner gets.
    static func busy(_ dataDirectory: String, _ owner: Holder) -> String {
        "data directory \(dataDirectory) is in use by \(owner); one server per data directory, and keys change only through it"
    }

    /// Who holds the data directory now, or nil if nobody does (whatever a stale file says).
    public static func holder(of dataDirectory: String) throws -> Holder? {
        let path = path(in: dataDirectory)
        let fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else {
            if errno == ENOENT { return nil }
            throw VaultError(.setup, "lock file \(path) cannot be read: \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        if flock(fd, LOCK_SH | LOCK_NB) == 0 {
            flock(fd, LOCK_UN)
            return nil
        }
        guard errno == EWOULDBLOCK else {
            throw VaultError(.setup, "lock file \(path) cannot be checked: \(String(cString: strerror(errno)))")
        }
        // The holder writes its record right after locking; give it a moment to appear.
        let deadline = Date().addingTimeInterval(1)
        repeat {
            // A record whose process is gone is the previous holder's, not yet overwritten.
            if let holder = readRecord(fd), kill(holder.pid, 0) == 0 || errno == EPERM { return holder }
            usleep(10_000)
        } while Date() < deadline
        return Holder(command: "?", pid: 0)
    }

    /// Replaces what the file says about the holder (a server adds its listeners once bound).
    public func record(_ holder: Holder) throws {
        let bytes = Array(try JSONEncoder().encode(holder)) + [UInt8(ascii: "\n")]
        try descriptor.withLock { fd in
            guard let fd else { throw VaultError(.setup, "lock file \(path) was already released") }
            guard ftruncate(fd, 0) == 0, pwrite(fd, bytes, bytes.count, 0) == bytes.count else {
                throw VaultError(.setup, "lock file \(path) cannot be written: \(String(cString: strerror(errno)))")
            }
        }
    }

    /// Empties the record and gives the directory up. Idempotent.
    public func release() {
        descriptor.withLock { fd in
            guard let open = fd else { return }
            _ = ftruncate(open, 0)
            close(open)
            fd = nil
        }
    }

    private static func readRecord(_ fd: Int32) -> Holder? {
        var bytes = [UInt8](repeating: 0, count: 16384)
        let count = bytes.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, 0) }
        guard count > 0 else { return nil }
        return try? JSONDecoder().decode(Holder.self, from: Data(bytes[0..<count]))
    }
}
