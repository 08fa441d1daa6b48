import CofferCore
import Foundation
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import ServiceLifecycle
import Synchronization
import Testing

@testable import CofferServer

/// The whole server in this process: listeners on port 0, the real pipeline (admission, TLS
/// guard, TLS, connection handler, dispatcher), clients over real sockets, and a graceful stop
/// through swift-service-lifecycle. The end-to-end tests do the same with the `coffer` binary.
@Suite struct CofferServerTests {
    /// A vault in a temporary directory and a server on it, run by a `ServiceGroup`.
    final class Running {
        let root: String
        let vault: Vault
        let group: ServiceGroup
        let task: Task<Void, any Error>
        let port: Int

        init(tls: ServerTLS? = nil) async throws {
            root = FileManager.default.temporaryDirectory.appendingPathComponent("coffer-server-\(UUID())").path
            let configuration = VaultConfiguration(dataDirectory: root + "/data", keyDirectory: root + "/keys")
            _ = try Vault.initialize(configuration)
            // As `coffer serve` opens it: holding the data directory's lock (the rewrap needs it).
            vault = try Vault.open(configuration, owner: .init(command: "test"))
            let (ready, readyContinuation) = AsyncStream.makeStream(of: [String].self)
            let server = CofferServer(
                vault: vault,
                configuration: ServerConfiguration(
                    tcp: ListenAddress(host: "127.0.0.1", port: 0), tls: tls,
                    onReady: { readyContinuation.yield($0) }))
            group = ServiceGroup(services: [server], logger: Logger(label: "test"))
            task = Task { [group] in try await group.run() }
            var iterator = ready.makeAsyncIterator()
            let lines = try #require(await iterator.next())
            // "tcp 127.0.0.1:PORT" (or "tls …"): the port the kernel chose.
            let line = try #require(lines.first)
            port = try #require(line.split(separator: ":").last.flatMap { Int($0) })
        }

        /// Stops the server as SIGTERM would and waits until `run()` has returned.
        func stop() async throws {
            await group.triggerGracefulShutdown()
            try await task.value
            try vault.close()
            try? FileManager.default.removeItem(atPath: root)
        }
    }

    /// Sends `request` on a new connection (through TLS if `tls` is given) and returns what
    /// the server wrote until `replies` CRLF-terminated lines arrived or it closed.
    static func exchange(port: Int, tls: NIOSSLContext? = nil, _ request: String, replies: Int = 1) async throws
        -> String
    {
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(host: "127.0.0.1", port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let tls {
                        try channel.pipeline.syncOperations.addHandler(
                            NIOSSLClientHandler(context: tls, serverHostname: "localhost"))
                    }
                    return try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                }
            }
        return try await channel.executeThenClose { inbound, outbound in
            try await outbound.write(ByteBuffer(string: request))
            var text = ""
            for try await buffer in inbound {
                text += String(buffer: buffer)
                if text.components(separatedBy: "\r\n").count > replies { break }
            }
            return text
        }
    }

    @Test func aServerOnPortZeroAnswersOverTCPAndStopsGracefully() async throws {
        let running = try await Running()
        let text = try await Self.exchange(
            port: running.port, "PING\r\nGET cust:1 name\r\nAUTH nobody wrong\r\n", replies: 3)
        #expect(
            text
                == "+PONG\r\n-NOAUTH Authentication required.\r\n"
                + "-WRONGPASS invalid client name or secret, or the client is locked\r\n")
        // Returns only once `run()` has: listeners closed, connections answered.
        try await running.stop()
    }

    @Test func aTLSListenerServesTLSClientsAndTellsPlaintextClientsWhy() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("coffer-tls-\(UUID())").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let script = """
            set -e
            cd '\(directory)'
            ec="-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes"
            openssl req -x509 $ec -keyout ca.key -out ca.pem -days 2 -subj '/CN=Coffer Test CA' 2>/dev/null
            openssl req $ec -keyout server.key -out server.csr -subj '/CN=localhost' 2>/dev/null
            printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\n' > server.ext
            openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 \\
                -extfile server.ext 2>/dev/null
            chmod 600 *.key
            """
        let openssl = Process()
        openssl.executableURL = URL(fileURLWithPath: "/bin/bash")
        openssl.arguments = ["-c", script]
        try openssl.run()
        openssl.waitUntilExit()
        try #require(openssl.terminationStatus == 0, "openssl could not make the test certificates")

        let running = try await Running(
            tls: ServerTLS(certificateChainPath: directory + "/server.pem", privateKeyPath: directory + "/server.key"))
        var client = TLSConfiguration.makeClientConfiguration()
        client.trustRoots = .file(directory + "/ca.pem")
        let context = try NIOSSLContext(configuration: client)
        #expect(try await Self.exchange(port: running.port, tls: context, "PING\r\n") == "+PONG\r\n")
        // Plaintext on the TLS port: one readable error, then the server closes.
        let plain = try await Self.exchange(port: running.port, "PING\r\n", replies: 2)
        #expect(plain == "-ERR this port requires TLS (with redis-cli: --tls --cacert CA.pem)\r\n")
        try await running.stop()
    }
}
