import NIOCore

/// The channel handler side of `RESPRequestParser`: one `RESPRequest` per command, limits taken
/// from the connection's `RESPLimitSwitch` at each request.
public struct RESPRequestDecoder: ByteToMessageDecoder {
    public typealias InboundOut = RESPRequest

    private let limits: RESPLimitSwitch

    public init(limits: RESPLimitSwitch) { self.limits = limits }

    public mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        switch try RESPRequestParser.parse(&buffer, limits: limits.current) {
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
