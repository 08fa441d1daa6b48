/// A decimal integer as Redis's `string2ll` accepts it, so that a request Redis refuses is
/// refused here too: an optional minus, then `0` alone or digits that do not start with `0`;
/// no plus sign, no spaces, no `-0`, and nothing out of `Int`'s range.
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
        var value = 0
        while index != bytes.endIndex {
            let byte = bytes[index]
            guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return nil }
            // 19 digits can exceed Int.max (the fuzzer found "*9999499999999999999", which
            // trapped and took the whole server down): out of range is not a number.
            let (times10, overflow1) = value.multipliedReportingOverflow(by: 10)
            let (sum, overflow2) = times10.addingReportingOverflow(Int(byte - UInt8(ascii: "0")))
            guard !overflow1, !overflow2 else { return nil }
            value = sum
            index = bytes.index(after: index)
        }
        return negative ? -value : value
    }
}
