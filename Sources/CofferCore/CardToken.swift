import CofferCrypto

/// Tokens that stand for a stored card number (PAN), for billing systems that must keep a card
/// reference without holding the card. A token is random: nothing in it is derived from the PAN
/// but, in the digit formats, its length and last four digits.
public enum CardToken {
    public enum Format: String, Sendable, CaseIterable {
        /// As long as the PAN, its last four digits kept, the rest random, and failing the Luhn
        /// check, so that no system can take it for a card number. Never starts with 9.
        case last4
        /// `9`, random digits, the PAN's last four, Luhn-valid: for systems that validate Luhn.
        /// The leading 9 is ISO/IEC 7812's "national assignment" range, which no card network
        /// issues from.
        case luhn9
        /// `tok_` and 22 random base58 characters (128 bits).
        case opaque
    }

    public static let base58 = Array("123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz".utf8)
    public static let opaquePrefix = "tok_"
    public static let opaqueLength = 22
    /// No token is longer; DETOKENIZE refuses longer input before hashing it.
    public static let maximumLength = 32
    /// Tries before TOKENIZE gives up on finding an unused token. Only the digit formats of the
    /// shortest PANs can ever need more than one (a 12-digit PAN's luhn9 space is 10^6 per
    /// last four).
    public static let maximumAttempts = 32

    /// A fresh random token for `pan` (its 12 to 19 digits, as the vault stores it).
    public static func random(_ format: Format, pan: [UInt8]) throws -> String {
        if format == .opaque {
            return opaquePrefix
                + String(decoding: try uniform(count: opaqueLength, below: 58).map { base58[Int($0)] }, as: UTF8.self)
        }
        guard (12...19).contains(pan.count), pan.allSatisfy({ (0x30...0x39).contains($0) }) else {
            throw VaultError(.invalid, "card.pan is not a card number of 12 to 19 digits")
        }
        let last4 = pan.suffix(4).map { $0 - 0x30 }
        switch format {
        case .last4:
            while true {
                // First digit 1-8: never 0 (a numeric column would drop it) and never 9 (a luhn9 token).
                let lead = try uniform(count: 1, below: 8).map { $0 + 1 }
                let digits = lead + (try uniform(count: pan.count - 5, below: 10)) + last4
                // One draw in ten is Luhn-valid and is drawn again, so what is kept is uniform
                // over the Luhn-invalid numbers.
                if !luhnValid(digits) { return text(digits) }
            }
        case .luhn9:
            var digits = [9] + (try uniform(count: pan.count - 6, below: 10)) + [0] + last4
            // The digit before the last four makes the whole Luhn-valid: its Luhn weight maps the
            // ten digits onto the ten residues, so exactly one of them fits.
            let check = digits.count - 5
            for candidate: UInt8 in 0...9 {
                digits[check] = candidate
                if luhnValid(digits) { break }
            }
            return text(digits)
        case .opaque:
            preconditionFailure("handled above")
        }
    }

    /// A token of `format` for `pan` that `isTaken` does not know and that is not `pan` itself,
    /// or an error after `maximumAttempts` draws.
    public static func mint(_ format: Format, pan: [UInt8], isTaken: (String) throws -> Bool) throws -> String {
        try mint(format, pan: pan, isTaken: isTaken) { try random(format, pan: pan) }
    }

    /// The same, drawing candidates from `draw` (tests give it the PAN itself).
    static func mint(
        _ format: Format, pan: [UInt8], isTaken: (String) throws -> Bool, draw: () throws -> String
    ) throws -> String {
        for _ in 0..<maximumAttempts {
            let token = try draw()
            if Array(token.utf8) != pan, try !isTaken(token) { return token }
        }
        throw VaultError(
            .invalid, "no unused \(format.rawValue) token found in \(maximumAttempts) tries; use FORMAT opaque")
    }

    public static func luhnValid(_ digits: [UInt8]) -> Bool {
        var sum = 0
        for (offset, digit) in digits.reversed().enumerated() {
            let value = Int(digit)
            sum += offset % 2 == 1 ? (value * 2 > 9 ? value * 2 - 9 : value * 2) : value
        }
        return sum % 10 == 0
    }

    /// `count` values uniform in 0..<bound (bound ≤ 256), from the CSPRNG by rejection sampling:
    /// a plain `byte % bound` would favour the low values.
    static func uniform(count: Int, below bound: Int) throws -> [UInt8] {
        let limit = 256 - 256 % bound
        var out: [UInt8] = []
        out.reserveCapacity(count)
        while out.count < count {
            for byte in try Random.bytes(count - out.count + 8) where Int(byte) < limit && out.count < count {
                out.append(UInt8(Int(byte) % bound))
            }
        }
        return out
    }

    private static func text(_ digits: [UInt8]) -> String {
        String(decoding: digits.map { $0 + 0x30 }, as: UTF8.self)
    }
}
