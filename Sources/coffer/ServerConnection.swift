import CofferCore
import CofferProtocol
import Foundation
import NIOCore

#if canImport(Glibc)
    import Glibc
#endif

/// A blocking connection to a running `coffer serve` over its Unix socket, for CLI commands
/// that must go through the server while it runs (so its in-memory keyring stays right).
final class ServerConnection {
    private let fd: Int32
    private var buffer = ByteBuffer()

    /// Connects, or returns nil if nothing answers on `path`.
    init?(socketPath path: String) {
        guard let fd = UnixSocket.connect(path) else { return nil }
        self.fd = fd
    }

    deinit { close(fd) }

    func call(_ words: [String]) throws -> RESPValue {
        var encoded = ByteBuffer()
        RESPRequest(words: words).encode(into: &encoded)
        let out = Array(encoded.readableBytesView)
        var sent = 0
        while sent < out.count {
            let n = out[sent...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { throw CLIError("the server closed the connection") }
            sent += n
        }
        while true {
            if let reply = try RESPReplyParser.parse(&buffer) { return reply }
            var chunk = [UInt8](repeating: 0, count: 16384)
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            guard n > 0 else { throw CLIError("the server closed the connection") }
            buffer.writeBytes(chunk[0..<n])
        }
    }

    /// Calls and turns an error reply into a thrown error.
    func expect(_ words: String...) throws -> RESPValue {
        try expect(words)
    }

    func expect(_ words: [String]) throws -> RESPValue {
        let reply = try call(words)
        if case .error(let message) = reply { throw CLIError(message) }
        return reply
    }
}

struct CLIError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
