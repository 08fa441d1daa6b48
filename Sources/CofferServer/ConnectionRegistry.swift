import NIOCore
import Synchronization

/// The open connections: the client caps, and shutdown, which stops each one reading while it
/// answers what it has read.
///
/// Connections that have not authenticated (TLS ones still in their handshake included) have a
/// cap of their own, below the total, so that idle anonymous connections can never take the
/// slots authenticated clients need. At that cap, or at the total one while any connection is
/// unauthenticated, a new connection is admitted and the oldest unauthenticated one is closed: refusing the new one instead let anyone who held the cap's
/// worth of silent connections (reconnecting as the AUTH deadline closed them) keep every new
/// client from reaching AUTH. Evicted, a legitimate client's connection would need as many newer
/// ones to arrive in the moment its AUTH takes.
final class ConnectionRegistry: Sendable {
    struct Registration: Sendable, Hashable {
        let id: Int
        fileprivate let key: ObjectIdentifier
        /// What `CLIENT LIST` shows of the connection; updated by its handler.
        let info: ConnectionInfo

        static func == (a: Registration, b: Registration) -> Bool { a.key == b.key }
        func hash(into hasher: inout Hasher) { hasher.combine(key) }
    }

    enum Admission: Sendable {
        case admitted(Registration)
        case refused(String)
    }

    private struct Entry {
        let channel: any Channel
        var authenticated: Bool
        let info: ConnectionInfo
        /// Closes the connection, telling it why, on its own event loop (`register`).
        let evict: (@Sendable () -> Void)?
    }

    private struct State {
        var open: [ObjectIdentifier: Entry] = [:]
        var anonymous = 0
        var nextID = 0
        var draining = false
    }

    private let state = Mutex(State())
    let maximumClients: Int
    let maximumAnonymous: Int
    let stats: ServerStats

    /// Each event loop's `ResumeQueue`, made on first use.
    private let resumeQueues = Mutex<[ObjectIdentifier: NIOLoopBound<ResumeQueue>]>([:])

    /// The `ResumeQueue` of `loop` (once per connection that needs it).
    func resumeQueue(for loop: any EventLoop) -> NIOLoopBound<ResumeQueue> {
        resumeQueues.withLock { queues in
            if let queue = queues[ObjectIdentifier(loop)] { return queue }
            // A server has a fixed set of loops; only tests make thousands.
            if queues.count >= 1024 { queues.removeAll() }
            let queue = NIOLoopBound(ResumeQueue(loop: loop), eventLoop: loop)
            queues[ObjectIdentifier(loop)] = queue
            return queue
        }
    }

    init(maximumClients: Int, maximumAnonymous: Int, stats: ServerStats = ServerStats()) {
        self.maximumClients = maximumClients
        self.maximumAnonymous = maximumAnonymous
        self.stats = stats
    }

    /// Registers a new (anonymous) connection, or says why it is refused. At either cap the
    /// oldest unauthenticated connection not entering a key share makes room: it is forgotten here at once, and
    /// `evict` of its registration (or, without one, a plain close) runs on its event loop.
    func register(
        _ channel: any Channel, address: String = "unix", evict: (@Sendable () -> Void)? = nil
    ) -> Admission {
        let (admission, evicted) = state.withLock { state -> (Admission, (any Channel, (@Sendable () -> Void)?)?) in
            if state.draining { return (.refused("server is shutting down"), nil) }
            var evicted: (any Channel, (@Sendable () -> Void)?)?
            // At either cap an unauthenticated connection makes room; only authenticated ones
            // fill the server (else the total cap, once authenticated clients took all but the
            // anonymous cap's worth of it, let silent connections lock newcomers out again).
            let full = state.open.count >= maximumClients
            if full || state.anonymous >= maximumAnonymous {
                guard
                    let oldest = state.open.lazy.filter({
                        !$0.value.authenticated && !$0.value.info.enteringShare.load(ordering: .acquiring)
                    }).min(by: {
                        $0.value.info.id < $1.value.info.id
                    })
                else {
                    return (
                        .refused(
                            full ? "max number of clients reached" : "max number of unauthenticated clients reached"),
                        nil
                    )
                }
                state.open.removeValue(forKey: oldest.key)
                state.anonymous -= 1
                evicted = (oldest.value.channel, oldest.value.evict)
            }
            state.nextID += 1
            let key = ObjectIdentifier(channel)
            let info = ConnectionInfo(id: state.nextID, address: address)
            state.open[key] = Entry(channel: channel, authenticated: false, info: info, evict: evict)
            state.anonymous += 1
            return (.admitted(Registration(id: state.nextID, key: key, info: info)), evicted)
        }
        if let (victim, evict) = evicted {
            stats.connectionEvicted()
            if let evict {
                victim.eventLoop.execute(evict)
            } else {
                victim.close(promise: nil)
            }
        }
        switch admission {
        case .admitted: stats.connectionOpened(open: count)
        case .refused: stats.connectionRefused()
        }
        return admission
    }

    /// The open connections, oldest first, for `CLIENT LIST`.
    var connections: [ConnectionInfo] {
        state.withLock { $0.open.values.map(\.info) }.sorted { $0.id < $1.id }
    }

    /// The connection has authenticated: it no longer counts against the anonymous cap, and is
    /// never evicted. False if it was evicted already (its AUTH ran while a newer connection
    /// took its place): the eviction stands, and the caller must not serve it as authenticated.
    @discardableResult
    func authenticated(_ registration: Registration) -> Bool {
        state.withLock { state in
            guard let entry = state.open[registration.key] else { return false }
            guard !entry.authenticated else { return true }
            state.open[registration.key]?.authenticated = true
            state.anonymous -= 1
            return true
        }
    }

    func unregister(_ registration: Registration) {
        state.withLock { state in
            guard let entry = state.open.removeValue(forKey: registration.key) else { return }
            if !entry.authenticated { state.anonymous -= 1 }
        }
        stats.connectionClosed(open: count)
    }

    var count: Int { state.withLock { $0.open.count } }

    /// Stops every connection from reading further requests; each finishes what it has read,
    /// replies, and then closes.
    func drain() {
        let channels = state.withLock { state -> [any Channel] in
            state.draining = true
            return state.open.values.map(\.channel)
        }
        for channel in channels {
            channel.close(mode: .input).whenFailure { _ in channel.close(promise: nil) }
        }
    }

    /// Waits (polling) until every connection has closed, or `timeout` has passed.
    func waitUntilEmpty(timeout: Duration) async {
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        while count > 0 && clock.now < deadline {
            try? await Task.sleep(for: .milliseconds(20))
        }
    }
}

/// What `CLIENT LIST` shows of one connection: never a secret, never a value. The handler
/// (on its event loop) writes it; `CLIENT LIST` (on a worker thread) reads it.
final class ConnectionInfo: Sendable {
    let id: Int
    /// `IP:PORT`, or `unix` (a Unix socket peer has no address of its own).
    let address: String
    /// `NIODeadline` uptime nanoseconds: when the connection opened, and when its latest
    /// command was read (the start of the handler's event-loop turn that read it, so this costs
    /// one store).
    let opened = NIODeadline.now().uptimeNanoseconds
    private let lastCommand = Atomic<UInt64>(0)
    private let details = Mutex<(client: String?, role: String?, name: String?, resp: Int)>((nil, nil, nil, 2))

    init(id: Int, address: String) {
        self.id = id
        self.address = address
    }

    /// True while the connection enters a key share (UNSEAL): the registry does not evict it
    /// then. The share that completes the threshold opens the vault, which takes milliseconds,
    /// and evicting the connection meanwhile told its holder the share failed when it had
    /// unsealed the vault (found by an outside attack on 2026-12-07). Strangers' share entries
    /// are limited per peer (10 a minute), so this cannot hold slots for long.
    let enteringShare = Atomic<Bool>(false)

    /// One relaxed store per command.
    func commandStarted(at uptimeNanoseconds: UInt64) {
        lastCommand.store(uptimeNanoseconds, ordering: .relaxed)
    }

    func update(client: String?, role: String?, name: String?, resp: Int) {
        details.withLock { $0 = (client, role, name, resp) }
    }

    /// Redis's `CLIENT LIST` line: id, addr, name, age, idle, flags, db, user, role, resp.
    /// A connection name is shown only if it is a plain token (Redis refuses spaces in names;
    /// Coffer accepts any and shows such a name as `?`).
    func line(now: UInt64 = NIODeadline.now().uptimeNanoseconds) -> String {
        let (client, role, name, resp) = details.withLock { $0 }
        // A command read after `now` was taken counts as idle 0, not as a wrapped difference.
        let last = max(lastCommand.load(ordering: .relaxed), opened)
        let age = now > opened ? (now - opened) / 1_000_000_000 : 0
        let idle = now > last ? (now - last) / 1_000_000_000 : 0
        let shownName =
            name.map { n in
                n.count <= 64 && n.unicodeScalars.allSatisfy { $0.value > 0x20 && $0.value < 0x7f } ? n : "?"
            } ?? ""
        let addr = address == "unix" ? "/unix:0" : address
        return
            "id=\(id) addr=\(addr) name=\(shownName) age=\(age) idle=\(idle) flags=N db=0 user=\(client ?? "-") role=\(role ?? "-") resp=\(resp)"
    }
}
