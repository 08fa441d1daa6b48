import Testing

@testable import CofferProtocol

/// Command names and the PURPOSE keyword are matched in any case, on bytes where they are ASCII.
@Suite struct CommandNameTests {
    @Test func namesAndThePurposeKeywordMatchInAnyCase() throws {
        #expect(try CommandParser.parse(RESPRequest("gEt", "s", "name")) == .get(subject: "s", fields: ["name"]))
        #expect(
            try CommandParser.parse(RESPRequest("get", "s", "name", "pUrPoSe", "billing"))
                == .withPurpose(.get(subject: "s", fields: ["name"]), purpose: "billing", ticket: nil))
        #expect(
            try CommandParser.parse(RESPRequest("GET", "s", "name", "purpose", "other", "INC-7"))
                == .withPurpose(.get(subject: "s", fields: ["name"]), purpose: "other", ticket: "INC-7"))
        // Seven bytes that are not the keyword are fields: other letters, bytes one bit-5 flip
        // away from a letter that is not a letter, and the keyword spelled with a non-ASCII letter
        // (U+017F upper-cases to S, but the keyword is ASCII only).
        for word in ["PURPOSF", "PURPOS", "PURPOSES", "P\u{15}RPOSE", "0URPOSE", "purpo\u{17F}e", "PURPOSE\0"] {
            #expect(
                try CommandParser.parse(RESPRequest("GET", "s", word, "name"))
                    == .get(subject: "s", fields: [word, "name"]), "\(word)")
        }
        // A command that takes no purpose keeps the words as its own arguments.
        #expect(throws: CommandError.self) { try CommandParser.parse(RESPRequest("PING", "PURPOSE", "billing")) }
    }

    @Test func namesAreUpperCasedAsUnicodeDoesIt() {
        #expect(CommandParser.uppercasedName(Array("client.add".utf8)) == "CLIENT.ADD")
        #expect(CommandParser.uppercasedName(Array("Get-1_x{".utf8)) == "GET-1_X{")
        #expect(CommandParser.uppercasedName([]) == "")
        #expect(CommandParser.uppercasedName(Array("straße".utf8)) == "STRASSE")
        #expect(CommandParser.uppercasedName([0x67, 0xFF]) == "G\u{FFFD}")
    }
}
