import CofferProtocol
import Testing

@Suite struct SealCommandParserTests {
    @Test func sealCommandsParse() throws {
        #expect(try CommandParser.parse(RESPRequest("seal.status")) == .sealStatus)
        #expect(
            try CommandParser.parse(RESPRequest("UNSEAL", "coffer-share-1-2-ab-cd"))
                == .unseal(share: "coffer-share-1-2-ab-cd"))
        #expect(try CommandParser.parse(RESPRequest("unseal", "reset")) == .unsealReset)
        #expect(try CommandParser.parse(RESPRequest("SEAL")) == .seal)
    }

    @Test func wrongArityIsNamed() {
        #expect(throws: CommandError("wrong number of arguments for 'unseal' command")) {
            try CommandParser.parse(RESPRequest("UNSEAL"))
        }
        #expect(throws: CommandError("wrong number of arguments for 'unseal' command")) {
            try CommandParser.parse(RESPRequest("UNSEAL", "a", "b"))
        }
        #expect(throws: CommandError("wrong number of arguments for 'seal' command")) {
            try CommandParser.parse(RESPRequest("SEAL", "now"))
        }
        #expect(throws: CommandError("wrong number of arguments for 'seal.status' command")) {
            try CommandParser.parse(RESPRequest("SEAL.STATUS", "x"))
        }
    }
}
