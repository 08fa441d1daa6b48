import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The `redis-cli` transcripts in README.md and docs/PROTOCOL.md, replayed against a real server
/// with a real redis-cli, so that an example that drifts from the code fails (issue 16.3). Each
/// transcript runs on a fresh vault in one redis-cli session; see `DocTranscript` for the
/// convention.
@Suite struct DocExamplesTests {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path
    static let documents = ["README.md", "docs/PROTOCOL.md"]

    static var transcripts: [DocTranscript] {
        documents.flatMap { document in
            let text = (try? String(contentsOfFile: repository + "/" + document, encoding: .utf8)) ?? ""
            return DocTranscript.extract(from: text, document: document)
        }
    }

    @Test func everyDocumentHasTranscripts() throws {
        for document in Self.documents {
            let text = try String(contentsOfFile: Self.repository + "/" + document, encoding: .utf8)
            let found = DocTranscript.extract(from: text, document: document)
            #expect(!found.isEmpty, "no redis-cli transcript in \(document)")
            #expect(found.allSatisfy { !$0.steps.isEmpty }, "an empty transcript in \(document)")
        }
    }

    @Test(arguments: transcripts, TestBackend.allCases)
    func transcriptMatchesTheServer(_ transcript: DocTranscript, backend: TestBackend) throws {
        let server = try TestServer(backend: backend)
        var secrets = ["admin": server.adminSecret]
        for (name, role) in transcript.clients { secrets[name] = try server.addClient(name, role: role) }
        let session = try RedisCLISession(socketPath: server.socketPath)
        defer { session.close() }
        for step in transcript.steps {
            let command = try substitute(step.command, secrets: secrets)
            let actual = try session.run(command)
            let place = "\(transcript.document):\(step.line): > \(step.command)"
            let expected = step.expected
            let matches =
                expected.count == actual.count && zip(expected, actual).allSatisfy { DocTranscript.matches($0, $1) }
            #expect(
                matches,
                "\(place)\n--- the document shows:\n\(expected.joined(separator: "\n"))\n--- redis-cli printed:\n\(actual.joined(separator: "\n"))"
            )
            // A client added in the transcript can AUTH later in it.
            let words = command.split(separator: " ")
            if words.count == 3, words[0].uppercased() == "CLIENT.ADD", actual.count == 1,
                actual[0].hasPrefix("\""), actual[0].hasSuffix("\"")
            {
                secrets[String(words[1])] = String(actual[0].dropFirst().dropLast())
            }
        }
        #expect(server.stop() == 0)
    }

    /// Replaces each `<secret>` with the secret of the client named by the word before it.
    func substitute(_ command: String, secrets: [String: String]) throws -> String {
        var words = command.split(separator: " ", omittingEmptySubsequences: false).map(String.init)
        for index in words.indices where words[index] == "<secret>" {
            guard index > 0, let secret = secrets[words[index - 1]] else {
                throw TestFailure("no secret known for the client before <secret> in: \(command)")
            }
            words[index] = secret
        }
        return words.joined(separator: " ")
    }

    @Test func transcriptConvention() {
        let text = """
            ```redis-cli clients=a:support
            $ redis-cli -s DATA/coffer.sock
            > AUTH a <secret>
            OK
            > GET x name email
            1) (nil)
            2) (nil)
            ```
            ```sh
            > not a transcript
            ```
            """
        let found = DocTranscript.extract(from: text, document: "t")
        #expect(found.count == 1)
        #expect(found.first?.clients.map { "\($0.name):\($0.role)" } == ["a:support"])
        #expect(found.first?.steps.map(\.command) == ["AUTH a <secret>", "GET x name email"])
        #expect(found.first?.steps.map(\.expected) == [["OK"], ["1) (nil)", "2) (nil)"]])
        #expect(found.first?.steps.first?.line == 3)
        #expect(DocTranscript.matches("\"<secret>\"", "\"3f9c\""))
        #expect(!DocTranscript.matches("\"<secret>\"", "\"\""))
        #expect(DocTranscript.matches("1) \"{\\\"seq\\\":<n>,\"", "1) \"{\\\"seq\\\":12,\""))
        #expect(!DocTranscript.matches("(integer) 3", "(integer) 2"))
    }
}

/// One interactive `redis-cli --no-raw` on the server's socket, fed a command at a time. After
/// each command the session sends `PING <marker>` (allowed before AUTH too, never audited), so
/// the reply lines of the command are the lines before the marker's.
final class RedisCLISession {
    private let process = Process()
    private let input = Pipe()
    private let output = Pipe()
    private let lines = LinesCollector()
    private var reader: PipeReader?
    private var consumed = 0
    private var count = 0

    init(socketPath: String) throws {
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        // --no-raw: replies formatted as in a terminal, although stdout is a pipe.
        process.arguments = ["redis-cli", "--no-raw", "-s", socketPath]
        process.standardInput = input
        process.standardOutput = output
        process.standardError = output
        try process.run()
        reader = PipeReader(output.fileHandleForReading, into: lines)
    }

    /// The lines redis-cli printed for `command`, trimmed.
    func run(_ command: String, timeout: TimeInterval = 10) throws -> [String] {
        count += 1
        let marker = "doc-example-marker-\(count)"
        input.fileHandleForWriting.write(Data("\(command)\nPING \(marker)\n".utf8))
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            let all = lines.text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
            if let end = all[consumed...].firstIndex(of: "\"\(marker)\"") {
                let reply = all[consumed..<end].map { $0.trimmingCharacters(in: .whitespaces) }
                consumed = end + 1
                return reply
            }
            if !process.isRunning { throw TestFailure("redis-cli exited: \(lines.text)") }
            usleep(5_000)
        }
        throw TestFailure("no reply to \(command) within \(timeout) s; redis-cli printed: \(lines.text)")
    }

    func close() {
        try? input.fileHandleForWriting.close()
        process.waitUntilExit()
        reader?.finish()
    }
}
