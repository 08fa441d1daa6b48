/// One command as it arrived: its arguments as raw bytes, the command name first.
public struct RESPRequest: Hashable, Sendable {
    public var arguments: [[UInt8]]

    public init(arguments: [[UInt8]]) { self.arguments = arguments }

    public init(_ words: String...) { self.arguments = words.map { Array($0.utf8) } }
}
