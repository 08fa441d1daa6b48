import CofferCore
import CofferProtocol
import Foundation
import Logging
import NIOCore
import NIOPosix

/// Runs one parsed command for a session and produces its reply. It decides nothing about
/// access itself: every data and admin command goes to the vault core with the session's
/// caller, and the vault's single decision function answers.
///
/// Local commands answer at once; pipelined ones are submitted to the vault's group committer
/// and complete on the connection's executor; barriers run on the worker pool.
struct CommandDispatcher: Sendable {
    let vaults: VaultHandle
    /// AUTH, SHRED, CLIENT.*, KEYS.*, REKEY.
    let threadPool: NIOThreadPool
    /// The long reads (AUDIT.TAIL, AUDIT.VERIFY), apart, so that auditors looping them queue
    /// behind each other and never make an AUTH wait.
    let longPool: NIOThreadPool
    let logger: Logger
    /// Failed AUTHs are logged at most 10 a second across the server (every one is audited).
    let authFailureLog = LogThrottle(limit: 10, per: .seconds(1))
    /// Lines any client, authenticated or not, can cause once per connection (an HTTP request,
    /// an output buffer past its limit): at most 10 a second across the server. An outside
    /// attack made 36,889 HTTP lines in 11 s by connecting over and over.
    let connectionEventLog = LogThrottle(limit: 10, per: .seconds(1))
    /// INFO, CLIENT LIST and CONFIG GET read the server's figures here; without it (tests of
    /// the handler alone) they answer from an empty registry.
    var monitor: ServerMonitor = ServerMonitor(
        registry: ConnectionRegistry(maximumClients: 0, maximumAnonymous: 0), idleTimeoutSeconds: 0)

    static let version = "0.1.0"

    init(vaults: VaultHandle, threadPool: NIOThreadPool, longPool: NIOThreadPool, logger: Logger) {
        self.vaults = vaults
        self.threadPool = threadPool
        self.longPool = longPool
        self.logger = logger
    }

    init(vault: Vault, threadPool: NIOThreadPool, longPool: NIOThreadPool, logger: Logger) {
        self.init(vaults: VaultHandle(vault: vault), threadPool: threadPool, longPool: longPool, logger: logger)
    }

    struct Reply: Sendable {
        var value: RESPValue
        var close: Bool
        /// Boxed: a `SessionUpdate` is 112 bytes and few replies carry one (AUTH, HELLO, CLIENT
        /// SETNAME), but every reply was copied at its full size, and so was the `Parsed` that
        /// holds one (2.3 % of the event loop's samples at pipelined PINGs were those copies).
        private let boxedUpdate: UpdateBox?
        var update: SessionUpdate? { boxedUpdate?.update }
        var changesSession: Bool { boxedUpdate != nil }

        init(value: RESPValue, close: Bool = false, update: SessionUpdate? = nil) {
            self.value = value
            self.close = close
            self.boxedUpdate = update.map(UpdateBox.init)
        }
    }

    final class UpdateBox: Sendable {
        let update: SessionUpdate
        init(_ update: SessionUpdate) { self.update = update }
    }

    enum Parsed {
        case command(Command)
        /// Malformed, or not allowed before AUTH: answered at once.
        case refused(Reply)
    }

    /// Parses a request; a malformed command is answered at once. Takes the two facts of the
    /// session it needs, not the session: copying that per command cost 5 % of PING's time.
    func command(for request: RESPRequest, authenticated: Bool, epoch: Int) -> Parsed {
        let command: Command
        do {
            command = try CommandParser.parse(request)
        } catch let error as CommandError {
            if Self.isHTTPLine(request) {
                // A browser can be made to send an HTTP request, whose body lines would be read
                // as inline commands, to a loopback port; Redis closes on these two words too.
                if let heldBack = connectionEventLog.admit() {
                    logger.warning(
                        "closing connection: an HTTP request reached the RESP listener",
                        metadata: LogThrottle.metadata([:], heldBack: heldBack))
                }
                return .refused(Reply(value: .error("ERR HTTP requests are not served here"), close: true))
            }
            // Anonymous connections learn nothing about the command set but that AUTH is needed;
            // the commands they may run (a malformed AUTH or HELLO) get their real error, as in
            // Redis.
            if !authenticated && !Policy.allowsUnauthenticated(CommandTable.name(ofRequest: request) ?? "") {
                return .refused(Reply(value: .error("NOAUTH Authentication required.")))
            }
            return .refused(Reply(value: .error(error.description)))
        } catch {
            return .refused(Reply(value: .error("ERR \(error)")))
        }
        let serving = vaults.servingEpoch
        if !serving.open && !Self.answeredWhileSealed(command) {
            return .refused(Reply(value: .error(vaults.sealedError.description)))
        }
        // Looked up by name only when it matters: an authenticated session of this epoch may
        // run anything the policy lets it.
        if authenticated && epoch == serving.epoch { return .command(command) }
        let allowedBeforeAuth = Policy.allowsUnauthenticated(command.name)
        if authenticated && !allowedBeforeAuth {
            return .refused(
                Reply(
                    value: .error("NOAUTH the vault was sealed since this connection authenticated; AUTH again"),
                    update: SessionUpdate(deauthenticated: true)))
        }
        guard authenticated || allowedBeforeAuth else {
            return .refused(Reply(value: .error("NOAUTH Authentication required.")))
        }
        return .command(command)
    }

    /// `POST` or `Host:` as the command name (any case): an HTTP request line or header, never
    /// a command (Redis's cross-protocol check).
    static func isHTTPLine(_ request: RESPRequest) -> Bool {
        guard request.count > 0 else { return false }
        return request.withArgument(0) { name in
            ["POST", "HOST:"].contains { word in
                name.count == word.utf8.count && zip(name, word.utf8).allSatisfy { $0 & 0xDF == $1 & 0xDF }
            }
        }
    }

    /// What a sealed server answers: the connection's own commands (PING, HELLO without AUTH,
    /// QUIT, the housekeeping client libraries send on connect) and the seal commands; nothing
    /// that needs a key.
    static func answeredWhileSealed(_ command: Command) -> Bool {
        switch command {
        case .ping, .quit, .clientHousekeeping, .commandIntrospection, .sealStatus, .unseal, .unsealReset: true
        case .hello(_, let auth, _): auth == nil
        default: false
        }
    }

    /// Answers a `.local` command. The session is read only by the commands that need it.
    func local(_ command: Command, session readSession: @autoclosure () -> Session) -> Reply {
        switch command {
        case .ping(let message):
            return Reply(value: message.map { .bulkString($0) } ?? .simpleString("PONG"))
        case .echo(let message):
            return Reply(value: .bulkString(message))
        case .quit:
            return Reply(value: .simpleString("OK"), close: true)
        case .hello(let version, _, let clientName):
            if let version, version != 2 && version != 3 {
                return Reply(value: .error("NOPROTO unsupported protocol version"))
            }
            let update = SessionUpdate(protocolVersion: version, connectionName: clientName)
            var updated = readSession()
            update.apply(to: &updated)
            return Reply(value: Self.helloReply(updated), update: update)
        case .clientHousekeeping(let subcommand, let name):
            switch subcommand {
            case "SETNAME": return Reply(value: .simpleString("OK"), update: SessionUpdate(connectionName: name))
            case "GETNAME": return Reply(value: readSession().connectionName.map(RESPValue.bulk) ?? .null)
            case "ID": return Reply(value: .integer(readSession().id))
            default: return Reply(value: .simpleString("OK"))
            }
        case .commandIntrospection:
            return Reply(value: .array([]))
        case .clientPurpose(let name, let ticket):
            guard let name else { return Reply(value: .simpleString("OK"), update: SessionUpdate(purpose: .some(nil))) }
            do {
                let purpose = try AccessPurpose(name: name, ticket: ticket)
                return Reply(value: .simpleString("OK"), update: SessionUpdate(purpose: .some(purpose)))
            } catch {
                return Reply(value: .error("\(error)"))
            }
        case .sealStatus:
            return Reply(value: Self.sealReply(vaults.seal?.status()))
        case .unsealReset:
            do {
                let session = readSession()
                return Reply(value: Self.sealReply(try vaults.resetUnseal(origin: session.origin, peer: session.peer)))
            } catch {
                return Reply(value: .error("\(error)"))
            }
        case .commandCount:
            return Reply(value: .integer(CommandTable.all.count))
        case .commandDocs(let names):
            return Reply(value: names.isEmpty ? Self.allCommandDocs : Self.commandDocs(names))
        default:
            return Reply(value: .error("ERR internal error"))
        }
    }

    /// Submits a `.pipelined` command to the group committer; `completion` runs on `executor`.
    func submit(
        _ command: Command, session: Session, on executor: any CompletionExecutor,
        completion: @escaping @Sendable (Reply) -> Void
    ) {
        var caller = session.caller
        var unwrapped = command
        // A purpose stated on the command wins over the connection's.
        if case .withPurpose(let inner, let name, let ticket) = command {
            do { caller.purpose = try AccessPurpose(name: name, ticket: ticket) } catch {
                completion(Reply(value: .error("\(error)")))
                return
            }
            unwrapped = inner
        }
        let logger = self.logger
        guard let vault = vaults.vault else {
            completion(Reply(value: .error(vaults.sealedError.description)))
            return
        }
        func go<T: Sendable>(_ call: Call<T>, _ reply: @escaping @Sendable (T) -> RESPValue) {
            vault.submit(call, on: executor) { result in
                completion(Self.reply(result.map(reply).mapError { $0 }, command: command, logger: logger))
            }
        }
        switch unwrapped {
        case .put(let subject, let values):
            go(vault.putCall(subject: subject, values: values.map { ($0.field, $0.value) }, as: caller)) {
                .integer($0)
            }
        case .get(let subject, let fields):
            go(vault.getCall(subject: subject, fields: fields, as: caller)) {
                .array($0.map { $0.map(RESPValue.bulkString) ?? .null })
            }
        case .export(let subject):
            go(vault.exportCall(subject: subject, as: caller)) {
                .map($0.map { (.bulk($0.field), .bulkString($0.value)) })
            }
        case .delete(let subject, let fields):
            go(vault.deleteCall(subject: subject, fields: fields, as: caller)) { .integer($0) }
        case .exists(let subject):
            go(vault.existsCall(subject: subject, as: caller)) { .integer($0 ? 1 : 0) }
        case .find(let kindName, let value):
            guard let kind = IndexKind(rawValue: kindName) else {
                completion(Reply(value: .error("ERR FIND takes 'email' or 'phone', not '\(kindName.prefix(32))'")))
                return
            }
            go(vault.findCall(kind, value: value, as: caller)) { .array($0.map(RESPValue.bulk)) }
        case .tokenize(let subject, let field, let formatName, let reuse):
            guard let format = formatName.map(CardToken.Format.init(rawValue:)) ?? .last4 else {
                let names = CardToken.Format.allCases.map(\.rawValue).joined(separator: ", ")
                completion(Reply(value: .error("ERR TOKENIZE FORMAT takes \(names), not '\(formatName!.prefix(32))'")))
                return
            }
            go(vault.tokenizeCall(subject: subject, field: field, format: format, reuse: reuse, as: caller)) {
                $0.map(RESPValue.bulk) ?? .null
            }
        case .detokenize(let token):
            go(vault.detokenizeCall(token, as: caller)) {
                $0.map { .array([.bulk($0.subject), .bulkString($0.value)]) } ?? .null
            }
        case .tokenRevoke(let token):
            go(vault.revokeTokenCall(token, as: caller)) { .integer($0 ? 1 : 0) }
        case .whoami:
            let name = session.client ?? "-"
            go(vault.whoamiCall(as: caller)) { .array([.bulk(name), .bulk($0)]) }
        default:
            completion(Reply(value: .error("ERR internal error")))
        }
    }

    /// Runs a `.barrier` command on the worker pool (never on an event loop); `completion`
    /// runs on `loop`. A failed AUTH is answered only after a delay that grows with the
    /// failures of its (name, origin), the same for known and unknown names.
    func run(
        _ command: Command, session: Session, on loop: any EventLoop,
        completion: @escaping @Sendable (Reply) -> Void
    ) {
        let vaults = self.vaults
        let caller = session.caller
        let logger = self.logger
        let authFailureLog = self.authFailureLog
        let monitor = self.monitor
        let pool: NIOThreadPool
        switch command {
        case .auditTail, .auditVerify: pool = longPool
        default: pool = threadPool
        }
        let future: EventLoopFuture<Reply> = pool.runIfActive(eventLoop: loop) {
            switch command {
            case .unseal(let share):
                return Reply(
                    value: Self.sealReply(try vaults.unseal(share, origin: session.origin, peer: session.peer)))
            case .seal:
                try vaults.sealNow(as: caller)
                return Reply(value: .simpleString("OK"))
            default:
                let serving = vaults.serving
                guard let vault = serving.vault else { throw vaults.sealedError }
                return try Self.work(
                    command, session: session, caller: caller, vault: vault, epoch: serving.epoch, monitor: monitor)
            }
        }
        future.whenComplete { result in
            switch result {
            case .success(let reply):
                completion(reply)
            case .failure(let error as AuthFailure):
                if let heldBack = authFailureLog.admit() {
                    logger.notice(
                        "AUTH failed",
                        metadata: LogThrottle.metadata(["connection": "\(session.id)"], heldBack: heldBack))
                }
                loop.scheduleTask(in: .milliseconds(Int64(50 * min(error.failures, 10)))) {
                    completion(Reply(value: .error(Self.wrongPass.description)))
                }
            case .failure(let error):
                completion(Self.reply(.failure(error), command: command, logger: logger))
            }
        }
    }

    private struct AuthFailure: Error {
        let failures: Int
    }

    private static let wrongPass = VaultError(.wrongPass, "invalid client name or secret, or the client is locked")

    private static func work(
        _ command: Command, session: Session, caller: Caller, vault: Vault, epoch: Int, monitor: ServerMonitor
    ) throws -> Reply {
        switch command {
        case .info(let sections):
            let info = try vault.operationalInfo(.info, as: caller)
            return Reply(value: .bulk(monitor.info(sections: sections, vault: info)))
        case .connectionList:
            _ = try vault.operationalInfo(.connectionList, as: caller)
            return Reply(value: .bulk(monitor.clientList()))
        case .configGet(let pattern):
            _ = try vault.operationalInfo(.configGet, as: caller)
            return Reply(value: .map(monitor.config(matching: pattern).map { (.bulk($0.0), .bulk($0.1)) }))
        case .slowlog(let subcommand):
            _ = try vault.operationalInfo(.slowlog, as: caller)
            // Coffer keeps no slow log (docs/PROTOCOL.md): it is empty, and RESET has nothing to do.
            switch subcommand {
            case "LEN": return Reply(value: .integer(0))
            case "GET": return Reply(value: .array([]))
            case "RESET": return Reply(value: .simpleString("OK"))
            default: return Reply(value: .array([.bulk("SLOWLOG LEN | GET | RESET: Coffer keeps no slow log")]))
            }
        case .latency(let subcommand):
            _ = try vault.operationalInfo(.latency, as: caller)
            // No latency monitor runs: no events, no history. Per-command percentiles are in
            // INFO latencystats.
            switch subcommand {
            case "RESET": return Reply(value: .integer(0))
            case "DOCTOR":
                return Reply(value: .bulk("Coffer records no latency events; see INFO latencystats and /metrics."))
            case "HELP":
                return Reply(
                    value: .array([.bulk("LATENCY LATEST | HISTORY | HISTOGRAM | RESET: no events are recorded")]))
            default: return Reply(value: .array([]))
            }
        case .auth(let client, let secret):
            return try authenticate(client, secret, session: session, vault: vault, epoch: epoch) { _ in
                .simpleString("OK")
            }
        case .hello(let version, let credentials?, let clientName):
            if let version, version != 2 && version != 3 {
                return Reply(value: .error("NOPROTO unsupported protocol version"))
            }
            return try authenticate(
                credentials.client, credentials.secret, session: session, vault: vault, epoch: epoch,
                protocolVersion: version,
                name: clientName
            ) { updated in helloReply(updated) }
        case .shred(let subject):
            // :1 shredded and wiped from every file; :2 shredded (unreadable now), the wipe of
            // old page images waits for a reader's snapshot and completes by itself; :0 absent.
            switch try vault.shred(subject: subject, as: caller) {
            case .absent: return Reply(value: .integer(0))
            case .wiped: return Reply(value: .integer(1))
            case .pending: return Reply(value: .integer(2))
            }
        case .clientAdd(let name, let role):
            return Reply(value: .bulk(try vault.addClient(name: name, role: role, as: caller)))
        case .clientList:
            let clients = try vault.listClients(as: caller)
            return Reply(value: .array(clients.map { .bulk("\($0.name) \($0.role)\($0.locked ? " locked" : "")") }))
        case .clientRevoke(let name):
            return Reply(value: .integer(try vault.revokeClient(name: name, as: caller) ? 1 : 0))
        case .clientUnlock(let name):
            return Reply(value: .integer(try vault.unlockClient(name: name, as: caller) ? 1 : 0))
        case .keysRotate:
            return Reply(value: .integer(Int(try vault.rotateKEK(as: caller))))
        case .keysStatus:
            return Reply(value: statusReply(try vault.keyStatus(as: caller)))
        case .keysRetire(let version):
            try vault.retireKEK(version, as: caller)
            return Reply(value: .simpleString("OK"))
        case .rekey(let subject):
            return Reply(value: .integer(try vault.rekey(subject: subject, as: caller) ? 1 : 0))
        case .auditTail(let count):
            return Reply(value: .array(try vault.auditTail(count, as: caller).map(RESPValue.bulk)))
        case .auditVerify:
            switch try vault.verifyAudit(as: caller) {
            case .verified(let count):
                return Reply(value: .simpleString("OK \(count) entries verified"))
            case .tampered(let seq, let reason):
                return Reply(value: .error("TAMPERED at seq \(seq): \(reason)"))
            }
        default:
            return Reply(value: .error("ERR internal error"))
        }
    }

    /// Checks the secret in the vault core (which counts failures per name and origin).
    private static func authenticate(
        _ client: String, _ secret: [UInt8], session: Session, vault: Vault, epoch: Int, protocolVersion: Int? = nil,
        name: String? = nil, reply: (Session) -> RESPValue
    ) throws -> Reply {
        switch try vault.authenticate(client: client, secret: secret, origin: session.origin, peer: session.peer) {
        case .success(_, let binding):
            let update = SessionUpdate(
                authenticated: (client, binding), epoch: epoch, protocolVersion: protocolVersion, connectionName: name)
            var updated = session
            update.apply(to: &updated)
            return Reply(value: reply(updated), update: update)
        case .failure(let failures):
            throw AuthFailure(failures: failures)
        }
    }

    /// The reply for a finished vault call; a `NOAUTH` from the vault (the client was revoked
    /// or changed) makes the connection anonymous again.
    private static func reply(_ result: Result<RESPValue, any Error>, command: Command, logger: Logger) -> Reply {
        switch result {
        case .success(let value):
            return Reply(value: value)
        case .failure(let error as VaultError):
            if error.code == .integrity || error.code == .storage {
                logger.error("command failed", metadata: ["command": "\(command.name)", "error": "\(error.code)"])
            }
            return Reply(
                value: .error(error.description),
                update: error.code == .noAuth ? SessionUpdate(deauthenticated: true) : nil)
        case .failure:
            logger.error("command failed", metadata: ["command": "\(command.name)"])
            return Reply(value: .error("ERR internal error"))
        }
    }

    /// `SEAL.STATUS`, and the reply to each UNSEAL: a map, like KEYS.STATUS.
    static func sealReply(_ status: SealState.Status?) -> RESPValue {
        SealStatusReply(
            sealed: status?.sealed ?? false,
            progress: status.map {
                .init(
                    threshold: $0.threshold, shares: $0.shares, entered: $0.entered, generation: Int($0.generation))
            }
        ).value
    }

    static func statusReply(_ status: KeyStatus) -> RESPValue {
        KeyStatusReply(
            current: Int(status.current),
            versions: status.versions.map { .init(version: Int($0.version), state: $0.state, dataKeys: $0.dataKeys) },
            pending: status.pending, done: status.rewrap.done, rate: Int(status.rewrap.rate.rounded()),
            shreddedAwaitingRetirement: status.shreddedAwaitingRetirement
        ).value
    }

    /// `COMMAND DOCS` of every command, built and encoded once: built per request it cost
    /// about 220 µs of the event loop (an outside attack's measurement), so a pipeline of them
    /// stalled every other connection for seconds.
    static let allCommandDocs = RESPValue.preencoded(commandDocs([]))

    /// `COMMAND DOCS`: summary, group and arguments of each command named (all if none), in
    /// the shape redis-cli reads to build its hints. Unknown names are left out, as in Redis.
    static func commandDocs(_ names: [String]) -> RESPValue {
        let wanted = Set(names)
        let entries = CommandTable.all.filter { !$0.name.contains(" ") && (names.isEmpty || wanted.contains($0.name)) }
        return .map(
            entries.map { entry in
                let arguments: [RESPValue] = entry.arguments.map { argument in
                    var flags: [RESPValue] = []
                    if argument.optional { flags.append(.simpleString("optional")) }
                    if argument.multiple { flags.append(.simpleString("multiple")) }
                    var pairs: [(RESPValue, RESPValue)] = [
                        (.bulk("name"), .bulk(argument.name)), (.bulk("type"), .bulk("string")),
                        (.bulk("display_text"), .bulk(argument.name)),
                    ]
                    if !flags.isEmpty { pairs.append((.bulk("flags"), .array(flags))) }
                    return .map(pairs)
                }
                return (
                    .bulk(entry.name.lowercased()),
                    .map([
                        (.bulk("summary"), .bulk(entry.summary)), (.bulk("since"), .bulk(version)),
                        (.bulk("group"), .bulk(entry.group)), (.bulk("arguments"), .array(arguments)),
                    ])
                )
            })
    }

    private static func helloReply(_ session: Session) -> RESPValue {
        var pairs: [(RESPValue, RESPValue)] = [
            (.bulk("server"), .bulk("coffer")),
            (.bulk("version"), .bulk(Self.version)),
            (.bulk("proto"), .integer(session.protocolVersion)),
            (.bulk("id"), .integer(session.id)),
            (.bulk("mode"), .bulk("standalone")),
            (.bulk("role"), .bulk("master")),
            (.bulk("modules"), .array([])),
        ]
        if let name = session.client { pairs.append((.bulk("client"), .bulk(name))) }
        return .map(pairs)
    }
}
