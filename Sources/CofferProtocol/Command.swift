/// A request parsed into a command with typed arguments. Parsing checks only the shape (the
/// number and form of arguments); whether the caller may run it, and whether the values are
/// valid, is decided by the vault core.
public enum Command: Sendable, Equatable {
    case auth(client: String, secret: [UInt8])
    case hello(version: Int?, auth: Credentials?, clientName: String?)
    case ping(message: [UInt8]?)
    case echo(message: [UInt8])
    case quit
    case whoami
    case put(subject: String, values: [FieldValue])
    case get(subject: String, fields: [String])
    case export(subject: String)
    case delete(subject: String, fields: [String])
    case exists(subject: String)
    case find(kind: String, value: [UInt8])
    case shred(subject: String)
    case clientAdd(name: String, role: String)
    case clientList
    case clientRevoke(name: String)
    case clientUnlock(name: String)
    case keysRotate
    case keysStatus
    case keysRetire(version: UInt32)
    case rekey(subject: String)
    case auditTail(count: Int)
    case auditVerify
    /// `TOKENIZE <subject> <field> [FORMAT f] [REUSE]`; a nil format is the vault's default.
    case tokenize(subject: String, field: String, format: String?, reuse: Bool)
    case detokenize(token: [UInt8])
    case tokenRevoke(token: [UInt8])
    /// A data command with a trailing `PURPOSE <name> [ticket]`: the purpose travels with the
    /// command, so it is right however a pool shares connections.
    indirect case withPurpose(Command, purpose: String, ticket: String?)
    /// `CLIENT.PURPOSE [<name> [ticket]]`: the connection's purpose for commands that state none
    /// (none given: cleared).
    case clientPurpose(purpose: String?, ticket: String?)
    /// `SEAL.STATUS`: sealed or not, the threshold, shares entered. Answered sealed or not.
    case sealStatus
    /// `UNSEAL <share>`: one key share towards unsealing the vault.
    case unseal(share: String)
    /// `UNSEAL RESET`: forgets the shares entered so far.
    case unsealReset
    /// `SEAL`: drops every key from memory; the server goes on listening, sealed.
    case seal
    /// Connection housekeeping that Redis client libraries send on connect (`CLIENT SETINFO`,
    /// `CLIENT SETNAME`, …); acknowledged so that those libraries keep working.
    case clientHousekeeping(subcommand: String, name: String?)
    /// `COMMAND` and its subcommands other than COUNT and DOCS: an empty array.
    case commandIntrospection
    /// `COMMAND COUNT`: how many commands `CommandTable` lists.
    case commandCount
    /// `COMMAND DOCS [name …]`, which redis-cli sends on start to build its hints.
    case commandDocs(names: [String])
    /// `INFO [section …]`: server, client, command and vault statistics.
    case info(sections: [String])
    /// `CLIENT LIST` (Redis's, one line per open connection), unlike `CLIENT.LIST` (the clients).
    case connectionList
    /// `CONFIG GET <pattern>`, `SLOWLOG <sub>`, `LATENCY <sub>`: the monitoring calls
    /// redis_exporter makes, answered minimally and truthfully.
    case configGet(pattern: String)
    case slowlog(subcommand: String)
    case latency(subcommand: String)

    public struct Credentials: Sendable, Equatable {
        public var client: String
        public var secret: [UInt8]

        public init(client: String, secret: [UInt8]) {
            self.client = client
            self.secret = secret
        }
    }

    public struct FieldValue: Sendable, Equatable {
        public var field: String
        public var value: [UInt8]

        public init(field: String, value: [UInt8]) {
            self.field = field
            self.value = value
        }
    }

    /// How a connection runs the command.
    public enum Execution: Sendable {
        /// Answered on the event loop, touching no vault state: PING, ECHO, QUIT, HELLO without
        /// AUTH, connection housekeeping.
        case local
        /// One unit of a group-commit batch: submitted at once, in order, without waiting for
        /// earlier replies (the committer runs a connection's units in the order it got them).
        case pipelined
        /// Runs alone: every earlier command has answered first, and nothing after it is parsed
        /// until it has answered (AUTH changes the limits the next request is parsed under;
        /// the rest run on the worker pool, outside the committer's ordering).
        case barrier
    }

    public var execution: Execution {
        switch self {
        case .withPurpose(let command, _, _): command.execution
        case .ping, .echo, .quit, .clientHousekeeping, .commandIntrospection, .commandCount, .commandDocs,
            .clientPurpose, .sealStatus, .unsealReset:
            .local
        case .hello(_, let auth, _): auth == nil ? .local : .barrier
        case .put, .get, .export, .delete, .exists, .find, .whoami: .pipelined
        case .tokenize, .detokenize, .tokenRevoke: .pipelined
        case .auth, .shred, .clientAdd, .clientList, .clientRevoke, .clientUnlock, .keysRotate, .keysStatus,
            .keysRetire, .rekey, .auditTail, .auditVerify, .unseal, .seal, .info, .connectionList, .configGet,
            .slowlog, .latency:
            .barrier
        }
    }

    /// The upper-case command name, for errors and the audit trail.
    public var name: String {
        switch self {
        case .auth: "AUTH"
        case .hello: "HELLO"
        case .ping: "PING"
        case .echo: "ECHO"
        case .quit: "QUIT"
        case .whoami: "WHOAMI"
        case .put: "PUT"
        case .get: "GET"
        case .export: "EXPORT"
        case .delete: "DEL"
        case .exists: "EXISTS"
        case .find: "FIND"
        case .shred: "SHRED"
        case .clientAdd: "CLIENT.ADD"
        case .clientList: "CLIENT.LIST"
        case .clientRevoke: "CLIENT.REVOKE"
        case .clientUnlock: "CLIENT.UNLOCK"
        case .keysRotate: "KEYS.ROTATE"
        case .keysStatus: "KEYS.STATUS"
        case .keysRetire: "KEYS.RETIRE"
        case .rekey: "REKEY"
        case .auditTail: "AUDIT.TAIL"
        case .auditVerify: "AUDIT.VERIFY"
        case .tokenize: "TOKENIZE"
        case .detokenize: "DETOKENIZE"
        case .tokenRevoke: "TOKEN.REVOKE"
        case .withPurpose(let command, _, _): command.name
        case .clientPurpose: "CLIENT.PURPOSE"
        case .sealStatus: "SEAL.STATUS"
        case .unseal, .unsealReset: "UNSEAL"
        case .seal: "SEAL"
        case .clientHousekeeping: "CLIENT"
        case .commandIntrospection, .commandCount, .commandDocs: "COMMAND"
        case .info: "INFO"
        case .connectionList: "CLIENT LIST"
        case .configGet: "CONFIG GET"
        case .slowlog: "SLOWLOG"
        case .latency: "LATENCY"
        }
    }
}

/// A request that is not a well-formed command: `-ERR …`, and the connection goes on.
public struct CommandError: Error, Hashable, Sendable, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { "ERR \(message)" }
}
