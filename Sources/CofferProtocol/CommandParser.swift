/// Turns a `RESPRequest` into a `Command`, checking the number and form of arguments.
public enum CommandParser {
    public static func parse(_ request: RESPRequest) throws -> Command {
        guard request.count > 0 else { throw CommandError("empty command") }
        let name = request.withArgument(0) { uppercasedName($0) }
        return try parse(name: name, Arguments(request: request))
    }

    /// The arguments after the command name, read where the request holds them: only the
    /// ones a command keeps as bytes are copied.
    struct Arguments: RandomAccessCollection {
        let request: RESPRequest
        var endIndex: Int

        init(request: RESPRequest) {
            self.request = request
            self.endIndex = request.count - 1
        }

        var startIndex: Int { 0 }
        subscript(index: Int) -> [UInt8] {
            // A dropped PURPOSE clause is still in the request: past the end is a bug, not data.
            precondition(index >= 0 && index < endIndex)
            return request.bytes(index + 1)
        }
        func text(_ index: Int) -> String {
            precondition(index >= 0 && index < endIndex)
            return request.text(index + 1)
        }
        func length(of index: Int) -> Int { request.length(of: index + 1) }
        func withBytes<Result>(_ index: Int, _ body: (UnsafeRawBufferPointer) -> Result) -> Result {
            request.withArgument(index + 1, body)
        }
        /// Drops a trailing clause (PURPOSE).
        mutating func removeLast(_ count: Int) { endIndex -= count }
    }

    private static func parse(name: String, _ args: Arguments) throws -> Command {
        // Not copied unless a PURPOSE clause is dropped: each copy retains the request's
        // buffer, which showed in the event loop's profile at pipelined PINGs.
        if let (purpose, ticket, count) = trailingPurpose(args, name), purposeCommands.contains(name) {
            var withoutClause = args
            withoutClause.removeLast(count)
            let inner = try parse(name: name, withoutClause)
            if case .withPurpose = inner { throw CommandError("PURPOSE given twice") }
            return .withPurpose(inner, purpose: purpose, ticket: ticket)
        }
        func text(_ i: Int) -> String { args.text(i) }
        func arity(_ valid: Bool) throws {
            if !valid { throw CommandError("wrong number of arguments for '\(name.lowercased())' command") }
        }
        switch name {
        case "AUTH":
            // `AUTH <secret>` alone names no client; Coffer has no default user.
            try arity(args.count == 2)
            return .auth(client: text(0), secret: args[1])
        case "HELLO":
            return try parseHello(args)
        case "PING":
            try arity(args.count <= 1)
            return .ping(message: args.first)
        case "ECHO":
            try arity(args.count == 1)
            return .echo(message: args[0])
        case "QUIT":
            return .quit
        case "WHOAMI":
            try arity(args.isEmpty)
            return .whoami
        case "PUT":
            try arity(args.count >= 3 && args.count % 2 == 1)
            let values = stride(from: 1, to: args.count, by: 2).map {
                Command.FieldValue(field: text($0), value: args[$0 + 1])
            }
            return .put(subject: text(0), values: values)
        case "GET":
            try arity(args.count >= 2)
            return .get(subject: text(0), fields: (1..<args.count).map(text))
        case "EXPORT":
            try arity(args.count == 1)
            return .export(subject: text(0))
        case "DEL":
            try arity(args.count >= 2)
            return .delete(subject: text(0), fields: (1..<args.count).map(text))
        case "EXISTS":
            try arity(args.count == 1)
            return .exists(subject: text(0))
        case "FIND":
            try arity(args.count == 2)
            return .find(kind: text(0).lowercased(), value: args[1])
        case "SHRED":
            try arity(args.count == 1)
            return .shred(subject: text(0))
        case "CLIENT.ADD":
            try arity(args.count == 2)
            return .clientAdd(name: text(0), role: text(1))
        case "CLIENT.LIST":
            try arity(args.isEmpty)
            return .clientList
        case "CLIENT.REVOKE":
            try arity(args.count == 1)
            return .clientRevoke(name: text(0))
        case "CLIENT.UNLOCK":
            try arity(args.count == 1)
            return .clientUnlock(name: text(0))
        case "KEYS.ROTATE":
            try arity(args.isEmpty)
            return .keysRotate
        case "KEYS.STATUS":
            try arity(args.isEmpty)
            return .keysStatus
        case "KEYS.RETIRE":
            try arity(args.count == 1)
            guard let version = DecimalInteger.parse(args[0]).flatMap(UInt32.init(exactly:)), version > 0 else {
                throw CommandError("KEK version must be a positive integer")
            }
            return .keysRetire(version: version)
        case "REKEY":
            try arity(args.count == 1)
            return .rekey(subject: text(0))
        case "AUDIT.TAIL":
            try arity(args.count <= 1)
            guard let count = args.isEmpty ? 10 : DecimalInteger.parse(args[0]) else {
                throw CommandError("value is not an integer or out of range")
            }
            return .auditTail(count: count)
        case "AUDIT.VERIFY":
            try arity(args.isEmpty)
            return .auditVerify
        case "TOKENIZE":
            try arity(args.count >= 2)
            return try parseTokenize(args)
        case "DETOKENIZE":
            try arity(args.count == 1)
            return .detokenize(token: args[0])
        case "TOKEN.REVOKE":
            try arity(args.count == 1)
            return .tokenRevoke(token: args[0])
        case "CLIENT.PURPOSE":
            try arity(args.count <= 2)
            return .clientPurpose(purpose: args.first.map { _ in text(0) }, ticket: args.count > 1 ? text(1) : nil)
        case "SEAL.STATUS":
            try arity(args.isEmpty)
            return .sealStatus
        case "UNSEAL":
            try arity(args.count == 1)
            // No share is the word RESET: shares begin with `coffer-share-`.
            if text(0).uppercased() == "RESET" { return .unsealReset }
            return .unseal(share: text(0))
        case "SEAL":
            try arity(args.isEmpty)
            return .seal
        case "CLIENT":
            try arity(!args.isEmpty)
            let sub = text(0).uppercased()
            switch sub {
            case "LIST":
                // Filters (TYPE, ID) are not supported: refused rather than ignored.
                try arity(args.count == 1)
                return .connectionList
            case "SETINFO", "SETNAME", "GETNAME", "ID", "NO-EVICT", "NO-TOUCH":
                return .clientHousekeeping(subcommand: sub, name: sub == "SETNAME" && args.count > 1 ? text(1) : nil)
            default:
                throw CommandError("unknown subcommand '\(printable(text(0)))' for 'client'")
            }
        case "COMMAND":
            switch args.first.map({ String(decoding: $0, as: UTF8.self).uppercased() }) {
            case "COUNT":
                try arity(args.count == 1)
                return .commandCount
            case "DOCS":
                return .commandDocs(names: (1..<args.count).map { text($0).uppercased() })
            default:
                return .commandIntrospection
            }
        case "INFO":
            return .info(sections: (0..<args.count).map { text($0).lowercased() })
        case "CONFIG":
            try arity(!args.isEmpty)
            guard text(0).uppercased() == "GET" else {
                throw CommandError(
                    "unknown subcommand '\(printable(text(0)))' for 'config': only CONFIG GET is supported")
            }
            try arity(args.count == 2)
            return .configGet(pattern: text(1))
        case "SLOWLOG":
            try arity(!args.isEmpty)
            let sub = text(0).uppercased()
            guard ["LEN", "GET", "RESET", "HELP"].contains(sub) else {
                throw CommandError("unknown subcommand '\(printable(text(0)))' for 'slowlog'")
            }
            return .slowlog(subcommand: sub)
        case "LATENCY":
            try arity(!args.isEmpty)
            let sub = text(0).uppercased()
            guard ["LATEST", "HISTORY", "RESET", "HISTOGRAM", "DOCTOR", "HELP"].contains(sub) else {
                throw CommandError("unknown subcommand '\(printable(text(0)))' for 'latency'")
            }
            return .latency(subcommand: sub)
        default:
            let preview = args.prefix(3).map { "'\(printable(String(decoding: $0, as: UTF8.self)))'" }
            throw CommandError(
                "unknown command '\(printable(name.lowercased()))', with args beginning with: \(preview.joined(separator: " "))"
            )
        }
    }

    private static func parseHello(_ args: Arguments) throws -> Command {
        var version: Int?
        var index = 0
        if let first = args.first {
            guard let v = DecimalInteger.parse(first) else {
                throw CommandError("Protocol version is not an integer or out of range")
            }
            version = v
            index = 1
        }
        var credentials: Command.Credentials?
        var clientName: String?
        while index < args.count {
            let option = args.text(index).uppercased()
            if option == "AUTH" && index + 2 < args.count {
                credentials = Command.Credentials(
                    client: args.text(index + 1), secret: args[index + 2])
                index += 3
            } else if option == "SETNAME" && index + 1 < args.count {
                clientName = args.text(index + 1)
                index += 2
            } else {
                throw CommandError("Syntax error in HELLO option '\(printable(option))'")
            }
        }
        return .hello(version: version, auth: credentials, clientName: clientName)
    }

    /// The data commands that take a trailing `PURPOSE <name> [ticket]`.
    static let purposeCommands: Set<String> = [
        "PUT", "GET", "EXPORT", "DEL", "EXISTS", "FIND", "TOKENIZE", "DETOKENIZE", "TOKEN.REVOKE",
    ]

    /// The command name in upper case: ASCII without building a String twice (every request
    /// pays for it), anything else as Unicode does it.
    static func uppercasedName(_ bytes: some Collection<UInt8>) -> String {
        guard bytes.allSatisfy({ $0 < 0x80 }) else { return String(decoding: bytes, as: UTF8.self).uppercased() }
        return String(unsafeUninitializedCapacity: bytes.count) { buffer in
            for (i, byte) in bytes.enumerated() {
                buffer[i] = (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) ? byte - 0x20 : byte
            }
            return bytes.count
        }
    }

    /// A trailing `PURPOSE <name>` or `PURPOSE <name> <ticket>` (the ticket is for `other`):
    /// the purpose, its ticket, and how many arguments it took. `PURPOSE` is never a field name,
    /// so for every command but PUT it cannot be anything else; in a PUT it is the option only
    /// if what is left is still subject, field, value pairs (`PUT s name PURPOSE x y` stores the
    /// value "PURPOSE"). The keyword is ASCII letters in any case, nothing else.
    private static func trailingPurpose(_ args: Arguments, _ name: String) -> (String, String?, Int)? {
        func isKeyword(_ index: Int) -> Bool {
            // Compared as bytes, any case: a byte masked with 0xDF (bit 5 cleared) equals an
            // upper-case letter only if it was that letter in either case.
            index >= 0 && args.length(of: index) == 7
                && args.withBytes(index) { zip($0, "PURPOSE".utf8).allSatisfy { $0 & 0xDF == $1 } }
        }
        func fits(_ removed: Int) -> Bool { name != "PUT" || (args.count - removed) % 2 == 1 }
        let n = args.count
        if isKeyword(n - 2), fits(2) {
            return (args.text(n - 1), nil, 2)
        }
        if isKeyword(n - 3), fits(3) {
            return (args.text(n - 2), args.text(n - 1), 3)
        }
        return nil
    }

    /// `TOKENIZE <subject> <field> [FORMAT f] [REUSE]`, the options in any order, each once.
    private static func parseTokenize(_ args: Arguments) throws -> Command {
        var format: String?
        var reuse = false
        var index = 2
        while index < args.count {
            let option = args.text(index).uppercased()
            if option == "FORMAT", format == nil, index + 1 < args.count {
                format = args.text(index + 1).lowercased()
                index += 2
            } else if option == "REUSE", !reuse {
                reuse = true
                index += 1
            } else {
                throw CommandError("syntax error in TOKENIZE at '\(printable(option))' (options: FORMAT f, REUSE)")
            }
        }
        return .tokenize(
            subject: args.text(0), field: args.text(1),
            format: format, reuse: reuse)
    }

    /// Echoes user input into an error safely: control characters replaced, length capped.
    static func printable(_ text: String) -> String {
        let cleaned = String(
            String.UnicodeScalarView(text.unicodeScalars.map { $0.value < 0x20 || $0.value == 0x7f ? "?" : $0 }))
        return cleaned.count > 64 ? String(cleaned.prefix(64)) + "…" : cleaned
    }
}
