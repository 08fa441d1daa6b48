import ArgumentParser
import CofferCore
import CofferProtocol
import Foundation

struct Keys: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Rotate, inspect and retire key-encrypting keys.",
        discussion: """
            With a server running on the data directory (found through DATA/coffer.lock, whatever \
            its socket) these go through it, authenticating as --client (default admin) with its \
            secret from --secret-file or COFFER_SECRET, so the server's keyring changes at once and \
            its background job rewraps the data keys. With no server running they take the data \
            directory's lock and act on the files directly; they never act offline while a server runs.
            """,
        subcommands: [Rotate.self, Status.self, Retire.self]
    )

    struct Rotate: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create KEK version n+1 and make it current; print the new version.",
            discussion: """
                Existing data keys are rewrapped under the new version in batches in the background \
                while the server serves (offline: with --wait, here; otherwise at the next start). \
                --wait shows a progress bar until every data key is under the new version.
                """)
        @OptionGroup var vault: VaultOptions
        @OptionGroup var credentials: ServerCredentials
        @Option(name: .long, help: "The server's socket, if not the one DATA/coffer.lock names.") var socket: String?
        @Flag(name: .long, help: "Wait until every data key is rewrapped, showing progress.") var wait = false

        func run() throws {
            let configuration = try vault.resolved()
            if let server = try credentials.connectIfServing(configuration, socket: socket) {
                let reply = try reportingCLIErrors { try server.expect("KEYS.ROTATE") }
                guard case .integer(let version) = reply else { throw CLIError("unexpected reply \(reply)") }
                print(version)
                if wait { try waitForRewrap(server) }
                return
            }
            let opened = try configuration.openOwning(as: "keys rotate")
            defer { try? opened.close() }
            let version = try reportingErrors { try opened.rotateKEK(as: .localOperator) }
            print(version)
            guard wait else {
                note("coffer: data keys will be rewrapped when the server next runs (or use --wait)")
                return
            }
            let total = try reportingErrors { try opened.keyStatus(as: .localOperator).pending }
            var done = 0
            let start = Date()
            while true {
                let count = try reportingErrors { try opened.rewrapBatch(limit: 2000) }
                if count == 0 { break }
                done += count
                progress(done: done, total: total, rate: Double(done) / max(Date().timeIntervalSince(start), 0.001))
            }
            progress(done: done, total: total, rate: Double(done) / max(Date().timeIntervalSince(start), 0.001))
            FileHandle.standardError.write(Data("\n".utf8))
        }

        private func waitForRewrap(_ server: ServerConnection) throws {
            var total: Int?
            while true {
                let status = try reportingCLIErrors { try KeyStatusReply(server.expect("KEYS.STATUS")) }
                let pending = status.pending
                if total == nil { total = max(pending, 1) }
                let done = max(total! - pending, 0)
                progress(done: done, total: total!, rate: Double(status.rate))
                if pending == 0 { break }
                usleep(200_000)
            }
            FileHandle.standardError.write(Data("\n".utf8))
        }
    }

    struct Status: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show the current KEK version, how many data keys each version wraps, and rewrap progress.")
        @OptionGroup var vault: VaultOptions
        @OptionGroup var credentials: ServerCredentials
        @Option(name: .long, help: "The server's socket, if not the one DATA/coffer.lock names.") var socket: String?

        func run() throws {
            let configuration = try vault.resolved()
            if let server = try credentials.connectIfServing(configuration, socket: socket) {
                let status = try reportingCLIErrors { try KeyStatusReply(server.expect("KEYS.STATUS")) }
                print("current \(status.current)")
                for v in status.versions { print("version \(v.version) \(v.state) \(v.dataKeys) data keys") }
                print(
                    "rewrap \(status.isRewrapping ? "running" : "idle"): \(status.pending) pending, \(status.done) done, \(status.rate)/s"
                )
                if status.shreddedAwaitingRetirement > 0 {
                    print("shredded subjects awaiting a KEK retirement: \(status.shreddedAwaitingRetirement)")
                }
                return
            }
            let opened = try configuration.openOwning(as: "keys status")
            defer { try? opened.close() }
            let status = try reportingErrors { try opened.keyStatus(as: .localOperator) }
            print("current \(status.current)")
            for v in status.versions { print("version \(v.version) \(v.state) \(v.dataKeys) data keys") }
            print("rewrap \(status.pending == 0 ? "idle" : "pending (no server running)"): \(status.pending) pending")
            if status.shreddedAwaitingRetirement > 0 {
                print("shredded subjects awaiting a KEK retirement: \(status.shreddedAwaitingRetirement)")
            }
        }
    }

    struct Retire: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Destroy a KEK version that is not current and wraps no data key.",
            discussion: """
                Refused, with the reason, while the version is current or still wraps any data key. \
                Otherwise the key file is overwritten and deleted, and the version is recorded as retired: \
                backups whose data keys were wrapped only under it can no longer be read.
                """)
        @OptionGroup var vault: VaultOptions
        @OptionGroup var credentials: ServerCredentials
        @Option(name: .long, help: "The server's socket, if not the one DATA/coffer.lock names.") var socket: String?
        @Argument(help: "The KEK version to retire.") var version: UInt32

        func run() throws {
            let configuration = try vault.resolved()
            if let server = try credentials.connectIfServing(configuration, socket: socket) {
                _ = try reportingCLIErrors { try server.expect("KEYS.RETIRE", "\(version)") }
            } else {
                let opened = try configuration.openOwning(as: "keys retire")
                defer { try? opened.close() }
                try reportingErrors { try opened.retireKEK(version, as: .localOperator) }
            }
            note("coffer: KEK version \(version) retired")
        }
    }
}

/// Reads the fields of a `KEYS.STATUS` reply (a map in RESP3, a flat array in RESP2).
/// A one-line progress bar on stderr.
func progress(done: Int, total: Int, rate: Double) {
    let fraction = total > 0 ? min(Double(done) / Double(total), 1) : 1
    let width = 30
    let filled = Int(fraction * Double(width))
    let bar = String(repeating: "#", count: filled) + String(repeating: "-", count: width - filled)
    let line = String(format: "\r[%@] %3.0f%% %d/%d data keys, %.0f/s", bar, fraction * 100, done, total, rate)
    FileHandle.standardError.write(Data(line.utf8))
}

/// Turns an error reply from the server into a message on stderr and a non-zero exit.
func reportingCLIErrors<T>(_ body: () throws -> T) throws -> T {
    do { return try body() } catch let error as CLIError {
        note("coffer: \(error)")
        throw ExitCode.failure
    } catch let error as CommandError {
        note("coffer: \(error.message)")
        throw ExitCode.failure
    }
}
