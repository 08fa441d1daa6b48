import CofferCore
import CofferProtocol
import Foundation
import Logging
import NIOCore
import NIOEmbedded
import NIOPosix
import Synchronization
import Testing

@testable import CofferServer

/// The connection handler on an `EmbeddedChannel`: what it answers without the vault, how it
/// coalesces replies, and its deadlines (driven by the embedded loop's clock). Commands that
/// reach the vault complete on other threads and are covered by the end-to-end tests.
@Suite struct ConnectionHandlerTests {
    final class Fixture {
        let root: String
        let vault: Vault
        let pool = NIOThreadPool(numberOfThreads: 1)
        let registry: ConnectionRegistry
        let channel: EmbeddedChannel

        init(limits: ConnectionLimits = ConnectionLimits(), maximumAnonymous: Int = 4) throws {
            root = FileManager.default.temporaryDirectory.appendingPathComponent("coffer-handler-\(UUID())").path
            let configuration = VaultConfiguration(dataDirectory: root + "/data", keyDirectory: root + "/keys")
            _ = try Vault.initialize(configuration)
            vault = try Vault.open(configuration)
            pool.start()
            registry = ConnectionRegistry(maximumClients: 8, maximumAnonymous: maximumAnonymous)
            let dispatcher = CommandDispatcher(
                vault: vault, threadPool: pool, longPool: pool, logger: Logger(label: "test"))
            channel = EmbeddedChannel(
                handler: ConnectionHandler(
                    dispatcher: dispatcher, registry: registry, limits: limits, logger: Logger(label: "test"),
                    secured: false))
            try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 4000)).wait()
        }

        deinit {
            _ = try? channel.finish()
            try? pool.syncShutdownGracefully()
            try? vault.close()
            try? FileManager.default.removeItem(atPath: root)
        }

        func send(_ text: String) throws {
            try channel.writeInbound(ByteBuffer(string: text))
        }

        /// Everything written so far, as one string.
        func output() throws -> String {
            var text = ""
            while let buffer = try channel.readOutbound(as: ByteBuffer.self) {
                text += String(buffer: buffer)
            }
            return text
        }
    }

    @Test func pipelinedLocalCommandsAnswerInOrderInOneWrite() throws {
        let f = try Fixture()
        try f.send("PING\r\nPING hi\r\n*1\r\n$4\r\nPING\r\nGET s name\r\n")
        var writes: [String] = []
        while let buffer = try f.channel.readOutbound(as: ByteBuffer.self) { writes.append(String(buffer: buffer)) }
        // One read burst: one write, replies in order; data commands before AUTH are refused.
        #expect(writes == ["+PONG\r\n$2\r\nhi\r\n+PONG\r\n-NOAUTH Authentication required.\r\n"])
    }

    /// Before AUTH, a malformed AUTH or HELLO gets its real error, as in Redis; anything else
    /// learns only that AUTH is needed.
    @Test func aMalformedAuthOrHelloBeforeAuthIsToldWhatIsWrong() throws {
        let f = try Fixture()
        try f.send("HELLO 03\r\nAUTH x\r\nHELLO 3 AUTH a\r\nNOSUCH x\r\nGET\r\n")
        #expect(
            try f.output()
                == "-ERR Protocol version is not an integer or out of range\r\n"
                + "-ERR wrong number of arguments for 'auth' command\r\n"
                + "-ERR Syntax error in HELLO option 'AUTH'\r\n"
                + "-NOAUTH Authentication required.\r\n-NOAUTH Authentication required.\r\n")
    }

    /// One read of many requests is parsed a share at a time: the rest waits for a task queued
    /// behind the other connections' events (an outside attack stalled every client for 121 ms
    /// with one 1 MiB write of blank lines before AUTH), and is then answered in full, in order.
    @Test func oneReadIsParsedAShareAtATime() throws {
        let f = try Fixture()
        let share = ConnectionHandler.requestsPerTurn
        try f.send(String(repeating: "\n", count: share) + String(repeating: "PING\r\n", count: 2 * share))
        // This turn's share went to the blank lines: nothing answered yet.
        #expect(try f.output() == "")
        // The rest, once the loop has served the others (its clock moved past the pause).
        f.channel.embeddedEventLoop.advanceTime(by: .milliseconds(1))
        #expect(try f.output() == String(repeating: "+PONG\r\n", count: 2 * share))
    }

    @Test func eachPipelinedCommandIsCountedUnderItsOwnName() throws {
        let f = try Fixture()
        // The handler remembers the last command's label: alternating names must not inherit it.
        // (Before AUTH: PING and HELLO run; GET and an unknown command are refused.)
        try f.send("PING\r\nHELLO 2\r\nHELLO 2\r\nPING\r\nGET s name\r\nPING\r\nNOSUCH\r\n")
        _ = try f.output()
        let stats = f.registry.stats
        #expect(stats.calls(label: CommandTable.labelIndex(ofName: "PING")) == 3)
        #expect(stats.calls(label: CommandTable.labelIndex(ofName: "HELLO")) == 2)
        #expect(stats.count(label: CommandTable.labelIndex(ofName: "GET"), .denied) == 1)
        #expect(stats.calls(label: CommandTable.labels.count - 1) == 1)
        #expect(stats.totalCommands == 7)
    }

    @Test func aRequestSplitAnywhereGivesTheSameReplies() throws {
        let wire = "*2\r\n$4\r\nPING\r\n$5\r\nhello\r\nPING\r\n"
        for cut in 1..<wire.utf8.count {
            let f = try Fixture()
            let bytes = Array(wire.utf8)
            try f.channel.writeInbound(ByteBuffer(bytes: bytes[..<cut]))
            try f.channel.writeInbound(ByteBuffer(bytes: bytes[cut...]))
            #expect(try f.output() == "$5\r\nhello\r\n+PONG\r\n", "cut at \(cut)")
        }
    }

    @Test func anUnauthenticatedConnectionIsClosedAtTheAuthDeadlineEvenIfItPings() throws {
        var limits = ConnectionLimits()
        limits.authTimeout = .seconds(10)
        let f = try Fixture(limits: limits)
        for _ in 0..<4 {
            f.channel.embeddedEventLoop.advanceTime(by: .seconds(2))
            try f.send("PING\r\n")
            #expect(try f.output() == "+PONG\r\n")
        }
        f.channel.embeddedEventLoop.advanceTime(by: .seconds(2))
        #expect(try f.output() == "-ERR authentication timeout: AUTH within 10 s\r\n")
        #expect(!f.channel.isActive)
    }

    @Test func aRequestThatStopsHalfwayIsClosedAtTheRequestDeadline() throws {
        var limits = ConnectionLimits()
        limits.requestTimeout = .seconds(5)
        limits.authTimeout = .seconds(60)
        let f = try Fixture(limits: limits)
        try f.send("*2\r\n$4\r\nPING\r\n$5\r\nhel")
        f.channel.embeddedEventLoop.advanceTime(by: .seconds(4))
        #expect(f.channel.isActive)
        f.channel.embeddedEventLoop.advanceTime(by: .seconds(2))
        #expect(try f.output() == "-ERR Protocol error: request not completed within 5 s\r\n")
        #expect(!f.channel.isActive)
    }

    @Test func aProtocolErrorAnswersWhatCameBeforeThenCloses() throws {
        let f = try Fixture()
        try f.send("PING\r\n*1\r\n$-10\r\n")
        #expect(try f.output() == "+PONG\r\n-ERR Protocol error: invalid bulk length\r\n")
        #expect(!f.channel.isActive)
    }

    /// A browser made to POST to a loopback port sends its body as lines; the first of the
    /// request line or a `Host:` header closes the connection before any line after it is read.
    @Test(arguments: [
        ("POST / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\nAUTH admin x\r\nPING\r\n", ""),
        ("GET / HTTP/1.1\r\nhost: localhost\r\n\r\nPING\r\n", "-NOAUTH Authentication required.\r\n"),
        ("PING\r\npost /x HTTP/1.0\r\nPING\r\n", "+PONG\r\n"),
    ])
    func anHTTPRequestClosesTheConnection(wire: String, before: String) throws {
        let f = try Fixture()
        try f.send(wire)
        #expect(try f.output() == before + "-ERR HTTP requests are not served here\r\n")
        #expect(!f.channel.isActive)
    }

    @Test func postAndHostAreCrossProtocolOnlyAsWholeNames() {
        for word in ["POST", "post", "Host:", "HOST:"] { #expect(CommandDispatcher.isHTTPLine(RESPRequest(word))) }
        for word in ["POSTS", "HOST", "PING", "PUT", "Host:x", "P0ST"] {
            #expect(!CommandDispatcher.isHTTPLine(RESPRequest(word)), "\(word)")
        }
    }

    @Test func quitAnswersAndCloses() throws {
        let f = try Fixture()
        try f.send("QUIT\r\nPING\r\n")
        #expect(try f.output() == "+OK\r\n")
        #expect(!f.channel.isActive)
    }

    @Test func helloSwitchesTheProtocolForLaterRepliesOnly() throws {
        let f = try Fixture()
        try f.send("HELLO 3\r\nGET s name\r\n")
        let text = try f.output()
        #expect(text.hasPrefix("%7\r\n"))
        #expect(text.hasSuffix("-NOAUTH Authentication required.\r\n"))
    }
}

@Suite struct ConnectionRegistryTests {
    @Test func anonymousConnectionsHaveTheirOwnCapAndTheOldestMakesRoom() throws {
        let registry = ConnectionRegistry(maximumClients: 4, maximumAnonymous: 2)
        let channels = (0..<8).map { _ in EmbeddedChannel() }
        let evicted = Mutex<[Int]>([])
        func register(_ index: Int) -> ConnectionRegistry.Registration? {
            guard
                case .admitted(let registration) = registry.register(
                    channels[index], evict: { evicted.withLock { $0.append(index) } })
            else { return nil }
            // The eviction runs on the evicted connection's own loop.
            for channel in channels { channel.embeddedEventLoop.run() }
            return registration
        }
        guard let first = register(0), register(1) != nil else {
            Issue.record("the first two were refused")
            return
        }
        // A third anonymous connection is admitted, and the oldest unauthenticated one goes: a
        // cap full of silent connections must not keep new clients from reaching AUTH.
        guard let third = register(2) else {
            Issue.record("a third anonymous connection was refused")
            return
        }
        #expect(evicted.withLock { $0 } == [0])
        #expect(registry.connections.map(\.id) == [2, 3])
        #expect(registry.count == 2)
        // The evicted one's own close later changes nothing.
        registry.unregister(first)
        #expect(registry.count == 2)
        // Authenticated connections are never evicted, and do not count against the cap.
        registry.authenticated(third)
        guard register(3) != nil else {
            Issue.record("no room after an AUTH")
            return
        }
        #expect(evicted.withLock { $0 } == [0])
        guard let fifth = register(4) else {
            Issue.record("the total cap was reached early")
            return
        }
        #expect(evicted.withLock { $0 } == [0, 1])
        registry.authenticated(fifth)
        guard let sixth = register(5) else {
            Issue.record("the total cap was reached early")
            return
        }
        #expect(registry.count == 4)
        // At the total cap too an unauthenticated connection makes room, the oldest first.
        guard let seventh = register(6) else {
            Issue.record("a newcomer at the total cap was refused while an anonymous connection held a slot")
            return
        }
        #expect(evicted.withLock { $0 } == [0, 1, 3])
        #expect(registry.count == 4)
        // Only when authenticated clients fill it does the total cap refuse.
        #expect(registry.authenticated(sixth))
        #expect(registry.authenticated(seventh))
        guard case .refused(let total) = registry.register(channels[7]) else {
            Issue.record("a connection past a cap full of authenticated clients was admitted")
            return
        }
        #expect(total == "max number of clients reached")
        #expect(registry.count == 4)
        // An AUTH that completes after its connection was evicted is not let in.
        #expect(!registry.authenticated(first))
    }
}
