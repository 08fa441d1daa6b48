import CofferProtocol
import NIOCore
import NIOEmbedded
import NIOTestUtils
import Testing

@Suite struct RESPRequestDecoderTests {

    @Test func decodesArraysAndInlineByteByByteAndInBatches() throws {
        let binary: [UInt8] = [0, 0xff, 0x0d, 0x0a, 0x24]
        var binaryRequest = ByteBuffer(string: "*3\r\n$3\r\nPUT\r\n$1\r\ns\r\n$5\r\n")
        binaryRequest.writeBytes(binary)
        binaryRequest.writeString("\r\n")
        let pairs: [(String, [RESPRequest])] = [
            ("*2\r\n$3\r\nGET\r\n$4\r\nc:42\r\n", [RESPRequest("GET", "c:42")]),
            ("PING\r\n", [RESPRequest("PING")]),
            ("ping\n", [RESPRequest("ping")]),
            (
                "PUT s name \"Jane \\\"JD\\\" Doe\" email 'a@b.co'\r\n",
                [RESPRequest("PUT", "s", "name", "Jane \"JD\" Doe", "email", "a@b.co")]
            ),
            ("SET k \"\\x41\\n\"\r\n", [RESPRequest(arguments: [Array("SET".utf8), Array("k".utf8), [0x41, 0x0a]])]),
            ("*1\r\n$4\r\nPING\r\n*1\r\n$4\r\nQUIT\r\n", [RESPRequest("PING"), RESPRequest("QUIT")]),
            ("*0\r\n*-1\r\n\r\nPING\r\n", [RESPRequest("PING")]),
            ("*1\r\n$0\r\n\r\n", [RESPRequest(arguments: [[]])]),
        ]
        try ByteToMessageDecoderVerifier.verifyDecoder(
            inputOutputPairs: pairs.map { (ByteBuffer(string: $0.0), $0.1) }
                + [(binaryRequest, [RESPRequest(arguments: [Array("PUT".utf8), Array("s".utf8), binary])])],
            decoderFactory: { RESPRequestDecoder(limits: .authenticated) })
    }

    /// The malformed inputs Redis's own protocol tests use, and what Redis answers.
    static let malformed: [(String, String)] = [
        ("*3000000000\r\n", "invalid multibulk length"),
        ("*20000000000000000000\r\n", "invalid multibulk length"),
        ("*abc\r\n", "invalid multibulk length"),
        // Found by the fuzzer: 19 digits past Int.max trapped (a crash of the whole server).
        ("*9999499999999999999\r\n", "invalid multibulk length"),
        ("*9223372036854775808\r\n", "invalid multibulk length"),
        ("*1\r\n$9999999999999999999\r\n", "invalid bulk length"),
        ("*3\r\n$3\r\nSET\r\n$1\r\nx\r\nfooz\r\n", "expected '$', got 'f'"),
        ("*3\r\n$3\r\nSET\r\n$1\r\nx\r\n$-10\r\n", "invalid bulk length"),
        ("*3\r\n$3\r\nSET\r\n$1\r\nx\r\n$2000000000\r\n", "invalid bulk length"),
        ("*3\r\n$3\r\nSET\r\n$1\r\nx\r\n$blabla\r\n", "invalid bulk length"),
        // Redis 7 answers these too (checked against redis-server): its string2ll takes no
        // plus sign, no leading zero and no -0.
        ("*-0\r\n", "invalid multibulk length"),
        ("*01\r\n$4\r\nPING\r\n", "invalid multibulk length"),
        ("*+1\r\n$4\r\nPING\r\n", "invalid multibulk length"),
        ("*1\r\n$-0\r\n", "invalid bulk length"),
        ("*1\r\n$04\r\nPING\r\n", "invalid bulk length"),
        ("*1\r\n$+4\r\nPING\r\n", "invalid bulk length"),
        // A header line ends in CRLF (Redis reads a count or length up to the CR).
        ("*1\n$4\r\nPING\r\n", "invalid multibulk length"),
        ("*1\r\n$4\nPING\r\n", "invalid bulk length"),
        ("*1\r\nfoo\r\n", "expected '$', got 'f'"),
        ("*1\r\n$3\r\nfoobar\r\n", "expected CRLF after bulk string"),
        ("set \"unbalanced\r\n", "unbalanced quotes"),
        ("set 'unbalanced\r\n", "unbalanced quotes"),
        ("set \"a\"b\r\n", "unbalanced quotes"),
        ("*2000\r\n", "too many arguments"),
        ("*1\r\n$2000000\r\n", "bulk string longer than"),
    ]

    @Test(arguments: malformed)
    func malformedInputIsAProtocolError(_ example: (String, String)) throws {
        let channel = EmbeddedChannel(
            handler: ByteToMessageHandler(RESPRequestDecoder(limits: .authenticated)))
        #expect {
            try channel.writeInbound(ByteBuffer(string: example.0))
        } throws: { error in
            (error as? RESPProtocolError)?.message.contains(example.1) == true
        }
    }

    @Test func negativeMultibulkLengthIsIgnoredLikeRedis() throws {
        let channel = EmbeddedChannel(
            handler: ByteToMessageHandler(RESPRequestDecoder(limits: .authenticated)))
        try channel.writeInbound(ByteBuffer(string: "*-10\r\nPING\r\n"))
        #expect(try channel.readInbound(as: RESPRequest.self) == RESPRequest("PING"))
        #expect(try channel.readInbound(as: RESPRequest.self) == nil)
        // The most negative 64-bit count too, as Redis does.
        try channel.writeInbound(ByteBuffer(string: "*-9223372036854775808\r\nPING\r\n"))
        #expect(try channel.readInbound(as: RESPRequest.self) == RESPRequest("PING"))
        #expect(try channel.readInbound(as: RESPRequest.self) == nil)
    }

    /// As in Redis's `sdssplitargs`: a vertical tab or form feed separates words only where
    /// blanks are skipped, and inside a word it is part of it.
    @Test func aVerticalTabInsideAnInlineWordIsPartOfIt() throws {
        var buffer = ByteBuffer(string: "\u{0B} ECHO a\u{0B}b\u{0C}c \u{0C}d\r\n")
        guard case .request(let request) = try RESPRequestParser.parse(&buffer, limits: .authenticated) else {
            Issue.record("no request")
            return
        }
        #expect(request.arguments == [Array("ECHO".utf8), Array("a\u{0B}b\u{0C}c".utf8), Array("d".utf8)])
    }

    @Test func nulBytesInAnInlineLineAreJustBytes() throws {
        let channel = EmbeddedChannel(
            handler: ByteToMessageHandler(RESPRequestDecoder(limits: .authenticated)))
        var buffer = ByteBuffer(string: "GET s na")
        buffer.writeBytes([0, 0])
        buffer.writeString("me\r\n")
        try channel.writeInbound(buffer)
        let request = try #require(try channel.readInbound(as: RESPRequest.self))
        #expect(request.arguments[2] == Array("na".utf8) + [0, 0] + Array("me".utf8))
    }

    @Test func aLineThatNeverEndsIsCutOffAtTheLimit() throws {
        let channel = EmbeddedChannel(
            handler: ByteToMessageHandler(RESPRequestDecoder(limits: .authenticated)))
        let chunk = ByteBuffer(repeating: UInt8(ascii: "a"), count: 16 * 1024)
        #expect {
            for _ in 0..<8 { try channel.writeInbound(chunk) }
        } throws: { ($0 as? RESPProtocolError)?.message == "too big inline request" }
    }

    @Test func anonymousLimitsAreSmall() throws {
        var big = ByteBuffer(string: "*3\r\n$4\r\nAUTH\r\n$5\r\nadmin\r\n$2000\r\n")
        #expect {
            _ = try RESPRequestParser.parse(&big, limits: .anonymous)
        } throws: { ($0 as? RESPProtocolError)?.message.contains("longer than 1024") == true }
        // The same bound on an inline argument.
        var inline = ByteBuffer(string: "AUTH admin " + String(repeating: "s", count: 1025) + "\r\n")
        #expect {
            _ = try RESPRequestParser.parse(&inline, limits: .anonymous)
        } throws: { ($0 as? RESPProtocolError)?.message.contains("longer than 1024") == true }
        var fits = ByteBuffer(string: "AUTH admin " + String(repeating: "s", count: 1024) + "\r\n")
        #expect(try RESPRequestParser.parse(&fits, limits: .anonymous) != .needMoreData)
        var many = ByteBuffer(string: "*9\r\n")
        #expect(throws: RESPProtocolError.self) { _ = try RESPRequestParser.parse(&many, limits: .anonymous) }
        var again = ByteBuffer(string: "*3\r\n$4\r\nAUTH\r\n$5\r\nadmin\r\n$2000\r\n")
        #expect(try RESPRequestParser.parse(&again, limits: .authenticated) == .needMoreData)
    }

    /// "One whole request" is every byte of it, the last CRLF included: a request of exactly
    /// the limit parses, one byte more is refused (the last CRLF went uncounted until
    /// 2026-12-07, so 4,098 bytes passed a 4,096-byte limit).
    @Test func theRequestLimitCountsEveryByte() throws {
        let limits = RESPLimits(
            maximumInlineLength: 1024, maximumBulkLength: 1024, maximumArguments: 8, maximumRequestBytes: 100)
        func request(total: Int) -> ByteBuffer {
            // "*2\r\n$4\r\nECHO\r\n$NN\r\n" + NN bytes + "\r\n"
            let fixed = 4 + 10 + 5 + 2
            var buffer = ByteBuffer(string: "*2\r\n$4\r\nECHO\r\n$\(total - fixed)\r\n")
            buffer.writeString(String(repeating: "x", count: total - fixed) + "\r\n")
            #expect(buffer.readableBytes == total)
            return buffer
        }
        var exact = request(total: 100)
        guard case .request(let parsed) = try RESPRequestParser.parse(&exact, limits: limits) else {
            Issue.record("a request of exactly the limit was not parsed")
            return
        }
        #expect(parsed.length(of: 1) == 79)
        var over = request(total: 101)
        #expect {
            _ = try RESPRequestParser.parse(&over, limits: limits)
        } throws: { ($0 as? RESPProtocolError)?.message.contains("request larger than 100 bytes") == true }
    }

    /// A request trickling in is parsed as it arrives: complete arguments leave the buffer at
    /// once and are never looked at again, and a large bulk costs one short header parse per
    /// segment, so a client sending a 3 MiB request one byte at a time no longer makes the
    /// server rescan everything it sent (which was quadratic).
    @Test func aTricklingRequestIsParsedIncrementally() throws {
        var parser = RESPRequestParser(limits: .authenticated)
        let value = [UInt8](repeating: 0x61, count: 200_000)
        var wire = ByteBuffer(string: "*4\r\n$3\r\nPUT\r\n$1\r\ns\r\n$4\r\nname\r\n$\(value.count)\r\n")
        wire.writeBytes(value)
        wire.writeString("\r\n")
        var buffer = ByteBuffer()
        var fed = 0
        var result: RESPRequest?
        let prefix = 40  // "*4 … name\r\n" is 30 bytes: complete arguments by then
        while let byte = wire.readInteger(as: UInt8.self) {
            buffer.writeInteger(byte)
            fed += 1
            if case .request(let request) = try parser.next(&buffer) { result = request }
            if fed == prefix {
                // The array header and the three complete arguments have been consumed.
                #expect(buffer.readableBytes == prefix - 30)
                #expect(!parser.isIdle)
            }
        }
        #expect(result?.arguments.count == 4)
        #expect(result?.arguments[3] == value)
        #expect(parser.isIdle && buffer.readableBytes == 0)
    }

    /// An inline line trickling in is searched for its end once, not from its start per byte.
    @Test func aTricklingInlineLineCompletes() throws {
        var parser = RESPRequestParser(limits: .authenticated)
        var buffer = ByteBuffer()
        var outcomes: [RESPRequestParser.Outcome] = []
        for byte in Array("ECHO hello-world\r\n".utf8) {
            buffer.writeInteger(byte)
            outcomes.append(try parser.next(&buffer))
        }
        #expect(outcomes.last == .request(RESPRequest("ECHO", "hello-world")))
        #expect(outcomes.dropLast().allSatisfy { $0 == .needMoreData })
    }

    @Test func partialInputConsumesNothing() throws {
        var buffer = ByteBuffer(string: "*2\r\n$3\r\nGET\r\n$4\r\nc:")
        #expect(try RESPRequestParser.parse(&buffer, limits: .authenticated) == .needMoreData)
        #expect(buffer.readerIndex == 0)
    }

    /// A request refers to the connection's buffer while it arrives whole, and owns a copy of
    /// its arguments otherwise. Whatever the chunks it arrives in, with empty arguments and
    /// past the four arguments kept inline, it reads back the bytes that were sent, even once
    /// the buffer it came from has been compacted and written to.
    @Test(arguments: [1, 2, 3, 5, 9, 40])
    func requestsOfAnySizeAndSplitReadBackTheirArguments(_ count: Int) throws {
        let words = (0..<count).map { $0 % 3 == 1 ? "" : "arg\($0)-" + String(repeating: "x", count: $0 * 7) }
        let sent = RESPRequest(words: words)
        var wire = ByteBuffer()
        sent.encode(into: &wire)
        let bytes = Array(wire.readableBytesView)
        for chunk in [1, 2, 3, 7, 64, bytes.count] {
            var parser = RESPRequestParser(limits: .authenticated)
            var buffer = ByteBuffer()
            var got: RESPRequest?
            var fed = 0
            while fed < bytes.count {
                let end = min(bytes.count, fed + chunk)
                buffer.writeBytes(bytes[fed..<end])
                fed = end
                if case .request(let request) = try parser.next(&buffer) {
                    #expect(got == nil && fed == bytes.count)
                    got = request
                }
            }
            // The connection compacts and reuses its buffer; the request must not change.
            buffer.discardReadBytes()
            buffer.writeString("*1\r\n$4\r\nPING\r\n")
            let request = try #require(got, "chunks of \(chunk)")
            #expect(request == sent)
            #expect(request.count == count)
            #expect(request.arguments == words.map { Array($0.utf8) })
            #expect((0..<count).map(request.text) == words)
            #expect(try parser.next(&buffer) == .request(RESPRequest("PING")))
        }
    }
}
