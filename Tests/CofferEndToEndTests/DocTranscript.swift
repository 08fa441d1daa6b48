import Foundation

/// A `redis-cli` session shown in a Markdown document, which `DocExamplesTests` replays against a
/// real server. The convention (stated in docs/PROTOCOL.md, "Examples"):
///
/// - A fenced block whose info string is `redis-cli` is a transcript. Words after it name clients
///   the test creates first: `clients=support-tool:support,billing-job:billing`.
/// - `> COMMAND …` is typed into redis-cli as written (redis-cli's own quoting).
/// - The lines up to the next `>` line are the reply as redis-cli prints it in a terminal.
/// - A `$ …` line (the shell command that starts redis-cli) is not replayed.
/// - In a command, `<secret>` stands for the secret of the client named just before it; in a
///   reply, `<anything>` matches any non-empty text of that line.
struct DocTranscript: Sendable, CustomStringConvertible {
    struct Step: Sendable {
        let line: Int
        let command: String
        let expected: [String]
    }

    let document: String
    let line: Int
    let clients: [(name: String, role: String)]
    let steps: [Step]

    var description: String { "\(document):\(line)" }

    /// Every transcript in `text`, in order.
    static func extract(from text: String, document: String) -> [DocTranscript] {
        var transcripts: [DocTranscript] = []
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        var index = 0
        while index < lines.count {
            let opening = lines[index].trimmingCharacters(in: .whitespaces)
            index += 1
            guard opening.hasPrefix("```") else { continue }
            let info = opening.dropFirst(3).split(separator: " ").map(String.init)
            let start = index
            var body: [(Int, String)] = []
            while index < lines.count, !lines[index].trimmingCharacters(in: .whitespaces).hasPrefix("```") {
                body.append((index + 1, lines[index]))
                index += 1
            }
            index += 1  // the closing fence
            guard info.first == "redis-cli" else { continue }
            var clients: [(String, String)] = []
            for word in info.dropFirst() where word.hasPrefix("clients=") {
                for pair in word.dropFirst("clients=".count).split(separator: ",") {
                    let parts = pair.split(separator: ":")
                    if parts.count == 2 { clients.append((String(parts[0]), String(parts[1]))) }
                }
            }
            var steps: [Step] = []
            var current: (line: Int, command: String, expected: [String])?
            for (number, raw) in body {
                let text = raw.trimmingCharacters(in: .whitespaces)
                if text.hasPrefix("$ ") { continue }
                if text.hasPrefix("> ") {
                    if let current {
                        steps.append(Step(line: current.line, command: current.command, expected: current.expected))
                    }
                    current = (number, String(text.dropFirst(2)), [])
                } else if current != nil, !text.isEmpty {
                    current!.expected.append(text)
                }
            }
            if let current {
                steps.append(Step(line: current.line, command: current.command, expected: current.expected))
            }
            transcripts.append(DocTranscript(document: document, line: start, clients: clients, steps: steps))
        }
        return transcripts
    }

    /// True if `actual` is what `expected` shows, each `<…>` standing for any non-empty text.
    static func matches(_ expected: String, _ actual: String) -> Bool {
        guard expected.contains("<") else { return expected == actual }
        var pattern = "^"
        var rest = Substring(expected)
        while let open = rest.firstIndex(of: "<"), let close = rest[open...].firstIndex(of: ">") {
            pattern += NSRegularExpression.escapedPattern(for: String(rest[..<open])) + ".+?"
            rest = rest[rest.index(after: close)...]
        }
        pattern += NSRegularExpression.escapedPattern(for: String(rest)) + "$"
        return actual.range(of: pattern, options: .regularExpression) != nil
    }
}
