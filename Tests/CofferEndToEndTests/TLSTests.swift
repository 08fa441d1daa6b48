import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// A throwaway CA with a server certificate (localhost, 127.0.0.1) and a client certificate,
/// made with the openssl command line (installed by `.ci/install-deps`).
struct TestCertificates {
    let directory: String
    var ca: String { directory + "/ca.pem" }
    var serverCert: String { directory + "/server.pem" }
    var serverKey: String { directory + "/server.key" }
    var clientCert: String { directory + "/client.pem" }
    var clientKey: String { directory + "/client.key" }
    /// Self-signed, so not issued by `ca`.
    var rogueCert: String { directory + "/rogue.pem" }
    var rogueKey: String { directory + "/rogue.key" }

    init() throws {
        directory = CofferBinary.temporaryDirectory("tls")
        let script = """
            set -e
            cd '\(directory)'
            ec="-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes"
            openssl req -x509 $ec -keyout ca.key -out ca.pem -days 2 -subj '/CN=Coffer Test CA'
            openssl req $ec -keyout server.key -out server.csr -subj '/CN=localhost'
            printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\n' > server.ext
            openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 -extfile server.ext
            openssl req $ec -keyout client.key -out client.csr -subj '/CN=billing-app'
            openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out client.pem -days 2
            openssl req -x509 $ec -keyout rogue.key -out rogue.pem -days 2 -subj '/CN=rogue'
            chmod 600 *.key
            """
        let (status, output) = try Shell.run("bash", ["-c", script])
        guard status == 0 else { throw TestFailure("openssl failed: \(output)") }
    }
}

enum Shell {
    /// Runs a program found on PATH; returns its status and its stdout and stderr together.
    static func run(_ executable: String, _ arguments: [String], stdin: String = "") throws -> (Int32, String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [executable] + arguments
        let out = Pipe()
        let input = Pipe()
        process.standardOutput = out
        process.standardError = out
        process.standardInput = input
        try process.run()
        input.fileHandleForWriting.write(Data(stdin.utf8))
        try input.fileHandleForWriting.close()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }
}

/// TLS on the TCP listener, driven by real clients: redis-cli, redis-py and openssl s_client.
@Suite struct TLSTests {
    func tlsArguments(_ certs: TestCertificates, mutual: Bool = false) -> [String] {
        ["--tls-cert", certs.serverCert, "--tls-key", certs.serverKey]
            + (mutual ? ["--tls-client-ca", certs.ca] : [])
    }

    func redisCLI(_ server: TestServer, _ tls: [String], _ command: [String], user: String = "admin", secret: String)
        throws -> (Int32, String)
    {
        try Shell.run(
            "redis-cli",
            ["-h", "localhost", "-p", "\(server.tcpPort)"] + tls
                + ["--user", user, "--pass", secret, "--no-auth-warning"] + command)
    }

    @Test func redisCLIAndRedisPyOverTLS() throws {
        let certs = try TestCertificates()
        let server = try TestServer(extraArguments: tlsArguments(certs))
        #expect(server.stderr.contains("listening on tls 127.0.0.1:"))
        let secret = try server.addClient("cli-support", role: "support")
        let tls = ["--tls", "--cacert", certs.ca]
        let put = try redisCLI(
            server, tls, ["PUT", "c-1", "email", "Ada@Example.com"], user: "cli-support", secret: secret)
        #expect(put.0 == 0 && put.1.trimmingCharacters(in: .whitespacesAndNewlines) == "1", "\(put)")
        let get = try redisCLI(server, tls, ["GET", "c-1", "email"], user: "cli-support", secret: secret)
        #expect(get.1.trimmingCharacters(in: .whitespacesAndNewlines) == "Ada@example.com", "\(get)")

        let (status, output) = try Shell.run(
            "python3",
            [
                InteropTests.scripts.appendingPathComponent("redis_py_tls.py").path, "\(server.tcpPort)", certs.ca,
                server.adminSecret,
            ])
        #expect(status == 0, "\(output)")
        #expect(output.contains("redis-py tls: 8 passed, 0 failed"), "\(output)")

        // The audit trail names the transport.
        let admin = try server.authenticated()
        guard case .array(let entries) = try admin.call("AUDIT.TAIL", "100") else {
            Issue.record("AUDIT.TAIL did not answer an array")
            return
        }
        #expect(entries.contains { "\($0)".contains("tls 127.0.0.1:") })
    }

    /// Connections that never start their TLS handshake count as unauthenticated from the moment
    /// they connect: at the anonymous cap the oldest of them makes room for a new client, they
    /// are closed at the AUTH deadline, and a TLS client refused at the total cap reads the
    /// documented error.
    @Test func silentTLSConnectionsAreCappedAndClosedAtTheDeadline() throws {
        let certs = try TestCertificates()
        let server = try TestServer(
            extraArguments: tlsArguments(certs) + ["--max-anonymous-clients", "2", "--auth-timeout", "3"])
        // Two connections that never say a word.
        let silent = try (0..<2).map { _ -> RESPClient in
            usleep(50_000)
            return try RESPClient(tcpPort: server.tcpPort)
        }
        usleep(200_000)
        let served = try redisCLI(server, ["--tls", "--cacert", certs.ca], ["PING"], secret: server.adminSecret)
        #expect(served.1.contains("PONG"), "\(served)")
        // The older silent one made room (closed within its 1 s grace); the other is closed at
        // the deadline.
        let deadline = Date().addingTimeInterval(10)
        while !silent[0].isClosed() && Date() < deadline { usleep(100_000) }
        #expect(silent[0].isClosed())
        while !silent.allSatisfy({ $0.isClosed() }) && Date() < deadline { usleep(100_000) }
        #expect(silent.allSatisfy { $0.isClosed() })

        // At a total cap full of authenticated clients nothing can be evicted, and a TLS client
        // is told why after its handshake.
        let full = try TestServer(extraArguments: tlsArguments(certs) + ["--max-clients", "2"])
        let holders = try (0..<2).map { _ in try full.authenticated() }
        let refused = try redisCLI(full, ["--tls", "--cacert", certs.ca], ["PING"], secret: full.adminSecret)
        #expect(refused.1.contains("max number of clients reached"), "\(refused)")
        for holder in holders { #expect(try holder.call("PING") == .simple("PONG")) }
    }

    @Test func plaintextClientOnTLSPortGetsAClearErrorAndOthersAreServed() throws {
        let certs = try TestCertificates()
        let server = try TestServer(extraArguments: tlsArguments(certs))
        let plain = try RESPClient(tcpPort: server.tcpPort)
        #expect(try plain.call("PING") == .error("ERR this port requires TLS (with redis-cli: --tls --cacert CA.pem)"))
        #expect(plain.isClosed())
        let cli = try Shell.run("redis-cli", ["-h", "127.0.0.1", "-p", "\(server.tcpPort)", "PING"])
        #expect(cli.1.contains("requires TLS"), "\(cli)")
        // The Unix socket and TLS clients carry on.
        #expect(try server.client().call("PING") == .simple("PONG"))
        let tls = try redisCLI(server, ["--tls", "--cacert", certs.ca], ["PING"], secret: server.adminSecret)
        #expect(tls.1.contains("PONG"), "\(tls)")
    }

    @Test func onlyTLS12AndForwardSecretAEADSuites() throws {
        let certs = try TestCertificates()
        let server = try TestServer(extraArguments: tlsArguments(certs))
        let address = "127.0.0.1:\(server.tcpPort)"
        func handshake(_ options: [String]) throws -> String {
            try Shell.run("openssl", ["s_client", "-connect", address, "-CAfile", certs.ca] + options).1
        }
        // The server's alert, not a local refusal: openssl reports alerts it received as "alert".
        let tls11 = try handshake(["-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0"])
        #expect(tls11.contains("alert protocol version"), "\(tls11)")
        let cbc = try handshake(["-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-SHA"])
        #expect(cbc.contains("alert handshake failure"), "\(cbc)")
        let tls12 = try handshake(["-tls1_2"])
        #expect(
            tls12.contains("Cipher is ECDHE-ECDSA-AES256-GCM-SHA384")
                || tls12.contains("Cipher is ECDHE-ECDSA-AES128-GCM-SHA256"), "\(tls12)")
        let tls13 = try handshake(["-tls1_3"])
        #expect(tls13.contains("TLSv1.3"), "\(tls13)")
    }

    @Test func mutualTLSRequiresACertificateFromTheCA() throws {
        let certs = try TestCertificates()
        let server = try TestServer(extraArguments: tlsArguments(certs, mutual: true))
        #expect(server.stderr.contains("listening on mtls 127.0.0.1:"))
        let base = ["--tls", "--cacert", certs.ca]
        let good = try redisCLI(
            server, base + ["--cert", certs.clientCert, "--key", certs.clientKey], ["PING"], secret: server.adminSecret)
        #expect(good.1.contains("PONG"), "\(good)")
        let none = try redisCLI(server, base, ["PING"], secret: server.adminSecret)
        #expect(!none.1.contains("PONG"), "\(none)")
        let rogue = try redisCLI(
            server, base + ["--cert", certs.rogueCert, "--key", certs.rogueKey], ["PING"], secret: server.adminSecret)
        #expect(!rogue.1.contains("PONG"), "\(rogue)")
        // After the refused handshakes the server still serves.
        let again = try redisCLI(
            server, base + ["--cert", certs.clientCert, "--key", certs.clientKey], ["PING"], secret: server.adminSecret)
        #expect(again.1.contains("PONG"), "\(again)")

        let (status, output) = try Shell.run(
            "python3",
            [
                InteropTests.scripts.appendingPathComponent("redis_py_tls.py").path, "\(server.tcpPort)", certs.ca,
                server.adminSecret, certs.clientCert, certs.clientKey,
            ])
        #expect(status == 0, "\(output)")
        #expect(output.contains("redis-py tls: 9 passed, 0 failed"), "\(output)")
    }

    @Test func withTLSANonLoopbackBindIsAllowed() throws {
        let certs = try TestCertificates()
        let server = try TestServer(extraArguments: tlsArguments(certs), listen: "0.0.0.0:0")
        #expect(server.stderr.contains("listening on tls 0.0.0.0:"))
        let tls = try redisCLI(server, ["--tls", "--cacert", certs.ca], ["PING"], secret: server.adminSecret)
        #expect(tls.1.contains("PONG"), "\(tls)")
    }

    @Test func badTLSFilesStopStartUpWithAReason() throws {
        let certs = try TestCertificates()
        chmod(certs.clientCert, 0o600)
        let server = try TestServer()
        server.stop()
        func serve(_ arguments: [String]) throws -> CofferBinary.Result {
            try CofferBinary.run(["serve"] + CofferBinary.rootFlag + arguments, environment: server.env)
        }
        let listen = ["--listen", "127.0.0.1:0"]
        let cases: [([String], String)] = [
            (listen + ["--tls-cert", certs.directory + "/missing.pem", "--tls-key", certs.serverKey], "missing.pem"),
            (listen + ["--tls-cert", certs.serverKey, "--tls-key", certs.serverKey], "not a PEM certificate"),
            (listen + ["--tls-cert", certs.serverCert, "--tls-key", certs.clientCert], "not a PEM private key"),
            (listen + ["--tls-cert", certs.serverCert, "--tls-key", certs.clientKey], "does the key match"),
            (listen + ["--tls-cert", certs.serverCert], "--tls-cert and --tls-key go together"),
            (
                [
                    "--tls-cert", certs.serverCert, "--tls-key", certs.serverKey, "--listen", "0.0.0.0:0",
                    "--tls-client-ca",
                    certs.directory + "/nope.pem",
                ], "nope.pem"
            ),
            (listen + ["--tls-client-ca", certs.ca], "--tls-client-ca needs --tls-cert and --tls-key"),
            (["--tls-cert", certs.serverCert, "--tls-key", certs.serverKey], "give --listen"),
        ]
        for (arguments, reason) in cases {
            let result = try serve(arguments)
            #expect(result.status != 0, "\(arguments)")
            #expect(result.stderr.contains(reason), "\(arguments): \(result.stderr)")
        }
        chmod(certs.serverKey, 0o644)
        let readable = try serve(listen + ["--tls-cert", certs.serverCert, "--tls-key", certs.serverKey])
        #expect(readable.status != 0)
        #expect(readable.stderr.contains("other users can access it"), "\(readable.stderr)")
    }
}
