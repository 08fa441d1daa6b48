import NIOCore
import NIOEmbedded
import Testing

@testable import CofferServer

/// The guard in front of a TLS listener's handshake, on an `EmbeddedChannel`.
@Suite struct TLSRequiredHandlerTests {
    @Test func aPlaintextClientGetsOneReadableErrorAndIsClosed() throws {
        let channel = EmbeddedChannel(handler: TLSRequiredHandler())
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 4000)).wait()
        try channel.writeInbound(ByteBuffer(string: "PING\r\n"))
        // Nothing a plaintext client sends reaches the TLS handler behind.
        try channel.writeInbound(ByteBuffer(string: "AUTH billing secret\r\n"))
        #expect(try channel.readInbound(as: ByteBuffer.self) == nil)
        let reply = try #require(try channel.readOutbound(as: ByteBuffer.self))
        #expect(String(buffer: reply) == "-ERR this port requires TLS (with redis-cli: --tls --cacert CA.pem)\r\n")
        #expect(try channel.readOutbound(as: ByteBuffer.self) == nil)
        channel.embeddedEventLoop.run()
        #expect(!channel.isActive)
    }

    @Test func aHandshakePassesThroughUnchangedAndTheGuardStepsAside() throws {
        let channel = EmbeddedChannel(handler: TLSRequiredHandler())
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 4000)).wait()
        var hello = ByteBuffer(bytes: [TLSRequiredHandler.handshakeRecord, 0x03, 0x01, 0x00, 0x05])
        try channel.writeInbound(hello)
        #expect(try channel.readInbound(as: ByteBuffer.self) == hello)
        // Removed after the first byte: later records, whatever their first byte, go through.
        hello = ByteBuffer(bytes: [0x17, 0x03, 0x03])
        try channel.writeInbound(hello)
        #expect(try channel.readInbound(as: ByteBuffer.self) == hello)
        #expect(try channel.readOutbound(as: ByteBuffer.self) == nil)
        #expect(channel.isActive)
    }

    @Test func anEmptyReadDecidesNothing() throws {
        let channel = EmbeddedChannel(handler: TLSRequiredHandler())
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 4000)).wait()
        try channel.writeInbound(ByteBuffer())
        #expect(try channel.readOutbound(as: ByteBuffer.self) == nil)
        try channel.writeInbound(ByteBuffer(bytes: [TLSRequiredHandler.handshakeRecord]))
        #expect(try channel.readInbound(as: ByteBuffer.self) == ByteBuffer(bytes: [TLSRequiredHandler.handshakeRecord]))
        #expect(channel.isActive)
    }
}
