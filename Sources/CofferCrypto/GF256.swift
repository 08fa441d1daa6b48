/// Arithmetic in GF(2^8) modulo x^8 + x^4 + x^3 + x + 1 (0x11B), the AES field, which is also
/// the field of HashiCorp Vault's `shamir` package.
///
/// Every operation runs in time independent of its operands: no branch and no table index
/// depends on a byte, because the bytes are pieces of a root key. Logarithm tables (Vault's
/// older code, Debian's libgfshare) index memory by the secret and leak it through the cache.
package enum GF256 {
    @inline(__always)
    package static func add(_ a: UInt8, _ b: UInt8) -> UInt8 { a ^ b }

    /// Shift-and-add ("Russian peasant") multiplication with masks instead of branches:
    /// `0 &- bit` is 0x00 or 0xFF, so each of the eight rounds does the same work.
    package static func multiply(_ a: UInt8, _ b: UInt8) -> UInt8 {
        var a = a
        var b = b
        var product: UInt8 = 0
        for _ in 0..<8 {
            product ^= a & (0 &- (b & 1))
            let overflow = 0 &- (a >> 7)
            a = (a << 1) ^ (0x1B & overflow)
            b >>= 1
        }
        return product
    }

    /// a^254, which is a^-1 for a ≠ 0 (the multiplicative group has order 255) and 0 for 0,
    /// by a fixed chain of squarings: a^2 · a^4 · … · a^128 = a^254.
    package static func inverse(_ a: UInt8) -> UInt8 {
        var power = a
        var result: UInt8 = 1
        for _ in 0..<7 {
            power = multiply(power, power)
            result = multiply(result, power)
        }
        return result
    }

    /// a / b; the caller guarantees b ≠ 0 (division by 0 answers 0, never traps).
    package static func divide(_ a: UInt8, _ b: UInt8) -> UInt8 {
        multiply(a, inverse(b))
    }
}
