import CofferCore
import Logging
import Testing

@Suite struct LogThrottleTests {
    /// Ten lines a second go through; the rest are counted, and the first line of the next
    /// second says how many were held back.
    @Test func linesPastTheLimitAreCountedAndReportedByTheNextOneLetThrough() {
        let throttle = LogThrottle(limit: 10, per: .seconds(1))
        let start = ContinuousClock.now
        let first = (0..<25).map { throttle.admit(now: start + .milliseconds($0)) }
        #expect(first.prefix(10).allSatisfy { $0 == 0 })
        #expect(first.dropFirst(10).allSatisfy { $0 == nil })
        // Still the same second.
        #expect(throttle.admit(now: start + .milliseconds(999)) == nil)
        // The next second: 16 were held back; then none.
        #expect(throttle.admit(now: start + .seconds(1)) == 16)
        #expect(throttle.admit(now: start + .seconds(1) + .milliseconds(1)) == 0)
        // A quiet stretch: the window starts again at the next line.
        #expect(throttle.admit(now: start + .seconds(60)) == 0)
    }

    /// The count goes into the line's metadata only when lines were held back.
    @Test func theHeldBackCountIsAddedToTheLinesMetadata() {
        let base: Logger.Metadata = ["connection": "7"]
        #expect(LogThrottle.metadata(base, heldBack: 0) == base)
        #expect(LogThrottle.metadata(base, heldBack: 16) == ["connection": "7", "not_logged_before": "16"])
    }
}
