import CofferStore

/// One entry of the field catalogue: a name, the category it is granted by, and the kind of
/// value it holds (which decides validation and masking).
public struct Field: Sendable, Hashable {
    public enum Kind: Sendable, Hashable {
        case text
        /// Free text that masks to nothing at all (an initial of a street reveals too much).
        case address
        case email
        case phone
        case date
        case gender
        case cardNumber
        case cardExpiry
        case yesNo
    }

    public let name: String
    public let category: DataCategory
    public let kind: Kind

    /// The blind index this field feeds, if any.
    public var indexKind: IndexKind? {
        switch kind {
        case .email: .email
        case .phone: .phone
        default: nil
        }
    }
}

/// The blind indexes a subject can be found by (`FIND email …`, `FIND phone …`). The store
/// keeps the raw value as the tag's kind.
public enum IndexKind: String, Sendable, CaseIterable {
    case email
    case phone
}
