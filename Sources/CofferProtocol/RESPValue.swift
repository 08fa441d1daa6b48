import NIOCore

/// A reply value. Encoded as RESP2 or RESP3 depending on what the connection negotiated with
/// `HELLO`: in RESP2 a null is `$-1` (or `*-1` for arrays) and a map is a flat array.
public enum RESPValue: Hashable, Sendable {
    case simpleString(String)
    case error(String)
    case integer(Int)
    case bulkString([UInt8])
    case null
    case nullArray
    case array([RESPValue])
    case map([(RESPValue, RESPValue)])

    public static func bulk(_ string: String) -> RESPValue { .bulkString(Array(string.utf8)) }

    public static func == (lhs: RESPValue, rhs: RESPValue) -> Bool {
        switch (lhs, rhs) {
        case (.simpleString(let a), .simpleString(let b)), (.error(let a), .error(let b)): a == b
        case (.integer(let a), .integer(let b)): a == b
        case (.bulkString(let a), .bulkString(let b)): a == b
        case (.null, .null), (.nullArray, .nullArray): true
        case (.array(let a), .array(let b)): a == b
        case (.map(let a), .map(let b)): a.count == b.count && zip(a, b).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
        default: false
        }
    }

    public func hash(into hasher: inout Hasher) {
        switch self {
        case .simpleString(let s), .error(let s): hasher.combine(s)
        case .integer(let i): hasher.combine(i)
        case .bulkString(let b): hasher.combine(b)
        case .null, .nullArray: hasher.combine(0)
        case .array(let a): hasher.combine(a)
        case .map(let m): hasher.combine(m.count)
        }
    }

    public func encode(into buffer: inout ByteBuffer, version: Int) {
        switch self {
        case .simpleString(let string):
            buffer.writeInteger(UInt8(ascii: "+"))
            buffer.writeString(Self.singleLine(string))
            buffer.writeStaticString("\r\n")
        case .error(let message):
            buffer.writeInteger(UInt8(ascii: "-"))
            buffer.writeString(Self.singleLine(message))
            buffer.writeStaticString("\r\n")
        case .integer(let value):
            buffer.writeString(":\(value)\r\n")
        case .bulkString(let bytes):
            buffer.writeString("$\(bytes.count)\r\n")
            buffer.writeBytes(bytes)
            buffer.writeStaticString("\r\n")
        case .null:
            buffer.writeStaticString(version >= 3 ? "_\r\n" : "$-1\r\n")
        case .nullArray:
            buffer.writeStaticString(version >= 3 ? "_\r\n" : "*-1\r\n")
        case .array(let elements):
            buffer.writeString("*\(elements.count)\r\n")
            for element in elements { element.encode(into: &buffer, version: version) }
        case .map(let pairs):
            buffer.writeString(version >= 3 ? "%\(pairs.count)\r\n" : "*\(pairs.count * 2)\r\n")
            for (key, value) in pairs {
                key.encode(into: &buffer, version: version)
                value.encode(into: &buffer, version: version)
            }
        }
    }

    /// Simple strings and errors cannot hold line breaks.
    private static func singleLine(_ string: String) -> String {
        guard string.unicodeScalars.contains(where: { $0 == "\r" || $0 == "\n" }) else { return string }
        return String(String.UnicodeScalarView(string.unicodeScalars.map { $0 == "\r" || $0 == "\n" ? " " : $0 }))
    }
}
