import CofferCore
import Foundation

/// One fuzz input as a value for every field in the catalogue, and as a subject id: what a
/// client's PUT hands the vault core. Besides "does not crash" (a trap here would stop the
/// server), it checks, for each field whose validator accepts the input:
/// - normalising is idempotent, so an exported value PUT back is stored unchanged;
/// - the mask of the stored form reveals at most four digits of a card number or phone, no
///   more than the first character of an email's local part, at most one character per word
///   of a name, and nothing of a date, expiry, address, gender or consent.
public enum ValueFuzzHarness {
    /// Fixed, so a crash reproduces whatever the day.
    static let today = Date(timeIntervalSince1970: 1_800_000_000)

    public static func run(_ input: [UInt8]) -> [String] {
        var violations: [String] = []
        _ = try? SubjectID.validate(String(decoding: input, as: UTF8.self))
        _ = try? FieldCatalogue.field(named: String(decoding: input.prefix(80), as: UTF8.self))
        for field in FieldCatalogue.all {
            guard let stored = try? FieldValidator.normalize(input, for: field, today: today) else { continue }
            let again = try? FieldValidator.normalize(stored, for: field, today: today)
            if again != stored { violations.append("\(field.name): normalising the stored form changes it") }
            violations += checkMask(Masking.mask(stored, for: field), of: stored, field)
        }
        return violations
    }

    static func checkMask(_ mask: [UInt8], of stored: [UInt8], _ field: Field) -> [String] {
        let masked = String(decoding: mask, as: UTF8.self)
        let plain = String(decoding: stored, as: UTF8.self)
        switch field.kind {
        case .cardNumber, .phone:
            let shown = masked.filter(\.isNumber).count
            return shown <= 4 ? [] : ["\(field.name): mask shows \(shown) digits"]
        case .email:
            guard let at = plain.firstIndex(of: "@") else { return [] }
            let local = plain[..<at]
            let maskedLocal = masked.prefix { $0 != "@" }
            let shown = maskedLocal.filter { $0 != "*" }
            return shown.count > 1 || (local.count >= 2 && maskedLocal.contains(local))
                ? ["\(field.name): mask shows the local part"] : []
        case .text:
            // One letter or digit per word at most. (Counted, not matched token by token: an
            // initial that is a combining mark fuses with the space before it.)
            let words = plain.split(whereSeparator: { $0.isWhitespace }).count
            let shown = masked.filter { $0.isLetter || $0.isNumber }.count
            return shown <= words ? [] : ["\(field.name): mask shows \(shown) characters of \(words) words"]
        case .date, .cardExpiry, .address, .gender, .yesNo:
            return masked.contains(where: { $0.isNumber || $0.isLetter }) && mask != stored
                ? ["\(field.name): mask shows characters"] : []
        }
    }
}
