import NIOCore

/// One command as it arrived: its arguments as raw bytes, the command name first.
public struct RESPRequest: Hashable, Sendable {
    public var arguments: [[UInt8]]

    public init(arguments: [[UInt8]]) { self.arguments = arguments }

    public init(_ words: String...) { self.arguments = words.map { Array($0.utf8) } }

    public init(words: [String]) { self.arguments = words.map { Array($0.utf8) } }

    /// The request as a client sends it: an array of bulk strings, which is what
    /// `RESPRequestParser` reads.
    public func encode(into buffer: inout ByteBuffer) {
        RESPValue.array(arguments.map(RESPValue.bulkString)).encode(into: &buffer, version: 2)
    }
}
