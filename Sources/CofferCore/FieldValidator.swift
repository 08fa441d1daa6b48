import Foundation

/// Validates a value for its field and returns the normalised form that is stored. Errors
/// name the field and the reason, never the value.
public enum FieldValidator {
    /// `today` is injectable so the "not in the future" rule can be tested at a fixed date.
    public static func normalize(_ value: [UInt8], for field: Field, today: Date = Date()) throws
        -> [UInt8]
    {
        guard !value.isEmpty else { throw invalid(field, "value is empty") }
        guard value.count <= FieldCatalogue.maximumValueLength else {
            throw invalid(field, "value is longer than \(FieldCatalogue.maximumValueLength) bytes")
        }
        switch field.kind {
        case .text, .address:
            return value
        case .gender:
            guard value.count <= 64, String(validating: value, as: UTF8.self) != nil else {
                throw invalid(field, "must be UTF-8 text of at most 64 bytes")
            }
            return value
        case .email:
            return Array(try email(text(value, field), field).utf8)
        case .phone:
            return Array(try phone(text(value, field), field).utf8)
        case .date:
            return Array(try date(text(value, field), field, today: today).utf8)
        case .cardNumber:
            return Array(try cardNumber(text(value, field), field).utf8)
        case .cardExpiry:
            return Array(try cardExpiry(text(value, field), field).utf8)
        case .yesNo:
            switch try text(value, field).lowercased() {
            case "yes": return Array("yes".utf8)
            case "no": return Array("no".utf8)
            default: throw invalid(field, "must be yes or no")
            }
        }
    }

    static func invalid(_ field: Field, _ reason: String) -> VaultError {
        VaultError(.invalid, "\(field.name): \(reason)")
    }

    private static func text(_ value: [UInt8], _ field: Field) throws -> String {
        guard let string = String(validating: value, as: UTF8.self) else { throw invalid(field, "is not valid UTF-8") }
        return trimmingWhitespace(string)
    }

    /// `trimmingCharacters(in: .whitespaces)` without Foundation, whose bridging of the string
    /// was 5 % of the committer's time per PUT. Foundation's set is Unicode's space separators,
    /// the tab, and the zero-width space; `FieldValidatorTests` compares the two over every
    /// Unicode scalar.
    static func trimmingWhitespace(_ string: String) -> String {
        func isWhitespace(_ scalar: Unicode.Scalar) -> Bool {
            if scalar.isASCII { return scalar == " " || scalar == "\t" }
            return scalar.value == 0x200B || scalar.properties.generalCategory == .spaceSeparator
        }
        let scalars = string.unicodeScalars
        var start = scalars.startIndex
        var end = scalars.endIndex
        while start < end, isWhitespace(scalars[start]) { start = scalars.index(after: start) }
        while end > start, isWhitespace(scalars[scalars.index(before: end)]) { end = scalars.index(before: end) }
        if start == scalars.startIndex && end == scalars.endIndex { return string }
        return String(scalars[start..<end])
    }

    static func email(_ raw: String, _ field: Field) throws -> String {
        let parts = raw.split(separator: "@", omittingEmptySubsequences: false)
        guard parts.count == 2 else { throw invalid(field, "must contain exactly one @") }
        let local = parts[0]
        let domain = parts[1].lowercased()
        guard !local.isEmpty, local.utf8.count <= 64 else { throw invalid(field, "local part must be 1 to 64 bytes") }
        guard raw.utf8.count <= 254 else { throw invalid(field, "is longer than 254 bytes") }
        guard local.allSatisfy({ emailLocalCharacters.contains($0) }), !local.hasPrefix("."), !local.hasSuffix("."),
            !local.contains("..")
        else { throw invalid(field, "local part has a character or dot that is not allowed") }
        let labels = domain.split(separator: ".", omittingEmptySubsequences: false)
        guard labels.count >= 2 else { throw invalid(field, "domain must have at least two labels") }
        for label in labels {
            guard !label.isEmpty, label.count <= 63, label.allSatisfy({ hostLabelCharacters.contains($0) }),
                !label.hasPrefix("-"), !label.hasSuffix("-")
            else { throw invalid(field, "domain is not a valid host name") }
        }
        guard let tld = labels.last, tld.count >= 2, tld.contains(where: { $0.isLetter }) else {
            throw invalid(field, "domain must end in a top-level domain")
        }
        return "\(local)@\(domain)"
    }

    // Built once, not per value: building them was most of an email's validation.
    private static let emailLocalCharacters = Set(
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+-/=?^_`{|}~.")
    private static let hostLabelCharacters = Set("abcdefghijklmnopqrstuvwxyz0123456789-")

    static func phone(_ raw: String, _ field: Field) throws -> String {
        let stripped = raw.filter { !" -.()".contains($0) }
        guard stripped.first == "+" else { throw invalid(field, "must be in E.164 form: + then 8 to 15 digits") }
        let digits = stripped.dropFirst()
        guard (8...15).contains(digits.count), digits.allSatisfy({ $0.isASCII && $0.isNumber }) else {
            throw invalid(field, "must be in E.164 form: + then 8 to 15 digits")
        }
        return stripped
    }

    static func date(_ raw: String, _ field: Field, today: Date) throws -> String {
        let bytes = Array(raw.utf8)
        let digitAt: (Int) -> Bool = { bytes[$0] >= 0x30 && bytes[$0] <= 0x39 }
        guard bytes.count == 10, bytes[4] == UInt8(ascii: "-"), bytes[7] == UInt8(ascii: "-"),
            [0, 1, 2, 3, 5, 6, 8, 9].allSatisfy(digitAt),
            let year = Int(raw.prefix(4)), let month = Int(raw.dropFirst(5).prefix(2)),
            let day = Int(raw.suffix(2))
        else { throw invalid(field, "must be a date written YYYY-MM-DD") }
        guard (1...12).contains(month), day >= 1, day <= daysIn(month: month, year: year) else {
            throw invalid(field, "is not a real calendar date")
        }
        guard year >= 1800 else { throw invalid(field, "is before 1800") }
        // The latest local date anywhere on Earth is UTC+14: a birthday that is "today" there is
        // not in the future.
        let now = latestCalendar.dateComponents([.year, .month, .day], from: today)
        let given = (year, month, day)
        let latest = (now.year!, now.month!, now.day!)
        guard given <= latest else { throw invalid(field, "is in the future") }
        return raw
    }

    /// The Gregorian calendar at UTC+14, made once.
    private static let latestCalendar: Calendar = {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(secondsFromGMT: 14 * 3600)!
        return calendar
    }()

    static func daysIn(month: Int, year: Int) -> Int {
        switch month {
        case 2: (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 ? 29 : 28
        case 4, 6, 9, 11: 30
        default: 31
        }
    }

    static func cardNumber(_ raw: String, _ field: Field) throws -> String {
        let digits = raw.filter { $0 != " " && $0 != "-" }
        guard (12...19).contains(digits.count), digits.allSatisfy({ $0.isASCII && $0.isNumber }) else {
            throw invalid(field, "must be 12 to 19 digits")
        }
        guard luhnValid(digits) else { throw invalid(field, "fails the Luhn check") }
        return digits
    }

    public static func luhnValid(_ digits: String) -> Bool {
        var sum = 0
        for (offset, character) in digits.reversed().enumerated() {
            guard let digit = character.wholeNumberValue else { return false }
            if offset % 2 == 1 {
                let doubled = digit * 2
                sum += doubled > 9 ? doubled - 9 : doubled
            } else {
                sum += digit
            }
        }
        return sum % 10 == 0
    }

    static func cardExpiry(_ raw: String, _ field: Field) throws -> String {
        let parts = raw.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, parts[0].count == 2, parts[1].count == 2 || parts[1].count == 4,
            parts.allSatisfy({ $0.allSatisfy { $0.isASCII && $0.isNumber } }), let month = Int(parts[0])
        else { throw invalid(field, "must be MM/YY or MM/YYYY") }
        guard (1...12).contains(month) else { throw invalid(field, "month must be 01 to 12") }
        return "\(parts[0])/\(parts[1].suffix(2))"
    }
}
