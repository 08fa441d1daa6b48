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
            Self.writeLine("+", Self.singleLine(string), into: &buffer)
        case .error(let message):
            Self.writeLine("-", Self.singleLine(message), into: &buffer)
        case .integer(let value):
            Self.writeHeader(":", value, into: &buffer)
        case .bulkString(let bytes):
            bytes.withUnsafeBytes { Self.writeHeader("$", bytes.count, then: $0, into: &buffer) }
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

    /// A type marker, a decimal integer and CRLF, then `data` and CRLF if there is data: one
    /// write into the buffer, not one per part. Each write is a uniqueness and an exclusivity
    /// check on the buffer's storage, and three per reply showed in the event loop's profile.
    private static func writeHeader(
        _ marker: Unicode.Scalar, _ value: Int, then data: UnsafeRawBufferPointer? = nil,
        into buffer: inout ByteBuffer
    ) {
        let dataLength = data.map { $0.count + 2 } ?? 0
        // A marker, a sign, 19 digits and CRLF.
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: 23 + dataLength) { out in
            var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)
            let headerLength = withUnsafeMutableBytes(of: &digits) { digits in
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
                out[0] = UInt8(ascii: marker)
                let count = digits.count - start
                UnsafeMutableRawBufferPointer(rebasing: out[1...]).copyMemory(
                    from: UnsafeRawBufferPointer(rebasing: digits[start...]))
                out[1 + count] = cr
                out[2 + count] = lf
                return 3 + count
            }
            guard let data else { return headerLength }
            UnsafeMutableRawBufferPointer(rebasing: out[headerLength...]).copyMemory(from: data)
            out[headerLength + data.count] = cr
            out[headerLength + data.count + 1] = lf
            return headerLength + data.count + 2
        }
    }

    /// A marker, `text` and CRLF, in one write.
    private static func writeLine(_ marker: Unicode.Scalar, _ text: String, into buffer: inout ByteBuffer) {
        var text = text
        _ = text.withUTF8 { utf8 in
            buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: utf8.count + 3) { out in
                out[0] = UInt8(ascii: marker)
                UnsafeMutableRawBufferPointer(rebasing: out[1...]).copyMemory(from: UnsafeRawBufferPointer(utf8))
                out[utf8.count + 1] = cr
                out[utf8.count + 2] = lf
                return utf8.count + 3
            }
        }
    }

    private static let cr = UInt8(ascii: "\r")
    private static let lf = UInt8(ascii: "\n")

    /// Simple strings and errors cannot hold line breaks.
    private static func singleLine(_ string: String) -> String {
        // Scanned as UTF-8: CR and LF are never part of a multi-byte sequence, and decoding
        // scalars for every simple reply (+PONG, +OK) was most of encoding one.
        guard string.utf8.contains(where: { $0 == 0x0D || $0 == 0x0A }) else { return string }
        return String(String.UnicodeScalarView(string.unicodeScalars.map { $0 == "\r" || $0 == "\n" ? " " : $0 }))
    }
}
