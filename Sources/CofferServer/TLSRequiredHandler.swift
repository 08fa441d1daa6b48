import NIOCore

/// Sits in front of the TLS handler on a TLS listener. A TLS client's first byte is always 0x16
/// (a handshake record); anything else is a client speaking plaintext, which gets one readable
/// RESP error instead of a bare reset, and the connection is closed. Removes itself after the
/// first byte, so it costs nothing afterwards.
final class TLSRequiredHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundOut = ByteBuffer

    static let handshakeRecord: UInt8 = 0x16
    private var rejected = false

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !rejected else { return }
        let buffer = unwrapInboundIn(data)
        guard let first = buffer.getInteger(at: buffer.readerIndex, as: UInt8.self) else { return }
        if first == Self.handshakeRecord {
            context.fireChannelRead(data)
            context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
            return
        }
        rejected = true
        var reply = context.channel.allocator.buffer(capacity: 96)
        reply.writeString("-ERR this port requires TLS (with redis-cli: --tls --cacert CA.pem)\r\n")
        context.writeAndFlush(wrapOutboundOut(reply)).assumeIsolated().whenComplete { _ in
            context.close(promise: nil)
        }
    }
}
