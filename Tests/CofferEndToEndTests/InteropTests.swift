import Foundation
import Testing

/// Real Redis clients against the real server: redis-cli (Debian's redis-tools) and redis-py
/// (PyPI). `.ci/install-deps` installs both; a missing client fails the test rather than skipping.
@Suite struct InteropTests {
    static let scripts = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Interop")

    func run(_ executable: String, _ arguments: [String]) throws -> (Int32, String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [executable] + arguments
        let out = Pipe()
        process.standardOutput = out
        process.standardError = out
        try process.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    @Test(arguments: TestBackend.allCases) func redisCLIScenario(backend: TestBackend) throws {
        let server = try TestServer(backend: backend)
        let (status, output) = try run(
            "bash",
            [Self.scripts.appendingPathComponent("redis_cli_scenario.sh").path, server.socketPath, server.adminSecret])
        #expect(status == 0, "\(output)")
        #expect(output.contains("redis-cli: 19 passed, 0 failed"), "\(output)")
    }

    @Test(arguments: TestBackend.allCases) func redisPyScenario(backend: TestBackend) throws {
        let server = try TestServer(backend: backend)
        let (status, output) = try run(
            "python3",
            [
                Self.scripts.appendingPathComponent("redis_py_scenario.py").path, server.socketPath,
                "\(server.tcpPort)", server.adminSecret,
            ])
        #expect(status == 0, "\(output)")
        #expect(output.contains("redis-py: 24 passed, 0 failed"), "\(output)")
    }

    /// Purposes through redis-py pipelines, under a policy that conditions support's contact
    /// reads on the purpose and makes an analyst role state one.
    @Test(arguments: TestBackend.allCases) func redisPyPurposes(backend: TestBackend) throws {
        let policy = FileManager.default.temporaryDirectory.appendingPathComponent("coffer-purposes-\(UUID()).json")
        defer { try? FileManager.default.removeItem(at: policy) }
        try Data(
            #"""
            {"roles": {
              "support": {"read": {"contact": "masked", "card": "masked", "consent": "plain"},
                          "purposes": {"contact": {"plain": ["support", "subject-request"]}},
                          "write": ["contact", "consent"], "operations": ["exists", "find"]},
              "analyst": {"read": {"contact": "masked"}, "requiresPurpose": true},
              "admin": {"operations": ["shred", "clients", "keys", "audit"]}
            }}
            """#.utf8
        ).write(to: policy)
        let server = try TestServer(extraArguments: ["--policy", policy.path], backend: backend)
        let (status, output) = try run(
            "python3",
            [Self.scripts.appendingPathComponent("redis_py_purposes.py").path, server.socketPath, server.adminSecret])
        #expect(status == 0, "\(output)")
        #expect(output.contains("redis-py purposes: 16 passed, 0 failed"), "\(output)")
    }
}
