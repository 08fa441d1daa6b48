import NIOCore

/// Parses one reply (RESP2 or RESP3) from the front of a buffer, for Coffer's own clients
/// (the CLI talking to a running server). Consumes bytes only once a whole reply is there.
public enum RESPReplyParser {
    /// Redis's own default ceiling for a bulk string (proto-max-bulk-len).
    static let maximumBulkLength = 512 * 1024 * 1024
    /// Far above any reply Coffer sends (AUDIT.EXPORT pages, CLIENT.LIST), far below overflow.
    static let maximumAggregateLength = 1 << 24
    public static func parse(_ buffer: inout ByteBuffer) throws -> RESPValue? {
        var copy = buffer
        guard let value = try parseValue(&copy, depth: 0) else { return nil }
        buffer = copy
        return value
    }

    private static func line(_ buffer: inout ByteBuffer) -> String? {
        let view = buffer.readableBytesView
        guard let lf = view.firstIndex(of: UInt8(ascii: "\n")), lf > view.startIndex,
            view[lf - 1] == UInt8(ascii: "\r")
        else { return nil }
        let text = String(decoding: view[view.startIndex..<(lf - 1)], as: UTF8.self)
        buffer.moveReaderIndex(forwardBy: lf + 1 - view.startIndex)
        return text
    }

    private static func parseValue(_ buffer: inout ByteBuffer, depth: Int) throws -> RESPValue? {
        guard depth < 32 else { throw RESPProtocolError("reply nested too deeply") }
        guard let type = buffer.readInteger(as: UInt8.self) else { return nil }
        guard let header = line(&buffer) else { return nil }
        switch type {
        case UInt8(ascii: "+"): return .simpleString(header)
        case UInt8(ascii: "-"): return .error(header)
        case UInt8(ascii: ":"):
            guard let value = Int(header) else { throw RESPProtocolError("bad integer reply") }
            return .integer(value)
        case UInt8(ascii: "_"): return .null
        case UInt8(ascii: "$"):
            guard let length = Int(header) else { throw RESPProtocolError("bad bulk length") }
            if length < 0 { return .null }
            // Checked before any arithmetic: a hostile length such as Int.max must not overflow.
            guard length <= maximumBulkLength else { throw RESPProtocolError("bulk reply longer than 512 MiB") }
            guard buffer.readableBytes >= length + 2, let bytes = buffer.readBytes(length: length) else { return nil }
            guard buffer.readInteger(as: UInt16.self) == 0x0D0A else {
                throw RESPProtocolError("bulk reply not followed by CRLF")
            }
            return .bulkString(bytes)
        case UInt8(ascii: "*"), UInt8(ascii: "%"):
            guard let count = Int(header) else { throw RESPProtocolError("bad aggregate length") }
            if count < 0 { return .nullArray }
            guard count <= maximumAggregateLength else { throw RESPProtocolError("aggregate reply too long") }
            let isMap = type == UInt8(ascii: "%")
            var items: [RESPValue] = []
            for _ in 0..<(isMap ? count * 2 : count) {
                guard let item = try parseValue(&buffer, depth: depth + 1) else { return nil }
                items.append(item)
            }
            if isMap { return .map(stride(from: 0, to: items.count, by: 2).map { (items[$0], items[$0 + 1]) }) }
            return .array(items)
        default:
            throw RESPProtocolError("unknown reply type byte")
        }
    }
}
