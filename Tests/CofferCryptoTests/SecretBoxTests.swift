import CofferCrypto
import Testing

@Suite struct SecretBoxTests {
    let key = try! SymmetricKey.random()
    let otherKey = try! SymmetricKey.random()
    let message = Array("4111111111111111".utf8)

    func seal(_ plaintext: [UInt8], _ key: SymmetricKey) throws -> [UInt8] {
        try key.withUnsafeBytes { try SecretBox.seal(plaintext, key: $0) }
    }

    func open(_ sealed: [UInt8], _ key: SymmetricKey) throws -> [UInt8] {
        try key.withUnsafeBytes { try SecretBox.open(sealed, key: $0) }
    }

    @Test func roundTrip() throws {
        let sealed = try seal(message, key)
        #expect(sealed.count == message.count + SecretBox.overhead)
        #expect(try open(sealed, key) == message)
        // The plaintext does not appear in the sealed bytes.
        #expect(!sealed.windows(ofCount: message.count).contains(message))
    }

    @Test func wrongKeyFails() throws {
        let sealed = try seal(message, key)
        #expect(throws: CryptoError(.authenticationFailed)) { try open(sealed, otherKey) }
    }

    @Test func everyFlippedByteFails() throws {
        let sealed = try seal(message, key)
        for index in sealed.indices {
            var tampered = sealed
            tampered[index] ^= 0x01
            #expect(throws: CryptoError(.authenticationFailed)) { try open(tampered, key) }
        }
    }

    @Test func truncatedFails() throws {
        let sealed = try seal(message, key)
        #expect(throws: CryptoError(.ciphertextTooShort)) { try open(Array(sealed.prefix(39)), key) }
        #expect(throws: CryptoError(.authenticationFailed)) { try open(Array(sealed.dropLast()), key) }
    }

    @Test func noncesAreUniqueAcrossManyWrites() throws {
        let sealed = try (0..<20_000).map { _ in try seal(message, key) }
        let nonces = Set(sealed.map { Array($0.prefix(SecretBox.nonceLength)) })
        let boxes = Set(sealed)
        #expect(nonces.count == 20_000)
        #expect(boxes.count == 20_000)
    }

    @Test(arguments: [0, 16, 31, 33, 64])
    func wrongKeyLengthIsRefused(length: Int) throws {
        let badKey = [UInt8](repeating: 7, count: length)
        #expect(throws: CryptoError(.wrongKeyLength)) {
            try badKey.withUnsafeBytes { try SecretBox.seal(message, key: $0) }
        }
        #expect(throws: CryptoError.self) {
            _ = try SymmetricKey(SecureBytes(count: max(length, 1)))
        }
    }
}

extension Array where Element == UInt8 {
    func windows(ofCount n: Int) -> [[UInt8]] {
        guard count >= n else { return [] }
        return (0...(count - n)).map { Array(self[$0..<($0 + n)]) }
    }
}
