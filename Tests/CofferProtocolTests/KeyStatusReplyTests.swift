import CofferProtocol
import NIOCore
import Testing

@Suite struct KeyStatusReplyTests {
    static let sample = KeyStatusReply(
        current: 3,
        versions: [
            .init(version: 2, state: "active", dataKeys: 40), .init(version: 3, state: "current", dataKeys: 60),
        ],
        pending: 40, done: 60, rate: 1234)

    /// What the CLI reads back after the reply crossed the wire, in either protocol version.
    func roundTrip(_ reply: KeyStatusReply, version: Int) throws -> KeyStatusReply {
        var buffer = ByteBuffer()
        reply.value.encode(into: &buffer, version: version)
        let decoded = try #require(try RESPReplyParser.parse(&buffer))
        #expect(buffer.readableBytes == 0)
        return try KeyStatusReply(decoded)
    }

    @Test(arguments: [2, 3]) func survivesTheWire(version: Int) throws {
        #expect(try roundTrip(Self.sample, version: version) == Self.sample)
        #expect(try roundTrip(Self.sample, version: version).isRewrapping)
        let idle = KeyStatusReply(
            current: 1, versions: [.init(version: 1, state: "current", dataKeys: 0)], pending: 0, done: 0, rate: 0)
        #expect(try roundTrip(idle, version: version) == idle)
        #expect(try !roundTrip(idle, version: version).isRewrapping)
    }

    @Test func namesWhatIsWrongWithAMalformedReply() {
        #expect(throws: CommandError("NOPERM not allowed")) { try KeyStatusReply(.error("NOPERM not allowed")) }
        #expect(throws: CommandError("KEYS.STATUS reply lacks 'versions'")) {
            try KeyStatusReply(.map([(.bulk("current"), .integer(1))]))
        }
        #expect(throws: CommandError("KEYS.STATUS reply lacks the integer 'current'")) {
            try KeyStatusReply(.map([(.bulk("versions"), .array([]))]))
        }
        #expect(throws: CommandError.self) {
            try KeyStatusReply(.map([(.bulk("current"), .integer(1)), (.bulk("versions"), .array([.integer(1)]))]))
        }
        #expect(throws: CommandError.self) { try KeyStatusReply(.array([.bulk("current")])) }
        #expect(throws: CommandError.self) { try KeyStatusReply(.integer(3)) }
    }
}

@Suite struct RESPRequestEncodingTests {
    /// A request the CLI encodes is the same request once the server has parsed it, whatever
    /// bytes its arguments hold.
    @Test(arguments: [["KEYS.STATUS"], ["CLIENT.UNLOCK", "billing-1"], ["PUT", "s", "name", "a b\r\n$3\r\n*"], [""]])
    func parsesBackToTheSameRequest(words: [String]) throws {
        var buffer = ByteBuffer()
        RESPRequest(words: words).encode(into: &buffer)
        var parser = RESPRequestParser(limits: .authenticated)
        #expect(try parser.next(&buffer) == .request(RESPRequest(words: words)))
        #expect(buffer.readableBytes == 0)
    }
}
