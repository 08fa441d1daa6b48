import CofferCrypto
import Foundation
import Testing

@Suite struct KeyedHashTests {
    let key = try! SymmetricKey.random()

    func hash(_ label: String, _ parts: [String], key: SymmetricKey? = nil) throws -> [UInt8] {
        try (key ?? self.key).withUnsafeBytes {
            try KeyedHash.hash(key: $0, label: label, parts: parts.map { Array($0.utf8) })
        }
    }

    @Test func isDeterministicAndKeyed() throws {
        #expect(try hash("l", ["a"]) == hash("l", ["a"]))
        #expect(try hash("l", ["a"]) != hash("l", ["a"], key: SymmetricKey.random()))
        #expect(try hash("l", ["a"]).count == 32)
    }

    @Test func labelsAndFramingSeparateInputs() throws {
        #expect(try hash("email", ["x"]) != hash("phone", ["x"]))
        #expect(try hash("l", ["ab", "c"]) != hash("l", ["a", "bc"]))
        #expect(try hash("l", ["abc"]) != hash("l", ["ab", "c"]))
    }

    /// The part-by-part form (the audit MAC's) hashes exactly what the array form does, so
    /// entries written before it still verify.
    @Test(arguments: [0, 1, 7, 300]) func messagesWrittenPartByPartHashAsTheirParts(size: Int) throws {
        let text = String(repeating: "é", count: size)
        let parts: [[UInt8]] = [
            [UInt8](repeating: 9, count: 32), Array("12345".utf8), [1] + Array(text.utf8), [0], [], Array(text.utf8),
        ]
        let viaArrays = try key.withUnsafeBytes { try KeyedHash.hash(key: $0, label: "coffer.audit.v1", parts: parts) }
        let viaMessage = try key.withUnsafeBytes {
            try KeyedHash.hash(key: $0, label: "coffer.audit.v1", capacity: 4) { message in
                message.part([UInt8](repeating: 9, count: 32))
                message.part("12345".utf8)
                message.part(tag: 1, text.utf8)
                message.part(tag: 0, EmptyCollection<UInt8>())
                message.part(EmptyCollection<UInt8>())
                message.part(text.utf8)
            }
        }
        #expect(viaMessage == viaArrays)
    }

    /// Both forms hash exactly the framing the audit trail has always used: each part as its
    /// little-endian 64-bit length and its bytes, the label first. The expected value is keyed
    /// BLAKE2b-256 of that framing computed outside Coffer (Python's `hashlib.blake2b`), so a
    /// change to the framing, which would stop old audit entries from verifying, fails here.
    @Test func theFramingMatchesAnIndependentBlake2b() throws {
        let key = [UInt8](0..<32)
        let text = String(repeating: "é", count: 7)
        let expected = "335a9d1a158cdd8a942514e2e34446f7ac93772c1894ba837a82a53d9681453c"
        let viaArrays = try key.withUnsafeBytes {
            try KeyedHash.hash(
                key: $0, label: "coffer.audit.v1",
                parts: [
                    [UInt8](repeating: 9, count: 32), Array("12345".utf8), [1] + Array(text.utf8), [0], [],
                    Array(text.utf8),
                ])
        }
        let viaMessage = try key.withUnsafeBytes {
            try KeyedHash.hash(key: $0, label: "coffer.audit.v1") { message in
                message.part([UInt8](repeating: 9, count: 32))
                message.part("12345".utf8)
                message.part(tag: 1, text.utf8)
                message.part(tag: 0, EmptyCollection<UInt8>())
                message.part(EmptyCollection<UInt8>())
                message.part(text.utf8)
            }
        }
        #expect(viaArrays.map { String(format: "%02x", $0) }.joined() == expected)
        #expect(viaMessage == viaArrays)
    }

    @Test func constantTimeEquality() throws {
        #expect(ConstantTime.equals([1, 2, 3], [1, 2, 3]))
        #expect(!ConstantTime.equals([1, 2, 3], [1, 2, 4]))
        #expect(!ConstantTime.equals([1, 2, 3], [1, 2]))
    }

    @Test func secureBytesCompareAndWipe() throws {
        let bytes = try SecureBytes(count: 4)
        bytes.withUnsafeMutableBytes { $0.copyBytes(from: [9, 8, 7, 6]) }
        #expect([UInt8]([9, 8, 7, 6]).withUnsafeBytes { bytes.constantTimeEquals($0) })
        bytes.wipe()
        #expect([UInt8]([0, 0, 0, 0]).withUnsafeBytes { bytes.constantTimeEquals($0) })
    }

    @Test func scratchSlotsAreWipedBetweenUses() throws {
        let pool = KeyScratchPool(limit: 1)
        try pool.withScratch { scratch in
            scratch.withSlot(1) { $0.copyBytes(from: [UInt8](repeating: 0xAB, count: 32)) }
        }
        try pool.withScratch { scratch in
            scratch.withSlot(1) { slot in #expect(slot.allSatisfy { $0 == 0 }) }
        }
    }
}
