import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// Writer threads that PUT a unique value to a fresh subject again and again through the nodes'
/// sockets until stopped, and record every reply with its timing: the fault tests check that
/// every acknowledged write (`:1`) survives, that none is acknowledged while the database is
/// down, and that failures arrive as prompt errors, not hangs.
final class WriteLoad: Sendable {
    struct Call: Sendable {
        let reply: String
        let started: Date
        let ended: Date
    }

    private struct State: Sendable {
        var acknowledged: [String: (value: String, call: Call)] = [:]
        var failures: [Call] = []
        var longestCall: TimeInterval = 0
        /// Writers whose PUT has been sent and not yet answered.
        var inFlight = 0
        var running = 0
    }

    private let state = Mutex(State())
    private let stopping = Atomic<Bool>(false)
    private let sockets: [String]
    private let client: String
    private let secret: String
    private let writersPerSocket: Int
    private let tag: String

    /// `tag` prefixes every subject, so loads started one after another never reuse one.
    init(sockets: [String], client: String, secret: String, writersPerSocket: Int, tag: String) {
        self.sockets = sockets
        self.client = client
        self.secret = secret
        self.writersPerSocket = writersPerSocket
        self.tag = tag
    }

    func start() {
        for (node, socket) in sockets.enumerated() {
            for writer in 0..<writersPerSocket {
                state.withLock { $0.running += 1 }
                Thread { [self] in
                    write(socket: socket, prefix: "\(tag)-n\(node)-w\(writer)")
                    state.withLock { $0.running -= 1 }
                }.start()
            }
        }
    }

    private func write(socket: String, prefix: String) {
        var connection: RESPClient?
        var n = 0
        while !stopping.load(ordering: .relaxed) {
            if connection == nil {
                // A long receive timeout, so that a hang shows up as a long call, not a retry.
                guard let fresh = try? RESPClient(unixPath: socket, timeoutSeconds: 60) else {
                    usleep(20_000)
                    continue
                }
                let reply = timed(fresh) { try $0.call("AUTH", client, secret) }
                guard reply.reply == "+OK" else {
                    state.withLock { $0.failures.append(reply) }
                    usleep(20_000)
                    continue
                }
                connection = fresh
            }
            guard let current = connection else { continue }
            let subject = "\(prefix)-\(n)"
            let value = "Value \(prefix) \(n)"
            n += 1
            state.withLock { $0.inFlight += 1 }
            let call = timed(current) { try $0.call("PUT", subject, "name", value) }
            state.withLock { state in
                state.inFlight -= 1
                if call.reply == ":1" {
                    state.acknowledged[subject] = (value, call)
                } else {
                    state.failures.append(call)
                }
            }
            if !call.reply.hasPrefix(":") && !call.reply.hasPrefix("-") { connection = nil }
        }
    }

    private func timed(_ connection: RESPClient, _ body: (RESPClient) throws -> RESPClient.Reply) -> Call {
        let started = Date()
        let reply = (try? body(connection)) ?? .closed
        let ended = Date()
        state.withLock { $0.longestCall = max($0.longestCall, ended.timeIntervalSince(started)) }
        return Call(reply: reply.description, started: started, ended: ended)
    }

    /// Stops the writers and waits (with a deadline) until each has returned; false if one has
    /// not, which means a call still hangs.
    @discardableResult
    func stop(within seconds: TimeInterval = 70) -> Bool {
        stopping.store(true, ordering: .relaxed)
        let deadline = Date().addingTimeInterval(seconds)
        while state.withLock({ $0.running }) > 0 {
            if Date() > deadline { return false }
            usleep(10_000)
        }
        return true
    }

    /// Subject → value of every acknowledged write.
    var acknowledged: [String: String] { state.withLock { $0.acknowledged.mapValues(\.value) } }
    var acknowledgedCalls: [Call] { state.withLock { $0.acknowledged.values.map(\.call) } }
    var acknowledgedCount: Int { state.withLock { $0.acknowledged.count } }
    var failures: [Call] { state.withLock { $0.failures } }
    var longestCall: TimeInterval { state.withLock { $0.longestCall } }
    var inFlight: Int { state.withLock { $0.inFlight } }

    /// Subjects among `expected` whose `name` does not read back exactly through `node`, each
    /// with what it read instead.
    static func mismatches(_ expected: [String: String], through reader: RESPClient) throws -> [String] {
        let subjects = expected.keys.sorted()
        let replies = try reader.pipeline(subjects.map { ["GET", $0, "name"] })
        return zip(subjects, replies).compactMap { subject, reply in
            reply == .array([.bulk(expected[subject]!)]) ? nil : "\(subject): \(reply)"
        }
    }
}

extension RESPClient {
    /// Sends the commands pipelined, `chunk` at a time, and returns their replies in order.
    func pipeline(_ commands: [[String]], chunk: Int = 500) throws -> [Reply] {
        var replies: [Reply] = []
        replies.reserveCapacity(commands.count)
        var start = 0
        while start < commands.count {
            let part = commands[start..<min(start + chunk, commands.count)]
            try send(part.flatMap { RESPClient.encode($0.map { Array($0.utf8) }) })
            for _ in part { replies.append(try read()) }
            start += part.count
        }
        return replies
    }

    /// `KEYS.STATUS` as a dictionary of its keys (RESP2's flat array of pairs).
    func keyStatus() throws -> [String: Reply] {
        guard case .array(let flat) = try call("KEYS.STATUS"), flat.count % 2 == 0 else {
            throw TestFailure("bad KEYS.STATUS reply")
        }
        var status: [String: Reply] = [:]
        for index in stride(from: 0, to: flat.count, by: 2) {
            guard case .bulk(let key) = flat[index] else { throw TestFailure("bad KEYS.STATUS key \(flat[index])") }
            status[key] = flat[index + 1]
        }
        return status
    }

    /// One integer of `KEYS.STATUS` (`rewrap.pending`, `shred.awaiting_retirement`, …).
    func keyStatus(_ key: String) throws -> Int {
        guard case .integer(let value)? = try keyStatus()[key] else { throw TestFailure("KEYS.STATUS lacks \(key)") }
        return value
    }
}

extension TestServer {
    /// Another node of this PostgreSQL vault: the same database, the same key directory.
    func anotherNode(extraArguments: [String] = []) throws -> TestServer {
        guard let store else { throw TestFailure("only a PostgreSQL vault has other nodes") }
        return try TestServer(extraArguments: extraArguments, root: root, adminSecret: adminSecret, store: store)
    }

    /// The PostgreSQL database this vault lives in.
    var databaseName: String {
        get throws {
            guard let store, let path = URLComponents(string: store)?.path, path.count > 1 else {
                throw TestFailure("no PostgreSQL database in \(store ?? "a SQLite vault")")
            }
            return String(path.dropFirst())
        }
    }
}

/// Polls `condition` until it holds or `seconds` pass; returns whether it held.
func eventually(within seconds: TimeInterval, every interval: useconds_t = 50_000, _ condition: () throws -> Bool)
    rethrows -> Bool
{
    let deadline = Date().addingTimeInterval(seconds)
    while true {
        if try condition() { return true }
        if Date() > deadline { return false }
        usleep(interval)
    }
}
