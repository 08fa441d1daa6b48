import CofferCore
import CofferProtocol
import Foundation
import Metrics
import NIOCore
import NIOPosix
import Prometheus
import Testing

@testable import CofferServer

/// The request-path counters, INFO's rendering of them, and the metrics endpoint, without a vault.
@Suite struct ServerStatsTests {
    @Test(arguments: [
        (RESPValue.simpleString("OK"), ServerStats.Outcome.ok, nil as String?),
        (.integer(3), .ok, nil),
        (.error("NOPERM role 'x' may not y"), .denied, "NOPERM"),
        (.error("NOAUTH Authentication required."), .denied, "NOAUTH"),
        (.error("WRONGPASS invalid client name or secret, or the client is locked"), .denied, "WRONGPASS"),
        (.error("INVALID unknown field 'x'"), .invalid, "INVALID"),
        (.error("ERR unknown command 'x', with args beginning with:"), .invalid, "ERR"),
        (.error("ERR internal error"), .failed, "ERR"),
        (.error("STORAGE database is full"), .failed, "STORAGE"),
        (.error("INTEGRITY tampered"), .failed, "INTEGRITY"),
    ])
    func outcomeAndErrorWordComeFromTheReply(reply: RESPValue, outcome: ServerStats.Outcome, word: String?) {
        let stats = ServerStats(factory: NOOPMetricsHandler.instance)
        let (got, gotWord) = stats.shard(for: Self.loops[0]).record(label: 0, nanoseconds: 1000, reply: reply)
        #expect(got == outcome)
        #expect(gotWord == word)
    }

    @Test func labelsComeFromTheTableAndEverythingElseIsOther() throws {
        let other = CommandTable.labels.count - 1
        #expect(CommandTable.labels[other] == "other")
        #expect(CommandTable.labels[CommandTable.labelIndex(ofName: "GET")] == "get")
        #expect(CommandTable.labels[CommandTable.labelIndex(ofName: "CLIENT.ADD")] == "client.add")
        #expect(CommandTable.labels[CommandTable.labelIndex(ofName: "CLIENT LIST")] == "client|list")
        #expect(CommandTable.labels[CommandTable.labelIndex(ofName: "CLIENT.LIST")] == "client.list")
        #expect(CommandTable.labels[CommandTable.labelIndex(ofName: "TOKENIZE")] == "tokenize")
        #expect(CommandTable.labelIndex(ofName: "FLUSHALL") == other)
        #expect(CommandTable.labelIndex(ofName: "cust-42") == other)
        let request = RESPRequest(arguments: [Array("get".utf8), Array("cust-42".utf8)])
        #expect(CommandTable.labels[CommandTable.labelIndex(ofRequest: request)] == "get")
        let hostile = RESPRequest(arguments: [Array("jane@example.com".utf8)])
        #expect(CommandTable.labelIndex(ofRequest: hostile) == other)
        // Every label is a valid Prometheus label value from a fixed alphabet.
        for label in CommandTable.labels {
            #expect(label.allSatisfy { $0.isLowercase || $0 == "." || $0 == "|" }, "\(label)")
        }
        #expect(Set(CommandTable.labels).count == CommandTable.labels.count)
    }

    /// Every command the parser accepts has an entry of its own: COMMAND DOCS describes it and
    /// its metrics carry its name, not `other`.
    static let everyCommand: [[String]] = [
        ["AUTH", "c", "s"], ["HELLO"], ["PING"], ["ECHO", "x"], ["QUIT"], ["WHOAMI"], ["PUT", "s", "name", "v"],
        ["GET", "s", "name"], ["EXPORT", "s"], ["DEL", "s", "name"], ["EXISTS", "s"], ["FIND", "email", "a@b.c"],
        ["SHRED", "s"], ["CLIENT.ADD", "n", "support"], ["CLIENT.LIST"], ["CLIENT.REVOKE", "n"],
        ["CLIENT.UNLOCK", "n"], ["KEYS.ROTATE"], ["KEYS.STATUS"], ["KEYS.RETIRE", "1"], ["REKEY", "s"],
        ["AUDIT.TAIL", "5"], ["AUDIT.VERIFY"], ["TOKENIZE", "s", "card.pan"], ["DETOKENIZE", "t"],
        ["TOKEN.REVOKE", "t"], ["CLIENT.PURPOSE", "billing"], ["SEAL.STATUS"], ["UNSEAL", "x"], ["UNSEAL", "RESET"],
        ["SEAL"], ["CLIENT", "SETNAME", "x"], ["CLIENT", "LIST"], ["COMMAND", "COUNT"], ["INFO"],
        ["CONFIG", "GET", "*"], ["SLOWLOG", "LEN"], ["LATENCY", "LATEST"], ["GET", "s", "name", "PURPOSE", "billing"],
    ]

    @Test(arguments: everyCommand)
    func everyCommandHasATableEntry(words: [String]) throws {
        let command = try CommandParser.parse(RESPRequest(words: words))
        #expect(
            CommandTable.labelIndex(ofName: command.name) != CommandTable.labels.count - 1, "\(command.name)")
    }

    /// Before AUTH only the handshake and the unseal ceremony; the core decides, by name.
    @Test(arguments: everyCommand)
    func onlyTheHandshakeAndTheUnsealComeBeforeAuth(words: [String]) throws {
        let command = try CommandParser.parse(RESPRequest(words: words))
        let expected = ["AUTH", "HELLO", "PING", "QUIT", "SEAL.STATUS", "UNSEAL"].contains(words[0])
        #expect(Policy.allowsUnauthenticated(command.name) == expected, "\(words)")
    }

    /// Stand-ins for event loops: the stats only use their identity.
    static let loopObjects = [LoopStandIn(), LoopStandIn(), LoopStandIn()]
    static let loops = loopObjects.map(ObjectIdentifier.init)

    @Test func percentilesAreTheBucketBoundsOfTheRecordedTimes() {
        let stats = ServerStats(factory: NOOPMetricsHandler.instance)
        let get = CommandTable.labelIndex(ofName: "GET")
        #expect(stats.percentile(0.5, label: get) == nil)
        // 98 calls of 3 µs (bucket ≤ 4 µs), 2 of 1000 µs (bucket ≤ 1024 µs).
        let shard = stats.shard(for: Self.loops[0])
        for _ in 0..<98 { shard.record(label: get, nanoseconds: 3_000, reply: .integer(1)) }
        for _ in 0..<2 { shard.record(label: get, nanoseconds: 1_000_000, reply: .integer(1)) }
        #expect(stats.percentile(0.5, label: get) == 4)
        #expect(stats.percentile(0.98, label: get) == 4)
        #expect(stats.percentile(0.99, label: get) == 1024)
        #expect(stats.calls(label: get) == 100)
        #expect(stats.microseconds(label: get) == 98 * 3 + 2 * 1000)
        #expect(stats.totalCommands == 100)
    }

    /// Each event loop counts in a shard of its own; every reader sees the sum of the shards.
    @Test func eachLoopCountsApartAndReadersAddThemUp() {
        let stats = ServerStats(factory: NOOPMetricsHandler.instance, shards: 2)
        let first = stats.shard(for: Self.loops[0])
        let second = stats.shard(for: Self.loops[1])
        #expect(first !== second)
        #expect(stats.shard(for: Self.loops[0]) === first)
        // More loops than shards share one.
        let third = stats.shard(for: Self.loops[2])
        #expect(third === first || third === second)
        let get = CommandTable.labelIndex(ofName: "GET")
        let put = CommandTable.labelIndex(ofName: "PUT")
        for _ in 0..<3 { first.record(label: get, nanoseconds: 3_000, reply: .integer(1)) }
        second.record(label: get, nanoseconds: 1_000_000, reply: .error("NOPERM role 'x' may not y"))
        second.record(label: put, nanoseconds: 5_000, reply: .error("STORAGE full"))
        #expect(first.calls(label: get) == 3)
        #expect(second.calls(label: get) == 1)
        #expect(stats.calls(label: get) == 4)
        #expect(stats.microseconds(label: get) == 3 * 3 + 1000)
        #expect(stats.count(label: get, .ok) == 3)
        #expect(stats.count(label: get, .denied) == 1)
        #expect(stats.count(label: put, .failed) == 1)
        #expect(stats.errors(ServerStats.Outcome.errorWords.firstIndex(of: "NOPERM")!) == 1)
        #expect(stats.errorReplies == 2)
        #expect(stats.totalCommands == 5)
        #expect(stats.percentile(0.75, label: get) == 4)
        #expect(stats.percentile(1.0, label: get) == 1024)
    }

    @Test func infoSelectsSectionsAsRedisDoes() {
        #expect(ServerMonitor.selected([]) == ["server", "clients", "stats", "errorstats", "coffer"])
        #expect(ServerMonitor.selected(["all"]).count == ServerMonitor.sections.count)
        #expect(ServerMonitor.selected(["commandstats"]) == ["commandstats"])
        #expect(ServerMonitor.selected(["default", "latencystats"]).contains("latencystats"))
        #expect(ServerMonitor.selected(["nonsense"]).isEmpty)
    }

    @Test func configGetMatchesRedisGlobs() {
        #expect(ServerMonitor.glob("*", matches: "maxclients"))
        #expect(ServerMonitor.glob("max*", matches: "maxclients"))
        #expect(ServerMonitor.glob("t?meout", matches: "timeout"))
        #expect(!ServerMonitor.glob("max", matches: "maxclients"))
        #expect(!ServerMonitor.glob(String(repeating: "*", count: 100_000), matches: "maxclients"))
    }

    @Test func everyCofferMetricGetsHelpText() {
        let registry = PrometheusCollectorRegistry()
        let factory = PrometheusMetricsFactory(registry: registry)
        let stats = ServerStats(factory: factory)
        stats.shard(for: Self.loops[0]).record(label: 0, nanoseconds: 1_000, reply: .simpleString("OK"))
        stats.connectionOpened(open: 1)
        var bytes: [UInt8] = []
        registry.emit(into: &bytes)
        let text = String(decoding: MetricsEndpoint.withHelp(bytes), as: UTF8.self)
        for line in text.split(separator: "\n") where line.hasPrefix("# TYPE ") {
            let name = line.split(separator: " ")[2]
            #expect(text.contains("# HELP \(name) "), "\(name) has no help")
        }
        #expect(text.contains("coffer_commands_total{command=\"auth\",outcome=\"ok\"} 1"))
    }

    @Test(arguments: [
        (MetricsEndpoint.Health.serving, 200, "serving\n"), (.sealed, 503, "sealed\n"), (.closing, 503, "closing\n"),
    ])
    func healthAnswersWhatTheServerIs(health: MetricsEndpoint.Health, code: Int, body: String) async throws {
        let endpoint = MetricsEndpoint(address: ListenAddress(host: "127.0.0.1", port: 0)) { Array("x 1\n".utf8) }
        let channel = try await endpoint.bind { health }
        let port = channel.localAddress?.port ?? 0
        defer { channel.close(promise: nil) }
        let (got, text) = try Self.get("http://127.0.0.1:\(port)/health")
        #expect(got == code)
        #expect(text == body)
        #expect(try Self.get("http://127.0.0.1:\(port)/metrics").1 == "x 1\n")
    }

    static func get(_ url: String) throws -> (Int, String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["curl", "-s", "-m", "10", "-w", "\n%{http_code}", url]
        let out = Pipe()
        process.standardOutput = out
        try process.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        var lines = String(decoding: data, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
        let code = Int(lines.popLast() ?? "") ?? 0
        return (code, lines.joined(separator: "\n"))
    }
}

/// An object whose identity stands for an event loop's.
final class LoopStandIn: Sendable {}
