import NIOCore

/// Parses one request from the front of a buffer: a RESP array of bulk strings, or an inline
/// command line. It consumes bytes only once a whole request is there, and checks every
/// declared length against the limits before waiting for the bytes, so a hostile length can
/// never make the connection buffer more than the limits allow.
public enum RESPRequestParser {
    public enum Outcome: Hashable, Sendable {
        case request(RESPRequest)
        /// Bytes were consumed but held no command (an empty line, `*0`, `*-1`).
        case skipped
        case needMoreData
    }

    private static let cr = UInt8(ascii: "\r")
    private static let lf = UInt8(ascii: "\n")

    public static func parse(_ buffer: inout ByteBuffer, limits: RESPLimits) throws -> Outcome {
        guard let first = buffer.getInteger(at: buffer.readerIndex, as: UInt8.self) else { return .needMoreData }
        if first == UInt8(ascii: "*") {
            return try parseArray(&buffer, limits: limits)
        }
        return try parseInline(&buffer, limits: limits)
    }

    /// The line starting at `offset` (relative to the reader index), without its line ending,
    /// and the offset just past that ending; nil if the line is not complete yet.
    private static func line(
        in buffer: ByteBuffer, from offset: Int, limit: Int, tooLong: String
    ) throws -> (bytes: ByteBufferView, next: Int)? {
        let view = buffer.readableBytesView
        let start = view.startIndex + offset
        guard start <= view.endIndex else { return nil }
        let searchEnd = min(view.endIndex, start + limit + 2)
        guard let newline = view[start..<searchEnd].firstIndex(of: lf) else {
            if searchEnd - start > limit + 1 { throw RESPProtocolError(tooLong) }
            return nil
        }
        var end = newline
        if end > start && view[end - 1] == cr { end -= 1 }
        guard end - start <= limit else { throw RESPProtocolError(tooLong) }
        return (view[start..<end], newline + 1 - view.startIndex)
    }

    /// A decimal integer as Redis's `string2ll` accepts it: optional minus, digits, no spaces.
    private static func integer(_ bytes: ByteBufferView) -> Int? {
        guard !bytes.isEmpty, bytes.count <= 19 else { return nil }
        var negative = false
        var value = 0
        for (index, byte) in bytes.enumerated() {
            if index == 0 && byte == UInt8(ascii: "-") && bytes.count > 1 {
                negative = true
                continue
            }
            guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return nil }
            // 19 digits can exceed Int.max (the fuzzer found "*9999499999999999999", which
            // trapped and took the whole server down): out of range is not a number.
            let (times10, overflow1) = value.multipliedReportingOverflow(by: 10)
            let (sum, overflow2) = times10.addingReportingOverflow(Int(byte - UInt8(ascii: "0")))
            guard !overflow1, !overflow2 else { return nil }
            value = sum
        }
        return negative ? -value : value
    }

    private static func parseArray(_ buffer: inout ByteBuffer, limits: RESPLimits) throws -> Outcome {
        guard
            let header = try line(
                in: buffer, from: 0, limit: limits.maximumInlineLength, tooLong: "too big mbulk count string")
        else { return .needMoreData }
        guard let count = integer(header.bytes.dropFirst()), count <= 1024 * 1024 else {
            throw RESPProtocolError("invalid multibulk length")
        }
        if count <= 0 {
            buffer.moveReaderIndex(forwardBy: header.next)
            return .skipped
        }
        guard count <= limits.maximumArguments else {
            throw RESPProtocolError("too many arguments: at most \(limits.maximumArguments) per command")
        }
        var offset = header.next
        var arguments: [[UInt8]] = []
        arguments.reserveCapacity(count)
        for _ in 0..<count {
            guard
                let bulkHeader = try line(
                    in: buffer, from: offset, limit: limits.maximumInlineLength, tooLong: "too big bulk count string")
            else { return .needMoreData }
            guard let marker = bulkHeader.bytes.first else { throw RESPProtocolError("expected '$', got ''") }
            guard marker == UInt8(ascii: "$") else {
                throw RESPProtocolError("expected '$', got '\(printable(marker))'")
            }
            guard let length = integer(bulkHeader.bytes.dropFirst()), length >= 0, length <= 512 * 1024 * 1024 else {
                throw RESPProtocolError("invalid bulk length")
            }
            guard length <= limits.maximumBulkLength else {
                throw RESPProtocolError("bulk string longer than \(limits.maximumBulkLength) bytes")
            }
            let dataStart = bulkHeader.next
            guard dataStart + length <= limits.maximumRequestBytes else {
                throw RESPProtocolError("request larger than \(limits.maximumRequestBytes) bytes")
            }
            guard buffer.readableBytes >= dataStart + length + 2 else { return .needMoreData }
            let at = buffer.readerIndex + dataStart
            guard buffer.getInteger(at: at + length, as: UInt8.self) == cr,
                buffer.getInteger(at: at + length + 1, as: UInt8.self) == lf
            else { throw RESPProtocolError("expected CRLF after bulk string") }
            arguments.append(buffer.getBytes(at: at, length: length) ?? [])
            offset = dataStart + length + 2
        }
        buffer.moveReaderIndex(forwardBy: offset)
        return .request(RESPRequest(arguments: arguments))
    }

    private static func parseInline(_ buffer: inout ByteBuffer, limits: RESPLimits) throws -> Outcome {
        guard
            let current = try line(
                in: buffer, from: 0, limit: limits.maximumInlineLength, tooLong: "too big inline request")
        else { return .needMoreData }
        let words = try InlineCommandSplitter.split(Array(current.bytes))
        buffer.moveReaderIndex(forwardBy: current.next)
        if words.isEmpty { return .skipped }
        guard words.count <= limits.maximumArguments else {
            throw RESPProtocolError("too many arguments: at most \(limits.maximumArguments) per command")
        }
        return .request(RESPRequest(arguments: words))
    }

    static func printable(_ byte: UInt8) -> String {
        byte >= 0x20 && byte < 0x7f ? String(UnicodeScalar(byte)) : "\\x" + String(byte, radix: 16)
    }
}
