import CofferProtocol
import NIOCore
import NIOEmbedded
import NIOTestUtils
import Testing

@Suite struct RESPRequestDecoderTests {
    static func authenticatedSwitch() -> RESPLimitSwitch {
        let limits = RESPLimitSwitch()
        limits.setAuthenticated(true)
        return limits
    }

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
        let limits = Self.authenticatedSwitch()
        try ByteToMessageDecoderVerifier.verifyDecoder(
            inputOutputPairs: pairs.map { (ByteBuffer(string: $0.0), $0.1) }
                + [(binaryRequest, [RESPRequest(arguments: [Array("PUT".utf8), Array("s".utf8), binary])])],
            decoderFactory: { RESPRequestDecoder(limits: limits) })
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
            handler: ByteToMessageHandler(RESPRequestDecoder(limits: Self.authenticatedSwitch())))
        #expect {
            try channel.writeInbound(ByteBuffer(string: example.0))
        } throws: { error in
            (error as? RESPProtocolError)?.message.contains(example.1) == true
        }
    }

    @Test func negativeMultibulkLengthIsIgnoredLikeRedis() throws {
        let channel = EmbeddedChannel(
            handler: ByteToMessageHandler(RESPRequestDecoder(limits: Self.authenticatedSwitch())))
        try channel.writeInbound(ByteBuffer(string: "*-10\r\nPING\r\n"))
        #expect(try channel.readInbound(as: RESPRequest.self) == RESPRequest("PING"))
        #expect(try channel.readInbound(as: RESPRequest.self) == nil)
    }

    @Test func nulBytesInAnInlineLineAreJustBytes() throws {
        let channel = EmbeddedChannel(
            handler: ByteToMessageHandler(RESPRequestDecoder(limits: Self.authenticatedSwitch())))
        var buffer = ByteBuffer(string: "GET s na")
        buffer.writeBytes([0, 0])
        buffer.writeString("me\r\n")
        try channel.writeInbound(buffer)
        let request = try #require(try channel.readInbound(as: RESPRequest.self))
        #expect(request.arguments[2] == Array("na".utf8) + [0, 0] + Array("me".utf8))
    }

    @Test func aLineThatNeverEndsIsCutOffAtTheLimit() throws {
        let channel = EmbeddedChannel(
            handler: ByteToMessageHandler(RESPRequestDecoder(limits: Self.authenticatedSwitch())))
        let chunk = ByteBuffer(repeating: UInt8(ascii: "a"), count: 16 * 1024)
        #expect {
            for _ in 0..<8 { try channel.writeInbound(chunk) }
        } throws: { ($0 as? RESPProtocolError)?.message == "too big inline request" }
    }

    @Test func anonymousConnectionsGetSmallLimitsUntilAuthenticated() throws {
        let limits = RESPLimitSwitch()
        var big = ByteBuffer(string: "*3\r\n$4\r\nAUTH\r\n$5\r\nadmin\r\n$2000\r\n")
        #expect {
            _ = try RESPRequestParser.parse(&big, limits: limits.limits)
        } throws: { ($0 as? RESPProtocolError)?.message.contains("longer than 1024") == true }
        var many = ByteBuffer(string: "*9\r\n")
        #expect(throws: RESPProtocolError.self) { _ = try RESPRequestParser.parse(&many, limits: limits.limits) }
        limits.setAuthenticated(true)
        var again = ByteBuffer(string: "*3\r\n$4\r\nAUTH\r\n$5\r\nadmin\r\n$2000\r\n")
        #expect(try RESPRequestParser.parse(&again, limits: limits.limits) == .needMoreData)
    }

    @Test func anAnonymousPipelineWaitsForTheAuthOutcome() throws {
        let limits = RESPLimitSwitch()
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(RESPRequestDecoder(limits: limits)))
        let big = "*12\r\n$3\r\nPUT\r\n$1\r\ns" + String(repeating: "\r\n$4\r\nname\r\n$1\r\nx", count: 5) + "\r\n"
        try channel.writeInbound(ByteBuffer(string: "AUTH admin secret\r\n" + big))
        #expect(try channel.readInbound(as: RESPRequest.self) == RESPRequest("AUTH", "admin", "secret"))
        // The PUT (12 arguments, over the anonymous limit of 8) is held, not refused, until AUTH is answered.
        #expect(try channel.readInbound(as: RESPRequest.self) == nil)
        #expect(limits.current == .awaitingAuthentication)
        limits.settle(authenticated: true)
        try channel.writeInbound(ByteBuffer())
        #expect(try channel.readInbound(as: RESPRequest.self)?.arguments.count == 12)
        // Had AUTH failed, the same PUT would have been a protocol error.
        let refused = RESPLimitSwitch()
        let other = EmbeddedChannel(handler: ByteToMessageHandler(RESPRequestDecoder(limits: refused)))
        try other.writeInbound(ByteBuffer(string: "AUTH admin wrong\r\n" + big))
        refused.settle(authenticated: false)
        #expect(throws: RESPProtocolError.self) { try other.writeInbound(ByteBuffer()) }
    }

    @Test func partialInputConsumesNothing() throws {
        var buffer = ByteBuffer(string: "*2\r\n$3\r\nGET\r\n$4\r\nc:")
        #expect(try RESPRequestParser.parse(&buffer, limits: .authenticated) == .needMoreData)
        #expect(buffer.readerIndex == 0)
    }
}
