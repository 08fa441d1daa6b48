import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// `--metrics HOST:PORT`: a plain HTTP listener for Prometheus and the load balancer.
///
/// - `GET /metrics`: the Prometheus text format, as `render` produces it;
/// - `GET /health`: `200 serving`, or `503 sealed` / `503 closing`.
///
/// It carries counts and versions only (labels from fixed sets), so it needs no AUTH; like the
/// TCP listener without TLS it binds only to a loopback address unless the operator says so.
///
/// Nothing a stranger does to it may reach the vault's clients, since it needs no login:
/// - it runs on an event loop of its own, so rendering a scrape never holds up a command;
/// - the exposition is made at most once a second and shared by every scrape in that second;
/// - at most `maximumConnections` are open, each answers one request and closes, and each is
///   closed after `connectionSeconds` whatever it does (slow headers, no reads);
/// - after a request's head nothing more is read from the connection, so pipelined requests
///   cannot pile up replies in memory.
public struct MetricsEndpoint: Sendable {
    public var address: ListenAddress
    /// The exposition text, made at most once a second.
    public var render: @Sendable () -> [UInt8]

    static let maximumConnections = 16
    /// How long a connection may stay open, whatever it does.
    var connectionSeconds: Int64 = 10

    public init(address: ListenAddress, render: @escaping @Sendable () -> [UInt8]) {
        self.address = address
        let cache = RenderCache(render: { Self.withHelp(render()) })
        self.render = { cache.current() }
    }

    /// What each metric means (Deploy/OPERATIONS.md says which to alert on). swift-metrics has
    /// no help text, so it is added to the exposition here, before each `# TYPE` line.
    static let help: [String: String] = [
        "coffer_commands_total": "Commands answered, by command and outcome (ok, denied, invalid, failed).",
        "coffer_command_duration_seconds":
            "Time from the event-loop turn that read a command to the one its reply was ready in, by command (0 when one turn did both).",
        "coffer_connections": "Connections open now.",
        "coffer_connections_received_total": "Connections accepted since start.",
        "coffer_connections_rejected_total": "Connections refused since start (client caps, shutting down).",
        "coffer_connections_evicted_total":
            "Unauthenticated connections closed since start to make room for newer ones at --max-anonymous-clients or --max-clients.",
        "coffer_auth_failures_total": "Failed AUTHs since start.",
        "coffer_auth_lockouts_total": "Lock-outs started since start (a name or an origin locked for 30 minutes).",
        "coffer_unknown_tokens_total":
            "DETOKENIZE and TOKEN.REVOKE calls naming a token the vault does not know (revoked, shredded or guessed).",
        "coffer_audit_append_duration_seconds": "Time to append one audit entry (MAC and insert).",
        "coffer_commit_batch_size": "Commands per group-commit transaction.",
        "coffer_rewrap_pending_deks": "Data keys still wrapped under an older KEK version.",
        "coffer_rewrap_deks_total": "Data keys rewrapped since start.",
        "coffer_kek_current_version": "The current KEK version.",
        "coffer_sealed": "1 while the vault is sealed, else 0.",
        "coffer_subjects": "Subjects stored.",
        "coffer_audit_head_seq": "Sequence number of the newest audit entry.",
        "coffer_vault_readable": "1 if the last scrape could read the vault's figures, else 0.",
    ]

    static func withHelp(_ exposition: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(exposition.count + 2048)
        for line in exposition.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
            if line.starts(with: Array("# TYPE ".utf8)) {
                let name = String(decoding: line.dropFirst(7).prefix { $0 != UInt8(ascii: " ") }, as: UTF8.self)
                if let text = help[name] { out += Array("# HELP \(name) \(text)\n".utf8) }
            }
            out += line
            out.append(UInt8(ascii: "\n"))
        }
        if out.last == UInt8(ascii: "\n") && exposition.last == UInt8(ascii: "\n") { out.removeLast() }
        return out
    }

    /// What `/health` answers.
    enum Health: Sendable {
        case serving, sealed, closing
    }

    /// Binds the listener on a one-thread event loop group of its own, shut down when the
    /// listener closes.
    func bind(health: @escaping @Sendable () -> Health) async throws -> any Channel {
        let render = self.render
        let connectionSeconds = self.connectionSeconds
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let open = OpenConnections()
        do {
            let listener = try await ServerBootstrap(group: group)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .serverChannelOption(.backlog, value: 64)
                .childChannelInitializer { channel in
                    guard open.enter(limit: Self.maximumConnections) else { return channel.close() }
                    channel.closeFuture.whenComplete { _ in open.leave() }
                    channel.eventLoop.scheduleTask(in: .seconds(connectionSeconds)) {
                        channel.close(promise: nil)
                    }
                    return channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.configureHTTPServerPipeline(
                            withPipeliningAssistance: false, withErrorHandling: true)
                        try channel.pipeline.syncOperations.addHandler(
                            MetricsHTTPHandler(render: render, health: health))
                    }
                }
                .bind(host: address.host, port: address.port).get()
            listener.closeFuture.whenComplete { _ in group.shutdownGracefully { _ in } }
            return listener
        } catch {
            try? await group.shutdownGracefully()
            throw error
        }
    }
}

/// How many metrics connections are open.
final class OpenConnections: Sendable {
    private let count = Atomic<Int>(0)

    /// Counts one more, unless `limit` are open already.
    func enter(limit: Int) -> Bool {
        var current = count.load(ordering: .relaxed)
        while current < limit {
            let (exchanged, original) = count.compareExchange(
                expected: current, desired: current + 1, ordering: .relaxed)
            if exchanged { return true }
            current = original
        }
        return false
    }

    func leave() { count.subtract(1, ordering: .relaxed) }
}

/// The last exposition and when it was made: scrapes within a second of it share it.
final class RenderCache: Sendable {
    private let render: @Sendable () -> [UInt8]
    private let last = Mutex<(at: ContinuousClock.Instant, bytes: [UInt8])?>(nil)

    init(render: @escaping @Sendable () -> [UInt8]) { self.render = render }

    func current(now: ContinuousClock.Instant = .now) -> [UInt8] {
        // Held while rendering, so a burst of scrapes renders once and the rest wait for it.
        last.withLock { last in
            if let last, now - last.at < .seconds(1) { return last.bytes }
            let bytes = render()
            last = (now, bytes)
            return bytes
        }
    }
}

/// Answers one request per HTTP message; the body of a request is ignored.
final class MetricsHTTPHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let render: @Sendable () -> [UInt8]
    private let health: @Sendable () -> MetricsEndpoint.Health
    private var head: HTTPRequestHead?

    init(render: @escaping @Sendable () -> [UInt8], health: @escaping @Sendable () -> MetricsEndpoint.Health) {
        self.render = render
        self.health = health
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let request):
            // One request per connection: read nothing more (what is already buffered is
            // dropped with the connection after the reply).
            // The channel, not the context, in the callback: a channel may be used from any thread.
            let channel = context.channel
            channel.setOption(.autoRead, value: false).whenFailure { _ in channel.close(promise: nil) }
            head = request
        case .body:
            break
        case .end:
            guard let request = head else { return }
            head = nil
            respond(to: request, context: context)
        }
    }

    private func respond(to request: HTTPRequestHead, context: ChannelHandlerContext) {
        let path = request.uri.split(separator: "?", maxSplits: 1).first.map(String.init) ?? request.uri
        let status: HTTPResponseStatus
        let contentType: String
        let body: [UInt8]
        switch (request.method, path) {
        case (.GET, "/metrics"), (.HEAD, "/metrics"):
            // Rendering reads the vault's figures from its store, which may block (a PostgreSQL
            // store waits on its connection's futures, and must never do so on an event loop):
            // it runs on a thread of the pool, and the reply is written back on this loop.
            let render = self.render
            let loop = context.eventLoop
            let bound = NIOLoopBound((handler: self, context: context), eventLoop: loop)
            NIOThreadPool.singleton.runIfActive(eventLoop: loop) { render() }.whenComplete { result in
                let (handler, context) = bound.value
                switch result {
                case .success(let body):
                    handler.write(.ok, "text/plain; version=0.0.4; charset=utf-8", body, for: request, context: context)
                case .failure:
                    handler.write(
                        .internalServerError, "text/plain; charset=utf-8", Array("metrics unavailable\n".utf8),
                        for: request, context: context)
                }
            }
            return
        case (.GET, "/health"), (.HEAD, "/health"):
            contentType = "text/plain; charset=utf-8"
            switch health() {
            case .serving:
                status = .ok
                body = Array("serving\n".utf8)
            case .sealed:
                status = .serviceUnavailable
                body = Array("sealed\n".utf8)
            case .closing:
                status = .serviceUnavailable
                body = Array("closing\n".utf8)
            }
        case (_, "/metrics"), (_, "/health"):
            status = .methodNotAllowed
            contentType = "text/plain; charset=utf-8"
            body = Array("use GET\n".utf8)
        default:
            status = .notFound
            contentType = "text/plain; charset=utf-8"
            body = Array("not found: try /metrics or /health\n".utf8)
        }
        write(status, contentType, body, for: request, context: context)
    }

    private func write(
        _ status: HTTPResponseStatus, _ contentType: String, _ body: [UInt8], for request: HTTPRequestHead,
        context: ChannelHandlerContext
    ) {
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: contentType)
        headers.add(name: "Content-Length", value: "\(body.count)")
        // One request per connection (see `MetricsEndpoint`): Prometheus and load balancers
        // open a new one per scrape or check.
        headers.add(name: "Connection", value: "close")
        context.write(
            wrapOutboundOut(.head(HTTPResponseHead(version: request.version, status: status, headers: headers))),
            promise: nil)
        // HEAD: the headers GET would send (its Content-Length included), without the body.
        if request.method != .HEAD && !body.isEmpty {
            context.write(
                wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: body)))), promise: nil)
        }
        context.writeAndFlush(wrapOutboundOut(.end(nil))).assumeIsolated().whenComplete { _ in
            context.close(promise: nil)
        }
    }
}
