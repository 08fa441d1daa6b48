import NIOCore

/// `RESPRequestParser` as a `ByteToMessageDecoder` with fixed limits: one `RESPRequest` per
/// command. The server drives the parser itself (its limits change at AUTH); this decoder is
/// for pipelines whose limits do not change, and for codec tests.
public struct RESPRequestDecoder: ByteToMessageDecoder {
    public typealias InboundOut = RESPRequest

    private var parser: RESPRequestParser

    public init(limits: RESPLimits) { self.parser = RESPRequestParser(limits: limits) }

    public mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        switch try parser.next(&buffer) {
        case .request(let request):
            context.fireChannelRead(wrapInboundOut(request))
            return .continue
        case .skipped:
            return .continue
        case .needMoreData:
            return .needMoreData
        }
    }

    public mutating func decodeLast(
        context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool
    ) throws -> DecodingState {
        // A partial request at end of stream is dropped, as Redis does.
        try decode(context: context, buffer: &buffer)
    }
}
