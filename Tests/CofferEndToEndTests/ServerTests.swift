import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

@Suite struct ServerTests {
    @Test(arguments: TestBackend.allCases) func rolesDriveWhatEachClientSeesOverTheSocket(backend: TestBackend) throws {
        let server = try TestServer(backend: backend)
        let supportSecret = try server.addClient("support1", role: "support")
        let billingSecret = try server.addClient("billing1", role: "billing")
        let support = try server.authenticated("support1", secret: supportSecret)
        let billing = try server.authenticated("billing1", secret: billingSecret)
        let admin = try server.authenticated()

        #expect(try support.call("WHOAMI") == .array([.bulk("support1"), .bulk("support")]))
        #expect(
            try support.call(
                "PUT", "cust-1", "name", "Jane Doe", "email", "Jane@Example.COM", "phone", "+1 718 942 9990")
                == .integer(3))
        #expect(
            try billing.call("PUT", "cust-1", "card.pan", "4111 1111 1111 1111", "card.expiry", "07/2029")
                == .integer(2))
        #expect(
            try billing.call("get", "cust-1", "card.pan", "email", "phone", "name")
                == .array([.bulk("4111111111111111"), .bulk("J***@example.com"), .bulk("+*******9990"), .bulk("J. D.")])
        )
        #expect(
            try support.call("GET", "cust-1", "card.pan", "birthday") == .array([.bulk("************1111"), .null]))
        #expect(
            try support.call("EXPORT", "cust-1")
                == .array([
                    .bulk("name"), .bulk("Jane Doe"), .bulk("email"), .bulk("Jane@example.com"), .bulk("phone"),
                    .bulk("+17189429990"),
                    .bulk("card.pan"), .bulk("************1111"), .bulk("card.expiry"), .bulk("**/**"),
                ]))
        #expect(try support.call("FIND", "phone", "+1 (718) 942-9990") == .array([.bulk("cust-1")]))
        #expect(try support.call("EXISTS", "cust-1") == .integer(1))

        // Denials name what was denied, and change nothing.
        #expect(
            try billing.call("PUT", "cust-1", "name", "Mallory").errorText
                == "NOPERM role 'billing' may not write field 'name'")
        #expect(try admin.call("GET", "cust-1", "name").errorText?.hasPrefix("NOPERM") == true)
        #expect(try billing.call("FIND", "email", "jane@example.com").errorText?.hasPrefix("NOPERM") == true)
        #expect(try support.call("SHRED", "cust-1").errorText?.hasPrefix("NOPERM") == true)
        #expect(try support.call("CLIENT.LIST").errorText?.hasPrefix("NOPERM") == true)
        #expect(try support.call("GET", "cust-1", "name") == .array([.bulk("Jane Doe")]))

        // Validation errors name the field; nothing of the write lands.
        let invalid = try support.call("PUT", "cust-1", "name", "New", "birthday", "1990-02-30")
        #expect(invalid.errorText?.hasPrefix("INVALID birthday:") == true, "\(invalid)")
        #expect(try support.call("GET", "cust-1", "name") == .array([.bulk("Jane Doe")]))
        #expect(try billing.call("PUT", "cust-1", "card.cvv", "123").errorText?.contains("PCI DSS 3.3") == true)
        #expect(
            try support.call("PUT", "jane@example.com", "name", "x").errorText?.hasPrefix("INVALID subject id") == true)

        // Errors of form keep the connection.
        #expect(try support.call("FLUSHALL").errorText?.hasPrefix("ERR unknown command 'flushall'") == true)
        #expect(try support.call("GET", "cust-1").errorText == "ERR wrong number of arguments for 'get' command")
        #expect(try support.call("PING") == .simple("PONG"))

        #expect(try support.call("DEL", "cust-1", "phone") == .integer(1))
        #expect(try support.call("FIND", "phone", "+17189429990") == .array([]))
        #expect(try admin.call("SHRED", "cust-1") == .integer(1))
        #expect(try admin.call("SHRED", "cust-1") == .integer(0))
        #expect(try billing.call("GET", "cust-1", "card.pan") == .array([.null]))
        #expect(try support.call("EXISTS", "cust-1") == .integer(0))
        #expect(server.stop() == 0)
    }

    @Test(arguments: TestBackend.allCases) func anonymousConnectionsMayOnlyAuthPingQuit(backend: TestBackend) throws {
        let server = try TestServer(backend: backend)
        let anonymous = try server.client()
        #expect(try anonymous.call("PING") == .simple("PONG"))
        #expect(try anonymous.call("PING", "hi") == .bulk("hi"))
        for words in [
            ["GET", "a", "name"], ["WHOAMI"], ["CLIENT.LIST"], ["SHRED", "a"], ["NOSUCH"], ["EXPORT", "a"],
        ] {
            #expect(try anonymous.call(words.map { Array($0.utf8) }) == .error("NOAUTH Authentication required."))
        }
        #expect(try anonymous.call("AUTH", "admin", "wrong").errorText?.hasPrefix("WRONGPASS") == true)
        #expect(try anonymous.call("AUTH", "nobody", "wrong").errorText?.hasPrefix("WRONGPASS") == true)
        // A secret far beyond the anonymous limits is a protocol error that closes only this connection.
        let other = try server.authenticated()
        #expect(
            try anonymous.call("AUTH", "admin", String(repeating: "x", count: 1024 * 1024)).errorText?.hasPrefix(
                "ERR Protocol error") == true)
        #expect(anonymous.isClosed())
        #expect(try other.call("PING") == .simple("PONG"))
        #expect(try server.client().call("QUIT") == .simple("OK"))
    }

    @Test(arguments: TestBackend.allCases) func helloSwitchesToRESP3AndAuthenticates(backend: TestBackend) throws {
        let server = try TestServer(backend: backend)
        let secret = try server.addClient("s", role: "support")
        let c = try server.client()
        guard case .map(let hello) = try c.call("HELLO", "3", "AUTH", "s", secret, "SETNAME", "tool") else {
            Issue.record("HELLO 3 did not answer with a map")
            return
        }
        #expect(hello.contains(.bulk("proto")) && hello.contains(.integer(3)))
        #expect(try c.call("PUT", "x", "name", "Ann Lee") == .integer(1))
        #expect(try c.call("GET", "x", "name", "email") == .array([.bulk("Ann Lee"), .null]))
        #expect(try c.call("EXPORT", "x") == .map([.bulk("name"), .bulk("Ann Lee")]))
        #expect(try c.call("HELLO", "4").errorText?.hasPrefix("NOPROTO") == true)
        #expect(try c.call("HELLO", "2", "AUTH", "s", "wrong").errorText?.hasPrefix("WRONGPASS") == true)
        // Still authenticated, still RESP3, after the failed HELLO.
        #expect(try c.call("GET", "x", "email") == .array([.null]))
        #expect(try c.call("CLIENT", "SETINFO", "LIB-NAME", "x") == .simple("OK"))
    }

    @Test(arguments: TestBackend.allCases) func protocolErrorsCloseTheConnectionOnly(backend: TestBackend) throws {
        let server = try TestServer(backend: backend)
        let bystander = try server.authenticated()
        for bad in [
            "*3000000000\r\n", "*1\r\nfoo\r\n", "*2\r\n$3\r\nGET\r\n$blabla\r\n", "*1\r\n$-10\r\n",
            "GET \"unbalanced\r\n",
        ] {
            let c = try server.authenticated()
            try c.send(bad)
            let reply = try c.read()
            #expect(reply.errorText?.hasPrefix("ERR Protocol error") == true, "\(bad.debugDescription) → \(reply)")
            #expect(c.isClosed(), "\(bad.debugDescription) left the connection open")
        }
        // Negative counts are ignored, as in Redis.
        let c = try server.authenticated()
        try c.send("*-10\r\n")
        #expect(try c.call("PING") == .simple("PONG"))
        // A pipeline of mixed good and bad commands answers each in order.
        try c.send("PING\r\nNOPE\r\n*1\r\n$4\r\nPING\r\n")
        #expect(try c.read() == .simple("PONG"))
        #expect(try c.read().errorText?.hasPrefix("ERR unknown command") == true)
        #expect(try c.read() == .simple("PONG"))
        #expect(try bystander.call("PING") == .simple("PONG"))
    }

    /// Found by an outside attack: a protocol error read in the same write as a command still
    /// waiting on its commit closed the connection at once, so a PUT committed while its client
    /// read the protocol error in place of its reply, and the replies queued behind it were lost.
    @Test func aProtocolErrorIsAnsweredOnlyAfterEveryCommandReadBeforeIt() throws {
        let server = try TestServer()
        let secret = try server.addClient("pe", role: "support")
        for round in 0..<10 {
            let c = try server.authenticated("pe", secret: secret)
            let words = [
                ["PUT", "pe-\(round)", "name", "Name \(round)"], ["PING", "p"], ["GET", "pe-\(round)", "name"],
            ]
            try c.send(words.flatMap { RESPClient.encode($0.map { Array($0.utf8) }) } + Array("*1\r\n$x\r\n".utf8))
            #expect(try c.read() == .integer(1), "round \(round)")
            #expect(try c.read() == .bulk("p"), "round \(round)")
            #expect(try c.read() == .array([.bulk("Name \(round)")]), "round \(round)")
            #expect(try c.read() == .error("ERR Protocol error: invalid bulk length"), "round \(round)")
            #expect(c.isClosed(), "round \(round)")
        }
        #expect(server.stop() == 0)
    }

    /// A client that pauses before reading still gets every reply before the protocol error,
    /// and the error: an outside attack (3 MiB of replies, a PUT, bad bytes, a 1.5 s pause) got
    /// 2.8 MB, then the close, without the PUT's `:1`, though the PUT had committed.
    @Test func repliesBeforeAProtocolErrorWaitForAClientThatPauses() throws {
        let server = try TestServer()
        let secret = try server.addClient("slow", role: "support")
        let c = try RESPClient(tcpPort: server.tcpPort, receiveBuffer: 4096)
        #expect(try c.call("AUTH", "slow", secret) == .simple("OK"))
        let big = String(repeating: "e", count: 1024 * 1024)
        let words = [["ECHO", big], ["ECHO", big], ["ECHO", big], ["PUT", "slow-1", "name", "Committed"]]
        try c.send(words.flatMap { RESPClient.encode($0.map { Array($0.utf8) }) } + Array("*1\r\n$x\r\n".utf8))
        Thread.sleep(forTimeInterval: 2.5)
        for _ in 0..<3 { #expect(try c.read() == .bulk(big)) }
        #expect(try c.read() == .integer(1))
        #expect(try c.read() == .error("ERR Protocol error: invalid bulk length"))
        #expect(c.isClosed())
        #expect(server.stop() == 0)
    }

    @Test(arguments: TestBackend.allCases) func revokedClientsFailOnTheirNextCommandAndCLIChangesAreSeenAtOnce(
        backend: TestBackend
    ) throws {
        let server = try TestServer(backend: backend)
        // A client added by the CLI while the server runs (through it) can log in at once.
        var env = server.env
        env["COFFER_SECRET"] = server.adminSecret
        let added = try CofferBinary.run(["clients", "add", "late", "--role", "support"], environment: env)
        #expect(added.status == 0, "\(added.stderr)")
        let late = try server.authenticated(
            "late", secret: added.stdout.trimmingCharacters(in: .whitespacesAndNewlines))
        #expect(try late.call("EXISTS", "a") == .integer(0))
        // Revoked through the CLI: the open connection fails from its next command.
        #expect(try CofferBinary.run(["clients", "revoke", "late"], environment: env).status == 0)
        #expect(try late.call("EXISTS", "a").errorText?.hasPrefix("NOAUTH") == true)
        #expect(try late.call("EXISTS", "a") == .error("NOAUTH Authentication required."))
        // Revoked over the socket, likewise.
        let secret = try server.addClient("b", role: "billing")
        let b = try server.authenticated("b", secret: secret)
        #expect(try server.authenticated().call("CLIENT.REVOKE", "b") == .integer(1))
        #expect(try b.call("GET", "a", "card.pan").errorText?.hasPrefix("NOAUTH") == true)
        let listing = try server.authenticated().call("CLIENT.LIST")
        #expect(listing == .array([.bulk("admin admin")]))
    }

    @Test(arguments: TestBackend.allCases) func repeatedFailuresLockAClientUntilUnlocked(backend: TestBackend) throws {
        let server = try TestServer(backend: backend)
        let secret = try server.addClient("victim", role: "support")
        let c = try server.client()
        // The same wrong secret again and again (a client library retrying) counts once.
        for _ in 0..<12 { #expect(try c.call("AUTH", "victim", "stale").errorText?.hasPrefix("WRONGPASS") == true) }
        #expect(try c.call("AUTH", "victim", secret) == .simple("OK"))
        // Ten distinct guesses lock the name for this origin (the socket's uid).
        let d = try server.client()
        for guess in 0..<10 {
            #expect(try d.call("AUTH", "victim", "guess-\(guess)").errorText?.hasPrefix("WRONGPASS") == true)
        }
        #expect(try d.call("AUTH", "victim", secret).errorText?.hasPrefix("WRONGPASS") == true)
        let admin = try server.authenticated()
        #expect(try admin.call("CLIENT.LIST") == .array([.bulk("admin admin"), .bulk("victim support locked")]))
        #expect(try admin.call("CLIENT.UNLOCK", "victim") == .integer(1))
        #expect(try d.call("AUTH", "victim", secret) == .simple("OK"))
    }

    @Test func tcpListenerServesAndNonLoopbackIsRefused() throws {
        let server = try TestServer()
        #expect(server.tcpPort > 0)
        let tcp = try RESPClient(tcpPort: server.tcpPort)
        #expect(try tcp.call("AUTH", "admin", server.adminSecret) == .simple("OK"))
        let refused = try CofferBinary.run(
            ["serve", "--listen", "0.0.0.0:0", "--no-socket"] + CofferBinary.rootFlag, environment: server.env)
        #expect(refused.status != 0)
        #expect(refused.stderr.contains("loopback"))
    }

    /// `--event-loops` sets how many threads answer requests; out of range is refused by name.
    @Test func eventLoopsAreSetOrRefused() throws {
        let server = try TestServer(extraArguments: ["--event-loops", "3"])
        let clients = try (0..<4).map { _ in try server.authenticated() }
        for client in clients { #expect(try client.call("PING") == .simple("PONG")) }
        let info = ObservabilityTests.text(try clients[0].call("INFO", "server"))
        #expect(ObservabilityTests.field(info, "event_loops") == "3", "\(info)")
        for bad in ["0", "257", "x"] {
            let refused = try CofferBinary.run(
                ["serve", "--event-loops", bad] + CofferBinary.rootFlag, environment: server.env)
            #expect(refused.status != 0)
            #expect(refused.stderr.contains("event-loops"), "\(refused.stderr)")
        }
    }

    @Test func socketFileHandling() throws {
        let server = try TestServer()
        // A second server on the same data directory and live socket refuses to start.
        let second = try CofferBinary.run(["serve"] + CofferBinary.rootFlag, environment: server.env)
        #expect(second.status != 0)
        #expect(second.stderr.contains("is in use by coffer serve (pid"), "\(second.stderr)")
        #expect(try server.client().call("PING") == .simple("PONG"))
        let mode = try FileManager.default.attributesOfItem(atPath: server.socketPath)[.posixPermissions] as? Int
        #expect(mode == 0o660)
        // After a crash the stale socket is replaced.
        server.stop(signal: SIGKILL)
        #expect(FileManager.default.fileExists(atPath: server.socketPath))
        let restarted = try TestServer(root: server.root)
        #expect(try restarted.client().call("PING") == .simple("PONG"))
        #expect(restarted.stop() == 0)
        #expect(!FileManager.default.fileExists(atPath: server.socketPath))
    }

    /// Found by an outside attack: silent connections held at the anonymous cap (reconnecting as
    /// the AUTH deadline closed them) refused every new connection, so no client could reach AUTH.
    /// Now the oldest unauthenticated connection makes room for the newest.
    @Test func silentConnectionsAtTheAnonymousCapDoNotKeepANewClientFromAuth() throws {
        let server = try TestServer(extraArguments: ["--max-anonymous-clients", "4", "--auth-timeout", "30"])
        var silent: [RESPClient] = []
        for _ in 0..<4 {
            silent.append(try server.client())
            usleep(50_000)  // in this order: the first is the oldest
        }
        let admin = try server.authenticated()
        #expect(try admin.call("WHOAMI") == .array([.bulk("admin"), .bulk("admin")]))
        // The oldest silent connection was told why, and closed; the other three still answer.
        #expect(
            try silent[0].read()
                == .error("ERR max number of unauthenticated clients reached; this connection was the oldest"))
        #expect(silent[0].isClosed())
        for client in silent.dropFirst() { #expect(try client.call("PING") == .simple("PONG")) }
        // Once it authenticated the newcomer left the anonymous cap: more fit without evicting,
        // and authenticated clients are never the ones to go.
        for _ in 0..<6 { #expect(try server.authenticated().call("PING") == .simple("PONG")) }
        for client in silent.dropFirst() { #expect(try client.call("PING") == .simple("PONG")) }
        #expect(try admin.call("PING") == .simple("PONG"))
        guard case .bulk(let info) = try admin.call("INFO", "stats") else {
            Issue.record("INFO stats did not answer a bulk string")
            return
        }
        #expect(info.contains("evicted_clients:1"), "\(info)")
        #expect(server.stop() == 0)
    }

    /// Found by an outside attack on the eviction: a connection evicted while its AUTH ran got
    /// `+OK`, then the eviction's error, and a PUT pipelined behind the AUTH committed while its
    /// client read that error as its answer. Raced here round after round: each connection either
    /// gets in (`+OK`, `:1`, stays) or is evicted (the error in place of `+OK`, nothing stored).
    @Test func aConnectionEvictedDuringItsAuthIsNeitherLetInNorAnswered() throws {
        let server = try TestServer(extraArguments: ["--max-anonymous-clients", "1"])
        let secret = try server.addClient("racer", role: "support")
        let reader = try server.authenticated("racer", secret: secret)
        let auth = RESPClient.encode([Array("AUTH".utf8), Array("racer".utf8), Array(secret.utf8)])
        var evicted = 0
        var admitted = 0
        for round in 0..<300 {
            let c = try server.client()
            let put = RESPClient.encode(["PUT", "race-\(round)", "name", "N"].map { Array($0.utf8) })
            try c.send(auth + put)
            usleep(UInt32(round % 20) * 250)  // 0 to 5 ms: the eviction lands before, during and after the AUTH
            let newcomer = try server.client()  // takes the only anonymous slot: evicts `c` if still anonymous
            let first = try c.read()
            if first == .simple("OK") {
                admitted += 1
                #expect(try c.read() == .integer(1), "round \(round): admitted, but the PUT was not answered")
            } else {
                evicted += 1
                #expect(
                    first
                        == .error("ERR max number of unauthenticated clients reached; this connection was the oldest"),
                    "round \(round): \(first)")
                #expect(c.isClosed(), "round \(round)")
                #expect(try reader.call("EXISTS", "race-\(round)") == .integer(0), "round \(round): stored unanswered")
            }
            _ = newcomer
        }
        print("eviction race: \(admitted) admitted, \(evicted) evicted")
        #expect(server.stop() == 0)
    }

    @Test func startupFailureExitsNonZeroWithTheReason() throws {
        let root = CofferBinary.temporaryDirectory("bad")
        #expect(try CofferBinary.run(["init", "--data", root + "/d", "--keys", root + "/k"]).status == 0)
        chmod(root + "/k/kek-1.key", 0o640)
        let result = try CofferBinary.run(
            ["serve", "--data", root + "/d", "--keys", root + "/k"] + CofferBinary.rootFlag)
        #expect(result.status != 0)
        #expect(result.stderr.contains("kek-1.key"))
        #expect(!FileManager.default.fileExists(atPath: root + "/d/coffer.sock"))
    }

    @Test func clientCapAndIdleTimeout() throws {
        let server = try TestServer(
            extraArguments: ["--max-clients", "2", "--max-anonymous-clients", "2", "--idle-timeout", "1"])
        // Authenticated clients fill the server: an unauthenticated one would make room instead.
        let a = try server.authenticated()
        let b = try server.authenticated()
        #expect(try a.call("PING") == .simple("PONG"))
        #expect(try b.call("PING") == .simple("PONG"))
        let c = try server.client()
        #expect(try c.read() == .error("ERR max number of clients reached"))
        // Idle connections are closed (the read waits for that, up to its 10 s timeout), which
        // frees their places: a new connection is served within a deadline.
        #expect(a.isClosed())
        #expect(b.isClosed())
        let deadline = Date().addingTimeInterval(10)
        var reply = RESPClient.Reply.closed
        while Date() < deadline {
            reply = try server.client().call("PING")
            if reply == .simple("PONG") { break }
            usleep(20_000)
        }
        #expect(reply == .simple("PONG"))
    }

    @Test func sigtermFinishesInFlightWorkAndExitsCleanly() throws {
        let server = try TestServer()
        let secret = try server.addClient("s", role: "support")
        let c = try server.authenticated("s", secret: secret)
        // A pipeline in flight when SIGTERM arrives is answered before the connection closes.
        var pipeline: [UInt8] = []
        for i in 0..<200 {
            pipeline += RESPClient.encode([
                Array("PUT".utf8), Array("p\(i)".utf8), Array("name".utf8), Array("N \(i)".utf8),
            ])
        }
        try c.send(pipeline)
        // Once the first reply is back the server has read (part of) the pipeline: stop it now.
        #expect(try c.read() == .integer(1))
        kill(server.process.processIdentifier, SIGTERM)
        var answered = 1
        while case .integer(1) = try c.read() { answered += 1 }
        #expect(server.stop() == 0)
        // Every acknowledged write is there after a restart.
        let restarted = try TestServer(root: server.root)
        let check = try restarted.authenticated("s", secret: secret)
        for i in 0..<answered { #expect(try check.call("GET", "p\(i)", "name") == .array([.bulk("N \(i)")])) }
    }

    /// A drain closes each connection once it has answered what it read: a barrier still
    /// running when SIGTERM arrives, and the requests read behind it, are all answered. (Until
    /// 2026-12-07 NIO closed such a connection at once, with no reply at all; and once that was
    /// fixed, the handler closed it right after the barrier's reply.)
    @Test func sigtermAnswersRequestsReadBehindARunningBarrier() throws {
        let server = try TestServer()
        let secret = try server.addClient("s", role: "support")
        let writer = try server.authenticated("s", secret: secret)
        // An audit trail long enough that AUDIT.VERIFY is still running when SIGTERM lands.
        for chunk in 0..<20 {
            var pipeline: [UInt8] = []
            for i in 0..<1000 {
                pipeline += RESPClient.encode([
                    Array("PUT".utf8), Array("p\(chunk)-\(i)".utf8), Array("name".utf8), Array("N".utf8),
                ])
            }
            try writer.send(pipeline)
            for _ in 0..<1000 { #expect(try writer.read() == .integer(1)) }
        }
        let admin = try server.authenticated()
        let started = Date()
        #expect(try admin.call("AUDIT.VERIFY").description.hasPrefix("+OK"))
        let verifyTakes = Date().timeIntervalSince(started)
        try admin.send("AUDIT.VERIFY\r\nPING\r\nECHO last\r\n")
        usleep(useconds_t(verifyTakes * 1_000_000 / 4))
        kill(server.process.processIdentifier, SIGTERM)
        let replies = try (0..<3).map { _ in try admin.read() }
        #expect(replies.first?.description.hasPrefix("+OK") == true, "\(replies) after \(verifyTakes) s")
        #expect(Array(replies.dropFirst()) == [.simple("PONG"), .bulk("last")], "\(replies)")
        #expect(server.stop() == 0)
    }

    /// Their default action would end the server at once (no drain, a stale socket).
    @Test(arguments: [(SIGHUP, "SIGHUP"), (SIGUSR1, "SIGUSR1"), (SIGUSR2, "SIGUSR2"), (SIGALRM, "SIGALRM")])
    func straySignalsAreIgnoredAndLoggedOnce(signal: Int32, name: String) throws {
        let server = try TestServer()
        let client = try server.authenticated()
        kill(server.process.processIdentifier, signal)
        kill(server.process.processIdentifier, signal)
        let deadline = Date().addingTimeInterval(5)
        while !server.stderr.contains("\(name) ignored") && Date() < deadline { usleep(20_000) }
        #expect(server.process.isRunning)
        #expect(try client.call("PING") == .simple("PONG"))
        #expect(try server.client().call("PING") == .simple("PONG"))
        #expect(server.stderr.components(separatedBy: "\(name) ignored").count == 2, "\(server.stderr)")
        #expect(server.stop() == 0)
    }

    @Test func processIsHardened() throws {
        let server = try TestServer()
        let limits = try String(contentsOfFile: "/proc/\(server.process.processIdentifier)/limits", encoding: .utf8)
        let core = limits.split(separator: "\n").first { $0.hasPrefix("Max core file size") }
        #expect(core?.split(separator: " ", omittingEmptySubsequences: true).dropFirst(4).first == "0", "\(core ?? "")")
        if geteuid() == 0 {
            let refused = try CofferBinary.run(
                ["serve", "--no-socket", "--listen", "127.0.0.1:0"], environment: server.env)
            #expect(refused.status != 0 && refused.stderr.contains("refusing to run as root"))
        }
    }

    @Test(arguments: TestBackend.allCases) func commandsPipelinedBehindAuthAreParsedUnderItsOutcome(
        backend: TestBackend
    ) throws {
        let server = try TestServer(backend: backend)
        let secret = try server.addClient("s", role: "support")
        // AUTH and a 13-argument PUT (over the anonymous limit of 8) in one write, as
        // `redis-cli --pipe` and client-library pipelines send them.
        let put = [
            "PUT", "p", "name", "N", "email", "n@example.com", "phone", "+15550001111", "gender", "x", "organization",
            "O", "birthday",
        ]
        let c = try server.client()
        try c.send(
            RESPClient.encode([Array("AUTH".utf8), Array("s".utf8), Array(secret.utf8)])
                + RESPClient.encode((put + ["1990-01-01"]).map { Array($0.utf8) }) + Array("PING\r\n".utf8))
        #expect(try c.read() == .simple("OK"))
        #expect(try c.read() == .integer(6))
        #expect(try c.read() == .simple("PONG"))
        // Behind a failed AUTH the same request is held to the anonymous limits.
        let d = try server.client()
        try d.send(
            RESPClient.encode([Array("AUTH".utf8), Array("s".utf8), Array("wrong".utf8)])
                + RESPClient.encode((put + ["1990-01-01"]).map { Array($0.utf8) }))
        #expect(try d.read().errorText?.hasPrefix("WRONGPASS") == true)
        #expect(try d.read().errorText?.hasPrefix("ERR Protocol error: too many arguments") == true)
        #expect(d.isClosed())
        // A command answered on the event loop right behind AUTH is read once AUTH is done,
        // outside any read from the socket: its reply must still be written.
        let e = try server.client()
        try e.send(
            RESPClient.encode([Array("AUTH".utf8), Array("s".utf8), Array(secret.utf8)]) + Array("PING\r\n".utf8))
        #expect(try e.read() == .simple("OK"))
        #expect(try e.read() == .simple("PONG"))
    }

    /// A pipeline's data commands are queued together in the committer (one commit for the
    /// lot), yet each sees the effect of those before it and the replies keep request order,
    /// across non-data commands, errors and a revocation in the middle.
    @Test(arguments: TestBackend.allCases) func pipelinedCommandsKeepTheirOrderAndSeeEarlierWrites(backend: TestBackend)
        throws
    {
        let server = try TestServer(backend: backend)
        let secret = try server.addClient("p", role: "support")
        let c = try server.authenticated("p", secret: secret)
        var pipeline: [[String]] = []
        var expected: [RESPClient.Reply] = []
        for i in 0..<200 {
            pipeline += [["PUT", "s-\(i % 7)", "name", "Name \(i)"], ["GET", "s-\(i % 7)", "name"]]
            expected += [.integer(1), .array([.bulk("Name \(i)")])]
            if i % 50 == 49 {
                pipeline += [
                    ["WHOAMI"], ["GET", "s-0", "card.cvv"], ["DEL", "s-\(i % 7)", "name"], ["EXISTS", "s-\(i % 7)"],
                ]
                expected += [
                    .array([.bulk("p"), .bulk("support")]),
                    .error(
                        "INVALID field 'card.cvv' may never be stored: card verification codes, PINs and track data are prohibited after authorisation (PCI DSS 3.3)"
                    ),
                    .integer(1), .integer(1),
                ]
            }
        }
        try c.send(pipeline.flatMap { RESPClient.encode($0.map { Array($0.utf8) }) })
        for (index, want) in expected.enumerated() {
            let got = try c.read()
            #expect(got == want, "reply \(index) to \(pipeline[index])")
            if got != want { break }
        }
        // Revoked with a pipeline queued behind: every command after the revocation fails.
        let admin = try server.authenticated()
        try c.send(
            RESPClient.encode([Array("GET".utf8), Array("s-1".utf8), Array("name".utf8)]))
        #expect(try c.read() != .closed)
        #expect(try admin.call("CLIENT.REVOKE", "p") == .integer(1))
        try c.send(
            Array(repeating: RESPClient.encode([Array("EXISTS".utf8), Array("s-1".utf8)]), count: 20).flatMap { $0 })
        #expect(try c.read().errorText?.hasPrefix("NOAUTH") == true)
        for _ in 1..<20 { #expect(try c.read().errorText?.hasPrefix("NOAUTH") == true) }
    }
}
