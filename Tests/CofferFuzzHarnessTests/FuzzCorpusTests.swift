import CofferCore
import CofferProtocol
import Foundation
import Testing

@testable import CofferFuzzHarness

/// Replays the fuzzer's seed corpus and every input it ever crashed on (Tests/Fuzz/regressions)
/// through the same harness `.ci/fuzz` runs under libFuzzer, so a fixed crash stays fixed in the
/// ordinary test run.
@Suite struct FuzzCorpusTests {
    static let fuzzDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fuzz")

    static func inputs(_ folder: String) -> [String] {
        let directory = fuzzDirectory.appendingPathComponent(folder).path
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        return names.filter { !$0.hasPrefix(".") }.sorted().map { directory + "/" + $0 }
    }

    @Test func corpusAndRegressionsArePresent() {
        #expect(Self.inputs("corpus").count >= 50)
        #expect(!Self.inputs("regressions").isEmpty)
    }

    @Test(arguments: inputs("regressions") + inputs("corpus"))
    func inputHoldsEveryProperty(_ path: String) throws {
        let input = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
        #expect(ProtocolFuzzHarness.run(input) == [], "\(path)")
        #expect(ValueFuzzHarness.run(input) == [], "\(path)")
    }

    /// The checks must be able to fail, or the replay above proves nothing.
    @Test func harnessChecksCanFail() {
        let nine = RESPRequest(arguments: Array(repeating: Array("x".utf8), count: 9))
        #expect(!ProtocolFuzzHarness.checkLimits(nine, .anonymous).isEmpty)
        #expect(ProtocolFuzzHarness.checkLimits(nine, .authenticated).isEmpty)
        let input = [UInt8]("PING\r\n*1\r\n$4\r\nPING\r\n".utf8)
        let whole = ProtocolFuzzHarness.decode(input, limits: .authenticated, chunkSizes: nil)
        #expect(whole == [.request(RESPRequest("PING")), .request(RESPRequest("PING"))])
        let cut = ProtocolFuzzHarness.decode(Array(input.dropLast(3)), limits: .authenticated, chunkSizes: nil)
        #expect(cut != whole)
        let pan = FieldCatalogue.all.first { $0.name == "card.pan" }!
        #expect(!ValueFuzzHarness.checkMask(Array("4111111111111111".utf8), of: [], pan).isEmpty)
        #expect(ValueFuzzHarness.checkMask(Array("************1111".utf8), of: [], pan).isEmpty)
        let email = FieldCatalogue.all.first { $0.name == "email" }!
        #expect(ValueFuzzHarness.checkMask(Array("a***@ab.com".utf8), of: Array("ab@ab.com".utf8), email).isEmpty)
        #expect(!ValueFuzzHarness.checkMask(Array("ab***@x.com".utf8), of: Array("abc@x.com".utf8), email).isEmpty)
        let name = FieldCatalogue.all.first { $0.name == "name" }!
        #expect(!ValueFuzzHarness.checkMask(Array("Ada L.".utf8), of: Array("Ada Lovelace".utf8), name).isEmpty)
        #expect(ValueFuzzHarness.checkMask(Array("A. L.".utf8), of: Array("Ada Lovelace".utf8), name).isEmpty)
    }
}
