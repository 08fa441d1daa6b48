/// The categories the policy grants access by. Every field belongs to exactly one.
public enum DataCategory: String, Sendable, CaseIterable, Codable, Comparable {
    case contact
    case card
    case consent

    public static func < (lhs: Self, rhs: Self) -> Bool { lhs.rawValue < rhs.rawValue }
}
