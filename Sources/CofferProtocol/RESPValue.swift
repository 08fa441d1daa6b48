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
    /// A reply encoded ahead of time, for each protocol version: for large constant replies.
    /// COMMAND DOCS built once but encoded per request still cost about 30 µs of server CPU
    /// per request (0.6 s for 20,000 pipelined), nearly all of it in encoding (perf).
    case encoded(resp2: ByteBuffer, resp3: ByteBuffer)

    /// `value` encoded once for each protocol version.
    public static func preencoded(_ value: RESPValue) -> RESPValue {
        var resp2 = ByteBuffer()
        var resp3 = ByteBuffer()
        value.encode(into: &resp2, version: 2)
        value.encode(into: &resp3, version: 3)
        return .encoded(resp2: resp2, resp3: resp3)
    }

    public static func bulk(_ string: String) -> RESPValue { .bulkString(Array(string.utf8)) }

    public static func == (lhs: RESPValue, rhs: RESPValue) -> Bool {
        switch (lhs, rhs) {
        case (.simpleString(let a), .simpleString(let b)), (.error(let a), .error(let b)): a == b
        case (.integer(let a), .integer(let b)): a == b
        case (.bulkString(let a), .bulkString(let b)): a == b
        case (.null, .null), (.nullArray, .nullArray): true
        case (.array(let a), .array(let b)): a == b
        case (.map(let a), .map(let b)): a.count == b.count && zip(a, b).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
        case (.encoded(let a2, let a3), .encoded(let b2, let b3)): a2 == b2 && a3 == b3
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
        case .encoded(let resp2, _): hasher.combine(resp2.readableBytes)
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
            Self.writeHeader(":", value, into: &buffer)
        case .bulkString(let bytes):
            Self.writeHeader("$", bytes.count, into: &buffer)
            buffer.writeBytes(bytes)
            buffer.writeStaticString("\r\n")
        case .null:
            buffer.writeStaticString(version >= 3 ? "_\r\n" : "$-1\r\n")
        case .nullArray:
            buffer.writeStaticString(version >= 3 ? "_\r\n" : "*-1\r\n")
        case .array(let elements):
            Self.writeHeader("*", elements.count, into: &buffer)
            for element in elements { element.encode(into: &buffer, version: version) }
        case .map(let pairs):
            if version >= 3 {
                Self.writeHeader("%", pairs.count, into: &buffer)
            } else {
                Self.writeHeader("*", pairs.count * 2, into: &buffer)
            }
            for (key, value) in pairs {
                key.encode(into: &buffer, version: version)
                value.encode(into: &buffer, version: version)
            }
        case .encoded(let resp2, let resp3):
            var bytes = version >= 3 ? resp3 : resp2
            buffer.writeBuffer(&bytes)
        }
    }

    /// A type marker, a decimal integer and CRLF, written without building a string through
    /// interpolation for every element of every reply.
    private static func writeHeader(_ marker: Unicode.Scalar, _ value: Int, into buffer: inout ByteBuffer) {
        var scratch: (UInt64, UInt64, UInt64) = (0, 0, 0)
        withUnsafeMutableBytes(of: &scratch) { digits in
            var start = digits.count
            var rest = value.magnitude
            repeat {
                start -= 1
                digits[start] = UInt8(ascii: "0") + UInt8(rest % 10)
                rest /= 10
            } while rest > 0
            if value < 0 {
                start -= 1
                digits[start] = UInt8(ascii: "-")
            }
            buffer.writeInteger(UInt8(ascii: marker))
            buffer.writeBytes(UnsafeRawBufferPointer(rebasing: digits[start...]))
        }
        buffer.writeStaticString("\r\n")
    }

    /// Simple strings and errors cannot hold line breaks.
    private static func singleLine(_ string: String) -> String {
        // Scanned as UTF-8: CR and LF are never part of a multi-byte sequence, and decoding
        // scalars for every simple reply (+PONG, +OK) was most of encoding one.
        guard string.utf8.contains(where: { $0 == 0x0D || $0 == 0x0A }) else { return string }
        return String(String.UnicodeScalarView(string.unicodeScalars.map { $0 == "\r" || $0 == "\n" ? " " : $0 }))
    }
}
