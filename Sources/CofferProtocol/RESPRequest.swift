import NIOCore

/// One command as it arrived: its arguments as raw bytes, the command name first.
///
/// The arguments stay where the parser found them: in the connection's read buffer (one
/// reference, no copy) when an array request arrived whole, or in one buffer of their own
/// when it came in pieces (every argument copied there once) or as an inline command. Where
/// each argument starts and ends is kept inline for up to `inlineCount` arguments. In a profile of the event loop at pipelined PINGs, parsing was
/// 13.5 % of its samples when it built an array per request and one per argument, and 6.7 %
/// without them.
public struct RESPRequest: Sendable {
    /// Requests with at most this many arguments (PING, or a GET or PUT of one field) record
    /// where they are without allocating.
    static let inlineCount = 4

    /// Holds every argument's bytes, at the offsets `inline` and `overflow` give (from its
    /// reader index).
    private var storage: ByteBuffer
    /// Each argument's offset (high 32 bits) and length (low 32 bits) in `storage`. The
    /// server's limits keep both far below 2³² (4 MiB per request); a larger one traps rather
    /// than wraps (`pack`).
    private var inline = InlineArray<4, UInt64>(repeating: 0)
    private var overflow: [UInt64] = []
    /// The number of arguments.
    public private(set) var count = 0

    /// An empty request, whose arguments are appended from `storage`.
    init(storage: ByteBuffer) { self.storage = storage }

    public init(arguments: [[UInt8]]) {
        var storage = ByteBuffer()
        storage.reserveCapacity(arguments.reduce(0) { $0 + $1.count })
        self.init(storage: storage)
        for argument in arguments {
            let offset = self.storage.writerIndex - self.storage.readerIndex
            self.storage.writeBytes(argument)
            append(offset: offset, length: argument.count)
        }
    }

    public init(_ words: String...) { self.init(words: words) }

    public init(words: [String]) { self.init(arguments: words.map { Array($0.utf8) }) }

    /// Records one more argument: `length` bytes at `offset` from the storage's reader index.
    mutating func append(offset: Int, length: Int) {
        let span = Self.pack(offset, length)
        if count < Self.inlineCount {
            inline[count] = span
        } else {
            overflow.append(span)
        }
        count += 1
    }

    /// Copies the arguments from `first` on to the end of `owned` and makes `owned` the
    /// request's storage (the arguments before `first` must be there already). The parser
    /// does this when a request arrives in pieces: it consumes the connection's buffer past
    /// each argument, and the connection then appends the next piece to it.
    mutating func ownArguments(from first: Int, into owned: inout ByteBuffer) {
        for index in first..<count {
            let newOffset = owned.writerIndex - owned.readerIndex
            withArgument(index) { _ = owned.writeBytes($0) }
            setSpan(index, offset: newOffset, length: length(of: index))
        }
        storage = owned
    }

    /// Points the request at `storage`, at whose reader index the spans of any arguments
    /// appended next start.
    mutating func setStorage(_ storage: ByteBuffer) { self.storage = storage }

    private func span(_ index: Int) -> (offset: Int, length: Int) {
        let packed = index < Self.inlineCount ? inline[index] : overflow[index - Self.inlineCount]
        return (Int(packed >> 32), Int(packed & 0xFFFF_FFFF))
    }

    private static func pack(_ offset: Int, _ length: Int) -> UInt64 {
        precondition(offset >= 0 && offset <= UInt32.max && length >= 0 && length <= UInt32.max)
        return UInt64(truncatingIfNeeded: offset) << 32 | UInt64(truncatingIfNeeded: length)
    }

    private mutating func setSpan(_ index: Int, offset: Int, length: Int) {
        let packed = Self.pack(offset, length)
        if index < Self.inlineCount {
            inline[index] = packed
        } else {
            overflow[index - Self.inlineCount] = packed
        }
    }

    /// The length of argument `index`.
    public func length(of index: Int) -> Int { span(index).length }

    /// Argument `index`'s bytes, without copying them.
    public func withArgument<Result>(_ index: Int, _ body: (UnsafeRawBufferPointer) throws -> Result) rethrows
        -> Result
    {
        let (offset, length) = span(index)
        return try storage.withUnsafeReadableBytes { bytes in
            // Slicing a raw buffer is checked only in debug builds: a wrong span must trap, not
            // read past the request.
            precondition(offset + length <= bytes.count)
            return try body(UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + length)]))
        }
    }

    /// Argument `index` as bytes of its own.
    public func bytes(_ index: Int) -> [UInt8] { withArgument(index) { Array($0) } }

    /// Argument `index` as text (invalid UTF-8 replaced, as `String(decoding:as:)` does).
    public func text(_ index: Int) -> String { withArgument(index) { String(decoding: $0, as: UTF8.self) } }

    /// Every argument as bytes of its own.
    public var arguments: [[UInt8]] { (0..<count).map(bytes) }

    /// The request as a client sends it: an array of bulk strings, which is what
    /// `RESPRequestParser` reads.
    public func encode(into buffer: inout ByteBuffer) {
        RESPValue.array(arguments.map(RESPValue.bulkString)).encode(into: &buffer, version: 2)
    }
}

extension RESPRequest: Hashable {
    public static func == (lhs: RESPRequest, rhs: RESPRequest) -> Bool {
        guard lhs.count == rhs.count else { return false }
        for index in 0..<lhs.count {
            let same = lhs.withArgument(index) { left in
                rhs.withArgument(index) { right in left.elementsEqual(right) }
            }
            if !same { return false }
        }
        return true
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(count)
        for index in 0..<count {
            hasher.combine(length(of: index))
            withArgument(index) { hasher.combine(bytes: $0) }
        }
    }
}
