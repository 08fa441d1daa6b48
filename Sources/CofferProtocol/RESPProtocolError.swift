/// The request stream cannot be parsed any further. The connection gets
/// `-ERR Protocol error: <message>` and is closed, as Redis does.
public struct RESPProtocolError: Error, Hashable, Sendable, CustomStringConvertible {
    public let message: String

    public init(_ message: String) { self.message = message }

    public var description: String { "Protocol error: \(message)" }
}
