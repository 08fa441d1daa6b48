/// Turns a `RESPRequest` into a `Command`, checking the number and form of arguments.
public enum CommandParser {
    public static func parse(_ request: RESPRequest) throws -> Command {
        guard let first = request.arguments.first else { throw CommandError("empty command") }
        let name = uppercasedName(first)
        var args = Array(request.arguments.dropFirst())
        if let (purpose, ticket, count) = trailingPurpose(args, name), purposeCommands.contains(name) {
            args.removeLast(count)
            let inner = try parse(RESPRequest(arguments: [first] + args))
            if case .withPurpose = inner { throw CommandError("PURPOSE given twice") }
            return .withPurpose(inner, purpose: purpose, ticket: ticket)
        }
        func text(_ i: Int) -> String { String(decoding: args[i], as: UTF8.self) }
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
            guard let version = UInt32(text(0)), version > 0 else {
                throw CommandError("KEK version must be a positive integer")
            }
            return .keysRetire(version: version)
        case "REKEY":
            try arity(args.count == 1)
            return .rekey(subject: text(0))
        case "AUDIT.TAIL":
            try arity(args.count <= 1)
            guard let count = args.isEmpty ? 10 : Int(text(0)) else {
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

    private static func parseHello(_ args: [[UInt8]]) throws -> Command {
        var version: Int?
        var index = 0
        if let first = args.first {
            guard let v = Int(String(decoding: first, as: UTF8.self)) else {
                throw CommandError("Protocol version is not an integer or out of range")
            }
            version = v
            index = 1
        }
        var credentials: Command.Credentials?
        var clientName: String?
        while index < args.count {
            let option = String(decoding: args[index], as: UTF8.self).uppercased()
            if option == "AUTH" && index + 2 < args.count {
                credentials = Command.Credentials(
                    client: String(decoding: args[index + 1], as: UTF8.self), secret: args[index + 2])
                index += 3
            } else if option == "SETNAME" && index + 1 < args.count {
                clientName = String(decoding: args[index + 1], as: UTF8.self)
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
    static func uppercasedName(_ bytes: [UInt8]) -> String {
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
    private static func trailingPurpose(_ args: [[UInt8]], _ name: String) -> (String, String?, Int)? {
        func isKeyword(_ index: Int) -> Bool {
            // Compared as bytes, any case: a byte masked with 0xDF (bit 5 cleared) equals an
            // upper-case letter only if it was that letter in either case.
            index >= 0 && args[index].count == 7 && zip(args[index], "PURPOSE".utf8).allSatisfy { $0 & 0xDF == $1 }
        }
        func fits(_ removed: Int) -> Bool { name != "PUT" || (args.count - removed) % 2 == 1 }
        let n = args.count
        if isKeyword(n - 2), fits(2) {
            return (String(decoding: args[n - 1], as: UTF8.self), nil, 2)
        }
        if isKeyword(n - 3), fits(3) {
            return (String(decoding: args[n - 2], as: UTF8.self), String(decoding: args[n - 1], as: UTF8.self), 3)
        }
        return nil
    }

    /// `TOKENIZE <subject> <field> [FORMAT f] [REUSE]`, the options in any order, each once.
    private static func parseTokenize(_ args: [[UInt8]]) throws -> Command {
        var format: String?
        var reuse = false
        var index = 2
        while index < args.count {
            let option = String(decoding: args[index], as: UTF8.self).uppercased()
            if option == "FORMAT", format == nil, index + 1 < args.count {
                format = String(decoding: args[index + 1], as: UTF8.self).lowercased()
                index += 2
            } else if option == "REUSE", !reuse {
                reuse = true
                index += 1
            } else {
                throw CommandError("syntax error in TOKENIZE at '\(printable(option))' (options: FORMAT f, REUSE)")
            }
        }
        return .tokenize(
            subject: String(decoding: args[0], as: UTF8.self), field: String(decoding: args[1], as: UTF8.self),
            format: format, reuse: reuse)
    }

    /// Echoes user input into an error safely: control characters replaced, length capped.
    static func printable(_ text: String) -> String {
        let cleaned = String(
            String.UnicodeScalarView(text.unicodeScalars.map { $0.value < 0x20 || $0.value == 0x7f ? "?" : $0 }))
        return cleaned.count > 64 ? String(cleaned.prefix(64)) + "…" : cleaned
    }
}
