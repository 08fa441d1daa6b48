/// Shamir's secret sharing over GF(2^8), byte by byte: each byte of the secret is the constant
/// term of its own random polynomial of degree threshold − 1, and share x holds the values of
/// all those polynomials at x. Any `threshold` shares give the secret back by Lagrange
/// interpolation at 0; fewer give no information about it.
///
/// The x coordinates are 1…n, as in HashiCorp Vault's `shamir`, so a Vault share (its y bytes
/// followed by its x byte) combines here unchanged. Coefficients are uniformly random bytes from
/// libsodium, zero included: Vault redraws a zero leading coefficient, which makes the
/// polynomials slightly non-uniform; uniform coefficients are what the secrecy proof assumes.
public enum Shamir {
    public static let maximumShares = 255

    /// Splits `secret` into `shares` shares of which any `threshold` recover it. A threshold of 1
    /// gives every share the secret itself; only dev mode asks for that.
    public static func split(_ secret: UnsafeRawBufferPointer, shares: Int, threshold: Int) throws -> [KeyShare] {
        guard secret.count > 0 else { throw ShamirError("the secret to split is empty") }
        guard (1...maximumShares).contains(shares) else {
            throw ShamirError("the number of shares must be between 1 and \(maximumShares), not \(shares)")
        }
        guard (1...shares).contains(threshold) else {
            throw ShamirError("the threshold must be between 1 and the number of shares (\(shares)), not \(threshold)")
        }
        let degree = threshold - 1
        // One row of coefficients per secret byte, in guarded memory: with the shares they
        // determine the secret.
        let coefficients = try SecureBytes(count: max(secret.count * degree, 1))
        if degree > 0 { try coefficients.withUnsafeMutableBytes { try Random.fill($0) } }
        var result: [KeyShare] = []
        result.reserveCapacity(shares)
        for index in 1...shares {
            let x = UInt8(index)
            let y = try SecureBytes(count: secret.count)
            coefficients.withUnsafeBytes { c in
                y.withUnsafeMutableBytes { out in
                    for byte in 0..<secret.count {
                        // Horner's rule from the highest coefficient down to the secret byte.
                        var value: UInt8 = 0
                        var power = degree
                        while power > 0 {
                            value = GF256.add(GF256.multiply(value, x), c[byte * degree + power - 1])
                            power -= 1
                        }
                        out[byte] = GF256.add(GF256.multiply(value, x), secret[byte])
                    }
                }
            }
            result.append(KeyShare(x: x, y: y))
        }
        return result
    }

    /// Interpolates `shares` at 0 into guarded memory. All must have the same length and
    /// distinct, non-zero x. With fewer shares than the threshold the result is a wrong secret,
    /// not an error: only a check against the secret (the seal manifest's) can tell.
    public static func combine(_ shares: [KeyShare]) throws -> SecureBytes {
        guard let length = shares.first?.count else { throw ShamirError("no shares to combine") }
        guard shares.allSatisfy({ $0.count == length }) else { throw ShamirError("the shares differ in length") }
        guard shares.allSatisfy({ $0.x != 0 }) else { throw ShamirError("a share has x = 0, which no split makes") }
        guard Set(shares.map(\.x)).count == shares.count else { throw ShamirError("the same share was given twice") }
        // Lagrange basis at 0: b_i = Π_{j≠i} x_j / (x_i + x_j). The x values are public.
        let basis = shares.indices.map { i in
            var term: UInt8 = 1
            for j in shares.indices where j != i {
                term = GF256.multiply(term, GF256.divide(shares[j].x, GF256.add(shares[i].x, shares[j].x)))
            }
            return term
        }
        let secret = try SecureBytes(count: length)
        secret.withUnsafeMutableBytes { out in
            for (i, share) in shares.enumerated() {
                share.withUnsafeBytes { y in
                    for byte in 0..<length {
                        out[byte] = GF256.add(out[byte], GF256.multiply(y[byte], basis[i]))
                    }
                }
            }
        }
        return secret
    }
}

/// Bad parameters or shares given to `Shamir`; the message names what is wrong.
public struct ShamirError: Error, Hashable, CustomStringConvertible, Sendable {
    public let description: String
    package init(_ description: String) { self.description = description }
}
