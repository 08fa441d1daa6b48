import CofferCrypto

/// The printable form of a key share, which a person copies onto paper or into a password
/// manager and types back at unseal:
///
///     coffer-share-<generation>-<x>-<y as 64 hex digits>-<check, 8 hex digits>
///
/// The check is the first 4 bytes of a digest of everything before it, so a mistyped share is
/// refused as mistyped before it is ever combined. The generation says which set of shares it
/// belongs to: after a rekey, old shares are refused by name. Hex letters may be of either case.
public enum ShareText {
    static let prefix = "coffer-share"
    static let checkLength = 4

    /// The share's text. It holds the secret share: print it once, never log or store it.
    public static func encode(_ share: KeyShare, generation: UInt32) throws -> String {
        let check = try self.check(share, generation: generation)
        let y = share.withUnsafeBytes { bytes in bytes.map { hex($0) }.joined() }
        return "\(prefix)-\(generation)-\(share.x)-\(y)-\(check.map { hex($0) }.joined())"
    }

    /// Parses a share typed by a person, straight into guarded memory, refusing (with the
    /// reason, never the share) anything malformed or failing its check.
    public static func decode(_ text: some StringProtocol) throws(VaultError) -> (generation: UInt32, share: KeyShare) {
        let trimmed = text.utf8.drop { $0 == 0x20 || $0 == 0x09 }.reversed().drop {
            $0 == 0x20 || $0 == 0x09 || $0 == 0x0A || $0 == 0x0D
        }.reversed()
        let parts = trimmed.split(separator: UInt8(ascii: "-"), omittingEmptySubsequences: false)
        guard parts.count == 6, Array(parts[0]) == Array("coffer".utf8), Array(parts[1]) == Array("share".utf8) else {
            throw VaultError(
                .invalid, "not a key share: expected coffer-share-<generation>-<n>-<64 hex digits>-<8 hex digits>")
        }
        guard let generation = decimal(parts[2]), generation > 0 else {
            throw VaultError(.invalid, "the share's generation is not a positive number")
        }
        guard let x = decimal(parts[3]), (1...255).contains(x) else {
            throw VaultError(.invalid, "the share's number is not between 1 and 255")
        }
        guard parts[4].count == 2 * SymmetricKey.length, parts[5].count == 2 * checkLength else {
            throw VaultError(.invalid, "the share has the wrong length: expected 64 hex digits, then 8")
        }
        let y: SecureBytes
        do { y = try SecureBytes(count: SymmetricKey.length) } catch {
            throw VaultError(.keys, "guarded memory for the share could not be allocated")
        }
        let digits = Array(parts[4])
        let valid = y.withUnsafeMutableBytes { out -> Bool in
            var valid = true
            for index in 0..<out.count {
                let high = nibble(digits[2 * index])
                let low = nibble(digits[2 * index + 1])
                valid = valid && high != nil && low != nil
                out[index] = ((high ?? 0) << 4) | (low ?? 0)
            }
            return valid
        }
        let checkDigits = Array(parts[5])
        let given = (0..<checkLength).map { index -> UInt8? in
            guard let high = nibble(checkDigits[2 * index]), let low = nibble(checkDigits[2 * index + 1]) else {
                return nil
            }
            return (high << 4) | low
        }
        guard valid, given.allSatisfy({ $0 != nil }) else {
            throw VaultError(.invalid, "the share holds a character that is not a hex digit")
        }
        let share = KeyShare(x: UInt8(x), y: y)
        let expected: [UInt8]
        do { expected = try check(share, generation: UInt32(generation)) } catch {
            throw VaultError(.keys, "the share's check could not be computed")
        }
        guard ConstantTime.equals(expected, given.map { $0! }) else {
            throw VaultError(.invalid, "the share's check does not match: it was mistyped")
        }
        return (UInt32(generation), share)
    }

    /// The digest under which the vault remembers a share (in the seal manifest), so a foreign
    /// share is refused when it is entered, not after the threshold is reached. Shares are 256
    /// random bits, so the digest cannot be inverted or guessed.
    public static func digest(_ share: KeyShare, generation: UInt32) throws -> [UInt8] {
        try share.withUnsafeBytes { y in
            try SecretDigest.compute(
                label: "coffer.share.digest.v1", parts: [bigEndian(generation), [share.x]], secret: y)
        }
    }

    static func check(_ share: KeyShare, generation: UInt32) throws -> [UInt8] {
        try share.withUnsafeBytes { y in
            Array(
                try SecretDigest.compute(
                    label: "coffer.share.check.v1", parts: [bigEndian(generation), [share.x]], secret: y
                )
                .prefix(checkLength))
        }
    }

    static func bigEndian(_ value: UInt32) -> [UInt8] {
        withUnsafeBytes(of: value.bigEndian) { Array($0) }
    }

    private static func hex(_ byte: UInt8) -> String {
        let digits = Array("0123456789abcdef")
        return String([digits[Int(byte >> 4)], digits[Int(byte & 0x0F)]])
    }

    /// A hex digit's value. This branches on the character's class: it runs once per entry,
    /// on text that has already passed through a terminal, so its timing is not the exposure
    /// that matters (the field arithmetic on the combined key is where constant time counts).
    private static func nibble(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): c - UInt8(ascii: "A") + 10
        default: nil
        }
    }

    private static func decimal(_ digits: some Collection<UInt8>) -> Int? {
        guard !digits.isEmpty, digits.count <= 9, digits.allSatisfy({ (0x30...0x39).contains($0) }),
            digits.first != 0x30
        else { return nil }
        return digits.reduce(0) { $0 * 10 + Int($1 - 0x30) }
    }
}
