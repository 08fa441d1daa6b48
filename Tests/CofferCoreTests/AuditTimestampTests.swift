import Foundation
import Testing

@testable import CofferCore

@Suite struct AuditTimestampTests {
    /// The remembered second must never leak into a timestamp of another second: entries in
    /// the same second, across a second, a day and a year, going back in time (a clock set back)
    /// and before 1970 all read as an independent formatter writes them.
    @Test func timestampsMatchAnIndependentFormatterAcrossSecondBoundaries() {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        formatter.timeZone = TimeZone(identifier: "UTC")
        let millis: [Int64] = [
            1_796_000_000_000, 1_796_000_000_999, 1_796_000_001_000, 1_796_000_001_001, 1_796_000_000_500,
            1_798_761_599_999, 1_798_761_600_000, 1_798_761_599_123, 0, 999, 1_000, 4_102_444_799_999,
            // Before 1970 (a clock set far back): floored to the second below, never a trap.
            -1, -999, -1_000, -1_001, -86_400_001,
        ]
        for value in millis {
            // A quarter of a millisecond in, so binary rounding cannot cross into the next one.
            let date = Date(timeIntervalSince1970: (Double(value) + 0.25) / 1000)
            #expect(AuditLog.timestamp(date) == formatter.string(from: date), "\(value)")
        }
    }
}
