/// Subject ids are opaque and chosen by the caller, but restricted to `[A-Za-z0-9._:-]{1,128}`
/// so that an email address or a name can never be used as one (ids appear in audit entries
/// and in the database in the clear).
public enum SubjectID {
    public static let maximumLength = 128

    public static func validate(_ id: String) throws {
        let bytes = id.utf8
        guard !bytes.isEmpty, bytes.count <= maximumLength else {
            throw VaultError(.invalid, "subject id must be 1 to \(maximumLength) characters")
        }
        for byte in bytes where !isAllowed(byte) {
            throw VaultError(.invalid, "subject id may contain only letters, digits and . _ : -")
        }
    }

    static func isAllowed(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: ":"),
            UInt8(ascii: "-"):
            true
        default: false
        }
    }
}
