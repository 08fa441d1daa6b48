import CofferCrypto

/// The root key R of a sealed key directory, held only in guarded memory, and the seal
/// generation it belongs to. Every key file is sealed under R; R itself is never written
/// anywhere: it exists as Shamir shares held by people, and in memory between unseal and seal.
public final class RootKey: Sendable {
    public let key: SymmetricKey
    /// Incremented by every rekey of the shares, so shares and key files of another
    /// generation are refused by name.
    public let generation: UInt32

    public init(key: SymmetricKey, generation: UInt32) {
        self.key = key
        self.generation = generation
    }
}
