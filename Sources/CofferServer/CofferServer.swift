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
/// `Service`, so SIGTERM/SIGINT stop it gracefully: listeners close, every connection answers
/// the commands it has read, and only then does `run()` return.
public final class CofferServer: Service, Sendable {
    private let vaults: VaultHandle
    private let configuration: ServerConfiguration
    private let logger: Logger
    /// Made when the server is, so that its swift-metrics handles exist before the first scrape.
    private let stats = ServerStats()
    /// Set when graceful shutdown begins: `/health` answers 503 from then on.
    private let closing = StopFlag()

    public convenience init(
        vault: Vault, configuration: ServerConfiguration, logger: Logger = Logger(label: "coffer.server")
    ) {
        self.init(vaults: VaultHandle(vault: vault), configuration: configuration, logger: logger)
    }

    /// A server whose vault may be sealed (see `VaultHandle`).
    public init(
        vaults: VaultHandle, configuration: ServerConfiguration, logger: Logger = Logger(label: "coffer.server")
    ) {
        self.vaults = vaults
        self.configuration = configuration
        self.logger = logger
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
        let longPool = NIOThreadPool(numberOfThreads: 1)
        longPool.start()
        defer { longPool.shutdownGracefully { _ in } }
        let connections = ConnectionRegistry(
            maximumClients: configuration.maximumClients,
            maximumAnonymous: configuration.maximumAnonymousClients ?? max(1, configuration.maximumClients / 4),
            stats: stats)
        var dispatcher = CommandDispatcher(vaults: vaults, threadPool: threadPool, longPool: longPool, logger: logger)
        let monitor = ServerMonitor(registry: connections, idleTimeoutSeconds: configuration.idleTimeoutSeconds)
        dispatcher.monitor = monitor

        var listeners: [any Channel] = []
        var metricsListener: (any Channel)?
        var descriptions: [String] = []
        do {
            if let path = configuration.socketPath {
                try UnixSocketPath.prepare(path)
                let listener = try await bootstrap(dispatcher, connections, tls: nil)
                    .bind(unixDomainSocketPath: path).get()
                listeners.append(listener)
                guard chmod(path, mode_t(configuration.socketMode)) == 0 else {
                    throw ServerError("cannot set mode of \(path)")
                }
                descriptions.append("unix \(path)")
            }
            if let tcp = configuration.tcp {
                let listener = try await bootstrap(dispatcher, connections, tls: tlsContext)
                    .bind(host: tcp.host, port: tcp.port).get()
                let port = listener.localAddress?.port ?? tcp.port
                monitor.setTCPPort(port)
                listeners.append(listener)
                let kind = tlsContext == nil ? "tcp" : configuration.tls?.clientCAPath == nil ? "tls" : "mtls"
                descriptions.append("\(kind) \(ListenAddress(host: tcp.host, port: port))")
            }
            if let metrics = configuration.metrics {
                let vaults = self.vaults
                let closing = self.closing
                let listener = try await metrics.bind {
                    if closing.isSet { return .closing }
                    return vaults.vault == nil ? .sealed : .serving
                }
                metricsListener = listener
                let port = listener.localAddress?.port ?? metrics.address.port
                descriptions.append("http \(ListenAddress(host: metrics.address.host, port: port)) (metrics, health)")
            }
        } catch {
            try? await metricsListener?.close()
            for listener in listeners { try? await listener.close() }
            throw error
        }
        guard !listeners.isEmpty else { throw ServerError("nothing to listen on: give a socket path or --listen") }
        logger.notice("listening", metadata: ["on": "\(descriptions)"])
        configuration.onReady(descriptions)

        let stopping = StopFlag()
        let serverChannels = listeners
        await withGracefulShutdownHandler {
            await withDiscardingTaskGroup { group in
                group.addTask { await self.rewrapLoop(threadPool: threadPool, stopping: stopping) }
                group.addTask { await self.auditFlushLoop(threadPool: threadPool, stopping: stopping) }
                group.addTask {
                    // instantaneous_ops_per_sec: the commands of the last whole second.
                    while !stopping.isSet {
                        try? await Task.sleep(for: .seconds(1))
                        monitor.stats.sampleOps()
                    }
                }
                for listener in serverChannels { try? await listener.closeFuture.get() }
                // The listeners are closed: shutdown has begun. Each connection answers what it
                // has read, then closes.
                await connections.waitUntilEmpty(timeout: .seconds(30))
                stopping.set()
            }
        } onGracefulShutdown: {
            self.logger.notice("shutting down: no new connections; finishing commands in flight")
            self.closing.set()
            for listener in serverChannels { listener.close(promise: nil) }
            connections.drain()
        }
        try? await metricsListener?.close()
        do {
            try vaults.vault?.flushAuthFailures(all: true)
        } catch {
            logger.error("failed AUTHs counted since the last audit entry could not be written")
        }
        if let path = configuration.socketPath { unlink(path) }
        logger.notice("stopped")
    }

    /// Moves DEKs still wrapped under an older KEK to the current one, one batch (one short
    /// write transaction: at most `rewrapBatchSize` DEKs and, on SQLite, about `rewrapBatchTime`
    /// of the writer) at a time, so no request ever waits behind more than one batch. All
    /// progress is in the database, so after a crash the next start carries on where it stopped.
    ///
    /// When commands were committed while a batch held the writer, the loop then rests as long
    /// as the batch took: under load the rewrap takes at most about half of the writer's time
    /// (and of a core), and at rest it runs flat out.
    private func rewrapLoop(threadPool: NIOThreadPool, stopping: StopFlag) async {
        let vaults = self.vaults
        let batchSize = configuration.rewrapBatchSize
        let batchTime = configuration.rewrapBatchTime
        while !stopping.isSet {
            do {
                guard let vault = vaults.vault else {
                    try? await Task.sleep(for: .milliseconds(200))
                    continue
                }
                let before = vault.commandBatchesCommitted
                let started = ContinuousClock.now
                let count = try await threadPool.runIfActive {
                    try vault.rewrapBatch(limit: batchSize, budget: batchTime)
                }
                if count > 0 {
                    if vault.commandBatchesCommitted != before {
                        try? await Task.sleep(for: ContinuousClock.now - started)
                    }
                    continue
                }
            } catch {
                logger.error("rewrap batch failed; retrying", metadata: ["error": "\(error)"])
            }
            try? await Task.sleep(for: .milliseconds(200))
        }
    }

    /// Writes the failed AUTHs counted but not audited one by one, once their window closes, and
    /// keeps a node of a shared store in step with the others. Both wait on the database (up to
    /// the store's lease wait when PostgreSQL is down), so they run on the worker pool, as the
    /// rewrap does, and never block one of Swift's cooperative threads.
    private func auditFlushLoop(threadPool: NIOThreadPool, stopping: StopFlag) async {
        let vaults = self.vaults
        let logger = self.logger
        while !stopping.isSet {
            try? await Task.sleep(for: .seconds(1))
            guard let vault = vaults.vault else { continue }
            _ = try? await threadPool.runIfActive {
                do {
                    try vault.flushAuthFailures()
                } catch {
                    logger.error("could not write the audit entries of repeated failed AUTHs; retrying")
                }
                do {
                    try vault.keepInStep()
                } catch {
                    logger.error(
                        "could not read the shared store's KEK versions; retrying", metadata: ["error": "\(error)"])
                }
            }
        }
    }

    private func bootstrap(
        _ dispatcher: CommandDispatcher, _ connections: ConnectionRegistry, tls: NIOSSLContext?
    ) -> ServerBootstrap {
        let limits = configuration.connection
        let idle = configuration.idleTimeoutSeconds
        let logger = self.logger
        return ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            // Redis's default `tcp-backlog`: with 256, a connect-then-close flood made 21 of
            // 2,000 new connections wait for a 1 s SYN retry (Redis's 511: 4), found by an
            // outside attack. The kernel caps it at `net.core.somaxconn`.
            .serverChannelOption(.backlog, value: 511)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            // The end of a connection's input (the client's, or the drain's `close(mode: .input)`)
            // reaches `ConnectionHandler` as `inputClosed`, which answers what was read and then
            // closes. Without this NIO closes a connection outright when its input ends, and a
            // drained connection lost the replies still in flight (seen with AUDIT.VERIFY running
            // at SIGTERM: not even its own reply came back).
            .childChannelOption(.allowRemoteHalfClosure, value: true)
            .childChannelInitializer { channel in
                // The TLS handshake, then RESP: each connection's whole request path is these
                // handlers on its event loop.
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(AdmissionHandler())
                    if let tls {
                        try channel.pipeline.syncOperations.addHandlers([
                            TLSRequiredHandler(), NIOSSLServerHandler(context: tls),
                        ])
                    }
                    try channel.pipeline.syncOperations.addHandlers([
                        IdleStateHandler(readTimeout: .seconds(idle)),
                        IdleTimeoutHandler(),
                        ConnectionHandler(
                            dispatcher: dispatcher, registry: connections, limits: limits, logger: logger,
                            secured: tls != nil),
                    ])
                }
            }
    }
}

/// Set once, when graceful shutdown begins.
final class StopFlag: Sendable {
    private let flag = Atomic<Bool>(false)
    func set() { flag.store(true, ordering: .releasing) }
    var isSet: Bool { flag.load(ordering: .acquiring) }
}
