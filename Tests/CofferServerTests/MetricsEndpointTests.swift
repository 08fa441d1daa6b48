import Foundation
import NIOCore
import Synchronization
import Testing

@testable import CofferServer

/// `/metrics` needs no login, so nothing a stranger sends it may cost the vault's clients:
/// pipelined requests, idle connections by the thousand, scrape floods.
@Suite struct MetricsEndpointTests {
    /// A blocking TCP connection to 127.0.0.1.
    final class Connection {
        let fd: Int32

        init?(port: Int) {
            fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = in_port_t(UInt16(port).bigEndian)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            var timeout = timeval(tv_sec: 15, tv_usec: 0)
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            let connected = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
            if connected != 0 {
                close(fd)
                return nil
            }
        }

        deinit { close(fd) }

        func send(_ text: String) {
            let bytes = Array(text.utf8)
            _ = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        }

        /// Everything until the server closes (or 15 s pass).
        func readAll() -> String {
            var out: [UInt8] = []
            var chunk = [UInt8](repeating: 0, count: 65536)
            while true {
                let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
                guard n > 0 else { break }
                out += chunk[0..<n]
            }
            return String(decoding: out, as: UTF8.self)
        }
    }

    @Test func pipelinedRequestsGetOneReplyAndTheConnectionCloses() async throws {
        let endpoint = MetricsEndpoint(address: ListenAddress(host: "127.0.0.1", port: 0)) { Array("x 1\n".utf8) }
        let channel = try await endpoint.bind { .serving }
        defer { channel.close(promise: nil) }
        let connection = try #require(Connection(port: channel.localAddress?.port ?? 0))
        connection.send(String(repeating: "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", count: 2000))
        let reply = connection.readAll()
        #expect(reply.components(separatedBy: "HTTP/1.1 200 OK").count - 1 == 1, "\(reply.prefix(300))")
        #expect(reply.hasSuffix("x 1\n"))
    }

    @Test func connectionsAreCappedAndTheServerStillAnswers() async throws {
        var endpoint = MetricsEndpoint(address: ListenAddress(host: "127.0.0.1", port: 0)) { Array("x 1\n".utf8) }
        // Long enough that no slot frees itself during the test, however loaded the machine.
        endpoint.connectionSeconds = 600
        let channel = try await endpoint.bind { .serving }
        defer { channel.close(promise: nil) }
        let port = channel.localAddress?.port ?? 0
        // Slow clients that never finish their headers hold every slot …
        var slow: [Connection] = []
        for _ in 0..<MetricsEndpoint.maximumConnections {
            let connection = try #require(Connection(port: port))
            connection.send("GET /metrics HTTP/1.1\r\nX-a: ")
            slow.append(connection)
        }
        try await Task.sleep(for: .milliseconds(300))
        // … so one more is closed at once, with no reply.
        let refused = try #require(Connection(port: port))
        refused.send("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(refused.readAll() == "")
        // Once they are gone (here: closed by the client), it answers again.
        slow.removeAll()
        // The server sees the closes in its own time; a loaded machine may take a while.
        var answered = ""
        for _ in 0..<50 where !answered.hasSuffix("serving\n") {
            try await Task.sleep(for: .milliseconds(200))
            let next = try #require(Connection(port: port))
            next.send("GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            answered = next.readAll()
        }
        #expect(answered.hasSuffix("serving\n"))
    }

    @Test func aSlowClientIsClosedAfterTheConnectionDeadline() async throws {
        var endpoint = MetricsEndpoint(address: ListenAddress(host: "127.0.0.1", port: 0)) { Array("x 1\n".utf8) }
        endpoint.connectionSeconds = 3
        let channel = try await endpoint.bind { .serving }
        defer { channel.close(promise: nil) }
        let slow = try #require(Connection(port: channel.localAddress?.port ?? 0))
        slow.send("GET /metrics HTTP/1.1\r\nX-a: ")
        let start = ContinuousClock.now
        #expect(slow.readAll() == "")
        let waited = ContinuousClock.now - start
        #expect(waited >= .seconds(2) && waited < .seconds(15), "\(waited)")
    }

    @Test func scrapesWithinASecondShareOneRendering() {
        let renders = Mutex(0)
        let cache = RenderCache {
            renders.withLock { $0 += 1 }
            return Array("x 1\n".utf8)
        }
        let start = ContinuousClock.now
        for step in 0..<100 { _ = cache.current(now: start + .milliseconds(step * 5)) }
        #expect(renders.withLock { $0 } == 1)
        _ = cache.current(now: start + .milliseconds(1100))
        #expect(renders.withLock { $0 } == 2)
    }
}
