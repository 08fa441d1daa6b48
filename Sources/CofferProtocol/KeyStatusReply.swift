/// The reply of `KEYS.STATUS`, typed: the server encodes it and the CLI decodes it, so the two
/// cannot drift apart.
public struct KeyStatusReply: Sendable, Equatable {
    public struct Version: Sendable, Equatable {
        public var version: Int
        public var state: String
        public var dataKeys: Int

        public init(version: Int, state: String, dataKeys: Int) {
            self.version = version
            self.state = state
            self.dataKeys = dataKeys
        }
    }

    public var current: Int
    public var versions: [Version]
    /// Data keys still wrapped under a version other than the current one.
    public var pending: Int
    /// Data keys rewrapped by the running (or last) rotation.
    public var done: Int
    /// Rewraps per second, rounded.
    public var rate: Int

    public init(current: Int, versions: [Version], pending: Int, done: Int, rate: Int) {
        self.current = current
        self.versions = versions
        self.pending = pending
        self.done = done
        self.rate = rate
    }

    public var isRewrapping: Bool { pending > 0 }

    /// A map (a flat array of pairs in RESP2).
    public var value: RESPValue {
        .map([
            (.bulk("current"), .integer(current)),
            (
                .bulk("versions"),
                .array(versions.map { .array([.integer($0.version), .bulk($0.state), .integer($0.dataKeys)]) })
            ),
            (.bulk("rewrap.pending"), .integer(pending)),
            (.bulk("rewrap.done"), .integer(done)),
            (.bulk("rewrap.rate"), .bulk("\(rate)/s")),
            (.bulk("rewrap.state"), .bulk(isRewrapping ? "running" : "idle")),
        ])
    }

    /// Decodes a reply as either protocol version sends it; anything else is named in the error.
    public init(_ reply: RESPValue) throws {
        var fields: [String: RESPValue] = [:]
        switch reply {
        case .map(let pairs):
            for (key, value) in pairs { fields[try Self.text(key, "a key")] = value }
        case .array(let flat) where flat.count % 2 == 0:
            for index in stride(from: 0, to: flat.count, by: 2) {
                fields[try Self.text(flat[index], "a key")] = flat[index + 1]
            }
        case .error(let message):
            throw CommandError(message)
        default:
            throw CommandError("KEYS.STATUS answered \(reply), not a map")
        }
        func integer(_ key: String) throws -> Int {
            guard case .integer(let value)? = fields[key] else {
                throw CommandError("KEYS.STATUS reply lacks the integer '\(key)'")
            }
            return value
        }
        guard case .array(let rows)? = fields["versions"] else {
            throw CommandError("KEYS.STATUS reply lacks 'versions'")
        }
        versions = try rows.map { row in
            guard case .array(let parts) = row, parts.count == 3, case .integer(let version) = parts[0],
                case .integer(let keys) = parts[2]
            else { throw CommandError("KEYS.STATUS reply has a malformed version row \(row)") }
            return Version(version: version, state: try Self.text(parts[1], "a state"), dataKeys: keys)
        }
        current = try integer("current")
        pending = try integer("rewrap.pending")
        done = try integer("rewrap.done")
        let rateText = try fields["rewrap.rate"].map { try Self.text($0, "a rate") } ?? "0/s"
        rate = Int(rateText.prefix { $0.isNumber }) ?? 0
    }

    private static func text(_ value: RESPValue, _ what: String) throws -> String {
        switch value {
        case .bulkString(let bytes): String(decoding: bytes, as: UTF8.self)
        case .simpleString(let string): string
        default: throw CommandError("KEYS.STATUS reply has \(value) where \(what) belongs")
        }
    }
}
