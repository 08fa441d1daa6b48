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
    /// Shredded subjects whose wrapped data key may still be on the database's disks, WAL,
    /// archives or replicas, under a KEK version not yet retired (PostgreSQL; 0 on SQLite).
    public var shreddedAwaitingRetirement: Int

    public init(
        current: Int, versions: [Version], pending: Int, done: Int, rate: Int, shreddedAwaitingRetirement: Int = 0
    ) {
        self.current = current
        self.versions = versions
        self.pending = pending
        self.done = done
        self.rate = rate
        self.shreddedAwaitingRetirement = shreddedAwaitingRetirement
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
            (.bulk("shred.awaiting_retirement"), .integer(shreddedAwaitingRetirement)),
        ])
    }

    /// Decodes a reply as either protocol version sends it; anything else is named in the error.
    public init(_ reply: RESPValue) throws {
        let fields = try ReplyFields(reply, command: "KEYS.STATUS")
        guard case .array(let rows)? = fields["versions"] else {
            throw CommandError("KEYS.STATUS reply lacks 'versions'")
        }
        versions = try rows.map { row in
            guard case .array(let parts) = row, parts.count == 3, case .integer(let version) = parts[0],
                case .integer(let keys) = parts[2]
            else { throw CommandError("KEYS.STATUS reply has a malformed version row \(row)") }
            return Version(
                version: version, state: try ReplyFields.text(parts[1], "KEYS.STATUS", "a state"), dataKeys: keys)
        }
        current = try fields.integer("current")
        pending = try fields.integer("rewrap.pending")
        done = try fields.integer("rewrap.done")
        let rateText = try fields["rewrap.rate"].map { try ReplyFields.text($0, "KEYS.STATUS", "a rate") } ?? "0/s"
        rate = Int(rateText.prefix { $0.isNumber }) ?? 0
        shreddedAwaitingRetirement = try fields.integer("shred.awaiting_retirement")
    }
}
