import CofferCore
import CofferProtocol
import Logging
import NIOCore
import NIOTLS
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// One connection's request path, entirely on its event loop: it parses requests as bytes
/// arrive, starts each command in order without waiting for earlier replies, writes replies in
/// order, and flushes once per read burst or completed commit batch.
///
/// Everything one connection can make the server hold is bounded:
/// - unparsed input: one request (the parser's limits) plus one read; while a command that
///   changes the session (AUTH) or runs alone is in progress, nothing more is read;
/// - parsed requests not yet answered: `maximumInFlight`; past it the connection stops reading;
/// - replies not yet written to the socket: the output limit (the channel's high water mark:
///   `anonymousOutputBytes` before AUTH, `outputBytes` after), past which the connection is
///   closed and the reason logged, as Redis's `client-output-buffer-limit` does. A client that
///   pipelines and reads its replies later (redis-py's `pipeline()`) is served as Redis serves
///   it: its replies are buffered up to that limit while its requests keep being read.
final class ConnectionHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    /// A reply in order: nil until its command has answered.
    private struct Slot {
        var reply: ByteBuffer?
        var close = false
        /// Ready, but waiting behind an earlier reply (counted in `heldBytes`).
        var held = false
        /// The RESP version in force when the command was read.
        let version: Int
        /// The command's metric label (`CommandTable.labels`) and when the turn that read it began.
        var label = 0
        var started: UInt64 = 0
    }

    private let dispatcher: CommandDispatcher
    private let registry: ConnectionRegistry
    private let limits: ConnectionLimits
    private let logger: Logger
    private let secured: Bool

    private var context: ChannelHandlerContext?
    private var session = Session(id: 0, origin: "unix", peer: "unknown")
    private var registration: ConnectionRegistry.Registration?
    private var executor: ConnectionExecutor?
    private var parser = RESPRequestParser(limits: .anonymous)
    private var input: ByteBuffer?
    private var slots = CircularBuffer<Slot>()
    /// The sequence number of `slots.first`.
    private var firstSlot = 0
    /// Bytes of replies that are ready but wait behind an earlier one.
    private var heldBytes = 0
    /// A barrier command parsed but not started (it waits for every earlier reply).
    private var pendingBarrier: (sequence: Int, command: Command)?
    private var barrierRunning = false
    private var readPending = false
    private var closing = false
    private var inputClosed = false
    /// The protocol error that ended the input: written once every earlier reply is.
    private var protocolFailure: RESPProtocolError?
    /// True while replies are being produced in a burst that flushes once at its end.
    fileprivate var batching = false
    /// Replies due to be written, coalesced into one buffer per flush.
    private var outgoing: ByteBuffer?
    /// This event loop's command counters (`ServerStats.Shard`).
    private var statsShard: ServerStats.Shard?
    /// When the event loop's current turn (a read, a batch's completions, a barrier's answer)
    /// began: commands started and answered in one turn share one reading of the clock, which
    /// at 16 pipelined PINGs per read was 3 % of the loop's time read twice per command.
    private var turnStarted: UInt64 = 0
    /// The turn whose start `CLIENT LIST` was last told of.
    private var startRecorded: UInt64 = 0
    /// The last command name's metric label: pipelines repeat one command, so this spares
    /// hashing the name for every command.
    private var lastLabel = (name: "", index: CommandTable.labels.count - 1)
    private var authDeadline: Scheduled<Void>?
    private var requestDeadline: Scheduled<Void>?

    init(
        dispatcher: CommandDispatcher, registry: ConnectionRegistry, limits: ConnectionLimits, logger: Logger,
        secured: Bool
    ) {
        self.dispatcher = dispatcher
        self.registry = registry
        self.limits = limits
        self.logger = logger
        self.secured = secured
    }

    // MARK: Life cycle

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        if context.channel.isActive { start(context) }
    }

    /// Called by `AdmissionHandler` at the head of the pipeline when the connection becomes
    /// active. On a TLS listener the TLS handler passes `channelActive` on only after the
    /// handshake, so the connection is admitted (counted, and given its AUTH deadline) from
    /// there: a client that never handshakes must not hold a slot for free.
    func admit() {
        if let context { start(context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        start(context)
        // A refused TLS client is told once its handshake is done (see below).
        if !secured { tellRefusal(context) }
        context.fireChannelActive()
    }

    private func tellRefusal(_ context: ChannelHandlerContext) {
        guard let refusal else { return }
        self.refusal = nil
        var buffer = context.channel.allocator.buffer(capacity: 64)
        RESPValue.error("ERR \(refusal)").encode(into: &buffer, version: 2)
        writeThenClose(buffer, context)
    }

    /// Why the registry refused this connection, until the client has been told.
    private var refusal: String?

    private func start(_ context: ChannelHandlerContext) {
        guard registration == nil, !closing else { return }
        let channel = context.channel
        let origin: String
        var peer: String
        if let address = channel.remoteAddress, let ip = address.ipAddress, let port = address.port {
            origin = "\(secured ? "tls" : "tcp") \(ip):\(port)"
            peer = "ip \(ip)"
        } else {
            origin = "unix"
            peer = "uid ?"
        }
        let address: String
        if let address0 = channel.remoteAddress, let ip = address0.ipAddress, let port = address0.port {
            address = "\(ip):\(port)"
        } else {
            address = "unix"
        }
        let evictable = NIOLoopBound(self, eventLoop: context.eventLoop)
        switch registry.register(channel, address: address, evict: { evictable.value.evict() }) {
        case .refused(let reason):
            logger.info("connection refused", metadata: ["origin": "\(origin)", "reason": "\(reason)"])
            // Told in `channelActive` (after a TLS handshake); a client that never gets that far
            // is closed after a second.
            closing = true
            refusal = reason
            context.eventLoop.assumeIsolated().scheduleTask(in: .seconds(2)) {
                if context.channel.isActive { context.close(promise: nil) }
            }
            return
        case .admitted(let registration):
            self.registration = registration
            session = Session(id: registration.id, origin: origin, peer: peer)
            logger.info("connection opened", metadata: ["connection": "\(registration.id)", "origin": "\(origin)"])
        }
        if origin == "unix", let credentials = Self.peerUID(channel) { session.peer = "uid \(credentials)" }
        executor = ConnectionExecutor(handler: NIOLoopBound(self, eventLoop: context.eventLoop))
        // Released when the channel closes, whatever the handlers in front pass on.
        context.channel.closeFuture.assumeIsolated().whenComplete { [self] _ in finish() }
        setOutputLimit(limits.anonymousOutputBytes, context)
        armAuthDeadline(context)
    }

    /// Called on this connection's event loop when a newer connection took its place at a
    /// connection cap (`ConnectionRegistry`): it is told why, if it can still be told, and closed.
    /// An AUTH whose answer arrives here between the registry's choice and this call does not
    /// save it: the registry no longer counts it, and an uncounted connection would escape the
    /// caps and the drain.
    func evict() {
        guard let context else { return }
        // Already closing, its last replies waiting to be read: it makes room now, not at the
        // end of its grace period.
        if closing {
            context.close(promise: nil)
            return
        }
        logger.info(
            "closing connection: the oldest unauthenticated one, to make room for a newer one",
            metadata: ["connection": "\(session.id)"])
        closing = true
        authDeadline?.cancel()
        authDeadline = nil
        requestDeadline?.cancel()
        requestDeadline = nil
        flushIfNeeded()
        var buffer = context.channel.allocator.buffer(capacity: 96)
        RESPValue.error("ERR max number of unauthenticated clients reached; this connection was the oldest")
            .encode(into: &buffer, version: session.protocolVersion)
        writeThenClose(buffer, context)
    }

    func channelInactive(context: ChannelHandlerContext) {
        finish()
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        finish()
        self.context = nil
    }

    private func finish() {
        authDeadline?.cancel()
        requestDeadline?.cancel()
        authDeadline = nil
        requestDeadline = nil
        closing = true
        // Breaks the cycle handler → executor → handler; jobs still queued keep the executor
        // alive until they complete, then everything is released.
        executor = nil
        if let registration {
            registry.unregister(registration)
            self.registration = nil
            logger.info(
                "connection closed",
                metadata: ["connection": "\(registration.id)", "client": "\(session.client ?? "-")"])
        }
        input = nil
        slots.removeAll()
        pendingBarrier = nil
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? TLSUserEvent, case .handshakeCompleted = event {
            tellRefusal(context)
        }
        if let event = event as? ChannelEvent, event == .inputClosed {
            // Graceful shutdown (or a client half-close): answer what was read, then close.
            inputClosed = true
            closeIfDone(context)
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        logger.debug("connection error", metadata: ["connection": "\(session.id)", "error": "\(error)"])
        context.fireErrorCaught(error)
        context.close(promise: nil)
    }

    // MARK: Reading

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !closing, protocolFailure == nil else { return }
        var bytes = unwrapInboundIn(data)
        if input == nil || input!.readableBytes == 0 {
            input = bytes
        } else {
            input!.writeBuffer(&bytes)
        }
        batching = true
        // Behind already: the queued task goes on where the last turn stopped, and the socket
        // is not read again until it has (`mayRead`).
        guard !resumeScheduled else { return }
        beginTurn()
        process(context)
    }

    /// Called at each entry from the event loop that may start or answer commands: `start`
    /// and `complete` run only inside a turn, and time commands by it.
    fileprivate func beginTurn() { turnStarted = NIODeadline.now().uptimeNanoseconds }

    private func labelIndex(ofName name: String) -> Int {
        if name != lastLabel.name { lastLabel = (name, CommandTable.labelIndex(ofName: name)) }
        return lastLabel.index
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        batching = false
        flushIfNeeded()
        context.fireChannelReadComplete()
    }

    /// Holds the socket's reads back while the connection may not take more input.
    func read(context: ChannelHandlerContext) {
        if mayRead {
            context.read()
        } else {
            readPending = true
        }
    }

    private var mayRead: Bool {
        // A refused TLS client is read from until its handshake is done, so that it can be told why.
        if refusal != nil { return true }
        return !closing && protocolFailure == nil && !barrierRunning && pendingBarrier == nil && !resumeScheduled
            && slots.count < limits.maximumInFlight
            && (input?.readableBytes ?? 0) <= parser.limits.maximumRequestBytes
    }

    private func resumeReadingIfAllowed(_ context: ChannelHandlerContext) {
        if readPending && mayRead {
            readPending = false
            context.read()
        }
    }

    /// True while `process` runs: replies completed inside it must not start it again.
    private var processing = false

    /// Requests (or skipped lines) one call of `process` parses before it lets the event loop
    /// serve other connections. Without a bound, one read of blank lines, which get no reply and
    /// so meet neither the output nor the in-flight limit, held the loop for as long as parsing
    /// took: an outside attack with 1 MiB writes of `\n` before AUTH stalled every other client
    /// for 121 ms a write (Redis parses at most one 16 KiB read per turn).
    static let requestsPerTurn = 512

    /// True while the rest of the input waits for the event loop's next round.
    private var resumeScheduled = false
    private var resumeQueue: NIOLoopBound<ResumeQueue>?

    /// Parses and starts requests until the input runs out, the connection must wait, or this
    /// turn's share is used up (then the rest waits, and the socket is not read, until the
    /// other connections' ready events have been served: `scheduleResume`).
    private func process(_ context: ChannelHandlerContext) {
        guard !processing else { return }
        processing = true
        defer { processing = false }
        var budget = Self.requestsPerTurn
        while !closing && !barrierRunning && pendingBarrier == nil && slots.count < limits.maximumInFlight {
            if parser.isIdle { parser.limits = session.isAuthenticated ? limits.authenticated : limits.anonymous }
            guard input != nil, input!.readableBytes > 0 else { break }
            guard budget > 0 else {
                scheduleResume(context)
                break
            }
            budget -= 1
            // Parsed in place: the parser only moves the reader index, so nothing is copied, and
            // taking the buffer out and putting it back cost two retains and releases a request.
            let outcome: RESPRequestParser.Outcome
            do {
                outcome = try parser.next(&input!)
            } catch let error as RESPProtocolError {
                protocolError(error, context)
                return
            } catch {
                protocolError(RESPProtocolError("\(error)"), context)
                return
            }
            switch outcome {
            case .needMoreData:
                break
            case .skipped:
                continue
            case .request(let request):
                start(request, context)
                continue
            }
            break
        }
        if var buffer = input {
            if buffer.readableBytes == 0 {
                input = nil
            } else if buffer.readerIndex > 64 * 1024 {
                input = nil
                buffer.discardReadBytes()
                input = buffer
            }
        }
        // Replies answered at once (`answer`) wait in `outgoing`: a read burst or a commit
        // batch's completions flush them when they end; after a barrier's answer, this does.
        if !batching { flushIfNeeded() }
        if inputClosed { closeIfDone(context) }
        updateRequestDeadline(context)
        resumeReadingIfAllowed(context)
    }

    /// Parsing goes on in the loop's next round of waiting connections (`ResumeQueue`), after
    /// the loop has served its other ready sockets.
    private func scheduleResume(_ context: ChannelHandlerContext) {
        guard !resumeScheduled else { return }
        resumeScheduled = true
        if resumeQueue == nil { resumeQueue = registry.resumeQueue(for: context.eventLoop) }
        resumeQueue!.value.add(self)
    }

    /// Called by the `ResumeQueue` in its round.
    func resume() {
        resumeScheduled = false
        guard !closing, let context else { return }
        beginTurn()
        process(context)
    }

    // MARK: Running commands

    private func start(_ request: RESPRequest, _ context: ChannelHandlerContext) {
        // One store per turn, not per command: every command of a turn has its start time.
        if turnStarted != startRecorded {
            startRecorded = turnStarted
            registration?.info.commandStarted(at: turnStarted)
        }
        let command: Command
        switch dispatcher.command(for: request, authenticated: session.isAuthenticated, epoch: session.epoch) {
        case .refused(let reply):
            answer(reply, label: CommandTable.labelIndex(ofRequest: request), context)
            return
        case .command(let parsed):
            command = parsed
        }
        let label = labelIndex(ofName: command.name)
        switch command.execution {
        case .local:
            answer(dispatcher.local(command, session: session), label: label, context)
        case .pipelined:
            let sequence = appendSlot(label: label)
            guard let executor else { return }
            let handler = NIOLoopBound(self, eventLoop: context.eventLoop)
            dispatcher.submit(command, session: session, on: executor) { reply in
                handler.value.complete(sequence, reply)
            }
        case .barrier:
            pendingBarrier = (appendSlot(label: label), command)
            startBarrierIfFirst(context)
        }
    }

    /// Gives the command just read its place among the replies; returns its sequence number.
    private func appendSlot(label: Int) -> Int {
        let sequence = firstSlot + slots.count
        slots.append(Slot(version: session.protocolVersion, label: label, started: turnStarted))
        return sequence
    }

    /// A reply known as soon as its command is read (refusals, PING, …). With no earlier reply
    /// outstanding and nothing for the session to change, it goes straight to the outgoing
    /// buffer without taking a slot: at pipelined PINGs that took 15 % off the event loop's CPU
    /// per PING. Otherwise it waits its turn like any other.
    private func answer(_ reply: CommandDispatcher.Reply, label: Int, _ context: ChannelHandlerContext) {
        guard slots.isEmpty, !reply.close, !reply.changesSession else {
            complete(appendSlot(label: label), reply)
            return
        }
        record(reply.value, label: label, started: turnStarted, context)
        writeOut(reply.value, version: session.protocolVersion, context)
    }

    /// Encodes the reply now due into the outgoing buffer. Replies coalesce into one write per
    /// read burst, but not without bound: one read of pipelined requests with large replies
    /// (COMMAND DOCS answers 27 bytes with 8.6 KB) grew the buffer by hundreds of MiB before
    /// the output limit was ever checked. Written out once it holds 64 KiB, they meet the
    /// channel's high-water mark, and a client that does not read them is closed
    /// (`channelWritabilityChanged`), which stops `process`.
    private func writeOut(_ value: RESPValue, version: Int, _ context: ChannelHandlerContext) {
        // Encoded in place: moving the buffer out and back cost a retain and a release per reply.
        if outgoing == nil { outgoing = context.channel.allocator.buffer(capacity: 512) }
        value.encode(into: &outgoing!, version: version)
        if outgoing!.readableBytes >= 64 * 1024 { flushIfNeeded() }
    }

    /// Counts a command's outcome and time, and logs a failure (its label and the error's first
    /// word only: an error message may name a field, and the arguments are never logged).
    private func record(_ value: RESPValue, label: Int, started: UInt64, _ context: ChannelHandlerContext) {
        if statsShard == nil { statsShard = registry.stats.shard(for: ObjectIdentifier(context.eventLoop)) }
        let (outcome, errorWord) = statsShard!.record(
            label: label, nanoseconds: turnStarted >= started ? turnStarted - started : 0, reply: value)
        if outcome != .ok {
            logger.info(
                "command \(outcome.label)",
                metadata: [
                    "connection": "\(session.id)", "client": "\(session.client ?? "-")",
                    "command": "\(CommandTable.labels[label])", "error": "\(errorWord ?? "-")",
                ])
        }
    }

    private func startBarrierIfFirst(_ context: ChannelHandlerContext) {
        guard let (sequence, command) = pendingBarrier, sequence == firstSlot, !barrierRunning else { return }
        pendingBarrier = nil
        barrierRunning = true
        switch command {
        case .auth, .hello: authDeadlineSuspended = true
        default: authDeadlineSuspended = false
        }
        let entersShare: Bool
        if case .unseal = command { entersShare = true } else { entersShare = false }
        if entersShare { registration?.info.enteringShare.store(true, ordering: .releasing) }
        let handler = NIOLoopBound(self, eventLoop: context.eventLoop)
        dispatcher.run(command, session: session, on: context.eventLoop) { reply in
            let this = handler.value
            if entersShare { this.registration?.info.enteringShare.store(false, ordering: .releasing) }
            this.beginTurn()
            this.barrierRunning = false
            this.complete(sequence, reply)
            if let context = this.context, !this.closing { this.process(context) }
        }
    }

    /// AUTH's own run does not count against the AUTH deadline's firing mid-check.
    private var authDeadlineSuspended = false

    /// Records a command's reply and writes every reply now ready in order.
    fileprivate func complete(_ sequence: Int, _ reply: CommandDispatcher.Reply) {
        // A closing connection writes nothing more: after an eviction's error, a late AUTH's
        // `+OK` would have told the client it was in.
        guard let context, !closing, !slots.isEmpty, sequence >= firstSlot else { return }
        if let update = reply.update {
            if update.authenticated != nil, !session.isAuthenticated, let registration,
                !registry.authenticated(registration)
            {
                // Evicted while its AUTH ran: told so in place of the AUTH's answer, and nothing
                // after it runs (a PUT pipelined behind the AUTH used to commit unanswered).
                evict()
                return
            }
            apply(update, context)
        }
        let offset = sequence - firstSlot
        let index = slots.index(slots.startIndex, offsetBy: offset)
        // One copy of the slot: each subscript read copied all of it (a value-witness call).
        let slot = slots[index]
        let version = reply.update?.protocolVersion ?? slot.version
        record(reply.value, label: slot.label, started: slot.started, context)
        if offset == 0 && !reply.close {
            // The next reply due: straight into the outgoing buffer.
            slots.removeFirst()
            firstSlot += 1
            writeOut(reply.value, version: version, context)
            writeReady(context)
            return
        }
        var buffer = context.channel.allocator.buffer(capacity: 64)
        reply.value.encode(into: &buffer, version: version)
        slots[index].reply = buffer
        slots[index].close = reply.close
        if offset > 0 {
            slots[index].held = true
            heldBytes += buffer.readableBytes
            if heldBytes > currentOutputLimit {
                closeForLimit("replies waiting behind a slower command exceed the output limit", context)
                return
            }
        }
        writeReady(context)
    }

    private func writeReady(_ context: ChannelHandlerContext) {
        while let head = slots.first, var bytes = head.reply {
            slots.removeFirst()
            if head.held { heldBytes -= bytes.readableBytes }
            firstSlot += 1
            if outgoing == nil {
                outgoing = bytes
            } else {
                outgoing!.writeBuffer(&bytes)
            }
            if head.close {
                closing = true
                let last = outgoing!
                outgoing = nil
                writeThenClose(last, context, grace: .seconds(30))
                return
            }
        }
        if !batching { flushIfNeeded() }
        startBarrierIfFirst(context)
        // Requests already read may have waited for room (at most `maximumInFlight` at once)
        // or behind a barrier. A half-closed connection (the server draining) closes only once
        // they too are answered: `process` closes it when it is done, and so does this when
        // nothing is left to parse.
        if processing {
            resumeReadingIfAllowed(context)
        } else if (input?.readableBytes ?? 0) > 0 {
            process(context)
        } else {
            closeIfDone(context)
            resumeReadingIfAllowed(context)
        }
    }

    fileprivate func flushIfNeeded() {
        guard let bytes = outgoing, let context else { return }
        outgoing = nil
        context.writeAndFlush(wrapOutboundOut(bytes), promise: nil)
    }

    /// Writes a last reply and closes. The close does not wait longer than `grace`: on a TLS
    /// connection whose client never finished its handshake the write can never complete, and
    /// a client that stopped reading must not keep its connection by that.
    private func writeThenClose(
        _ buffer: ByteBuffer, _ context: ChannelHandlerContext, grace: TimeAmount = .seconds(1)
    ) {
        context.writeAndFlush(wrapOutboundOut(buffer)).assumeIsolated().whenComplete { _ in
            context.close(promise: nil)
        }
        context.eventLoop.assumeIsolated().scheduleTask(in: grace) {
            if context.channel.isActive { context.close(promise: nil) }
        }
    }

    private func closeIfDone(_ context: ChannelHandlerContext) {
        // Input left for the next round is still to be answered: that round closes, if due.
        guard inputClosed, slots.isEmpty, !barrierRunning, !closing, !resumeScheduled else { return }
        closing = true
        flushIfNeeded()
        var last = context.channel.allocator.buffer(capacity: 0)
        // The replies before the error and the error itself get as long to be read as those
        // before a half-close: with 1 s, a client that paused before reading lost replies to
        // commands that had run (a PUT committed, its `:1` never sent; found by an outside
        // attack). What waits is bounded by the output limit.
        if let protocolFailure {
            RESPValue.error("ERR \(protocolFailure)").encode(into: &last, version: session.protocolVersion)
        }
        writeThenClose(last, context, grace: .seconds(30))
    }

    private func apply(_ update: SessionUpdate, _ context: ChannelHandlerContext) {
        let wasAuthenticated = session.isAuthenticated
        update.apply(to: &session)
        registration?.info.update(
            client: session.client, role: session.binding?.roleName, name: session.connectionName,
            resp: session.protocolVersion)
        if !wasAuthenticated && session.isAuthenticated {
            logger.info(
                "connection authenticated",
                metadata: ["connection": "\(session.id)", "client": "\(session.client ?? "-")"])
            authDeadline?.cancel()
            authDeadline = nil
            setOutputLimit(limits.outputBytes, context)
        } else if wasAuthenticated && !session.isAuthenticated {
            // Revoked or changed under it: the connection must authenticate again in time.
            armAuthDeadline(context)
        }
    }

    // MARK: Limits and deadlines

    private var currentOutputLimit: Int { session.isAuthenticated ? limits.outputBytes : limits.anonymousOutputBytes }

    private func setOutputLimit(_ bytes: Int, _ context: ChannelHandlerContext) {
        let mark = ChannelOptions.Types.WriteBufferWaterMark(low: bytes / 2, high: bytes)
        try? context.channel.syncOptions?.setOption(ChannelOptions.writeBufferWaterMark, value: mark)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if !context.channel.isWritable && !closing {
            closeForLimit(
                "output buffer above \(currentOutputLimit) bytes (the client is not reading its replies)", context)
        }
        context.fireChannelWritabilityChanged()
    }

    private func closeForLimit(_ reason: String, _ context: ChannelHandlerContext) {
        if let heldBack = dispatcher.connectionEventLog.admit() {
            logger.warning(
                "closing connection: \(reason)",
                metadata: LogThrottle.metadata(
                    ["connection": "\(session.id)", "client": "\(session.client ?? "-")"], heldBack: heldBack))
        }
        closing = true
        context.close(promise: nil)
    }

    /// Nothing after a protocol error is read or run. Every command read before it is answered
    /// first, in order, then the error, and the connection closes, as Redis does: a pipelined
    /// PUT still waiting on its commit when the bad bytes arrived used to lose its reply (the
    /// write committed, and its client read the protocol error in its place).
    private func protocolError(_ error: RESPProtocolError, _ context: ChannelHandlerContext) {
        guard protocolFailure == nil else { return }
        logger.info("closing connection after a protocol error", metadata: ["connection": "\(session.id)"])
        protocolFailure = error
        inputClosed = true
        input = nil
        requestDeadline?.cancel()
        requestDeadline = nil
        closeIfDone(context)
    }

    private func armAuthDeadline(_ context: ChannelHandlerContext) {
        authDeadline?.cancel()
        authDeadline = context.eventLoop.assumeIsolated().scheduleTask(in: limits.authTimeout) { [self] in
            guard !session.isAuthenticated, !closing, let context = self.context else { return }
            if barrierRunning && authDeadlineSuspended {
                // An AUTH is being checked right now: its answer decides.
                armAuthDeadline(context)
                return
            }
            logger.info("closing connection: no AUTH within the deadline", metadata: ["connection": "\(session.id)"])
            closing = true
            var buffer = context.channel.allocator.buffer(capacity: 64)
            RESPValue.error(
                "ERR authentication timeout: AUTH within \(limits.authTimeout.nanoseconds / 1_000_000_000) s"
            )
            .encode(into: &buffer, version: session.protocolVersion)
            writeThenClose(buffer, context)
        }
    }

    /// A request that has started arriving must finish within `requestTimeout`, so a client
    /// cannot hold a partial request (and its buffer) open at a trickle.
    private func updateRequestDeadline(_ context: ChannelHandlerContext) {
        // Input left for the next round (`scheduleResume`) is being served, not waited on.
        let partial = !resumeScheduled && ((input?.readableBytes ?? 0) > 0 || !parser.isIdle)
        guard partial, !closing, protocolFailure == nil, !barrierRunning, pendingBarrier == nil else {
            requestDeadline?.cancel()
            requestDeadline = nil
            return
        }
        guard requestDeadline == nil else { return }
        requestDeadline = context.eventLoop.assumeIsolated().scheduleTask(in: limits.requestTimeout) { [self] in
            requestDeadline = nil
            guard let context = self.context, !closing else { return }
            let stillPartial = (input?.readableBytes ?? 0) > 0 || !parser.isIdle
            guard stillPartial, !barrierRunning, pendingBarrier == nil else { return }
            protocolError(
                RESPProtocolError(
                    "request not completed within \(limits.requestTimeout.nanoseconds / 1_000_000_000) s"), context)
        }
    }

    /// The peer's uid on a Unix socket (SO_PEERCRED), which failed AUTHs are counted by.
    private static func peerUID(_ channel: any Channel) -> UInt32? {
        #if os(Linux)
            guard let provider = channel as? any SocketOptionProvider else { return nil }
            // SO_PEERCRED (17 on Linux) fills a `struct ucred { pid_t pid; uid_t uid; gid_t gid; }`,
            // which Swift's Glibc module does not export; this struct has the same layout.
            let future: EventLoopFuture<PeerCredentials> = provider.unsafeGetSocketOption(
                level: SocketOptionLevel(SOL_SOCKET), name: SocketOptionName(17))
            // On the channel's own event loop the option is read at once: the future is complete.
            var uid: UInt32?
            future.assumeIsolated().whenSuccess { uid = $0.uid }
            return uid
        #else
            return nil
        #endif
    }
}

/// Per-connection bounds (see `ConnectionHandler`); every one has a default.
public struct ConnectionLimits: Sendable {
    /// Replies buffered for a client that has not authenticated.
    public var anonymousOutputBytes = 64 * 1024
    /// Replies buffered for an authenticated client before it is disconnected (`--client-output-limit`).
    public var outputBytes = 64 * 1024 * 1024
    /// Requests read but not yet answered; past it the connection stops reading.
    public var maximumInFlight = 1024
    /// How long a connection may stay unauthenticated (`--auth-timeout`); PING does not extend it.
    public var authTimeout: TimeAmount = .seconds(10)
    /// How long one request may take to arrive once it has begun.
    public var requestTimeout: TimeAmount = .seconds(30)
    public var anonymous = RESPLimits.anonymous
    public var authenticated = RESPLimits.authenticated

    public init() {}
}

/// Completes a connection's vault calls on its event loop: all of one commit batch's calls
/// together, with one flush at the end, inside the one task the batch gives each event loop.
final class ConnectionExecutor: CompletionExecutor {
    private let handler: NIOLoopBound<ConnectionHandler>
    let hop: any CompletionHop

    init(handler: NIOLoopBound<ConnectionHandler>) {
        self.handler = handler
        self.hop = EventLoopHop.of(handler.eventLoop)
    }

    func complete(_ work: () -> Void) {
        let connection = handler.value
        connection.beginTurn()
        let outer = connection.batching
        connection.batching = true
        work()
        connection.batching = outer
        if !outer { connection.flushIfNeeded() }
    }
}

/// One per event loop: the commit batch hands all of that loop's completions over in one task.
final class EventLoopHop: CompletionHop {
    let eventLoop: any EventLoop

    private init(_ eventLoop: any EventLoop) { self.eventLoop = eventLoop }

    func execute(_ work: @escaping @Sendable () -> Void) { eventLoop.execute(work) }

    /// Event loops live as long as the server's group, so the table is bounded by their number
    /// (an `EmbeddedEventLoop` per handler test adds one entry each, freed when the loop is).
    private static let hops = Mutex<[ObjectIdentifier: Weak]>([:])

    private struct Weak {
        weak var hop: EventLoopHop?
    }

    static func of(_ eventLoop: any EventLoop) -> EventLoopHop {
        hops.withLock { hops in
            let key = ObjectIdentifier(eventLoop)
            if let hop = hops[key]?.hop, hop.eventLoop === eventLoop { return hop }
            hops = hops.filter { $0.value.hop != nil }
            let hop = EventLoopHop(eventLoop)
            hops[key] = Weak(hop: hop)
            return hop
        }
    }
}

/// The layout of Linux's `struct ucred`, for SO_PEERCRED.
struct PeerCredentials: Sendable {
    var pid: Int32 = 0
    var uid: UInt32 = 0
    var gid: UInt32 = 0
}

/// First in every connection's pipeline: admits the connection to `ConnectionHandler` the
/// moment it is active, before a TLS handshake can delay the event. Removes itself.
final class AdmissionHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny

    func channelActive(context: ChannelHandlerContext) {
        (try? context.pipeline.syncOperations.handler(type: ConnectionHandler.self))?.admit()
        context.fireChannelActive()
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
    }
}
