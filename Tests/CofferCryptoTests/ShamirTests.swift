import Testing

@testable import CofferCrypto

@Suite struct ShamirTests {
    static func bytes(_ secure: borrowing SecureBytes) -> [UInt8] {
        secure.withUnsafeBytes { Array($0) }
    }

    static func split(_ secret: [UInt8], shares: Int, threshold: Int) throws -> [KeyShare] {
        try secret.withUnsafeBytes { try Shamir.split($0, shares: shares, threshold: threshold) }
    }

    static func combine(_ shares: [KeyShare]) throws -> [UInt8] {
        bytes(try Shamir.combine(shares))
    }

    /// Every non-empty subset of `0..<n`, as index lists.
    static func subsets(of n: Int) -> [[Int]] {
        (1..<(1 << n)).map { mask in (0..<n).filter { mask & (1 << $0) != 0 } }
    }

    @Test(arguments: 1...7)
    func everyThresholdAndEverySubset(shares n: Int) throws {
        let secret = try Random.bytes(32)
        for threshold in 1...n {
            let shares = try Self.split(secret, shares: n, threshold: threshold)
            #expect(shares.map(\.x) == (1...n).map(UInt8.init))
            for subset in Self.subsets(of: n) {
                let recovered = try Self.combine(subset.map { shares[$0] })
                if subset.count >= threshold {
                    #expect(recovered == secret, "n \(n), threshold \(threshold), subset \(subset)")
                } else {
                    // A wrong answer, not an error: equal only with probability 2^-256.
                    #expect(recovered != secret, "n \(n), threshold \(threshold), subset \(subset)")
                }
            }
        }
    }

    /// Vault's TestInterpolate_Rand, through the public API: every byte value, threshold 3,
    /// recovered from the shares at x = 1, 2, 3.
    @Test func everyByteValueSurvivesASplit() throws {
        for value in 0...255 {
            let shares = try Self.split([UInt8(value)], shares: 3, threshold: 3)
            #expect(try Self.combine(shares) == [UInt8(value)])
        }
    }

    @Test func aThresholdOfOneGivesTheSecretInEveryShare() throws {
        let secret = try Random.bytes(32)
        for share in try Self.split(secret, shares: 3, threshold: 1) {
            #expect(share.withUnsafeBytes { Array($0) } == secret)
        }
    }

    @Test func sharesAreFreshlyRandomEachTime() throws {
        let secret = [UInt8](repeating: 7, count: 32)
        let first = try Self.split(secret, shares: 2, threshold: 2)
        let second = try Self.split(secret, shares: 2, threshold: 2)
        #expect(first[0].withUnsafeBytes { Array($0) } != second[0].withUnsafeBytes { Array($0) })
        #expect(first[0].withUnsafeBytes { Array($0) } != secret)
    }

    @Test func badParametersAreNamed() throws {
        let secret = [UInt8](repeating: 1, count: 4)
        #expect(throws: ShamirError("the secret to split is empty")) { try Self.split([], shares: 3, threshold: 2) }
        #expect(throws: ShamirError("the number of shares must be between 1 and 255, not 0")) {
            try Self.split(secret, shares: 0, threshold: 0)
        }
        #expect(throws: ShamirError("the number of shares must be between 1 and 255, not 256")) {
            try Self.split(secret, shares: 256, threshold: 3)
        }
        #expect(throws: ShamirError("the threshold must be between 1 and the number of shares (2), not 3")) {
            try Self.split(secret, shares: 2, threshold: 3)
        }
        #expect(throws: ShamirError("the threshold must be between 1 and the number of shares (5), not 0")) {
            try Self.split(secret, shares: 5, threshold: 0)
        }
    }

    @Test func badSharesAreNamed() throws {
        let shares = try Self.split([1, 2, 3, 4], shares: 3, threshold: 2)
        #expect(throws: ShamirError("no shares to combine")) { try Self.combine([]) }
        #expect(throws: ShamirError("the same share was given twice")) { try Self.combine([shares[0], shares[0]]) }
        let short = try KeyShare(x: 9, y: SecureBytes(count: 3))
        #expect(throws: ShamirError("the shares differ in length")) { try Self.combine([shares[0], short]) }
        let zero = try KeyShare(x: 0, y: SecureBytes(count: 4))
        #expect(throws: ShamirError("a share has x = 0, which no split makes")) { try Self.combine([shares[0], zero]) }
    }
}
