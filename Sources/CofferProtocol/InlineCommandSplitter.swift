/// Splits an inline command line into words the way redis-cli writes them (`sdssplitargs`):
/// words separated by blanks; double quotes with `\n \r \t \b \a \\ \" \xHH` escapes; single
/// quotes with only `\'`. A closing quote must be followed by a blank or the end of the line.
public enum InlineCommandSplitter {
    public static func split(_ line: [UInt8]) throws -> [[UInt8]] {
        var words: [[UInt8]] = []
        var index = 0
        let count = line.count
        func isBlank(_ b: UInt8) -> Bool { b == 0x20 || b == 0x09 || b == 0x0a || b == 0x0d || b == 0x0b || b == 0x0c }
        // Inside an unquoted word only these end it, as in `sdssplitargs`: a vertical tab or a
        // form feed there is part of the word (they are blanks only between words).
        func endsWord(_ b: UInt8) -> Bool { b == 0x20 || b == 0x09 || b == 0x0a || b == 0x0d }
        func hex(_ b: UInt8) -> UInt8? {
            switch b {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): b - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): b - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): b - UInt8(ascii: "A") + 10
            default: nil
            }
        }
        while true {
            while index < count && isBlank(line[index]) { index += 1 }
            if index >= count { return words }
            var word: [UInt8] = []
            var inDouble = false
            var inSingle = false
            var done = false
            while !done {
                if inDouble {
                    guard index < count else { throw RESPProtocolError("unbalanced quotes in request") }
                    let b = line[index]
                    if b == UInt8(ascii: "\\") && index + 3 < count && line[index + 1] == UInt8(ascii: "x"),
                        let high = hex(line[index + 2]), let low = hex(line[index + 3])
                    {
                        word.append(high << 4 | low)
                        index += 3
                    } else if b == UInt8(ascii: "\\") && index + 1 < count {
                        index += 1
                        switch line[index] {
                        case UInt8(ascii: "n"): word.append(0x0a)
                        case UInt8(ascii: "r"): word.append(0x0d)
                        case UInt8(ascii: "t"): word.append(0x09)
                        case UInt8(ascii: "b"): word.append(0x08)
                        case UInt8(ascii: "a"): word.append(0x07)
                        default: word.append(line[index])
                        }
                    } else if b == UInt8(ascii: "\"") {
                        // The closing quote must be followed by a blank or the end.
                        if index + 1 < count && !isBlank(line[index + 1]) {
                            throw RESPProtocolError("unbalanced quotes in request")
                        }
                        done = true
                    } else {
                        word.append(b)
                    }
                } else if inSingle {
                    guard index < count else { throw RESPProtocolError("unbalanced quotes in request") }
                    let b = line[index]
                    if b == UInt8(ascii: "\\") && index + 1 < count && line[index + 1] == UInt8(ascii: "'") {
                        index += 1
                        word.append(UInt8(ascii: "'"))
                    } else if b == UInt8(ascii: "'") {
                        if index + 1 < count && !isBlank(line[index + 1]) {
                            throw RESPProtocolError("unbalanced quotes in request")
                        }
                        done = true
                    } else {
                        word.append(b)
                    }
                } else {
                    if index >= count {
                        done = true
                        break
                    }
                    let b = line[index]
                    if endsWord(b) {
                        done = true
                    } else if b == UInt8(ascii: "\"") {
                        inDouble = true
                    } else if b == UInt8(ascii: "'") {
                        inSingle = true
                    } else {
                        word.append(b)
                    }
                }
                if index < count { index += 1 }
            }
            words.append(word)
        }
    }
}
