import Testing

@testable import CofferCrypto

@Suite struct GF256Tests {
    /// Schoolbook multiplication: a carry-less product into 16 bits, then long division by
    /// 0x11B. Slow and branchy, and written independently of the constant-time code it checks.
    static func referenceMultiply(_ a: UInt8, _ b: UInt8) -> UInt8 {
        var product: UInt16 = 0
        for bit in 0..<8 where (b >> bit) & 1 == 1 {
            product ^= UInt16(a) << bit
        }
        for bit in stride(from: 15, through: 8, by: -1) where (product >> bit) & 1 == 1 {
            product ^= 0x11B << (bit - 8)
        }
        return UInt8(product)
    }

    @Test func everyProductMatchesTheReference() {
        var mismatches = 0
        for a in 0...255 {
            for b in 0...255 where GF256.multiply(UInt8(a), UInt8(b)) != Self.referenceMultiply(UInt8(a), UInt8(b)) {
                mismatches += 1
            }
        }
        #expect(mismatches == 0)
    }

    @Test func everyNonZeroElementHasItsInverse() {
        #expect(GF256.inverse(0) == 0)
        for a in 1...255 {
            #expect(Self.referenceMultiply(UInt8(a), GF256.inverse(UInt8(a))) == 1, "inverse of \(a)")
        }
    }

    /// The field vectors of HashiCorp Vault's shamir/shamir_test.go (TestField_Add, _Mult,
    /// _Divide): same polynomial, so the same answers.
    @Test func vaultFieldVectors() {
        #expect(GF256.add(16, 16) == 0)
        #expect(GF256.add(3, 4) == 7)
        #expect(GF256.multiply(3, 7) == 9)
        #expect(GF256.multiply(3, 0) == 0)
        #expect(GF256.multiply(0, 3) == 0)
        #expect(GF256.divide(0, 7) == 0)
        #expect(GF256.divide(3, 3) == 1)
        #expect(GF256.divide(6, 3) == 2)
    }
}
