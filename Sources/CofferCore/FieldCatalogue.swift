/// The built-in fields. Anything not listed here is refused, and the data PCI DSS 3.3 forbids
/// storing after authorisation (verification codes, PINs, track data) is refused by name with
/// a reason of its own.
public enum FieldCatalogue {
    public static let maximumValueLength = 64 * 1024

    public static let all: [Field] = [
        Field(name: "name", category: .contact, kind: .text),
        Field(name: "email", category: .contact, kind: .email),
        Field(name: "phone", category: .contact, kind: .phone),
        Field(name: "organization", category: .contact, kind: .text),
        Field(name: "postal_address", category: .contact, kind: .address),
        Field(name: "birthday", category: .contact, kind: .date),
        Field(name: "gender", category: .contact, kind: .gender),
        Field(name: "card.pan", category: .card, kind: .cardNumber),
        Field(name: "card.expiry", category: .card, kind: .cardExpiry),
        Field(name: "card.holder", category: .card, kind: .text),
        Field(name: "consent.marketing", category: .consent, kind: .yesNo),
    ]

    private static let byName: [String: Field] = Dictionary(uniqueKeysWithValues: all.map { ($0.name, $0) })

    /// Names that must never be stored, compared case-insensitively with or without a `card.` prefix.
    static let forbiddenNames: Set<String> = [
        "cvv", "cvc", "cvv2", "cvc2", "cid", "cav2", "pin", "pin_block", "pinblock", "track1", "track2", "track",
        "track_data", "magstripe", "security_code",
    ]

    /// Looks `name` up, or says why it is refused.
    public static func field(named name: String) throws -> Field {
        if let field = byName[name] { return field }
        let lowered = name.lowercased()
        let bare = lowered.hasPrefix("card.") ? String(lowered.dropFirst(5)) : lowered
        if forbiddenNames.contains(bare) {
            throw VaultError(
                .invalid,
                "field '\(printable(name))' may never be stored: card verification codes, PINs and track data are prohibited after authorisation (PCI DSS 3.3)"
            )
        }
        throw VaultError(.invalid, "unknown field '\(printable(name))'")
    }

    /// A field name fit to echo in an error: control characters are replaced and length capped.
    static func printable(_ name: String) -> String {
        let cleaned = String(name.unicodeScalars.map { $0.value < 0x20 || $0.value == 0x7f ? "?" : Character($0) })
        return cleaned.count > 64 ? String(cleaned.prefix(64)) + "…" : cleaned
    }
}
