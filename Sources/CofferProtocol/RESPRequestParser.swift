import NIOCore

/// Parses requests from the front of a connection's buffer: RESP arrays of bulk strings, or
/// inline command lines. It is incremental: a request that arrives in many segments is parsed
/// as it arrives, each byte examined a bounded number of times, so a client that trickles a
/// large request one byte per segment costs the server no more than one that sends it whole.
/// (Starting over on every segment was quadratic: 0.18 ms of CPU per byte of a 3 MiB request.)
///
/// It checks every declared length against the limits before waiting for the bytes, so a
/// hostile length can never make the connection buffer more than the limits allow. Complete
/// arguments are consumed from the buffer as they arrive; the rest of a request stays there.
public struct RESPRequestParser: Sendable {
    public enum Outcome: Hashable, Sendable {
        case request(RESPRequest)
        /// Bytes were consumed but held no command (an empty line, `*0`, `*-1`).
        case skipped
        case needMoreData
    }

    /// The limits for the next request. Change them only between requests (`isIdle`).
    public var limits: RESPLimits

    /// An array request whose header and first arguments have been consumed. Arguments that
    /// completed in an earlier segment are copied to `owned` (the buffer moves on past them);
    /// a request that arrives whole stays in the connection's buffer, uncopied.
    private var partial: (expected: Int, request: RESPRequest, bytes: Int, owned: ByteBuffer)?
    /// How far an incomplete inline line (or header line) has been searched for its end.
    private var scanned = 0

    private static let cr = UInt8(ascii: "\r")
    private static let lf = UInt8(ascii: "\n")
    /// `*`/`$` header lines hold at most a sign and 19 digits; anything longer is refused
    /// without searching further (Redis allows the inline limit, which costs a search per byte).
    private static let maximumHeaderLength = 32

    public init(limits: RESPLimits) { self.limits = limits }

    /// True when no request is partly parsed: the point where limits may change.
    public var isIdle: Bool { partial == nil }

    /// Parses the next request from `buffer`, consuming what it has parsed.
    public mutating func next(_ buffer: inout ByteBuffer) throws -> Outcome {
        if partial != nil { return try continueArray(&buffer) }
        if scanned == 0, let request = Self.wholeArray(&buffer, limits) { return .request(request) }
        guard let first = buffer.getInteger(at: buffer.readerIndex, as: UInt8.self) else { return .needMoreData }
        if first == UInt8(ascii: "*") { return try beginArray(&buffer) }
        return try parseInline(&buffer)
    }

    /// One request from a buffer holding it whole; consumes nothing unless a request (or a
    /// skippable line) is complete. For tests and one-shot uses; connections use `next`.
    public static func parse(_ buffer: inout ByteBuffer, limits: RESPLimits) throws -> Outcome {
        var parser = RESPRequestParser(limits: limits)
        var copy = buffer
        let outcome = try parser.next(&copy)
        switch outcome {
        case .needMoreData: return .needMoreData
        case .request, .skipped:
            buffer = copy
            return outcome
        }
    }

    /// The line starting at the reader index: the length of its content (without its line
    /// ending) and the number of bytes up to and including the ending; nil if the line is not
    /// complete yet. Bytes searched before are not searched again. Offsets from the reader index
    /// and a scan of the raw bytes, not a `ByteBufferView`: every request has two or more of
    /// these lines, and the views' copies showed in the event loops' profile.
    private mutating func line(in buffer: ByteBuffer, limit: Int, tooLong: String) throws -> (
        length: Int, consumed: Int
    )? {
        let readable = buffer.readableBytes
        let from = min(scanned, readable)
        let searchEnd = min(readable, limit + 2)
        let newline: Int? = buffer.withUnsafeReadableBytes { bytes in
            var index = from
            while index < searchEnd {
                if bytes[index] == Self.lf { return index }
                index += 1
            }
            return nil
        }
        guard let newline else {
            if searchEnd > limit + 1 { throw RESPProtocolError(tooLong) }
            scanned = searchEnd
            return nil
        }
        scanned = 0
        var end = newline
        if end > 0 && buffer.getInteger(at: buffer.readerIndex + end - 1, as: UInt8.self) == Self.cr { end -= 1 }
        guard end <= limit else { throw RESPProtocolError(tooLong) }
        return (end, newline + 1)
    }

    /// An array request that is whole at the front of `buffer` and within every limit, parsed
    /// in one pass over the raw bytes and consumed; nil, consuming nothing, for anything else
    /// (an inline command, a request not complete yet, an empty array, a bare LF, anything
    /// malformed or over a limit), which the step-by-step parse below then waits on, skips or
    /// refuses with its exact error. That parse reads the buffer a dozen times per request,
    /// each read a dynamic exclusivity check on the buffer's storage (`swift_beginAccess`):
    /// 11 % of the event loop's samples at pipelined PINGs.
    static func wholeArray(_ buffer: inout ByteBuffer, _ limits: RESPLimits) -> RESPRequest? {
        let headerLimit = min(limits.maximumInlineLength, maximumHeaderLength)
        let maximumArguments = min(limits.maximumArguments, 1024 * 1024)
        let maximumBulk = min(limits.maximumBulkLength, 512 * 1024 * 1024)
        let maximumBytes = limits.maximumRequestBytes
        var request = RESPRequest(storage: buffer)
        let consumed = buffer.withUnsafeReadableBytes { bytes -> Int? in
            let end = bytes.count
            /// The end of the `CRLF`-terminated header line starting at `start` (the index of
            /// its CR), if it is complete and within the header limit.
            func headerEnd(_ start: Int) -> Int? {
                var index = start + 1
                let last = min(end - 1, start + headerLimit + 1)
                while index < last {
                    if bytes[index] == cr { return bytes[index + 1] == lf ? index : nil }
                    if bytes[index] == lf { return nil }
                    index += 1
                }
                return nil
            }
            guard end > 0, bytes[0] == UInt8(ascii: "*"), let countEnd = headerEnd(0),
                let count = DecimalInteger.parse(bytes[1..<countEnd]), count > 0, count <= maximumArguments
            else { return nil }
            var position = countEnd + 2
            while request.count < count {
                guard position < end, bytes[position] == UInt8(ascii: "$"), let lengthEnd = headerEnd(position),
                    let length = DecimalInteger.parse(bytes[(position + 1)..<lengthEnd]), length >= 0,
                    length <= maximumBulk
                else { return nil }
                let data = lengthEnd + 2
                guard data + length + 2 <= maximumBytes, data + length + 2 <= end, bytes[data + length] == cr,
                    bytes[data + length + 1] == lf
                else { return nil }
                request.append(offset: data, length: length)
                position = data + length + 2
            }
            return position
        }
        guard let consumed else { return nil }
        buffer.moveReaderIndex(forwardBy: consumed)
        return request
    }

    /// The decimal integer in the readable bytes `range` of `buffer` (offsets from its reader
    /// index).
    private static func integer(_ buffer: ByteBuffer, _ range: Range<Int>) -> Int? {
        buffer.withUnsafeReadableBytes { bytes in DecimalInteger.parse(bytes[range]) }
    }

    private mutating func beginArray(_ buffer: inout ByteBuffer) throws -> Outcome {
        guard
            let header = try line(
                in: buffer, limit: min(limits.maximumInlineLength, Self.maximumHeaderLength),
                tooLong: "too big mbulk count string")
        else { return .needMoreData }
        // A header line ends in CRLF, as Redis requires (it reads up to the CR): `*1\n` is not
        // a count.
        guard header.consumed == header.length + 2, let count = Self.integer(buffer, 1..<max(1, header.length)),
            count <= 1024 * 1024
        else {
            throw RESPProtocolError("invalid multibulk length")
        }
        buffer.moveReaderIndex(forwardBy: header.consumed)
        if count <= 0 { return .skipped }
        guard count <= limits.maximumArguments else {
            throw RESPProtocolError("too many arguments: at most \(limits.maximumArguments) per command")
        }
        // The arguments are recorded at offsets from `buffer`'s reader index as it is now.
        var request = RESPRequest(storage: buffer)
        var bytes = header.consumed
        if try readArguments(&buffer, into: &request, expected: count, bytes: &bytes) { return .request(request) }
        var owned = ByteBuffer()
        request.ownArguments(from: 0, into: &owned)
        partial = (count, request, bytes, owned)
        return .needMoreData
    }

    /// Resumes a request whose first arguments came in an earlier segment.
    private mutating func continueArray(_ buffer: inout ByteBuffer) throws -> Outcome {
        guard var state = partial else { return .needMoreData }
        // Taken out while parsing so that appending does not copy the request.
        partial = nil
        let first = state.request.count
        state.request.setStorage(buffer)
        let complete = try readArguments(&buffer, into: &state.request, expected: state.expected, bytes: &state.bytes)
        // The connection appends its next segment to its buffer: a request must not refer to
        // that buffer then (it would be copied), so what arrived in this one is copied out.
        state.request.ownArguments(from: first, into: &state.owned)
        if complete { return .request(state.request) }
        partial = state
        return .needMoreData
    }

    /// Reads bulk-string arguments into `request` until it has `expected` of them (true) or the
    /// buffer holds no more complete ones (false). Each is recorded at its offset from the
    /// request's storage, which is `buffer` as it was before this call.
    private mutating func readArguments(
        _ buffer: inout ByteBuffer, into request: inout RESPRequest, expected: Int, bytes: inout Int
    ) throws -> Bool {
        let base = buffer.readerIndex
        while request.count < expected {
            guard
                let bulkHeader = try line(
                    in: buffer, limit: min(limits.maximumInlineLength, Self.maximumHeaderLength),
                    tooLong: "too big bulk count string")
            else { return false }
            guard bulkHeader.length > 0, let marker = buffer.getInteger(at: buffer.readerIndex, as: UInt8.self) else {
                throw RESPProtocolError("expected '$', got ''")
            }
            guard marker == UInt8(ascii: "$") else {
                throw RESPProtocolError("expected '$', got '\(Self.printable(marker))'")
            }
            guard bulkHeader.consumed == bulkHeader.length + 2,
                let length = Self.integer(buffer, 1..<bulkHeader.length), length >= 0, length <= 512 * 1024 * 1024
            else {
                throw RESPProtocolError("invalid bulk length")
            }
            guard length <= limits.maximumBulkLength else {
                throw RESPProtocolError("bulk string longer than \(limits.maximumBulkLength) bytes")
            }
            // The whole request, its last CRLF included.
            guard bytes + bulkHeader.consumed + length + 2 <= limits.maximumRequestBytes else {
                throw RESPProtocolError("request larger than \(limits.maximumRequestBytes) bytes")
            }
            // The header is parsed again when the data completes; it is short, so waiting for
            // a large bulk costs one header parse per segment, not a scan of the data.
            guard buffer.readableBytes >= bulkHeader.consumed + length + 2 else { return false }
            let at = buffer.readerIndex + bulkHeader.consumed
            guard buffer.getInteger(at: at + length, as: UInt8.self) == Self.cr,
                buffer.getInteger(at: at + length + 1, as: UInt8.self) == Self.lf
            else { throw RESPProtocolError("expected CRLF after bulk string") }
            request.append(offset: at - base, length: length)
            buffer.moveReaderIndex(forwardBy: bulkHeader.consumed + length + 2)
            bytes += bulkHeader.consumed + length + 2
        }
        return true
    }

    private mutating func parseInline(_ buffer: inout ByteBuffer) throws -> Outcome {
        guard let current = try line(in: buffer, limit: limits.maximumInlineLength, tooLong: "too big inline request")
        else { return .needMoreData }
        let words = try InlineCommandSplitter.split(
            buffer.getBytes(at: buffer.readerIndex, length: current.length) ?? [])
        buffer.moveReaderIndex(forwardBy: current.consumed)
        if words.isEmpty { return .skipped }
        guard words.count <= limits.maximumArguments else {
            throw RESPProtocolError("too many arguments: at most \(limits.maximumArguments) per command")
        }
        // An argument has the same bound however it is sent: before AUTH an inline secret
        // could be 4 KB (the inline limit) where a bulk one is cut at 1 KB.
        guard words.allSatisfy({ $0.count <= limits.maximumBulkLength }) else {
            throw RESPProtocolError("bulk string longer than \(limits.maximumBulkLength) bytes")
        }
        return .request(RESPRequest(arguments: words))
    }

    static func printable(_ byte: UInt8) -> String {
        byte >= 0x20 && byte < 0x7f ? String(UnicodeScalar(byte)) : "\\x" + String(byte, radix: 16)
    }
}
