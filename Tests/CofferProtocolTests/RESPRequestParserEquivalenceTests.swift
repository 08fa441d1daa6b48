import CofferProtocol
import NIOCore
import Testing

/// The parser reads a request that arrived whole in one pass over its bytes, and anything else
/// step by step. Both must give the same requests and errors, and consume the same bytes. Fed
/// one byte at a time no request is ever whole, so every input is parsed both ways: whole, and
/// byte by byte, and the outcomes compared.
@Suite struct RESPRequestParserEquivalenceTests {
    /// Small limits, so that inputs cross them often.
    static let limits = RESPLimits(
        maximumInlineLength: 64, maximumBulkLength: 40, maximumArguments: 6, maximumRequestBytes: 120)

    enum Step: Equatable {
        case request([[UInt8]])
        case skipped
        case error(String)
        /// Input ran out: how many bytes had been consumed in all.
        case end(consumed: Int)
    }

    /// Every outcome of parsing `bytes` offered `chunk` bytes at a time, to the end of the
    /// input or the first error.
    static func outcomes(_ bytes: [UInt8], chunk: Int, limits: RESPLimits = limits) -> [Step] {
        var parser = RESPRequestParser(limits: limits)
        var buffer = ByteBuffer()
        var steps: [Step] = []
        var fed = 0
        var consumed = 0
        while true {
            let before = buffer.readerIndex
            let outcome: RESPRequestParser.Outcome
            do { outcome = try parser.next(&buffer) } catch {
                steps.append(.error("\(error)"))
                return steps
            }
            consumed += buffer.readerIndex - before
            switch outcome {
            case .request(let request): steps.append(.request(request.arguments))
            case .skipped: steps.append(.skipped)
            case .needMoreData:
                guard fed < bytes.count else {
                    steps.append(.end(consumed: consumed))
                    return steps
                }
                let end = min(bytes.count, fed + chunk)
                buffer.writeBytes(bytes[fed..<end])
                fed = end
            }
        }
    }

    static func encode(_ words: [[UInt8]]) -> [UInt8] {
        var bytes = Array("*\(words.count)\r\n".utf8)
        for word in words { bytes += Array("$\(word.count)\r\n".utf8) + word + Array("\r\n".utf8) }
        return bytes
    }

    /// Valid pipelines of arrays, then cut short, spliced with bytes that matter to the parser,
    /// or with a length or count changed: 10,000 inputs from a fixed seed.
    @Test func wholeAndStepByStepParsingAgree() {
        var generator = SplitMix(seed: 0x5EED_C0FF)
        let interesting = Array("*$\r\n0123456789-+ x".utf8)
        var disagreements: [String] = []
        var wholeRequests = 0
        for _ in 0..<10_000 {
            var bytes: [UInt8] = []
            for _ in 0..<Int.random(in: 1...3, using: &generator) {
                let words = (0..<Int.random(in: 0...7, using: &generator)).map { _ in
                    (0..<Int.random(in: 0...45, using: &generator)).map { _ in
                        interesting.randomElement(using: &generator)!
                    }
                }
                bytes += Self.encode(words)
            }
            switch Int.random(in: 0..<6, using: &generator) {
            case 0: bytes = Array(bytes.prefix(Int.random(in: 0...bytes.count, using: &generator)))
            case 1, 2:
                for _ in 0..<Int.random(in: 1...3, using: &generator) where !bytes.isEmpty {
                    bytes[Int.random(in: 0..<bytes.count, using: &generator)] =
                        interesting.randomElement(using: &generator)!
                }
            case 3 where !bytes.isEmpty:
                bytes.insert(
                    interesting.randomElement(using: &generator)!,
                    at: Int.random(in: 0...bytes.count, using: &generator))
            case 4 where !bytes.isEmpty:
                bytes.remove(at: Int.random(in: 0..<bytes.count, using: &generator))
            default: break
            }
            guard !bytes.isEmpty else { continue }
            let whole = Self.outcomes(bytes, chunk: bytes.count)
            let stepwise = Self.outcomes(bytes, chunk: 1)
            wholeRequests += whole.filter { if case .request = $0 { true } else { false } }.count
            if whole != stepwise && disagreements.count < 5 {
                let shown = String(decoding: bytes, as: UTF8.self).debugDescription
                disagreements.append("\(shown): \(whole) vs \(stepwise)")
            }
        }
        #expect(disagreements.isEmpty, "\(disagreements)")
        // The inputs exercise the one-pass path, not only its refusals.
        #expect(wholeRequests > 1_000)
    }

    /// A request at every limit is parsed whole or in pieces; one byte past any limit is
    /// refused with the same error either way.
    @Test func limitsHoldOnEitherPath() {
        let a40 = Array(repeating: UInt8(ascii: "a"), count: 40)
        let atLimits = Self.encode([a40, [], [], [], [], []])
        #expect(atLimits.count <= 120)
        for chunk in [1 << 20, 1] {
            #expect(
                Self.outcomes(atLimits, chunk: chunk)
                    == [.request([a40, [], [], [], [], []]), .end(consumed: atLimits.count)])
            #expect(
                Self.outcomes(Self.encode([a40 + [0x61]]), chunk: chunk)
                    == [.error("Protocol error: bulk string longer than 40 bytes")])
            #expect(
                Self.outcomes(Self.encode(Array(repeating: [], count: 7)), chunk: chunk)
                    == [.error("Protocol error: too many arguments: at most 6 per command")])
            #expect(
                Self.outcomes(Self.encode([a40, a40, a40]), chunk: chunk)
                    == [.error("Protocol error: request larger than 120 bytes")])
            // A header line longer than the inline limit, with a length within every other.
            let short = RESPLimits(
                maximumInlineLength: 3, maximumBulkLength: 200, maximumArguments: 6, maximumRequestBytes: 300)
            let hundred = Array(repeating: UInt8(ascii: "a"), count: 100)
            #expect(
                Self.outcomes(Self.encode([hundred]), chunk: chunk, limits: short)
                    == [.error("Protocol error: too big bulk count string")])
            #expect(
                Self.outcomes(Self.encode([Array(hundred.prefix(99))]), chunk: chunk, limits: short)
                    == [.request([Array(hundred.prefix(99))]), .end(consumed: 110)])
        }
    }
}

/// A small deterministic generator, so a failure reproduces.
struct SplitMix: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
