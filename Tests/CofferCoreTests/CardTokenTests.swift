import Testing

@testable import CofferCore

/// The token generator on its own: formats, the Luhn property, the last four digits, and
/// uniqueness at a million tokens.
@Suite struct CardTokenTests {
    /// A Luhn-valid PAN of `length` digits ending in 4242 (every stored PAN is Luhn-valid).
    static func pan(length: Int) -> [UInt8] {
        var digits = [UInt8](repeating: 5, count: length)
        digits.replaceSubrange((length - 4)..., with: [4, 2, 4, 2])
        for candidate: UInt8 in 0...9 {
            digits[0] = candidate
            if CardToken.luhnValid(digits) { break }
        }
        precondition(CardToken.luhnValid(digits))
        return digits.map { $0 + 0x30 }
    }

    static func digits(_ token: String) -> [UInt8] { token.utf8.map { $0 - 0x30 } }

    @Test(arguments: Array(12...19))
    func last4KeepsLengthAndLastFourAndFailsLuhn(length: Int) throws {
        let pan = Self.pan(length: length)
        for _ in 0..<2000 {
            let token = try CardToken.random(.last4, pan: pan)
            #expect(token.utf8.count == length)
            #expect(token.utf8.allSatisfy { (0x30...0x39).contains($0) })
            #expect(token.hasSuffix("4242"))
            #expect(!CardToken.luhnValid(Self.digits(token)), "\(token) passes Luhn")
            #expect(!token.hasPrefix("9") && !token.hasPrefix("0"))
        }
    }

    @Test(arguments: Array(12...19))
    func luhn9StartsWith9KeepsLastFourAndPassesLuhn(length: Int) throws {
        let pan = Self.pan(length: length)
        for _ in 0..<2000 {
            let token = try CardToken.random(.luhn9, pan: pan)
            #expect(token.utf8.count == length)
            #expect(token.hasPrefix("9") && token.hasSuffix("4242"))
            #expect(CardToken.luhnValid(Self.digits(token)), "\(token) fails Luhn")
        }
    }

    @Test func opaqueIsPrefixAnd22Base58Characters() throws {
        for _ in 0..<2000 {
            let token = try CardToken.random(.opaque, pan: Self.pan(length: 16))
            #expect(token.hasPrefix("tok_"))
            #expect(token.utf8.count == 26)
            #expect(token.utf8.dropFirst(4).allSatisfy(CardToken.base58.contains))
        }
    }

    /// The random part is drawn uniformly: over 100,000 last4 tokens every digit position (but
    /// the first, 1-8) takes each digit 10% ± 1% of the time. A generator that derived digits
    /// from the PAN, or favoured low digits (`byte % 10`), would fail.
    @Test func randomDigitsAreUniform() throws {
        let pan = Self.pan(length: 16)
        var counts = [[Int]](repeating: [Int](repeating: 0, count: 10), count: 12)
        let draws = 100_000
        for _ in 0..<draws {
            let digits = Self.digits(try CardToken.random(.last4, pan: pan))
            for position in 1..<12 { counts[position][Int(digits[position])] += 1 }
        }
        for position in 1..<11 {
            for digit in 0..<10 {
                let share = Double(counts[position][digit]) / Double(draws)
                #expect(abs(share - 0.1) < 0.01, "position \(position) digit \(digit): \(share)")
            }
        }
    }

    /// last4 tokens fail Luhn and every stored PAN passes it, opaque ones are not digits; a luhn9
    /// draw that equals the PAN (one in 10^(length-6)) is drawn again.
    @Test func aDrawEqualToThePANIsDrawnAgain() throws {
        let pan = Self.pan(length: 16)
        var draws = [String(decoding: pan, as: UTF8.self), "9000000000004242"]
        let token = try CardToken.mint(.luhn9, pan: pan, isTaken: { _ in false }) { draws.removeFirst() }
        #expect(token == "9000000000004242")
        #expect(draws.isEmpty)
    }

    /// One million tokens minted the way TOKENIZE mints them (drawn again while the vault knows
    /// the token, here a set standing for the token table) are a million distinct tokens, in each
    /// format, and the raw draws of the largest spaces collide as rarely as their size predicts.
    @Test(arguments: CardToken.Format.allCases)
    func aMillionMintedTokensAreDistinct(format: CardToken.Format) throws {
        let pan = Self.pan(length: 16)
        var issued = Set<String>()
        issued.reserveCapacity(1_000_000)
        var redraws = 0
        for _ in 0..<1_000_000 {
            let token = try CardToken.mint(format, pan: pan) { candidate in
                if issued.contains(candidate) {
                    redraws += 1
                    return true
                }
                return false
            }
            #expect(issued.insert(token).inserted)
        }
        #expect(issued.count == 1_000_000)
        // A 16-digit luhn9 token has 10^10 possible values per last four: a million draws collide
        // about 50 times (n²/2N); last4 (9·10^11·0.9) under once; opaque (2^128) never.
        switch format {
        case .opaque: #expect(redraws == 0)
        case .last4: #expect(redraws < 10)
        case .luhn9: #expect(redraws > 10 && redraws < 120, "\(redraws) redraws")
        }
    }

    @Test func mintGivesUpWhenEveryDrawIsTaken() throws {
        #expect(throws: VaultError.self) {
            _ = try CardToken.mint(.last4, pan: Self.pan(length: 16)) { _ in true }
        }
    }
}
