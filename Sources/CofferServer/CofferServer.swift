import CofferCore
import CofferProtocol
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import ServiceLifecycle
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// The vault's network face: a Unix socket (and optionally TCP) speaking RESP2/RESP3. It is a
/// `Service`, so SIGTERM/SIGINT stop it gracefully: listeners close, every connection finishes
/// the command it is running and replies, and only then does `run()` return.
public final class CofferServer: Service, Sendable {
    private let vault: Vault
    private let configuration: ServerConfiguration
    private let logger: Logger
    private let connections = ConnectionRegistry()

    public init(vault: Vault, configuration: ServerConfiguration, logger: Logger = Logger(label: "coffer.server")) {
        self.vault = vault
        self.configuration = configuration
        self.logger = logger
    }

    typealias Connection = NIOAsyncChannel<RESPRequest, ByteBuffer>

    /// What the child-channel initializer hands to the accept loop: the wrapped channel and
    /// the limit switch its decoder reads.
    struct Accepted: Sendable {
        let connection: Connection
        let limits: RESPLimitSwitch
        let secured: Bool
    }

    public func run() async throws {
        if let tcp = configuration.tcp, !tcp.isLoopback, configuration.tls == nil {
            throw ServerError(
                "refusing to listen on \(tcp): without TLS, TCP may only bind to a loopback address (127.0.0.1, ::1, localhost)"
            )
        }
        if configuration.tls != nil, configuration.tcp == nil {
            throw ServerError("TLS applies to the TCP listener: give --listen as well")
        }
        let tlsContext = try configuration.tls.map { try $0.makeContext() }
        let threadPool = NIOThreadPool(numberOfThreads: configuration.workerThreads)
        threadPool.start()
        defer { threadPool.shutdownGracefully { _ in } }
        let dispatcher = CommandDispatcher(vault: vault, threadPool: threadPool, logger: logger)

        var listeners: [NIOAsyncChannel<Accepted, Never>] = []
        var descriptions: [String] = []
        do {
            if let path = configuration.socketPath {
                try UnixSocketPath.prepare(path)
                let listener = try await bootstrap().bind(unixDomainSocketPath: path) { channel in
                    self.initialize(channel, tls: nil)
                }
                guard chmod(path, mode_t(configuration.socketMode)) == 0 else {
                    throw ServerError("cannot set mode of \(path)")
                }
                listeners.append(listener)
                descriptions.append("unix \(path)")
            }
            if let tcp = configuration.tcp {
                let listener = try await bootstrap().bind(host: tcp.host, port: tcp.port) { channel in
                    self.initialize(channel, tls: tlsContext)
                }
                let port = listener.channel.localAddress?.port ?? tcp.port
                listeners.append(listener)
                let kind = tlsContext == nil ? "tcp" : configuration.tls?.clientCAPath == nil ? "tls" : "mtls"
                descriptions.append("\(kind) \(ListenAddress(host: tcp.host, port: port))")
            }
        } catch {
            for listener in listeners { try? await listener.channel.close() }
            throw error
        }
        guard !listeners.isEmpty else { throw ServerError("nothing to listen on: give a socket path or --listen") }
        logger.notice("listening", metadata: ["on": "\(descriptions)"])
        configuration.onReady(descriptions)

        let serverChannels = listeners.map(\.channel)
        let stopping = StopFlag()
        try await withGracefulShutdownHandler {
            try await withThrowingDiscardingTaskGroup { group in
                group.addTask { await self.rewrapLoop(threadPool: threadPool, stopping: stopping) }
                for listener in listeners {
                    // One discarding group per listener: finished connection tasks are freed at
                    // once instead of piling up until the server stops.
                    group.addTask {
                        try await withThrowingDiscardingTaskGroup { connectionGroup in
                            try await listener.executeThenClose { inbound in
                                for try await connection in inbound {
                                    connectionGroup.addTask { await self.serve(connection, dispatcher: dispatcher) }
                                }
                            }
                        }
                    }
                }
            }
        } onGracefulShutdown: {
            self.logger.notice("shutting down: no new connections; finishing commands in flight")
            stopping.set()
            for channel in serverChannels { channel.close(promise: nil) }
            self.connections.drain()
        }
        if let path = configuration.socketPath { unlink(path) }
        logger.notice("stopped")
    }

    /// Moves DEKs still wrapped under an older KEK to the current one, one batch (one short
    /// write transaction) at a time, so no request ever waits behind more than one batch. All
    /// progress is in the database, so after a crash the next start carries on where it stopped.
    private func rewrapLoop(threadPool: NIOThreadPool, stopping: StopFlag) async {
        let vault = self.vault
        let batchSize = configuration.rewrapBatchSize
        while !stopping.isSet {
            do {
                let count = try await threadPool.runIfActive { try vault.rewrapBatch(limit: batchSize) }
                if count > 0 { continue }
            } catch {
                logger.error("rewrap batch failed; retrying", metadata: ["error": "\(error)"])
            }
            try? await Task.sleep(for: .milliseconds(200))
        }
    }

    private func bootstrap() -> ServerBootstrap {
        ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.allowRemoteHalfClosure, value: false)
    }

    /// Builds each connection's pipeline: on a TLS listener the plaintext check and TLS, then the
    /// idle timeout and the RESP request decoder.
    private func initialize(_ channel: any Channel, tls: NIOSSLContext?) -> EventLoopFuture<Accepted> {
        channel.eventLoop.makeCompletedFuture {
            let limits = RESPLimitSwitch()
            // Re-runs the decoder over bytes it held back while AUTH was being answered.
            limits.setResume { [channel] in
                channel.eventLoop.execute {
                    // Fired from the handler just before the decoder, not from the head: on a TLS
                    // connection an empty read at the head would reach the TLS handler as ciphertext.
                    guard
                        let context = try? channel.pipeline.syncOperations.context(handlerType: IdleTimeoutHandler.self)
                    else { return }
                    context.fireChannelRead(NIOAny(channel.allocator.buffer(capacity: 0)))
                    // The read-complete matters: NIOAsyncChannel hands reads on when it sees it.
                    context.fireChannelReadComplete()
                }
            }
            if let tls {
                try channel.pipeline.syncOperations.addHandlers([
                    TLSRequiredHandler(), NIOSSLServerHandler(context: tls),
                ])
            }
            try channel.pipeline.syncOperations.addHandlers([
                IdleStateHandler(readTimeout: .seconds(configuration.idleTimeoutSeconds)),
                IdleTimeoutHandler(),
                ByteToMessageHandler(RESPRequestDecoder(limits: limits)),
            ])
            return Accepted(
                connection: try Connection(wrappingChannelSynchronously: channel), limits: limits, secured: tls != nil)
        }
    }

    private func serve(_ accepted: Accepted, dispatcher: CommandDispatcher) async {
        let connection = accepted.connection
        let limits = accepted.limits
        let channel = connection.channel
        guard let id = connections.register(channel, limit: configuration.maximumClients) else {
            var buffer = channel.allocator.buffer(capacity: 64)
            RESPValue.error("ERR max number of clients reached").encode(into: &buffer, version: 2)
            try? await connection.executeThenClose { _, outbound in try await outbound.write(buffer) }
            return
        }
        defer { connections.unregister(channel) }
        let origin: String
        if let address = channel.remoteAddress, let ip = address.ipAddress, let port = address.port {
            origin = "\(accepted.secured ? "tls" : "tcp") \(ip):\(port)"
        } else {
            origin = "unix"
        }
        var session = Session(id: id, origin: origin)
        do {
            try await connection.executeThenClose { inbound, outbound in
                do {
                    for try await request in inbound {
                        let reply = await dispatcher.execute(request, session: &session, limits: limits)
                        var buffer = channel.allocator.buffer(capacity: 256)
                        reply.value.encode(into: &buffer, version: session.protocolVersion)
                        try await outbound.write(buffer)
                        if reply.close { return }
                    }
                } catch let error as RESPProtocolError {
                    logger.info("closing connection after a protocol error", metadata: ["connection": "\(id)"])
                    var buffer = channel.allocator.buffer(capacity: 128)
                    RESPValue.error("ERR \(error)").encode(into: &buffer, version: session.protocolVersion)
                    try? await outbound.write(buffer)
                }
            }
        } catch let error as NIOSSLError {
            // A failed handshake (no or untrusted client certificate, old protocol, plaintext) is
            // the client's problem, but an operator debugging one needs to see it.
            logger.info("TLS failed", metadata: ["connection": "\(id)", "origin": "\(origin)", "error": "\(error)"])
        } catch {
            logger.debug("connection ended", metadata: ["connection": "\(id)"])
        }
    }
}

/// Set once, when graceful shutdown begins.
final class StopFlag: Sendable {
    private let flag = Atomic<Bool>(false)
    func set() { flag.store(true, ordering: .releasing) }
    var isSet: Bool { flag.load(ordering: .acquiring) }
}
