import ArgumentParser
import CofferCore
import CofferProtocol
import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

struct Unseal: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Enter one key share into the running, sealed server.",
        discussion: """
            Reads the share from the terminal without echo, or, when stdin is not a terminal, its \
            first line from stdin; never from the command line, where other users could see it in \
            the process list. Sends it as UNSEAL over the server's Unix socket (found through the \
            data directory's lock file, or --socket) and prints the progress; the share that \
            completes the threshold unseals the vault. --reset forgets the shares entered so far, \
            --status only shows the progress.
            """
    )

    @Option(name: .long, help: ArgumentHelp("The data directory (default: $COFFER_DATA).", valueName: "dir"))
    var data: String?

    @Option(
        name: .long, help: ArgumentHelp("The server's Unix socket (default: from the lock file).", valueName: "path"))
    var socket: String?

    @Flag(name: .long, help: "Forget the shares entered so far (UNSEAL RESET).")
    var reset = false

    @Flag(name: .long, help: "Only show whether the vault is sealed and how many shares are entered.")
    var status = false

    func run() throws {
        // The server is found first (a wrong --data fails before anyone types a share), but
        // connected to only once the share is read: a connection left unauthenticated while a
        // holder types meets the AUTH deadline, and at the anonymous cap a newer connection
        // closes it (found by an outside attack on 2026-12-07).
        let path = try serverSocketPath()
        let words: [String]
        if status {
            words = ["SEAL.STATUS"]
        } else if reset {
            words = ["UNSEAL", "RESET"]
        } else {
            let share: String
            if isatty(STDIN_FILENO) == 1 {
                share = try reportingErrors { try Unsealing.readSecretLine(prompt: "key share: ") }
            } else {
                guard let line = readLine(strippingNewline: true), !line.isEmpty else {
                    throw ValidationError("no share on stdin")
                }
                share = line
            }
            words = ["UNSEAL", share]
        }
        guard let connection = ServerConnection(socketPath: path) else {
            note("coffer: nothing answers on \(path)")
            throw ExitCode.failure
        }
        let reply: RESPValue
        do { reply = try connection.expect(words) } catch let error as CLIError {
            note("coffer: \(error)")
            throw ExitCode.failure
        }
        let status = try reportingCLIErrors { try SealStatusReply(reply) }
        if !status.sealed {
            note("coffer: the vault is unsealed")
        } else if let progress = status.progress {
            note(
                "coffer: sealed: \(progress.entered) of \(progress.threshold) key shares entered (\(progress.shares) exist)"
            )
        }
    }

    private func serverSocketPath() throws -> String {
        var path = socket
        if path == nil {
            guard let data = data ?? ProcessInfo.processInfo.environment["COFFER_DATA"], !data.isEmpty else {
                throw ValidationError("no server: pass --socket PATH, or --data DIR (or set COFFER_DATA)")
            }
            let holder = try reportingErrors { try DataDirectoryLock.holder(of: data) }
            guard let holder, holder.isServer, let found = holder.socket else {
                note("coffer: no server with a Unix socket runs on \(data); give --socket")
                throw ExitCode.failure
            }
            path = found
        }
        guard let path, FileManager.default.fileExists(atPath: path) else {
            note("coffer: nothing answers on \(path ?? "-")")
            throw ExitCode.failure
        }
        return path
    }
}
