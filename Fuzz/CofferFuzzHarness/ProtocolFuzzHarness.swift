import CofferProtocol
import NIOCore

/// One fuzz input through everything that reads bytes from the network: the request parser (as
/// the server's decoder drives it, under both the anonymous and the authenticated limits), the
/// command parser, and the reply parser the CLI uses. Besides "does not crash", it checks
/// properties the server relies on, and returns each one that does not hold:
/// - the parse does not depend on how TCP split the bytes (whole vs. in pseudo-random chunks);
/// - every parsed request re-encodes to RESP that parses back to the same request;
/// - a request never carries more arguments or bytes than the limits allow.
/// The libFuzzer entry point traps on a violation; the corpus test reports them.
public enum ProtocolFuzzHarness {
    public static func run(_ input: [UInt8]) -> [String] {
        var violations: [String] = []
        for limits in [RESPLimits.anonymous, RESPLimits.authenticated] {
            let whole = decode(input, limits: limits, chunkSizes: nil)
            let chunked = decode(input, limits: limits, chunkSizes: ChunkSizes(seed: input))
            if whole != chunked {
                violations.append(
                    "parse depends on segmentation: whole \(summary(whole)), chunked \(summary(chunked))")
            }
            for event in whole {
                guard case .request(let request) = event else { continue }
                violations += checkLimits(request, limits)
                violations += checkRoundTrip(request)
                _ = try? CommandParser.parse(request)
            }
        }
        var replies = ByteBuffer(bytes: input)
        while let _ = try? RESPReplyParser.parse(&replies) {}
        return violations
    }

    enum Event: Hashable {
        case request(RESPRequest)
        case skipped
        case protocolError
    }

    /// Feeds one incremental parser as a connection does: append what arrived, parse until it
    /// needs more data or throws (which closes the connection, so nothing after it counts).
    static func decode(_ input: [UInt8], limits: RESPLimits, chunkSizes: ChunkSizes?) -> [Event] {
        var sizes = chunkSizes
        var parser = RESPRequestParser(limits: limits)
        var buffer = ByteBuffer()
        var events: [Event] = []
        var offset = 0
        while offset < input.count {
            let size = sizes?.next(remaining: input.count - offset) ?? input.count
            buffer.writeBytes(input[offset..<(offset + size)])
            offset += size
            parsing: while true {
                do {
                    switch try parser.next(&buffer) {
                    case .request(let request): events.append(.request(request))
                    case .skipped: events.append(.skipped)
                    case .needMoreData: break parsing
                    }
                } catch {
                    events.append(.protocolError)
                    return events
                }
            }
        }
        return events
    }

    static func checkLimits(_ request: RESPRequest, _ limits: RESPLimits) -> [String] {
        var problems: [String] = []
        if request.arguments.count > limits.maximumArguments {
            problems.append("\(request.arguments.count) arguments past the limit of \(limits.maximumArguments)")
        }
        if let long = request.arguments.first(where: {
            $0.count > max(limits.maximumBulkLength, limits.maximumInlineLength)
        }) {
            problems.append("an argument of \(long.count) bytes past the limits")
        }
        return problems
    }

    static func checkRoundTrip(_ request: RESPRequest) -> [String] {
        var encoded = ByteBuffer()
        encoded.writeString("*\(request.arguments.count)\r\n")
        for argument in request.arguments {
            encoded.writeString("$\(argument.count)\r\n")
            encoded.writeBytes(argument)
            encoded.writeString("\r\n")
        }
        let expected = encoded.readableBytes
        let unlimited = RESPLimits(
            maximumInlineLength: .max / 4, maximumBulkLength: .max / 4, maximumArguments: .max / 4,
            maximumRequestBytes: .max / 4)
        guard case .request(let again)? = try? RESPRequestParser.parse(&encoded, limits: unlimited) else {
            return ["re-encoded request (\(expected) bytes) does not parse"]
        }
        if again != request || encoded.readableBytes != 0 { return ["re-encoded request parses differently"] }
        return []
    }

    static func summary(_ events: [Event]) -> String {
        let requests = events.filter { if case .request = $0 { true } else { false } }.count
        let error = events.last == .protocolError
        return "\(events.count) events, \(requests) requests\(error ? ", then a protocol error" : "")"
    }
}

/// Chunk sizes from 1 to 64 bytes, derived from the input so every run of an input splits it
/// the same way (a fuzzer crash must reproduce).
struct ChunkSizes {
    private var state: UInt64

    init(seed: [UInt8]) {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in seed.prefix(64) { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
        state = hash | 1
    }

    mutating func next(remaining: Int) -> Int {
        state ^= state << 13
        state ^= state >> 7
        state ^= state << 17
        return min(remaining, Int(state % 64) + 1)
    }
}
