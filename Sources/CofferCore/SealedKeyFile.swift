import CofferCrypto

/// The format of a key file in a sealed key directory: an 18-byte header in the clear, then
/// the key sealed under the root key R with XChaCha20-Poly1305, the header as associated data.
///
///     "CFRSEALK"  magic (8 bytes)
///     1           format version (1 byte)
///     kind        1 KEK, 2 index, 3 auth, 4 audit (1 byte)
///     version     the KEK version, 0 for the others (4 bytes, big-endian)
///     generation  the seal generation (4 bytes, big-endian)
///     nonce ‖ sealed key ‖ MAC (24 + 32 + 16 bytes)
///
/// A file is opened against the header its *name* and the current generation call for, never
/// the header it carries: `kek-1.key` copied over `kek-2.key`, `audit.key` renamed to
/// `auth.key`, or a file from before a rekey all fail authentication instead of yielding a key.
enum SealedKeyFile {
    enum Kind: UInt8 {
        case kek = 1
        case index = 2
        case auth = 3
        case audit = 4
    }

    static let magic = Array("CFRSEALK".utf8)
    static let headerLength = magic.count + 1 + 1 + 4 + 4
    static let length = headerLength + AEAD.overhead + SymmetricKey.length

    static func header(kind: Kind, version: UInt32, generation: UInt32) -> [UInt8] {
        magic + [1, kind.rawValue] + ShareText.bigEndian(version) + ShareText.bigEndian(generation)
    }

    /// The kind and KEK version a key file's name stands for.
    static func identity(fileName: String) -> (kind: Kind, version: UInt32)? {
        switch fileName {
        case KeyDirectory.indexKeyFile: (.index, 0)
        case KeyDirectory.authKeyFile: (.auth, 0)
        case KeyDirectory.auditKeyFile: (.audit, 0)
        default: KeyDirectory.kekVersion(fileName: fileName).map { (.kek, $0) }
        }
    }

    static func seal(_ key: SymmetricKey, fileName: String, root: RootKey) throws -> [UInt8] {
        guard let identity = identity(fileName: fileName) else {
            throw VaultError(.keys, "\(fileName) is not the name of a key file")
        }
        let header = header(kind: identity.kind, version: identity.version, generation: root.generation)
        do {
            let sealed = try root.key.withUnsafeBytes { r in
                try key.withUnsafeBytes { try AEAD.seal($0, associatedData: header, key: r) }
            }
            return header + sealed
        } catch {
            throw VaultError(.keys, "\(fileName) could not be sealed: \(error)")
        }
    }

    /// Opens a sealed key file's bytes into guarded memory, naming what is wrong if it fails.
    static func open(_ bytes: [UInt8], path: String, fileName: String, root: RootKey) throws -> SymmetricKey {
        guard let identity = identity(fileName: fileName) else {
            throw VaultError(.keys, "\(path) is not the name of a key file")
        }
        guard bytes.count == length, Array(bytes.prefix(magic.count)) == magic else {
            throw VaultError(.keys, "key file \(path) is not a sealed key file (\(bytes.count) bytes)")
        }
        let expected = header(kind: identity.kind, version: identity.version, generation: root.generation)
        let carried = Array(bytes.prefix(headerLength))
        if carried != expected {
            let generation = carried.suffix(4).reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
            if generation != root.generation {
                throw VaultError(
                    .keys,
                    "key file \(path) is sealed under seal generation \(generation), the key directory is at \(root.generation)"
                )
            }
            throw VaultError(
                .keys, "key file \(path) is another key's file (its header names a different kind or version)")
        }
        do {
            let key = try SecureBytes(count: SymmetricKey.length)
            try root.key.withUnsafeBytes { r in
                try bytes.withUnsafeBytes { raw in
                    try key.withUnsafeMutableBytes {
                        try AEAD.open(
                            UnsafeRawBufferPointer(rebasing: raw[headerLength...]), associatedData: expected, key: r,
                            into: $0)
                    }
                }
            }
            return try SymmetricKey(key)
        } catch {
            throw VaultError(.keys, "key file \(path) does not open under the root key: altered, or not this vault's")
        }
    }
}
