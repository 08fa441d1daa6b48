import CofferProtocol
import NIOCore
import Testing

@Suite struct RESPValueTests {
    func encoded(_ value: RESPValue, _ version: Int) -> String {
        var buffer = ByteBuffer()
        value.encode(into: &buffer, version: version)
        return String(buffer: buffer)
    }

    @Test func encodesRESP2AndRESP3() {
        #expect(encoded(.simpleString("OK"), 2) == "+OK\r\n")
        #expect(encoded(.error("ERR bad\r\nthing"), 2) == "-ERR bad  thing\r\n")
        #expect(encoded(.integer(-3), 2) == ":-3\r\n")
        #expect(encoded(.bulk("hé"), 2) == "$3\r\nhé\r\n")
        #expect(encoded(.null, 2) == "$-1\r\n")
        #expect(encoded(.null, 3) == "_\r\n")
        #expect(encoded(.array([.bulk("a"), .null]), 2) == "*2\r\n$1\r\na\r\n$-1\r\n")
        let map = RESPValue.map([(.bulk("name"), .bulk("J"))])
        #expect(encoded(map, 2) == "*2\r\n$4\r\nname\r\n$1\r\nJ\r\n")
        #expect(encoded(map, 3) == "%1\r\n$4\r\nname\r\n$1\r\nJ\r\n")
    }

    /// Integers are written digit by digit, not through a string: every length and sign.
    @Test(arguments: [0, 7, 9, 10, 99, 100, 12_345, -1, -10, Int.max, Int.min])
    func integersAndLengthsAreWrittenInDecimal(_ value: Int) {
        #expect(encoded(.integer(value), 2) == ":\(value)\r\n")
        if value >= 0 && value < 100_000 {
            let bytes = [UInt8](repeating: 0x61, count: value)
            #expect(encoded(.bulkString(bytes), 2) == "$\(value)\r\n" + String(repeating: "a", count: value) + "\r\n")
            #expect(encoded(.array(Array(repeating: .integer(1), count: value)), 2).hasPrefix("*\(value)\r\n"))
        }
    }

    /// Each reply is written in one piece after whatever the buffer holds: empty and long
    /// (heap-allocated) strings, bytes of every value, one after another.
    @Test func repliesAppendToWhatTheBufferHolds() {
        let long = String(repeating: "é-x", count: 300)
        let values: [RESPValue] = [
            .simpleString(""), .simpleString(long), .error("ERR " + long), .bulkString([]),
            .bulkString(Array(0...255)), .integer(Int.min), .simpleString("PONG"),
        ]
        var buffer = ByteBuffer(string: "head")
        for value in values { value.encode(into: &buffer, version: 2) }
        let expected =
            Array("head+\r\n+\(long)\r\n-ERR \(long)\r\n$0\r\n\r\n$256\r\n".utf8) + Array(0...255)
            + Array("\r\n:\(Int.min)\r\n+PONG\r\n".utf8)
        #expect(Array(buffer.readableBytesView) == expected)
    }

    /// A reply encoded ahead of time is written exactly as the value it came from, per version.
    @Test func aPreencodedReplyIsWrittenAsItsValue() {
        let value = RESPValue.array([
            .map([(.bulk("name"), .null), (.bulk("n"), .integer(-42))]), .nullArray, .simpleString("OK"),
        ])
        let preencoded = RESPValue.preencoded(value)
        for version in [2, 3] { #expect(encoded(preencoded, version) == encoded(value, version)) }
        #expect(encoded(preencoded, 2) != encoded(preencoded, 3))
    }
}

@Suite struct CommandParserTests {
    func parse(_ words: String...) throws -> Command {
        try CommandParser.parse(RESPRequest(arguments: words.map { Array($0.utf8) }))
    }

    @Test func parsesCommandsCaseInsensitively() throws {
        #expect(try parse("get", "s", "name", "email") == .get(subject: "s", fields: ["name", "email"]))
        #expect(
            try parse("Put", "s", "name", "J")
                == .put(subject: "s", values: [.init(field: "name", value: Array("J".utf8))]))
        #expect(
            try parse("HELLO", "3", "AUTH", "admin", "pw", "SETNAME", "x")
                == .hello(version: 3, auth: .init(client: "admin", secret: Array("pw".utf8)), clientName: "x"))
        #expect(try parse("hello") == .hello(version: nil, auth: nil, clientName: nil))
        #expect(try parse("FIND", "EMAIL", "a@b.co") == .find(kind: "email", value: Array("a@b.co".utf8)))
        #expect(
            try parse("client", "setinfo", "lib-name", "redis-py")
                == .clientHousekeeping(subcommand: "SETINFO", name: nil))
        #expect(try parse("CLIENT.ADD", "n", "billing") == .clientAdd(name: "n", role: "billing"))
    }

    @Test(arguments: [
        ["PING", "a", "b"], ["GET", "s"], ["PUT", "s", "name"], ["AUTH", "x"], ["EXISTS"], ["SHRED", "a", "b"],
        ["DEL", "s"],
    ])
    func wrongArityIsAnError(words: [String]) {
        #expect {
            _ = try CommandParser.parse(RESPRequest(arguments: words.map { Array($0.utf8) }))
        } throws: { ($0 as? CommandError)?.message.contains("wrong number of arguments") == true }
    }

    @Test func tokenizeTakesFormatAndReuseInAnyOrderOnce() throws {
        #expect(
            try parse("tokenize", "s", "card.pan")
                == .tokenize(subject: "s", field: "card.pan", format: nil, reuse: false))
        #expect(
            try parse("TOKENIZE", "s", "card.pan", "reuse", "format", "LUHN9")
                == .tokenize(subject: "s", field: "card.pan", format: "luhn9", reuse: true))
        #expect(try parse("DETOKENIZE", "tok_x") == .detokenize(token: Array("tok_x".utf8)))
        #expect(try parse("token.revoke", "tok_x") == .tokenRevoke(token: Array("tok_x".utf8)))
        for words in [["s", "card.pan", "FORMAT"], ["s", "card.pan", "REUSE", "REUSE"], ["s", "card.pan", "X"]] {
            #expect {
                _ = try CommandParser.parse(RESPRequest(arguments: (["TOKENIZE"] + words).map { Array($0.utf8) }))
            } throws: { ($0 as? CommandError)?.message.hasPrefix("syntax error in TOKENIZE") == true }
        }
        #expect(throws: CommandError.self) { _ = try parse("TOKENIZE", "s") }
        #expect(throws: CommandError.self) { _ = try parse("DETOKENIZE") }
    }

    @Test func aTrailingPurposeWrapsDataCommands() throws {
        #expect(
            try parse("GET", "s", "name", "purpose", "support")
                == .withPurpose(.get(subject: "s", fields: ["name"]), purpose: "support", ticket: nil))
        #expect(
            try parse("EXPORT", "s", "PURPOSE", "other", "INC-1")
                == .withPurpose(.export(subject: "s"), purpose: "other", ticket: "INC-1"))
        #expect(
            try parse("PUT", "s", "name", "J", "PURPOSE", "support")
                == .withPurpose(
                    .put(subject: "s", values: [.init(field: "name", value: Array("J".utf8))]), purpose: "support",
                    ticket: nil))
        // In a PUT, "PURPOSE" followed by a field and value is a value, not the option.
        #expect(
            try parse("PUT", "s", "name", "PURPOSE", "email", "a@b.co")
                == .put(
                    subject: "s",
                    values: [
                        .init(field: "name", value: Array("PURPOSE".utf8)),
                        .init(field: "email", value: Array("a@b.co".utf8)),
                    ]))
        #expect(throws: CommandError("PURPOSE given twice")) {
            _ = try parse("GET", "s", "n", "PURPOSE", "a", "PURPOSE", "b")
        }
        #expect(try parse("CLIENT.PURPOSE", "fraud") == .clientPurpose(purpose: "fraud", ticket: nil))
        #expect(try parse("CLIENT.PURPOSE") == .clientPurpose(purpose: nil, ticket: nil))
        #expect(try parse("GET", "s", "n", "PURPOSE", "x").execution == .pipelined)
        #expect(throws: CommandError.self) { _ = try parse("GET", "s", "PURPOSE", "support") }
        #expect(throws: CommandError.self) { _ = try parse("SHRED", "s", "PURPOSE", "support") }
    }

    @Test func unknownCommandsAreNamed() throws {
        #expect {
            _ = try parse("FLUSHALL")
        } throws: { ($0 as? CommandError)?.message.hasPrefix("unknown command 'flushall'") == true }
        #expect(throws: CommandError.self) { _ = try parse("HELLO", "x") }
        // As in Redis: a version is a plain decimal.
        for version in ["03", "+3", "-0", " 3", "3 ", ""] {
            #expect(throws: CommandError.self) { _ = try parse("HELLO", version) }
        }
        #expect(try parse("HELLO", "3") == .hello(version: 3, auth: nil, clientName: nil))
        // Numbers of other commands follow the same rules.
        for text in ["+5", "05", " 5", "5x"] {
            #expect(throws: CommandError.self) { _ = try parse("AUDIT.TAIL", text) }
            #expect(throws: CommandError.self) { _ = try parse("KEYS.RETIRE", text) }
        }
        #expect(try parse("AUDIT.TAIL", "5") == .auditTail(count: 5))
        #expect(try parse("KEYS.RETIRE", "2") == .keysRetire(version: 2))
        #expect(throws: CommandError.self) { _ = try parse("KEYS.RETIRE", "4294967296") }
        #expect(throws: CommandError.self) { _ = try parse("HELLO", "3", "BOGUS") }
    }
}
