import CofferCrypto
import Foundation

/// `seal.manifest` in a sealed key directory: which generation of shares is current, how many
/// there are and how many unseal it, a digest of each share (so a foreign or mistyped share is
/// refused as it is entered), and a MAC under the root key R of all of that, which is how an
/// unseal knows that the R its shares combined to is the right one before using it.
///
///     coffer-seal 1
///     generation 1
///     threshold 3
///     shares 5
///     share 1 <64 hex digits>
///     …
///     check <64 hex digits>
///
/// It holds nothing secret: digests of 256-bit random shares and a MAC.
public struct SealManifest: Sendable, Equatable {
    public static let fileName = "seal.manifest"

    public let generation: UInt32
    public let threshold: Int
    /// Share number (x) → digest.
    public let shareDigests: [UInt8: [UInt8]]
    let check: [UInt8]

    public var shareCount: Int { shareDigests.count }

    /// The manifest of a sealed key directory; nil if the directory is not sealed.
    public static func load(keyDirectory: String) throws -> SealManifest? {
        try KeyDirectory.manifest(in: keyDirectory)
    }

    /// A manifest for fresh shares of `root`.
    init(root: RootKey, threshold: Int, shares: [KeyShare]) throws {
        self.generation = root.generation
        self.threshold = threshold
        var digests: [UInt8: [UInt8]] = [:]
        for share in shares { digests[share.x] = try ShareText.digest(share, generation: root.generation) }
        self.shareDigests = digests
        self.check = try Self.mac(body: Self.body(root.generation, threshold, digests), root: root.key)
    }

    private init(generation: UInt32, threshold: Int, shareDigests: [UInt8: [UInt8]], check: [UInt8]) {
        self.generation = generation
        self.threshold = threshold
        self.shareDigests = shareDigests
        self.check = check
    }

    /// True if `root` is the key this manifest was made for (constant-time comparison).
    public func isMade(for root: SymmetricKey) -> Bool {
        guard let expected = try? Self.mac(body: Self.body(generation, threshold, shareDigests), root: root) else {
            return false
        }
        return ConstantTime.equals(expected, check)
    }

    /// Whether a share entered by a person is one of this generation's shares.
    public func recognises(_ share: KeyShare, generation: UInt32) -> Bool {
        guard generation == self.generation, let known = shareDigests[share.x],
            let digest = try? ShareText.digest(share, generation: generation)
        else { return false }
        return ConstantTime.equals(known, digest)
    }

    public var text: String {
        Self.body(generation, threshold, shareDigests) + "check \(Self.hex(check))\n"
    }

    public init(parsing text: String, path: String) throws(VaultError) {
        func bad(_ why: String) -> VaultError { VaultError(.keys, "seal manifest \(path) is malformed: \(why)") }
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        if lines.last == "" { lines.removeLast() }
        guard lines.first == "coffer-seal 1" else { throw bad("the first line is not 'coffer-seal 1'") }
        func value(_ index: Int, _ name: String) throws(VaultError) -> Int {
            guard index < lines.count, lines[index].hasPrefix(name + " "),
                let number = Int(lines[index].dropFirst(name.count + 1)), number > 0, number <= UInt32.max
            else { throw bad("line \(index + 1) is not '\(name) <positive number>'") }
            return number
        }
        let generation = try value(1, "generation")
        let threshold = try value(2, "threshold")
        let count = try value(3, "shares")
        guard count <= Shamir.maximumShares, threshold <= count else {
            throw bad("the threshold \(threshold) or share count \(count) is out of range")
        }
        guard lines.count == 4 + count + 1 else { throw bad("expected \(count) share lines and a check line") }
        var digests: [UInt8: [UInt8]] = [:]
        for line in lines[4..<(4 + count)] {
            let fields = line.split(separator: " ")
            guard fields.count == 3, fields[0] == "share", let x = UInt8(fields[1]), x > 0,
                let digest = Self.unhex(fields[2]), digest.count == SecretDigest.length, digests[x] == nil
            else { throw bad("'\(line.prefix(80))' is not 'share <n> <64 hex digits>'") }
            digests[x] = digest
        }
        let last = lines[4 + count].split(separator: " ")
        guard last.count == 2, last[0] == "check", let check = Self.unhex(last[1]),
            check.count == KeyedHash.outputLength
        else { throw bad("the last line is not 'check <64 hex digits>'") }
        self.init(generation: UInt32(generation), threshold: threshold, shareDigests: digests, check: check)
    }

    private static func body(_ generation: UInt32, _ threshold: Int, _ digests: [UInt8: [UInt8]]) -> String {
        var text = "coffer-seal 1\ngeneration \(generation)\nthreshold \(threshold)\nshares \(digests.count)\n"
        for x in digests.keys.sorted() { text += "share \(x) \(hex(digests[x]!))\n" }
        return text
    }

    private static func mac(body: String, root: SymmetricKey) throws -> [UInt8] {
        try root.withUnsafeBytes {
            try KeyedHash.hash(key: $0, label: "coffer.seal.manifest.v1", parts: [Array(body.utf8)])
        }
    }

    static func hex(_ bytes: [UInt8]) -> String {
        bytes.map { String(format: "%02x", $0) }.joined()
    }

    static func unhex(_ text: Substring) -> [UInt8]? {
        let digits = Array(text.utf8)
        guard digits.count % 2 == 0 else { return nil }
        var out: [UInt8] = []
        for index in stride(from: 0, to: digits.count, by: 2) {
            guard let byte = UInt8(String(decoding: digits[index...index + 1], as: UTF8.self), radix: 16) else {
                return nil
            }
            out.append(byte)
        }
        return out
    }
}
