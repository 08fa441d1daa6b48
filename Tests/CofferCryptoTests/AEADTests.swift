import CofferCrypto
import Testing

@Suite struct AEADTests {
    let key = try! SymmetricKey.random()
    let message = [UInt8](repeating: 0x42, count: 32)
    let header: [UInt8] = Array("header".utf8)

    func seal(_ ad: [UInt8]) throws -> [UInt8] {
        try key.withUnsafeBytes { k in try message.withUnsafeBytes { try AEAD.seal($0, associatedData: ad, key: k) } }
    }

    func open(_ sealed: [UInt8], _ ad: [UInt8], key: SymmetricKey? = nil) throws -> [UInt8] {
        var out = [UInt8](repeating: 0, count: sealed.count - AEAD.overhead)
        try (key ?? self.key).withUnsafeBytes { k in
            try sealed.withUnsafeBytes { s in
                try out.withUnsafeMutableBytes { try AEAD.open(s, associatedData: ad, key: k, into: $0) }
            }
        }
        return out
    }

    @Test func roundTripAndFreshNonces() throws {
        let sealed = try seal(header)
        #expect(sealed.count == message.count + AEAD.overhead)
        #expect(try open(sealed, header) == message)
        #expect(try seal(header) != sealed)
    }

    @Test func otherAssociatedDataWrongKeyOrAnyFlippedByteFail() throws {
        let sealed = try seal(header)
        #expect(throws: CryptoError(.authenticationFailed)) { try open(sealed, Array("headex".utf8)) }
        #expect(throws: CryptoError(.authenticationFailed)) { try open(sealed, header, key: SymmetricKey.random()) }
        for index in sealed.indices {
            var tampered = sealed
            tampered[index] ^= 0x80
            #expect(throws: CryptoError(.authenticationFailed)) { try open(tampered, header) }
        }
    }
}
