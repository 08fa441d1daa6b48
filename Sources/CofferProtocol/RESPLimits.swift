/// Caps on what one request may hold, enforced while decoding, before anything is buffered.
public struct RESPLimits: Sendable, Hashable {
    /// Longest inline command line, and longest `*`/`$` header line.
    public var maximumInlineLength: Int
    /// Longest single bulk string.
    public var maximumBulkLength: Int
    /// Most arguments in one command (the command name included).
    public var maximumArguments: Int
    /// Most bytes one whole request may occupy.
    public var maximumRequestBytes: Int

    public init(maximumInlineLength: Int, maximumBulkLength: Int, maximumArguments: Int, maximumRequestBytes: Int) {
        self.maximumInlineLength = maximumInlineLength
        self.maximumBulkLength = maximumBulkLength
        self.maximumArguments = maximumArguments
        self.maximumRequestBytes = maximumRequestBytes
    }

    /// For authenticated clients: 64 KiB inline, 1 MiB bulk, 1024 arguments, 4 MiB in all.
    public static let authenticated = RESPLimits(
        maximumInlineLength: 64 * 1024, maximumBulkLength: 1024 * 1024, maximumArguments: 1024,
        maximumRequestBytes: 4 * 1024 * 1024)

    /// Before AUTH: enough for `HELLO 3 AUTH name secret SETNAME name`, and little more.
    public static let anonymous = RESPLimits(
        maximumInlineLength: 4 * 1024, maximumBulkLength: 1024, maximumArguments: 8, maximumRequestBytes: 4 * 1024)
}
