import ArgumentParser
import CCofferSystem
import CofferCore
import CofferServer
import CofferStore
import Foundation
import Logging
import Metrics
import NIOCore
import Prometheus
import ServiceLifecycle

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the vault: a Redis-compatible (RESP2/RESP3) server on a Unix socket and, optionally, TCP.",
        discussion: """
            Opens the vault (checking the key files and running migrations) before any listener \
            accepts a connection; if that fails, exits non-zero saying why. Listens on a Unix socket \
            (default DATA/coffer.sock, mode 0660; a stale socket left by a crashed server is \
            replaced, a live one never is). Holds DATA/coffer.lock for its whole life: a second \
            server on the same data directory, or an offline key change, is refused, and the CLI \
            finds this server (its PID, socket and listeners) through that file and, with --listen, on TCP, which without TLS may only \
            bind to a loopback address. --tls-cert and --tls-key put TLS (1.2 or later, forward-secret \
            AEAD suites only) on the TCP listener and allow any address; --tls-client-ca also \
            requires every client to present a certificate issued by that CA. SIGTERM or SIGINT stop accepting, finish the commands in \
            flight, close the database and exit 0. SIGHUP, SIGUSR1, SIGUSR2 and SIGALRM are ignored \
            (the first of each is logged); SIGHUP reloads nothing: restart to apply a change.

            Connect with any Redis client, e.g. redis-cli -s DATA/coffer.sock, then AUTH <client> <secret>.
            """
    )

    @OptionGroup var vault: VaultOptions

    @Option(name: .long, help: ArgumentHelp("Unix socket path (default: DATA/coffer.sock).", valueName: "path"))
    var socket: String?

    @Flag(name: .long, help: "Do not listen on a Unix socket (then --listen is required).")
    var noSocket = false

    @Option(
        name: .long,
        help: ArgumentHelp(
            "Also listen on TCP at HOST:PORT (loopback only without TLS; port 0 picks one).", valueName: "host:port"))
    var listen: String?

    @Option(
        name: .long,
        help: ArgumentHelp(
            "PEM certificate chain for TLS on the --listen port (server certificate first).", valueName: "file"))
    var tlsCert: String?

    @Option(
        name: .long,
        help: ArgumentHelp("PEM private key for --tls-cert; refused if other users can read it.", valueName: "file"))
    var tlsKey: String?

    @Option(
        name: .long,
        help: ArgumentHelp(
            "PEM CA certificate(s): require mutual TLS, clients must present a certificate issued by one.",
            valueName: "file"))
    var tlsClientCa: String?

    @Option(name: .long, help: "Most clients connected at once.")
    var maxClients = 1024

    @Option(
        name: .long,
        help:
            "Most connections that have not authenticated (default: a quarter of --max-clients), so an authenticated client always finds a slot; at this cap (or at --max-clients) a new connection closes the oldest unauthenticated one."
    )
    var maxAnonymousClients: Int?

    @Option(name: .long, help: "Seconds of silence after which a connection is closed.")
    var idleTimeout: Int64 = 300

    @Option(
        name: .long,
        help: "Seconds a new connection has to authenticate (PING does not extend it); then it is closed.")
    var authTimeout: Int64 = 10

    @Option(
        name: .long,
        help: ArgumentHelp(
            "Bytes of replies buffered for a client that is not reading them before it is disconnected (like Redis's client-output-buffer-limit).",
            valueName: "bytes"))
    var clientOutputLimit = 64 * 1024 * 1024

    @Option(
        name: .long,
        help: ArgumentHelp(
            "full: every acknowledged write survives power loss (the write-ahead log is fsynced before any reply of a commit). normal: survives a crash of the process, not of the machine.",
            valueName: "full|normal"))
    var durability = "full"

    @Option(
        name: .long,
        help:
            "Most data keys rewrapped per transaction after a KEK rotation. Under load the rewrap rests as long as each batch took, so it takes about half of the writer's time."
    )
    var rewrapBatch = 250

    @Option(
        name: .long,
        help: ArgumentHelp(
            "How long a rewrap batch takes keys while it holds the writer, in milliseconds: it stops there even short of --rewrap-batch, and its commit follows; requests arriving meanwhile wait for it. SQLite only: on PostgreSQL (--store) the rewrap stays out of the audit chain's lock, and only a request writing one of its subjects waits.",
            valueName: "ms"))
    var rewrapBatchMs = 2

    @Option(
        name: .long,
        help: ArgumentHelp(
            "Threads that read, parse and answer requests (default: one per core but one, at least 1: vault work runs on the commit thread, which needs a core the loops leave free). More loops answer pipelining clients' PINGs faster and vault commands no faster (see OPERATIONS.md).",
            valueName: "n"))
    var eventLoops: Int?

    @Option(
        name: .long,
        help: ArgumentHelp(
            "Serve /metrics (Prometheus text format) and /health over HTTP at HOST:PORT (loopback only; port 0 picks one).",
            valueName: "host:port"))
    var metrics: String?

    @Option(
        name: .long,
        help: ArgumentHelp(
            "Log lines as text, logfmt or json (one event per line; also COFFER_LOG_FORMAT).",
            valueName: "text|logfmt|json"))
    var logFormat: String?

    @Flag(name: .long, help: "Allow running as root (not recommended: run as a dedicated user).")
    var allowRoot = false

    func run() async throws {
        var configuration = try vault.resolved()
        guard let mode = StoreDurability(rawValue: durability) else {
            throw ValidationError("--durability must be full or normal")
        }
        configuration.durability = mode
        if let logFormat, StructuredLogHandler.Format(rawValue: logFormat) == nil {
            throw ValidationError("--log-format must be text, logfmt or json")
        }
        let metricsAddress = try metrics.map { text in
            do { return try ListenAddress(parsing: text) } catch { throw ValidationError("--metrics: \(error)") }
        }
        if let metricsAddress, !metricsAddress.isLoopback {
            // The endpoint has no authentication: it must not be reachable from other machines
            // by accident. Put a proxy with TLS and authentication in front to export it.
            throw ValidationError("--metrics must be a loopback address (127.0.0.1, ::1, localhost)")
        }
        // Metric handles are made from the global factory when their owners are: bootstrap
        // before the vault and the server exist.
        let prometheus = metricsAddress.map { _ in PrometheusCollectorRegistry() }
        if let prometheus {
            var factory = PrometheusMetricsFactory(registry: prometheus)
            factory.defaultDurationHistogramBuckets = [
                .microseconds(100), .microseconds(250), .microseconds(500), .milliseconds(1), .milliseconds(2),
                .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100),
                .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(2), .seconds(5),
            ]
            factory.valueHistogramBuckets["coffer_commit_batch_size"] = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512]
            MetricsSystem.bootstrap(factory)
        }
        guard rewrapBatch > 0 else { throw ValidationError("--rewrap-batch must be positive") }
        guard (1...10_000).contains(rewrapBatchMs) else {
            throw ValidationError("--rewrap-batch-ms must be 1 to 10000")
        }
        if let eventLoops {
            guard (1...256).contains(eventLoops) else { throw ValidationError("--event-loops must be 1 to 256") }
        }
        // NIO counts a container's CPU quota but not the affinity mask (taskset, systemd's
        // CPUAffinity=); Foundation's processor count ignores the mask too.
        let affinity = Int(coffer_affinity_cpu_count())
        let cores = affinity > 0 ? min(System.coreCount, affinity) : System.coreCount
        // Before anything uses the shared event loop group, which is made with this many.
        NIOSingletons.groupLoopCountSuggestion = eventLoops ?? ServerConfiguration.defaultEventLoops(cores: cores)
        let tcp = try listen.map { text in
            do { return try ListenAddress(parsing: text) } catch { throw ValidationError("\(error)") }
        }
        guard maxClients > 0 else { throw ValidationError("--max-clients must be positive") }
        guard idleTimeout > 0 else { throw ValidationError("--idle-timeout must be positive") }
        guard authTimeout > 0 else { throw ValidationError("--auth-timeout must be positive") }
        guard clientOutputLimit >= 8 * 1024 * 1024 else {
            throw ValidationError("--client-output-limit must be at least 8388608: one reply may be 8 MiB")
        }
        if let maxAnonymousClients, !(1...maxClients).contains(maxAnonymousClients) {
            throw ValidationError("--max-anonymous-clients must be between 1 and --max-clients")
        }
        var connection = ConnectionLimits()
        connection.authTimeout = .seconds(authTimeout)
        connection.outputBytes = clientOutputLimit
        if noSocket && tcp == nil { throw ValidationError("--no-socket needs --listen") }
        var tls: ServerTLS?
        switch (tlsCert, tlsKey) {
        case (let cert?, let key?):
            guard tcp != nil else { throw ValidationError("--tls-cert and --tls-key apply to --listen; give --listen") }
            tls = ServerTLS(certificateChainPath: cert, privateKeyPath: key, clientCAPath: tlsClientCa)
        case (nil, nil):
            if tlsClientCa != nil { throw ValidationError("--tls-client-ca needs --tls-cert and --tls-key") }
        default:
            throw ValidationError("--tls-cert and --tls-key go together")
        }
        if let tcp, !tcp.isLoopback, tls == nil {
            note(
                "coffer: refusing to listen on \(tcp): without TLS, TCP may only bind to a loopback address (give --tls-cert and --tls-key)"
            )
            throw ExitCode.failure
        }
        // Load the certificate and key now, so a bad file stops start-up before the vault opens.
        if let tls {
            do { _ = try tls.makeContext() } catch {
                note("coffer: \(error)")
                throw ExitCode.failure
            }
        }
        let logger = Logger(label: "coffer")
        let ignored = IgnoredSignals(logger: logger)
        defer { ignored.cancel() }
        do { try ProcessHardening.apply(allowRoot: allowRoot, logger: logger) } catch let error as CLIError {
            note("coffer: \(error)")
            throw ExitCode.failure
        }
        let shared = configuration.store.isShared
        if shared && socket == nil && !noSocket {
            throw ValidationError(
                "a node of a --store vault has no data directory for its socket: give --socket PATH or --no-socket with --listen"
            )
        }
        let socketPath =
            noSocket ? nil : (socket ?? (configuration.dataDirectory as NSString).appendingPathComponent("coffer.sock"))
        // One server per data directory, for its whole life: the server holds the lock until
        // it stops (or the kernel drops it when this process dies), across SEAL and UNSEAL, and
        // the lock file tells the CLI where to find it. Nodes of a shared store have none: they
        // meet in the database, which coordinates their KEK changes itself.
        let lock: DataDirectoryLock? = try reportingErrors {
            try Vault.checkOpenable(configuration)
            if shared { return nil }
            return try DataDirectoryLock.acquire(
                configuration.dataDirectory, for: .init(command: "serve", socket: socketPath))
        }
        if let held = lock, try reportingErrors({ try Vault.recoverInterruptedReseal(configuration, holding: held) }) {
            note("coffer: an interrupted reseal of the key directory was finished or undone")
        }
        @Sendable func openVault(_ configuration: VaultConfiguration) throws -> Vault {
            if let lock { return try Vault.open(configuration, borrowing: lock, logger: logger) }
            return try Vault.open(configuration, owner: .init(command: "serve", socket: socketPath), logger: logger)
        }
        let manifest = try reportingErrors { try SealManifest.load(keyDirectory: configuration.keyDirectory) }
        let vaults: VaultHandle
        if let manifest {
            var unsealerless = configuration
            unsealerless.unsealer = nil
            let sealed = unsealerless
            vaults = VaultHandle(sealed: SealState(manifest: manifest)) { root in
                var unsealed = sealed
                unsealed.root = root
                return try openVault(unsealed)
            }
            if let file = vault.unsealFilePath {
                let share = try reportingErrors { try Unsealing.readShareFile(file, manifest: manifest) }
                _ = try reportingErrors { try vaults.unsealLocally(share, source: "unseal-file") }
            } else {
                note(
                    "coffer: the vault is sealed: \(manifest.threshold) of its \(manifest.shareCount) share holders unseal it with coffer unseal"
                )
            }
        } else {
            let opened = try reportingErrors { try openVault(configuration) }
            vaults = VaultHandle(vault: opened)
        }
        let endpoint = metricsAddress.flatMap { address in
            prometheus.map { registry in
                let gauges = VaultGauges(vaults: vaults)
                return MetricsEndpoint(address: address) {
                    gauges.update()
                    var bytes: [UInt8] = []
                    registry.emit(into: &bytes)
                    return bytes
                }
            }
        }
        let server = CofferServer(
            vaults: vaults,
            configuration: ServerConfiguration(
                socketPath: socketPath, tcp: tcp, tls: tls, maximumClients: maxClients,
                maximumAnonymousClients: maxAnonymousClients, connection: connection, idleTimeoutSeconds: idleTimeout,
                rewrapBatchSize: rewrapBatch, rewrapBatchTime: .milliseconds(rewrapBatchMs), metrics: endpoint,
                onReady: { listeners in
                    do {
                        try lock?.record(.init(command: "serve", socket: socketPath, listeners: listeners))
                    } catch {
                        logger.warning(
                            "could not record the listeners in the lock file", metadata: ["error": "\(error)"])
                    }
                    for listener in listeners { note("coffer: listening on \(listener)") }
                    note("coffer: ready")
                }),
            logger: logger)
        let group = ServiceGroup(
            configuration: ServiceGroupConfiguration(
                services: [.init(service: server)], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        do {
            try await group.run()
        } catch {
            try? vaults.vault?.close()
            lock?.release()
            note("coffer: \(Self.describe(error))")
            throw ExitCode.failure
        }
        try vaults.vault?.close()
        lock?.release()
        note("coffer: stopped")
    }

    /// ServiceGroup wraps a service's error; show the cause.
    static func describe(_ error: any Error) -> String {
        let text = "\(error)"
        if let range = text.range(of: "underlying error: ") { return String(text[range.upperBound...]) }
        return text
    }
}
