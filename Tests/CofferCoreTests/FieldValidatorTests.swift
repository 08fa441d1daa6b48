import Foundation
import Testing

@testable import CofferCore

@Suite struct FieldValidatorTests {
    static let today = ISO8601DateFormatter().date(from: "2026-06-15T12:00:00Z")!

    func normalize(_ field: String, _ value: String) throws -> String {
        let f = try FieldCatalogue.field(named: field)
        return String(
            decoding: try FieldValidator.normalize(Array(value.utf8), for: f, today: Self.today), as: UTF8.self)
    }

    static let good: [(String, String, String)] = [
        ("email", "Jane.Doe@Example.COM", "Jane.Doe@example.com"),
        ("email", "  a+tag@sub.example.org ", "a+tag@sub.example.org"),
        ("phone", "+1 (718) 942-9990", "+17189429990"),
        ("phone", "+44.20.7946.0958", "+442079460958"),
        ("phone", "+12345678", "+12345678"),
        ("birthday", "1990-02-28", "1990-02-28"),
        ("birthday", "2000-02-29", "2000-02-29"),
        ("birthday", "2026-06-15", "2026-06-15"),
        ("card.pan", "4111 1111 1111 1111", "4111111111111111"),
        ("card.pan", "5555-5555-5555-4444", "5555555555554444"),
        ("card.pan", "378282246310005", "378282246310005"),
        ("card.expiry", "07/29", "07/29"),
        ("card.expiry", "12/2031", "12/31"),
        ("consent.marketing", "yes", "yes"),
        ("consent.marketing", "NO", "no"),
        ("name", "Zoë O'Brien", "Zoë O'Brien"),
        ("gender", "non-binary", "non-binary"),
    ]

    @Test(arguments: good)
    func acceptsAndNormalises(_ example: (String, String, String)) throws {
        #expect(try normalize(example.0, example.1) == example.2)
    }

    static let bad: [(String, String, String)] = [
        ("email", "no-at-sign.example.com", "exactly one @"),
        ("email", "a@b@example.com", "exactly one @"),
        ("email", "@example.com", "local part"),
        ("email", "jane@localhost", "two labels"),
        ("email", "jane@-bad.com", "host name"),
        ("email", "ja ne@example.com", "local part"),
        ("phone", "17189429990", "E.164"),
        ("phone", "+1234567", "E.164"),
        ("phone", "+1234567890123456", "E.164"),
        ("phone", "+1718ABC9990", "E.164"),
        ("birthday", "1990-02-30", "real calendar date"),
        ("birthday", "2001-02-29", "real calendar date"),
        ("birthday", "1990-13-01", "real calendar date"),
        ("birthday", "90-01-01", "YYYY-MM-DD"),
        ("birthday", "2026-06-17", "future"),
        ("card.pan", "4111111111111112", "Luhn"),
        ("card.pan", "41111111111", "12 to 19 digits"),
        ("card.pan", "41111111111111111111", "12 to 19 digits"),
        ("card.pan", "4111-1111-1111-111x", "12 to 19 digits"),
        ("card.expiry", "13/29", "month"),
        ("card.expiry", "00/29", "month"),
        ("card.expiry", "7/29", "MM/YY"),
        ("card.expiry", "07-29", "MM/YY"),
        ("consent.marketing", "maybe", "yes or no"),
        ("name", "", "empty"),
    ]

    @Test(arguments: bad)
    func refusesNamingFieldAndReason(_ example: (String, String, String)) throws {
        do {
            _ = try normalize(example.0, example.1)
            Issue.record("\(example.0)=\(example.1) was accepted")
        } catch let error as VaultError {
            #expect(error.code == .invalid)
            #expect(error.message.hasPrefix(example.0 + ":"))
            #expect(error.message.contains(example.2), "\(error.message)")
            // The value itself is never echoed in the error.
            if example.1.count > 3 { #expect(!error.message.contains(example.1)) }
        }
    }

    /// Coffer trims text by hand (Foundation's bridging was 5 % of the committer per PUT): it
    /// must trim exactly what `trimmingCharacters(in: .whitespaces)` trims, for every scalar at
    /// both ends and, for the first 12,544 scalars (every whitespace Foundation knows, U+3000
    /// the last), alone, repeated at either end and inside.
    @Test func trimsExactlyWhatFoundationTrims() {
        var differing: [String] = []
        for value in UInt32(0)...0x10FFFF {
            guard let scalar = Unicode.Scalar(value) else { continue }
            let c = String(Character(scalar))
            let texts =
                value < 0x3100
                ? [c, c + "a" + c, c + c + "b", "b" + c + c, "a" + c + "b", " " + c + " "] : [c + "a" + c]
            for text in texts {
                let expected = text.trimmingCharacters(in: .whitespaces)
                if FieldValidator.trimmingWhitespace(text) != expected {
                    differing.append(String(value, radix: 16))
                    break
                }
            }
        }
        #expect(differing.isEmpty, "U+\(differing.prefix(20))")
        #expect(FieldValidator.trimmingWhitespace(" \u{A0}\tx y\u{3000}") == "x y")
        #expect(FieldValidator.trimmingWhitespace("\nx\n") == "\nx\n")
    }

    @Test func refusesOverlongValues() throws {
        let f = try FieldCatalogue.field(named: "name")
        #expect(throws: VaultError.self) {
            try FieldValidator.normalize([UInt8](repeating: 65, count: 64 * 1024 + 1), for: f)
        }
        #expect(try FieldValidator.normalize([UInt8](repeating: 65, count: 64 * 1024), for: f).count == 64 * 1024)
    }

    @Test(arguments: ["card.cvv", "cvv", "CVC", "cvv2", "cid", "pin", "track1", "track2", "card.track2", "card.pin"])
    func refusesSensitiveAuthenticationData(name: String) {
        #expect {
            _ = try FieldCatalogue.field(named: name)
        } throws: { error in
            let e = error as? VaultError
            return e?.code == .invalid && e?.message.contains("may never be stored") == true
                && e?.message.contains("PCI DSS 3.3") == true
        }
    }

    @Test func refusesUnknownFields() {
        #expect(throws: VaultError(.invalid, "unknown field 'shoe_size'")) {
            _ = try FieldCatalogue.field(named: "shoe_size")
        }
    }

    @Test(arguments: ["a", "subject-1", "cust:42", "A.b_c-d:9", String(repeating: "x", count: 128)])
    func acceptsSubjectIDs(id: String) throws { try SubjectID.validate(id) }

    @Test(arguments: ["", "jane@example.com", "has space", "slash/", String(repeating: "x", count: 129), "naïve"])
    func refusesSubjectIDs(id: String) {
        #expect(throws: VaultError.self) { try SubjectID.validate(id) }
    }

    @Test func masks() throws {
        func mask(_ field: String, _ value: String) throws -> String {
            String(
                decoding: Masking.mask(Array(value.utf8), for: try FieldCatalogue.field(named: field)), as: UTF8.self)
        }
        #expect(try mask("card.pan", "4111111111111111") == "************1111")
        #expect(try mask("email", "jane.doe@example.com") == "j***@example.com")
        #expect(try mask("phone", "+17189429990") == "+*******9990")
        #expect(try mask("name", "Jane Q. Doe") == "J. Q. D.")
        #expect(try mask("postal_address", "1 Main St, Springfield") == "***")
        #expect(try mask("birthday", "1990-01-02") == "****-**-**")
        #expect(try mask("card.expiry", "07/29") == "**/**")
    }
}
