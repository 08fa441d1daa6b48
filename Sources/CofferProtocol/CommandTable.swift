/// Every command name the server knows, with what `COMMAND DOCS` tells clients about it
/// (redis-cli builds its hints from that) and the label metrics count it under.
///
/// The table is fixed at build time: metric labels come only from it, never from what a client
/// sent, so an unknown or hostile command name cannot create a new time series. A command added
/// later without an entry here is still counted, under `other`.
public enum CommandTable {
    public struct Entry: Sendable, Hashable {
        /// As `Command.name` spells it: `GET`, `CLIENT.ADD`, `CLIENT LIST`.
        public let name: String
        public let summary: String
        /// The arguments as redis-cli shows them in its hint, e.g. `subject field [field ...]`.
        public let arguments: [Argument]
        public let group: String
        /// The metric label, as Redis names commands in INFO: lower case, a subcommand after `|`
        /// (`client|list`, Redis's CLIENT LIST), Coffer's dotted names kept (`client.list`, the
        /// clients): distinct names give distinct labels.
        public var label: String {
            String(name.lowercased().map { $0 == " " ? "|" : $0 })
        }
    }

    public struct Argument: Sendable, Hashable {
        public let name: String
        public let optional: Bool
        public let multiple: Bool

        init(_ name: String, optional: Bool = false, multiple: Bool = false) {
            self.name = name
            self.optional = optional
            self.multiple = multiple
        }
    }

    private static func entry(_ name: String, _ group: String, _ summary: String, _ arguments: [Argument] = [])
        -> Entry
    {
        Entry(name: name, summary: summary, arguments: arguments, group: group)
    }

    private static func a(_ name: String, optional: Bool = false, multiple: Bool = false) -> Argument {
        Argument(name, optional: optional, multiple: multiple)
    }

    public static let all: [Entry] = [
        entry("AUTH", "connection", "Authenticates the connection as a client.", [a("client"), a("secret")]),
        entry(
            "HELLO", "connection", "Chooses the protocol version, optionally authenticating.",
            [a("protover", optional: true), a("AUTH client secret", optional: true), a("SETNAME name", optional: true)]
        ),
        entry("PING", "connection", "Answers PONG, or the message.", [a("message", optional: true)]),
        entry("ECHO", "connection", "Answers the message.", [a("message")]),
        entry("QUIT", "connection", "Closes the connection."),
        entry("WHOAMI", "connection", "Names the client and role of the connection."),
        entry(
            "CLIENT", "connection", "Connection housekeeping: SETNAME, GETNAME, ID, SETINFO, LIST.", [a("subcommand")]),
        entry("CLIENT LIST", "server", "Lists the open connections (admin).", []),
        entry("COMMAND", "server", "COMMAND COUNT, COMMAND DOCS [name ...].", [a("subcommand", optional: true)]),
        entry(
            "INFO", "server", "Server, client, command and vault statistics (admin, auditor).",
            [
                a("section", optional: true)
            ]),
        entry("CONFIG GET", "server", "Reads the settings redis_exporter asks for (admin, auditor).", [a("pattern")]),
        entry(
            "SLOWLOG", "server", "Coffer keeps no slow log: LEN is 0, GET is empty (admin, auditor).",
            [
                a("subcommand")
            ]),
        entry(
            "LATENCY", "server", "Coffer records no latency events: LATEST is empty (admin, auditor).",
            [
                a("subcommand")
            ]),
        entry(
            "PUT", "vault", "Writes fields of a subject, all or nothing.",
            [a("subject"), a("field value", multiple: true)]),
        entry(
            "GET", "vault", "Reads fields of a subject, plain or masked per role.",
            [
                a("subject"), a("field", multiple: true),
            ]),
        entry("EXPORT", "vault", "Every field of a subject the role may see.", [a("subject")]),
        entry("DEL", "vault", "Removes fields of a subject.", [a("subject"), a("field", multiple: true)]),
        entry("EXISTS", "vault", "Whether a subject is stored.", [a("subject")]),
        entry("FIND", "vault", "Subjects whose email or phone equals the value.", [a("email|phone"), a("value")]),
        entry("SHRED", "vault", "Destroys a subject beyond recovery.", [a("subject")]),
        entry("CLIENT.ADD", "admin", "Adds a client with a role; answers its secret.", [a("name"), a("role")]),
        entry("CLIENT.LIST", "admin", "Lists clients and roles."),
        entry("CLIENT.REVOKE", "admin", "Revokes a client.", [a("name")]),
        entry("CLIENT.UNLOCK", "admin", "Lifts a client's lock-outs.", [a("name")]),
        entry("KEYS.ROTATE", "admin", "Makes a new KEK version current."),
        entry("KEYS.STATUS", "admin", "KEK versions and rewrap progress."),
        entry("KEYS.RETIRE", "admin", "Destroys a KEK version no data key needs.", [a("version")]),
        entry("REKEY", "admin", "Gives a subject a fresh data key.", [a("subject")]),
        entry("AUDIT.TAIL", "audit", "The newest audit entries.", [a("count", optional: true)]),
        entry("AUDIT.VERIFY", "audit", "Verifies the audit chain."),
        entry(
            "TOKENIZE", "vault", "A card token for the subject's stored PAN.",
            [a("subject"), a("card.pan"), a("FORMAT last4|luhn9|opaque", optional: true), a("REUSE", optional: true)]),
        entry("DETOKENIZE", "vault", "The PAN behind a token, at the role's read level.", [a("token")]),
        entry("TOKEN.REVOKE", "vault", "Ends a card token.", [a("token")]),
        entry(
            "CLIENT.PURPOSE", "connection", "The connection's purpose for commands that state none.",
            [a("purpose", optional: true), a("ticket", optional: true)]),
        entry("SEAL.STATUS", "seal", "Sealed or not, the threshold and the shares entered."),
        entry("UNSEAL", "seal", "Enters one key share (UNSEAL RESET forgets those entered).", [a("share|RESET")]),
        entry("SEAL", "seal", "Drops every key from memory; the server stays up, sealed (admin)."),
    ]

    /// The metric label of everything not in the table (unknown commands included).
    public static let otherLabel = "other"

    /// Every label metrics may carry, in a fixed order; `otherLabel` is last.
    public static let labels: [String] = all.map(\.label) + [otherLabel]

    private static let indexByName: [String: Int] = {
        var index: [String: Int] = [:]
        for (i, entry) in all.enumerated() { index[entry.name] = i }
        return index
    }()

    /// The position of `name` (as `Command.name` spells it) in `labels`; unknown names map to
    /// `other`.
    public static func labelIndex(ofName name: String) -> Int {
        indexByName[name] ?? labels.count - 1
    }

    /// The label index of a raw request, for requests refused before they became a `Command`:
    /// the first argument if it names a known command, else `other`.
    public static func labelIndex(ofRequest request: RESPRequest) -> Int {
        name(ofRequest: request).map(labelIndex(ofName:)) ?? labels.count - 1
    }

    /// The request's command name in upper case; nil if it has none, or one too long to be a
    /// command's.
    public static func name(ofRequest request: RESPRequest) -> String? {
        guard request.count > 0, request.length(of: 0) <= 16 else { return nil }
        return request.text(0).uppercased()
    }

    public static func entry(named name: String) -> Entry? {
        indexByName[name].flatMap { $0 < all.count ? all[$0] : nil }
    }
}
