import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// A minimal blocking RESP client over a Unix or TCP socket, for driving the real server.
final class RESPClient {
    indirect enum Reply: Equatable, CustomStringConvertible {
        case simple(String)
        case error(String)
        case integer(Int)
        case bulk(String)
        case bytes([UInt8])
        case null
        case array([Reply])
        case map([Reply])
        case closed

        var description: String {
            switch self {
            case .simple(let s): "+\(s)"
            case .error(let s): "-\(s)"
            case .integer(let i): ":\(i)"
            case .bulk(let s): "\"\(s)\""
            case .bytes(let b): "bytes\(b)"
            case .null: "nil"
            case .array(let a): "\(a)"
            case .map(let m): "map\(m)"
            case .closed: "<closed>"
            }
        }

        var errorText: String? { if case .error(let e) = self { e } else { nil } }
    }

    private let fd: Int32
    private var buffer: [UInt8] = []

    init(unixPath: String, timeoutSeconds: Int = 10) throws {
        fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw TestFailure("socket() failed") }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(unixPath.utf8)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard result == 0 else {
            close(fd)
            throw TestFailure("connect(\(unixPath)) failed: \(String(cString: strerror(errno)))")
        }
        setTimeout(timeoutSeconds)
    }

    /// `receiveBuffer`: the socket's SO_RCVBUF, set before connecting, for a client that
    /// takes its replies slowly.
    init(tcpPort: Int, timeoutSeconds: Int = 10, receiveBuffer: Int32? = nil) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        if var size = receiveBuffer {
            setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(tcpPort).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard result == 0 else {
            close(fd)
            throw TestFailure("connect(127.0.0.1:\(tcpPort)) failed")
        }
        setTimeout(timeoutSeconds)
    }

    private func setTimeout(_ seconds: Int) {
        var tv = timeval(tv_sec: seconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    }

    deinit { close(fd) }

    /// Sends raw bytes as they are.
    func send(_ bytes: [UInt8]) throws {
        var sent = 0
        while sent < bytes.count {
            let n = bytes[sent...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            // The server may close mid-request (a protocol error); its reply is still readable.
            if n < 0 && (errno == EPIPE || errno == ECONNRESET) { return }
            guard n > 0 else { throw TestFailure("send failed: \(String(cString: strerror(errno)))") }
            sent += n
        }
    }

    func send(_ text: String) throws { try send(Array(text.utf8)) }

    static func encode(_ arguments: [[UInt8]]) -> [UInt8] {
        var out = Array("*\(arguments.count)\r\n".utf8)
        for argument in arguments {
            out += Array("$\(argument.count)\r\n".utf8) + argument + [13, 10]
        }
        return out
    }

    func call(_ words: String...) throws -> Reply { try call(words.map { Array($0.utf8) }) }

    func call(_ arguments: [[UInt8]]) throws -> Reply {
        try send(Self.encode(arguments))
        return try read()
    }

    /// True once the server has closed the connection (reads end of stream).
    func isClosed() -> Bool {
        (try? read()) == .closed
    }

    private func fill() throws -> Bool {
        var chunk = [UInt8](repeating: 0, count: 65536)
        let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        if n == 0 { return false }
        if n < 0 {
            if errno == ECONNRESET { return false }
            throw TestFailure("recv failed: \(String(cString: strerror(errno)))")
        }
        buffer += chunk[0..<n]
        return true
    }

    private func line() throws -> String? {
        while true {
            if let i = buffer.firstIndex(of: 10), i > 0, buffer[i - 1] == 13 {
                let text = String(decoding: buffer[0..<(i - 1)], as: UTF8.self)
                buffer.removeFirst(i + 1)
                return text
            }
            if try !fill() { return nil }
        }
    }

    func read() throws -> Reply {
        guard let header = try line() else { return .closed }
        let body = String(header.dropFirst())
        switch header.first {
        case "+": return .simple(body)
        case "-": return .error(body)
        case ":": return .integer(Int(body) ?? 0)
        case "_": return .null
        case "$":
            let length = Int(body) ?? -1
            if length < 0 { return .null }
            while buffer.count < length + 2 { if try !fill() { return .closed } }
            let bytes = Array(buffer[0..<length])
            buffer.removeFirst(length + 2)
            if let text = String(validating: bytes, as: UTF8.self) { return .bulk(text) }
            return .bytes(bytes)
        case "*", "%":
            let count = Int(body) ?? -1
            if count < 0 { return .null }
            var items: [Reply] = []
            for _ in 0..<(header.first == "%" ? count * 2 : count) { items.append(try read()) }
            return header.first == "%" ? .map(items) : .array(items)
        default:
            return .error("unparseable reply header: \(header)")
        }
    }
}
