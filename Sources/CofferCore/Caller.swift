/// Who is asking. Every vault operation takes one, and the vault resolves it to a role itself,
/// on every call, so a revoked client is refused from its next command.
public enum Caller: Sendable, Hashable {
    /// An authenticated client, by name.
    case client(String)
    /// The operator at the machine, using the CLI offline with the key directory in hand.
    case localOperator
}
