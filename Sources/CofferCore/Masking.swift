/// The masked form of a value, for roles whose grant is `masked`. A mask reveals at most the
/// last four digits of a number, initials, or the shape of a value.
public enum Masking {
    public static func mask(_ value: [UInt8], for field: Field) -> [UInt8] {
        let text = String(decoding: value, as: UTF8.self)
        let masked: String
        switch field.kind {
        case .cardNumber:
            masked = String(repeating: "*", count: max(0, text.count - 4)) + text.suffix(4)
        case .phone:
            let digits = text.dropFirst()
            masked = "+" + String(repeating: "*", count: max(0, digits.count - 4)) + digits.suffix(4)
        case .email:
            if let at = text.firstIndex(of: "@"), let first = text.first {
                masked = "\(first)***\(text[at...])"
            } else {
                masked = "***"
            }
        case .text:
            // Initials: "Jane Q. Doe" → "J. Q. D."; nothing of a word beyond its first letter.
            let initials = text.split(whereSeparator: { $0.isWhitespace }).compactMap { word in
                word.first(where: { $0.isLetter || $0.isNumber }).map { "\($0)." }
            }
            masked = initials.isEmpty ? "***" : initials.joined(separator: " ")
        case .date:
            masked = "****-**-**"
        case .cardExpiry:
            masked = "**/**"
        case .address, .gender, .yesNo:
            masked = "***"
        }
        return Array(masked.utf8)
    }
}
