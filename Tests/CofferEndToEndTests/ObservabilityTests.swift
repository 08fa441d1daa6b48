import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// INFO, CLIENT LIST, the metrics endpoint and the logs, against the real binary and the real
/// tools an operator uses: `prometheus-redis-exporter`, `promtool` and a Prometheus server
/// (Debian packages that `.ci/install-deps` installs).
@Suite struct ObservabilityTests {
    /// An HTTP GET with curl: the status code and the body.
    static func get(_ url: String) throws -> (Int, String) {
        let (_, output) = try Shell.run("curl", ["-s", "-m", "10", "-w", "\n%{http_code}", url])
        var lines = output.split(separator: "\n", omittingEmptySubsequences: false)
        let code = Int(lines.popLast() ?? "") ?? 0
        return (code, lines.joined(separator: "\n"))
    }

    /// A port nobody listens on right now.
    static func freePort() throws -> Int {
        let (_, out) = try Shell.run(
            "python3", ["-c", "import socket; s=socket.socket(); s.bind(('127.0.0.1',0)); print(s.getsockname()[1])"])
        return Int(out.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
    }

    /// The port of the `--metrics` listener, from the server's start-up lines.
    static func metricsPort(_ server: TestServer) -> Int? {
        for line in server.stderr.split(separator: "\n") where line.hasPrefix("coffer: listening on http ") {
            let address = line.split(separator: " ")[4]
            return address.lastIndex(of: ":").flatMap { Int(address[address.index(after: $0)...]) }
        }
        return nil
    }

    static func text(_ reply: RESPClient.Reply) -> String {
        if case .bulk(let s) = reply { return s }
        return "\(reply)"
    }

    static func field(_ info: String, _ name: String) -> String? {
        for line in info.split(separator: "\r\n") where line.hasPrefix(name + ":") {
            return String(line.dropFirst(name.count + 1))
        }
        return nil
    }

    @Test func infoCountsWhatHappenedAndOnlyAdminAndAuditorMayReadIt() throws {
        let server = try TestServer()
        let auditorSecret = try server.addClient("watch", role: "auditor")
        let supportSecret = try server.addClient("desk", role: "support")
        let desk = try server.authenticated("desk", secret: supportSecret)
        for i in 0..<3 { #expect(try desk.call("PUT", "cust-\(i)", "name", "N\(i)") == .integer(1)) }
        #expect(try desk.call("GET", "cust-0", "card.cvv").errorText?.hasPrefix("INVALID") == true)
        #expect(try desk.call("SHRED", "cust-0").errorText?.hasPrefix("NOPERM") == true)
        // Two guessed tokens, counted but never shown.
        #expect(try desk.call("DETOKENIZE", "4000000000001234") == .null)
        #expect(try desk.call("DETOKENIZE", "tok_guessedguessedguessedgu") == .null)
        #expect(try desk.call("INFO").errorText == "NOPERM role 'support' may not INFO")
        #expect(try desk.call("CLIENT", "LIST").errorText == "NOPERM role 'support' may not CLIENT LIST")

        let watch = try server.authenticated("watch", secret: auditorSecret)
        let info = Self.text(try watch.call("INFO", "all"))
        let put = Self.field(info, "cmdstat_put") ?? ""
        #expect(put.hasPrefix("calls=3,") && put.hasSuffix(",rejected_calls=0,failed_calls=0"), "\(put)")
        // A PUT is answered in a later event-loop turn than the one that read it (after its
        // batch's fsync), so its time is never 0: each turn reads the clock again.
        let putMicros = put.split(separator: ",").first { $0.hasPrefix("usec=") }.flatMap { Int($0.dropFirst(5)) }
        #expect((putMicros ?? 0) > 0, "\(put)")
        let get = Self.field(info, "cmdstat_get") ?? ""
        #expect(get.hasPrefix("calls=1,") && get.hasSuffix(",rejected_calls=1,failed_calls=0"), "\(get)")
        #expect((Self.field(info, "cmdstat_shred") ?? "").hasSuffix(",rejected_calls=1,failed_calls=0"))
        #expect(Self.field(info, "errorstat_NOPERM") == "count=3")
        #expect(Self.field(info, "errorstat_INVALID") == "count=1")
        #expect(Self.field(info, "subjects") == "3")
        #expect(Self.field(info, "unknown_tokens") == "2")
        #expect(!info.contains("4000000000001234") && !info.contains("tok_guessed"))
        #expect(Self.field(info, "sealed") == "0")
        #expect(Self.field(info, "kek_current_version") == "1")
        #expect(Int(Self.field(info, "connected_clients") ?? "") ?? 0 >= 2)
        #expect(Self.field(info, "maxclients") == "1024")
        #expect(Self.field(info, "tcp_port") == "\(server.tcpPort)")
        // Not told, one loop per core but one, at least one (fewer under a CPU quota).
        let loops = Int(Self.field(info, "event_loops") ?? "") ?? 0
        #expect((1...max(1, ProcessInfo.processInfo.activeProcessorCount - 1)).contains(loops), "\(loops)")
        #expect(Self.field(info, "latency_percentiles_usec_put") != nil)
        for section in [
            "# Server", "# Clients", "# Stats", "# Commandstats", "# Errorstats", "# Latencystats", "# Coffer",
        ] {
            #expect(info.contains(section + "\r\n"), "\(section) missing")
        }
        // No value and no subject id anywhere in INFO.
        for canary in ["N0", "N1", "N2", "cust-0", "cust-1", "desk"] { #expect(!info.contains(canary), "\(canary)") }
        let one = Self.text(try watch.call("INFO", "coffer"))
        #expect(one.hasPrefix("# Coffer\r\n") && !one.contains("# Server"))
        #expect(try watch.call("CLIENT", "LIST").errorText == "NOPERM role 'auditor' may not CLIENT LIST")

        let admin = try server.authenticated()
        #expect(try admin.call("CLIENT", "SETNAME", "batch-7") == .simple("OK"))
        let list = Self.text(try admin.call("CLIENT", "LIST"))
        let lines = list.split(separator: "\n")
        #expect(
            lines.contains { $0.contains(" name=batch-7 ") && $0.contains(" user=admin role=admin resp=2") }, "\(list)")
        #expect(lines.contains { $0.contains(" user=desk role=support ") }, "\(list)")
        #expect(!list.contains(supportSecret) && !list.contains(auditorSecret) && !list.contains(server.adminSecret))
        #expect(try admin.call("COMMAND", "COUNT") == .integer(37))
        #expect(try admin.call("CONFIG", "GET", "maxcl*") == .array([.bulk("maxclients"), .bulk("1024")]))
        #expect(try admin.call("SLOWLOG", "LEN") == .integer(0))
        // Every INFO, CLIENT LIST and CONFIG GET is in the audit trail, refusals included.
        guard case .array(let tail) = try admin.call("AUDIT.TAIL", "30") else { throw TestFailure("AUDIT.TAIL") }
        let entries = tail.map { Self.text($0) }
        #expect(entries.contains { $0.contains("\"command\":\"INFO\"") && $0.contains("\"outcome\":\"denied\"") })
        #expect(entries.contains { $0.contains("\"command\":\"CLIENT LIST\"") && $0.contains("\"outcome\":\"ok\"") })
    }

    @Test func redisExporterScrapesWithoutErrors() throws {
        let server = try TestServer()
        let secret = try server.addClient("exporter", role: "auditor")
        let port = try Self.freePort()
        let exporter = Process()
        exporter.executableURL = URL(fileURLWithPath: "/usr/bin/prometheus-redis-exporter")
        exporter.arguments = [
            "-redis.addr", "redis://127.0.0.1:\(server.tcpPort)", "-redis.user", "exporter", "-redis.password", secret,
            "-web.listen-address", "127.0.0.1:\(port)",
        ]
        let log = Pipe()
        exporter.standardOutput = log
        exporter.standardError = log
        try exporter.run()
        defer {
            exporter.terminate()
            exporter.waitUntilExit()
        }
        var body = ""
        let deadline = Date().addingTimeInterval(15)
        while Date() < deadline {
            if let (code, text) = try? Self.get("http://127.0.0.1:\(port)/metrics"), code == 200 {
                body = text
                break
            }
            usleep(100_000)
        }
        #expect(body.contains("\nredis_up 1\n"), "\(body.prefix(2000))")
        #expect(body.contains("redis_exporter_last_scrape_error{err=\"\"} 0"), "\(body.prefix(2000))")
        #expect(body.contains("\nredis_connected_clients "))
        #expect(body.contains("redis_commands_total{cmd=\"config|get\"}"))
        exporter.terminate()
        exporter.waitUntilExit()
        let output = String(decoding: log.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(!output.contains("level=error") && !output.contains("level=warn"), "\(output)")
        #expect(!output.contains(secret))
    }

    /// On PostgreSQL too: rendering reads the store, which must not block the endpoint's event
    /// loop (a scrape once killed a PostgreSQL node: NIO's "wait() must not be called when on an
    /// EventLoop").
    @Test(arguments: TestBackend.allCases)
    func metricsEndpointPassesPromtoolAndAPrometheusServerScrapesIt(backend: TestBackend) throws {
        let server = try TestServer(extraArguments: ["--metrics", "127.0.0.1:0"], backend: backend)
        guard let port = Self.metricsPort(server) else { throw TestFailure("no metrics listener: \(server.stderr)") }
        let secret = try server.addClient("desk", role: "support")
        let desk = try server.authenticated("desk", secret: secret)
        #expect(try desk.call("PUT", "cust-9", "email", "canary-metrics@example.com") == .integer(1))
        #expect(try desk.call("SHRED", "cust-9").errorText?.hasPrefix("NOPERM") == true)
        _ = try RESPClient(unixPath: server.socketPath).call("AUTH", "desk", "wrong")
        #expect(try desk.call("DETOKENIZE", "tok_guessedguessedguessedgu") == .null)

        let (healthCode, health) = try Self.get("http://127.0.0.1:\(port)/health")
        #expect(healthCode == 200 && health == "serving\n")
        #expect(try Self.get("http://127.0.0.1:\(port)/nothing").0 == 404)
        let (code, metrics) = try Self.get("http://127.0.0.1:\(port)/metrics")
        #expect(code == 200)
        #expect(metrics.contains("coffer_commands_total{command=\"put\",outcome=\"ok\"} 1"), "\(metrics.prefix(3000))")
        #expect(metrics.contains("coffer_commands_total{command=\"shred\",outcome=\"denied\"} 1"))
        #expect(metrics.contains("coffer_auth_failures_total 1"))
        #expect(metrics.contains("coffer_unknown_tokens_total 1"), "\(metrics.prefix(3000))")
        #expect(metrics.contains("coffer_subjects 1"))
        #expect(metrics.contains("coffer_kek_current_version 1"))
        #expect(metrics.contains("coffer_commit_batch_size_bucket"))
        #expect(metrics.contains("coffer_audit_append_duration_seconds_bucket"))
        #expect(metrics.contains("coffer_command_duration_seconds_bucket{command=\"put\""))
        // Labels come from fixed sets: no subject, value, client name or address.
        for canary in ["cust-9", "canary-metrics", "desk", "127.0.0.1"] {
            #expect(!metrics.contains(canary), "\(canary) in /metrics")
        }
        let (lint, lintOutput) = try Shell.run("promtool", ["check", "metrics"], stdin: metrics)
        #expect(lint == 0, "\(lintOutput)")

        // A real Prometheus server scrapes it once.
        let root = TemporaryDirectory("prom")
        let config = root.path + "/prometheus.yml"
        try """
        global:
          scrape_interval: 1s
        scrape_configs:
          - job_name: coffer
            static_configs:
              - targets: ['127.0.0.1:\(port)']
        """.write(toFile: config, atomically: true, encoding: .utf8)
        let webPort = try Self.freePort()
        let prometheus = Process()
        prometheus.executableURL = URL(fileURLWithPath: "/usr/bin/prometheus")
        prometheus.arguments = [
            "--config.file=\(config)", "--storage.tsdb.path=\(root.path)/data",
            "--web.listen-address=127.0.0.1:\(webPort)",
        ]
        prometheus.standardOutput = FileHandle.nullDevice
        prometheus.standardError = FileHandle.nullDevice
        try prometheus.run()
        defer {
            prometheus.terminate()
            prometheus.waitUntilExit()
        }
        var targets = ""
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline {
            if let (code, body) = try? Self.get("http://127.0.0.1:\(webPort)/api/v1/targets"), code == 200,
                body.contains("\"health\":\"up\"")
            {
                targets = body
                break
            }
            usleep(250_000)
        }
        #expect(targets.contains("\"health\":\"up\"") && targets.contains("\"lastError\":\"\""), "\(targets)")
        let (_, query) = try Self.get("http://127.0.0.1:\(webPort)/api/v1/query?query=coffer_subjects")
        #expect(query.contains("\"status\":\"success\"") && query.contains("\"1\"]"), "\(query)")
    }

    @Test(arguments: ["json", "logfmt"])
    func aVerboseRunLogsEventsButNoneOfTheValuesItWrote(format: String) throws {
        let server = try TestServer(
            extraArguments: ["--log-format", format], environment: ["COFFER_LOG_LEVEL": "debug"])
        let secret = try server.addClient("desk", role: "support")
        let canaries = [
            "Zyxwv Canary-Name", "canary.q7@example.org", "+14155550199", "Canary-Street 42", "1971-03-04",
            "cust-canary-77",
        ]
        let desk = try server.authenticated("desk", secret: secret)
        #expect(
            try desk.call(
                "PUT", canaries[5], "name", canaries[0], "email", canaries[1], "phone", canaries[2], "postal_address",
                canaries[3], "birthday", canaries[4]) == .integer(5))
        _ = try desk.call("GET", canaries[5], "name", "email")
        _ = try desk.call("FIND", "email", canaries[1])
        // Refused and failed commands carrying the same values.
        _ = try desk.call("PUT", canaries[5], "card.pan", "4111111111111111")
        _ = try desk.call("PUT", canaries[5], "email", "not-an-email Canary-Bad")
        _ = try desk.call("SHRED", canaries[5])
        _ = try desk.call("NOSUCHCOMMAND", canaries[0])
        _ = try server.client().call("AUTH", "desk", "Canary-Wrong-Secret")
        server.stop()
        let log = server.stderr
        for canary in canaries + [secret, "Canary-Bad", "Canary-Wrong-Secret", "4111111111111111"] {
            #expect(!log.contains(canary), "\(canary) is in the log")
        }
        let lines = log.split(separator: "\n").filter { format == "json" ? $0.hasPrefix("{") : $0.hasPrefix("ts=") }
        #expect(lines.contains { $0.contains("connection opened") })
        #expect(lines.contains { $0.contains("connection closed") })
        #expect(lines.contains { $0.contains("command denied") && $0.contains("shred") })
        #expect(lines.contains { $0.contains("command invalid") && $0.contains("other") })
        if format == "json" {
            for line in lines {
                #expect((try? JSONSerialization.jsonObject(with: Data(line.utf8))) != nil, "not JSON: \(line)")
            }
        }
    }

    /// A burst of failed AUTHs on many connections logs at most 10 lines a second; the next
    /// line let through says how many were held back.
    @Test func failedAuthsAreLoggedAtMostTenASecond() throws {
        let server = try TestServer()
        let clients = try (0..<40).map { _ in try server.client() }
        // Each under its own name, so that no (name, origin) delay grows.
        for (index, client) in clients.enumerated() {
            try client.send(RESPClient.encode([Array("AUTH".utf8), Array("nobody\(index)".utf8), Array("x".utf8)]))
        }
        let started = Date()
        for client in clients {
            guard case .error(let message) = try client.read() else { throw TestFailure("AUTH did not fail") }
            #expect(message.hasPrefix("WRONGPASS"))
        }
        let elapsed = Date().timeIntervalSince(started)
        Thread.sleep(forTimeInterval: 1.1)
        guard case .error = try server.client().call("AUTH", "nobody-later", "x") else {
            throw TestFailure("AUTH did not fail")
        }
        server.stop()
        let lines = server.stderr.split(separator: "\n").filter { $0.contains("AUTH failed") }
        // 40 failures within `elapsed` seconds: at most 10 per started second, plus the last one.
        #expect(lines.count <= 10 * (Int(elapsed) + 2) + 1 && lines.count < 40, "\(lines.count) lines in \(elapsed) s")
        let heldBack = lines.compactMap { line in
            line.split(separator: " ").first { $0.hasPrefix("not_logged_before=") }.flatMap {
                Int($0.dropFirst("not_logged_before=".count))
            }
        }
        #expect(heldBack.reduce(0, +) + lines.count == 41, "\(lines)")
    }
}
