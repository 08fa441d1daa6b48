/// How `CofferServer` listens. Every parameter has a default.
public struct ServerConfiguration: Sendable {
    /// The Unix socket path; nil for none. `coffer serve` defaults it to `DATA/coffer.sock`.
    public var socketPath: String?
    /// File mode of the Unix socket (default 0660: owner and group may connect).
    public var socketMode: UInt16
    /// An optional TCP listener. Without TLS it must be a loopback address.
    public var tcp: ListenAddress?
    /// TLS for the TCP listener (the Unix socket is protected by its file mode instead).
    public var tls: ServerTLS?
    /// Most connections served at once (default 1024); more are answered with an error and closed.
    public var maximumClients: Int
    /// Most connections that have not authenticated (default a quarter of `maximumClients`), so
    /// an authenticated client always finds a slot.
    public var maximumAnonymousClients: Int?
    /// Per-connection bounds: output limit, requests in flight, AUTH and request deadlines.
    public var connection: ConnectionLimits
    /// Seconds a connection may stay silent before it is closed (default 300).
    public var idleTimeoutSeconds: Int64
    /// Data keys rewrapped per transaction by the background rewrap, at most (default 250); a
    /// request waits behind at most one batch.
    public var rewrapBatchSize: Int
    /// How long one rewrap batch takes keys while it holds the writer (default 2 ms); it stops
    /// there even short of `rewrapBatchSize`, and its commit follows. SQLite only: on a shared
    /// store the rewrap stays out of the audit chain's lock.
    public var rewrapBatchTime: Duration
    /// Threads that run vault work (SQLite, crypto) off the event loops.
    public var workerThreads: Int
    /// `--metrics HOST:PORT`: `/metrics` and `/health` over HTTP; nil for none.
    public var metrics: MetricsEndpoint?
    /// Called once every listener is bound, with a line describing each.
    public var onReady: @Sendable ([String]) -> Void

    public init(
        socketPath: String? = nil,
        socketMode: UInt16 = 0o660,
        tcp: ListenAddress? = nil,
        tls: ServerTLS? = nil,
        maximumClients: Int = 1024,
        maximumAnonymousClients: Int? = nil,
        connection: ConnectionLimits = ConnectionLimits(),
        idleTimeoutSeconds: Int64 = 300,
        rewrapBatchSize: Int = 250,
        rewrapBatchTime: Duration = .milliseconds(2),
        workerThreads: Int = 4,
        metrics: MetricsEndpoint? = nil,
        onReady: @escaping @Sendable ([String]) -> Void = { _ in }
    ) {
        self.socketPath = socketPath
        self.socketMode = socketMode
        self.tcp = tcp
        self.tls = tls
        self.maximumClients = maximumClients
        self.maximumAnonymousClients = maximumAnonymousClients
        self.connection = connection
        self.idleTimeoutSeconds = idleTimeoutSeconds
        self.rewrapBatchSize = rewrapBatchSize
        self.rewrapBatchTime = rewrapBatchTime
        self.workerThreads = workerThreads
        self.metrics = metrics
        self.onReady = onReady
    }

    /// How many event loops `coffer serve` runs when not told: one per core but one, and at
    /// least one. Every vault command runs on the commit thread (and its fsync on the sync
    /// thread), so on a small host that thread must not share its core with a loop per core:
    /// on 2 cores, one loop answered lone PINGs faster than two and GET and PUT as fast or
    /// faster (the README's A/B; within noise for GET), and only pipelined PINGs slower.
    public static func defaultEventLoops(cores: Int) -> Int { max(1, cores - 1) }
}
