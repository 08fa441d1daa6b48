import ArgumentParser
import CofferCore

struct Clients: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Manage the clients allowed to connect (through the server when one runs, else offline).",
        discussion: """
            With a server running, every subcommand goes through it (CLIENT.ADD, CLIENT.LIST, \
            CLIENT.REVOKE, CLIENT.UNLOCK), authenticating as --client with the secret from \
            --secret-file or COFFER_SECRET: a sealed vault's clients are then managed without its \
            key shares, and the server's view of its clients changes at once. With none running, \
            the subcommand opens the vault itself (a sealed one needs its shares).
            """,
        subcommands: [Add.self, List.self, Revoke.self, Unlock.self]
    )

    struct Add: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Register a client with a role and print its secret, alone, on stdout (shown only once).")
        @OptionGroup var vault: VaultOptions
        @Argument(help: "The client name: 1-64 letters, digits and . _ : -") var name: String
        @Option(name: .long, help: "The client's role (billing, support, admin, auditor, or one from --policy).")
        var role: String
        @OptionGroup var credentials: ServerCredentials
        @Option(name: .long, help: "The server's socket, if not the one DATA/coffer.lock names.") var socket: String?

        func run() throws {
            let configuration = try vault.resolved()
            let secret: String
            if let server = try credentials.connectIfServing(configuration, socket: socket) {
                let reply = try reportingCLIErrors { try server.expect("CLIENT.ADD", name, role) }
                guard case .bulkString(let bytes) = reply else { throw CLIError("CLIENT.ADD answered \(reply)") }
                secret = String(decoding: bytes, as: UTF8.self)
            } else {
                let opened = try configuration.openForRecords(as: "clients add")
                secret = try reportingErrors { try opened.addClient(name: name, role: role, as: .localOperator) }
                try opened.close()
            }
            note("coffer: client '\(name)' added with role '\(role)'; its secret follows and is shown only once")
            do { try StandardOutput.write(secret + "\n") } catch {
                note("coffer: \(error); the secret is lost: revoke '\(name)' and add it again")
                throw ExitCode.failure
            }
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List clients and their roles (never secrets).")
        @OptionGroup var vault: VaultOptions
        @OptionGroup var credentials: ServerCredentials
        @Option(name: .long, help: "The server's socket, if not the one DATA/coffer.lock names.") var socket: String?

        func run() throws {
            let configuration = try vault.resolved()
            if let server = try credentials.connectIfServing(configuration, socket: socket) {
                // The server answers the same lines: `name role[ locked]`.
                let reply = try reportingCLIErrors { try server.expect("CLIENT.LIST") }
                guard case .array(let lines) = reply else { throw CLIError("CLIENT.LIST answered \(reply)") }
                for case .bulkString(let line) in lines { print(String(decoding: line, as: UTF8.self)) }
                return
            }
            let opened = try configuration.openForRecords(as: "clients list")
            for client in try reportingErrors({ try opened.listClients(as: .localOperator) }) {
                print("\(client.name) \(client.role)\(client.locked ? " locked" : "")")
            }
            try opened.close()
        }
    }

    struct Revoke: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Remove a client; its open connections fail from their next command.")
        @OptionGroup var vault: VaultOptions
        @OptionGroup var credentials: ServerCredentials
        @Option(name: .long, help: "The server's socket, if not the one DATA/coffer.lock names.") var socket: String?
        @Argument var name: String

        func run() throws {
            let configuration = try vault.resolved()
            let removed: Bool
            if let server = try credentials.connectIfServing(configuration, socket: socket) {
                removed = try reportingCLIErrors { try server.expect("CLIENT.REVOKE", name) } == .integer(1)
            } else {
                let opened = try configuration.openForRecords(as: "clients revoke")
                removed = try reportingErrors { try opened.revokeClient(name: name, as: .localOperator) }
                try opened.close()
            }
            guard removed else {
                note("coffer: no client named '\(name)'")
                throw ExitCode.failure
            }
            note("coffer: client '\(name)' revoked")
        }
    }

    struct Unlock: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Lift a lock-out imposed after repeated failed AUTH attempts.",
            discussion: """
                Lock-outs are kept in the running server's memory, so with a server running this goes \
                through it (CLIENT.UNLOCK), authenticating as --client with the secret from \
                --secret-file or COFFER_SECRET. With none running there is no lock-out to lift.
                """)
        @OptionGroup var vault: VaultOptions
        @OptionGroup var credentials: ServerCredentials
        @Option(name: .long, help: "The server's socket, if not the one DATA/coffer.lock names.") var socket: String?
        @Argument var name: String

        func run() throws {
            let configuration = try vault.resolved()
            if let server = try credentials.connectIfServing(configuration, socket: socket) {
                let reply = try reportingCLIErrors { try server.expect("CLIENT.UNLOCK", name) }
                guard reply == .integer(1) else {
                    note("coffer: no client named '\(name)'")
                    throw ExitCode.failure
                }
                note("coffer: client '\(name)' unlocked")
                return
            }
            let opened = try configuration.openForRecords(as: "clients unlock")
            let found = try reportingErrors { try opened.unlockClient(name: name, as: .localOperator) }
            try opened.close()
            guard found else {
                note("coffer: no client named '\(name)'")
                throw ExitCode.failure
            }
            note("coffer: client '\(name)' unlocked")
        }
    }
}
