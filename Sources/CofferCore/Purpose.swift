/// Why a client reads or writes personal data (GDPR Art. 5(1)(b), purpose limitation). The list
/// is fixed, so that the trail can be searched and a policy can grant by purpose.
public enum Purpose: String, Sendable, Hashable, CaseIterable, Codable {
    case billing
    case support
    case fraud
    case subjectRequest = "subject-request"
    case marketing
    case maintenance
    /// Anything else: needs a ticket naming the case, so that an auditor can follow it up.
    case other
}

/// A purpose as a command states it, with the ticket `other` needs.
public struct AccessPurpose: Sendable, Hashable {
    public let purpose: Purpose
    public let ticket: String?

    /// Validates a purpose given by name: one of the fixed list; `other` needs a ticket (1-64 of
    /// `[A-Za-z0-9._:/#-]`, a reference into a ticket system, never free text that could hold
    /// personal data), and no other purpose takes one.
    public init(name: String, ticket: String?) throws {
        guard let purpose = Purpose(rawValue: name.lowercased()) else {
            let shown = FieldCatalogue.printable(name)
            throw VaultError(
                .invalid,
                "unknown purpose '\(shown)' (purposes: \(Purpose.allCases.map(\.rawValue).joined(separator: ", ")))")
        }
        switch (purpose, ticket) {
        case (.other, nil):
            throw VaultError(.invalid, "PURPOSE other needs a ticket: PURPOSE other <ticket>")
        case (.other, let ticket?):
            guard (1...64).contains(ticket.utf8.count), ticket.unicodeScalars.allSatisfy(Self.ticketCharacters.contains)
            else {
                throw VaultError(.invalid, "a ticket is 1 to 64 of A-Z a-z 0-9 . _ : / # -")
            }
        case (_, .some):
            throw VaultError(.invalid, "only PURPOSE other takes a ticket")
        case (_, nil):
            break
        }
        self.purpose = purpose
        self.ticket = ticket
    }

    public init(_ purpose: Purpose) {
        precondition(purpose != .other, "other needs a ticket")
        self.purpose = purpose
        self.ticket = nil
    }

    private static let ticketCharacters = Set(
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:/#-".unicodeScalars)
}
