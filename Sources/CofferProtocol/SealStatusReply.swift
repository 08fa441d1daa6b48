/// The reply of `SEAL.STATUS` and of each `UNSEAL`, typed: the server encodes it and
/// `coffer unseal` decodes it.
public struct SealStatusReply: Sendable, Equatable {
    public var sealed: Bool
    /// Nil for a key directory that is not sealed under a root key at all.
    public var progress: Progress?

    public struct Progress: Sendable, Equatable {
        public var threshold: Int
        public var shares: Int
        public var entered: Int
        public var generation: Int

        public init(threshold: Int, shares: Int, entered: Int, generation: Int) {
            self.threshold = threshold
            self.shares = shares
            self.entered = entered
            self.generation = generation
        }
    }

    public init(sealed: Bool, progress: Progress?) {
        self.sealed = sealed
        self.progress = progress
    }

    public var value: RESPValue {
        guard let progress else {
            return .map([(.bulk("sealed"), .integer(sealed ? 1 : 0)), (.bulk("mode"), .bulk("unsealed key directory"))])
        }
        return .map([
            (.bulk("sealed"), .integer(sealed ? 1 : 0)),
            (.bulk("threshold"), .integer(progress.threshold)),
            (.bulk("shares"), .integer(progress.shares)),
            (.bulk("entered"), .integer(progress.entered)),
            (.bulk("generation"), .integer(progress.generation)),
        ])
    }

    public init(_ reply: RESPValue) throws {
        let fields = try ReplyFields(reply, command: "SEAL.STATUS")
        sealed = try fields.integer("sealed") != 0
        if fields.has("threshold") {
            progress = Progress(
                threshold: try fields.integer("threshold"), shares: try fields.integer("shares"),
                entered: try fields.integer("entered"), generation: try fields.integer("generation"))
        } else {
            progress = nil
        }
    }
}

/// The pairs of a map reply (a flat array in RESP2), by key, for the typed replies.
struct ReplyFields {
    private var values: [String: RESPValue] = [:]
    let command: String

    init(_ reply: RESPValue, command: String) throws {
        self.command = command
        switch reply {
        case .map(let pairs):
            for (key, value) in pairs { values[try Self.text(key, command, "a key")] = value }
        case .array(let flat) where flat.count % 2 == 0:
            for index in stride(from: 0, to: flat.count, by: 2) {
                values[try Self.text(flat[index], command, "a key")] = flat[index + 1]
            }
        case .error(let message):
            throw CommandError(message)
        default:
            throw CommandError("\(command) answered \(reply), not a map")
        }
    }

    func has(_ key: String) -> Bool { values[key] != nil }

    subscript(_ key: String) -> RESPValue? { values[key] }

    func integer(_ key: String) throws -> Int {
        guard case .integer(let value)? = values[key] else {
            throw CommandError("\(command) reply lacks the integer '\(key)'")
        }
        return value
    }

    static func text(_ value: RESPValue, _ command: String, _ what: String) throws -> String {
        switch value {
        case .bulkString(let bytes): String(decoding: bytes, as: UTF8.self)
        case .simpleString(let string): string
        default: throw CommandError("\(command) reply has \(value) where \(what) belongs")
        }
    }
}
