import ArgumentParser
import CSQLiteTuning
import Foundation
import Logging

@main
struct Coffer: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "coffer",
        abstract: "A vault for personal and payment-card data: encrypted fields, per-role access, crypto-shredding.",
        discussion: """
            Every command needs the data directory and the key directory, given with --data and --keys or \
            with the COFFER_DATA and COFFER_KEYS environment variables. They must be two separate \
            directories: the keys are kept apart from the data they protect.
            """,
        subcommands: [
            Init.self, Serve.self, Unseal.self, SealCommands.self, OperatorCommands.self, Clients.self, Keys.self,
            Audit.self, Backup.self, Restore.self, Migrate.self,
        ]
    )

    /// Logging goes to stderr at `COFFER_LOG_LEVEL` (default `notice`), before any command runs,
    /// as text, or one logfmt or JSON object per line (`--log-format` or `COFFER_LOG_FORMAT`).
    static func main() async {
        // First, while this is the only thread and before any database opens: without the
        // allocator statistics, SQLite's malloc and free take no process-wide mutex (about 4 % of
        // the committer's time per GET). A failure only leaves them on.
        let memstatus = coffer_sqlite_disable_memstatus()
        let level =
            ProcessInfo.processInfo.environment["COFFER_LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) ?? .notice
        let format = logFormat(CommandLine.arguments) ?? .text
        LoggingSystem.bootstrap { label in
            if format == .text {
                var handler = StreamLogHandler.standardError(label: label)
                handler.logLevel = level
                return handler
            }
            var handler = StructuredLogHandler(label: label, format: format)
            handler.logLevel = level
            return handler
        }
        if memstatus != 0 {
            Logger(label: "coffer").debug("SQLite's allocator statistics stay on", metadata: ["code": "\(memstatus)"])
        }
        do {
            var command = try parseAsRoot()
            if var asyncCommand = command as? AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch {
            exit(withError: error)
        }
    }

    /// The log format, read before the arguments are parsed (logging starts first); an unknown
    /// one is left to `serve --log-format` to refuse.
    static func logFormat(_ arguments: [String]) -> StructuredLogHandler.Format? {
        var value = ProcessInfo.processInfo.environment["COFFER_LOG_FORMAT"]
        for (i, argument) in arguments.enumerated() {
            if argument == "--log-format", i + 1 < arguments.count { value = arguments[i + 1] }
            if argument.hasPrefix("--log-format=") { value = String(argument.dropFirst("--log-format=".count)) }
        }
        return value.flatMap(StructuredLogHandler.Format.init(rawValue:))
    }
}
