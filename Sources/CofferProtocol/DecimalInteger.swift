/// A decimal integer as Redis's `string2ll` accepts it, so that a request Redis refuses is
/// refused here too: an optional minus, then `0` alone or digits that do not start with `0`;
/// no plus sign, no spaces, no `-0`, and nothing out of `Int`'s range (`Int.min` is in it, as in Redis).
enum DecimalInteger {
    static func parse<Bytes: Collection>(_ bytes: Bytes) -> Int? where Bytes.Element == UInt8 {
        guard !bytes.isEmpty, bytes.count <= 20 else { return nil }
        var index = bytes.startIndex
        let negative = bytes[index] == UInt8(ascii: "-")
        if negative { index = bytes.index(after: index) }
        guard index != bytes.endIndex else { return nil }
        if bytes[index] == UInt8(ascii: "0") {
            // Only a lone `0` may start with one: `03` and `-0` are not Redis integers.
            return !negative && bytes.index(after: index) == bytes.endIndex ? 0 : nil
        }
        // The magnitude, unsigned: Int.min's is one more than Int.max.
        var magnitude: UInt64 = 0
        while index != bytes.endIndex {
            let byte = bytes[index]
            guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return nil }
            // 19 digits can exceed Int.max (the fuzzer found "*9999499999999999999", which
            // trapped and took the whole server down): out of range is not a number.
            let (times10, overflow1) = magnitude.multipliedReportingOverflow(by: 10)
            let (sum, overflow2) = times10.addingReportingOverflow(UInt64(byte - UInt8(ascii: "0")))
            guard !overflow1, !overflow2 else { return nil }
            magnitude = sum
            index = bytes.index(after: index)
        }
        if negative {
            guard magnitude <= UInt64(Int.max) + 1 else { return nil }
            return magnitude == UInt64(Int.max) + 1 ? Int.min : -Int(magnitude)
        }
        return magnitude <= UInt64(Int.max) ? Int(magnitude) : nil
    }
}
