import Foundation
import Testing

/// Tests/Hostile/hostile.py against the real server: at least 50 cases of malformed, oversized,
/// slow and abusive input, each of which must get an error or a close while a bystander
/// connection keeps being served and memory stays bounded.
@Suite struct HostileInputTests {
    @Test func hostileInputSuite() throws {
        let server = try TestServer(extraArguments: ["--auth-timeout", "3", "--client-output-limit", "8388608"])
        let support = try server.addClient("hostile-support", role: "support")
        let victim = try server.addClient("hostile-victim", role: "billing")
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Hostile/hostile.py").path
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [
            "python3", script, server.socketPath, "\(server.tcpPort)", server.adminSecret, support, victim,
            "\(server.process.processIdentifier)",
        ]
        let out = Pipe()
        process.standardOutput = out
        process.standardError = out
        try process.run()
        let output = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        let summary = output.split(separator: "\n").last { $0.hasPrefix("hostile input:") } ?? ""
        print(summary)
        #expect(process.terminationStatus == 0, "\(output)")
        let tried = summary.split(separator: " ").compactMap { Int($0) }.reduce(0, +)
        #expect(tried >= 50, "only \(tried) cases: \(summary)")
        #expect(server.stop() == 0)
    }
}
