import CofferProtocol
import NIOCore
import Testing

/// The reply parser the CLI uses to read a server's answers; a hostile or broken server must
/// get an error, never a crash.
@Suite struct RESPReplyParserTests {
    func parse(_ text: String) throws -> RESPValue? {
        var buffer = ByteBuffer(string: text)
        return try RESPReplyParser.parse(&buffer)
    }

    @Test func parsesEveryReplyType() throws {
        #expect(try parse("+OK\r\n") == .simpleString("OK"))
        #expect(try parse("-ERR x\r\n") == .error("ERR x"))
        #expect(try parse(":42\r\n") == .integer(42))
        #expect(try parse("$3\r\nabc\r\n") == .bulkString(Array("abc".utf8)))
        #expect(try parse("$-1\r\n") == .null)
        #expect(try parse("_\r\n") == .null)
        #expect(try parse("*2\r\n:1\r\n$1\r\nx\r\n") == .array([.integer(1), .bulk("x")]))
        #expect(try parse("%1\r\n+a\r\n:1\r\n") == .map([(.simpleString("a"), .integer(1))]))
    }

    @Test func incompleteRepliesWaitAndConsumeNothing() throws {
        for partial in ["+OK", "$3\r\nab", "*2\r\n:1\r\n", "$5\r\n"] {
            var buffer = ByteBuffer(string: partial)
            #expect(try RESPReplyParser.parse(&buffer) == nil)
            #expect(buffer.readableBytes == partial.utf8.count)
        }
    }

    /// Found by the fuzzer (Tests/Fuzz/regressions/reply-bulk-length-int-max): `length + 2`
    /// overflowed and trapped.
    @Test(arguments: [
        "$9223372036854775807\r\n", "$9223372036854775806\r\nx", "$536870913\r\n",
        "*9223372036854775807\r\n", "%9223372036854775807\r\n", "%4611686018427387904\r\n",
        "$3\r\nabcXY", "?\r\n", ":x\r\n", "$x\r\n",
    ])
    func hostileRepliesAreErrors(_ text: String) {
        #expect(throws: RESPProtocolError.self) { try parse(text) }
    }
}
