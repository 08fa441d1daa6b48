import NIOCore

/// The channel handler side of `RESPRequestParser`: one `RESPRequest` per command, limits taken
/// from the connection's `RESPLimitSwitch` at each request.
public struct RESPRequestDecoder: ByteToMessageDecoder {
    public typealias InboundOut = RESPRequest

    private let limits: RESPLimitSwitch

    public init(limits: RESPLimitSwitch) { self.limits = limits }

    public mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        let state = limits.current
        if state == .awaitingAuthentication {
            guard buffer.readableBytes <= limits.authenticatedLimits.maximumRequestBytes else {
                throw RESPProtocolError("too much data sent before AUTH was answered")
            }
            return .needMoreData
        }
        switch try RESPRequestParser.parse(&buffer, limits: limits.limits) {
        case .request(let request):
            if state == .anonymous, let name = request.arguments.first, Self.mayAuthenticate(name) {
                limits.beginAuthentication()
            }
            context.fireChannelRead(wrapInboundOut(request))
            return .continue
        case .skipped:
            return .continue
        case .needMoreData:
            return .needMoreData
        }
    }

    private static func mayAuthenticate(_ name: [UInt8]) -> Bool {
        guard name.count == 4 || name.count == 5 else { return false }
        let upper = String(decoding: name, as: UTF8.self).uppercased()
        return upper == "AUTH" || upper == "HELLO"
    }

    public mutating func decodeLast(
        context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool
    ) throws -> DecodingState {
        // A partial request at end of stream is dropped, as Redis does.
        try decode(context: context, buffer: &buffer)
    }
}
