import Foundation

/// How much of a category's values a role sees.
public enum ReadLevel: String, Sendable, Codable, CaseIterable {
    case plain
    case masked
    case none
}

/// Operations that are not reads or writes of a field.
public enum Privilege: String, Sendable, Codable, CaseIterable {
    /// `EXISTS`: learn whether a subject is stored.
    case exists
    /// `FIND`: look subjects up by email or phone.
    case find
    /// `SHRED`: destroy a subject.
    case shred
    /// `CLIENT.*`: add, list, revoke clients.
    case clients
    /// `KEYS.*` and `REKEY`: rotate, inspect and retire KEKs, give a subject a fresh DEK.
    case keys
    /// `AUDIT.*`: read and verify the audit trail.
    case audit
    /// `TOKENIZE`, `TOKEN.REVOKE`: issue and end card tokens (also needs a read grant on card.pan).
    case tokenize
    /// `DETOKENIZE`: the card number behind a token, at the role's read level of card.pan.
    case detokenize
    /// `INFO`, `CONFIG GET`, `SLOWLOG`, `LATENCY`: operational statistics, never a value.
    case info
}

/// What one role may do. Anything not granted here is denied.
public struct RoleGrants: Sendable, Hashable {
    /// Read level per category.
    public var read: [DataCategory: ReadLevel]
    /// Read level per field, overriding the field's category (for narrow roles like marketing).
    public var readFields: [String: ReadLevel]
    public var write: Set<DataCategory>
    public var operations: Set<Privilege>
    /// A consent field (such as `consent.marketing`) that must be `yes` for this role to read a
    /// subject's data; otherwise the subject's fields answer as absent.
    public var consentCondition: String?
    /// Read levels granted per category only for some purposes, above `read`: support may read
    /// contact `plain` for `support` and `subject-request`, and `masked` (its `read`) otherwise.
    public var purposeReads: [DataCategory: [ReadLevel: Set<Purpose>]]
    /// Every command of this role must state a purpose, or it gets `NOPURPOSE`.
    public var requiresPurpose: Bool

    /// The grants of a role the policy does not name (a client whose role was dropped from the
    /// policy file): nothing at all. Every decision on them is `.deny`
    /// (`PolicyMatrixTests.noGrantsDenyEveryAccessForEveryPurpose`), so a field added to this type
    /// must default to granting nothing.
    public static let none = RoleGrants()

    public init(
        read: [DataCategory: ReadLevel] = [:], readFields: [String: ReadLevel] = [:], write: Set<DataCategory> = [],
        operations: Set<Privilege> = [], consentCondition: String? = nil,
        purposeReads: [DataCategory: [ReadLevel: Set<Purpose>]] = [:], requiresPurpose: Bool = false
    ) {
        self.read = read
        self.readFields = readFields
        self.write = write
        self.operations = operations
        self.consentCondition = consentCondition
        self.purposeReads = purposeReads
        self.requiresPurpose = requiresPurpose
    }

    public func readLevel(_ category: DataCategory) -> ReadLevel { read[category] ?? .none }

    public func readLevel(for field: Field) -> ReadLevel { readFields[field.name] ?? readLevel(field.category) }
}

/// A request for access, as the one decision function sees it.
public enum Access: Sendable, Hashable {
    case read(Field)
    case write(Field)
    case operation(Privilege)
}

public enum Decision: Sendable, Hashable {
    case allow(ReadLevel)
    case deny
    /// Allowed only for a purpose, and none was stated.
    case noPurpose
}

/// The role → grants map. Deny by default: an unknown role, category or operation gets nothing.
public struct Policy: Sendable, Hashable {
    public var roles: [String: RoleGrants]

    public init(roles: [String: RoleGrants]) { self.roles = roles }

    /// The built-in roles, used when no `--policy` file is given.
    public static let builtIn = Policy(roles: [
        "billing": RoleGrants(
            read: [.card: .plain, .contact: .masked, .consent: .plain], write: [.card],
            operations: [.exists, .tokenize, .detokenize]),
        "support": RoleGrants(
            read: [.contact: .plain, .card: .masked, .consent: .plain], write: [.contact, .consent],
            operations: [.exists, .find, .detokenize]),
        "admin": RoleGrants(operations: [.shred, .clients, .keys, .audit, .info]),
        "auditor": RoleGrants(operations: [.audit, .info]),
        // GDPR Art. 21: marketing sees a subject's name and email only while consent.marketing is yes.
        "marketing": RoleGrants(readFields: ["name": .plain, "email": .plain], consentCondition: "consent.marketing"),
    ])

    /// What the operator at the machine (the CLI, with the key directory in hand) may do offline:
    /// manage clients and shred, but read no data.
    static let localOperator = RoleGrants(operations: [.shred, .clients, .keys, .audit, .info])

    /// What a connection may run before it authenticates, by command name: the handshake
    /// (`AUTH`, `HELLO`, `PING`, `QUIT`) and the unseal ceremony (`SEAL.STATUS`, `UNSEAL`): the
    /// holders of key shares are people, not clients, and while the vault is sealed there is no
    /// auth key to check a client's secret with. Everything else is refused with `NOAUTH`. The
    /// server asks; it keeps no list of its own.
    public static func allowsUnauthenticated(_ commandName: String) -> Bool {
        unauthenticatedCommands.contains(commandName)
    }

    static let unauthenticatedCommands: Set<String> = ["AUTH", "HELLO", "PING", "QUIT", "SEAL.STATUS", "UNSEAL"]

    /// A role's decision by its name (for tests and tools); an unknown role is denied.
    public func decide(role: String, _ access: Access, purpose: Purpose? = nil) -> Decision {
        guard let grants = roles[role] else { return .deny }
        return Self.decide(grants, access, purpose: purpose)
    }

    /// The single decision function every entry point goes through, on the grants of the
    /// caller's role (resolved once per command). `purpose` is the one the command stated, if any.
    static func decide(_ grants: RoleGrants, _ access: Access, purpose: Purpose? = nil) -> Decision {
        if grants.requiresPurpose && purpose == nil { return .noPurpose }
        switch access {
        case .read(let field):
            var level = grants.readLevel(for: field)
            if let byPurpose = grants.purposeReads[field.category] {
                if let purpose {
                    // The widest level granted for this purpose, if wider than the plain grant.
                    for candidate in [ReadLevel.plain, .masked] where byPurpose[candidate]?.contains(purpose) == true {
                        if level == .none || (level == .masked && candidate == .plain) { level = candidate }
                        break
                    }
                } else if level == .none {
                    return .noPurpose
                }
            }
            return level == .none ? .deny : .allow(level)
        case .write(let field):
            return grants.write.contains(field.category) ? .allow(.plain) : .deny
        case .operation(let operation):
            return grants.operations.contains(operation) ? .allow(.plain) : .deny
        }
    }

    public func isKnownRole(_ role: String) -> Bool { roles[role] != nil }
}

extension Policy {
    /// Role names appear in audit entries and in `CLIENT.LIST`'s space-separated lines, next to
    /// the markers the vault itself writes there (`(local operator)`, `-` for a session that is
    /// no longer registered), so they are restricted like client names and must start with a
    /// letter or digit: a role named `(local operator)`, `-` or `admin ` (with a space) was
    /// accepted, and its entries read like the vault's own.
    static func isValidRoleName(_ name: String) -> Bool {
        guard (1...64).contains(name.utf8.count), let first = name.utf8.first else { return false }
        switch first {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"):
            return name.utf8.allSatisfy { SubjectID.isAllowed($0) }
        default:
            return false
        }
    }

    /// Loads a policy file (JSON; see `Deploy/policy.example.json`). Every category, level and
    /// operation must be one the vault knows, so a typo cannot silently grant or drop access.
    public static func load(path: String) throws -> Policy {
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw VaultError(.setup, "policy file \(path) cannot be read")
        }
        let file: PolicyFile
        do { file = try JSONDecoder().decode(PolicyFile.self, from: data) } catch let error as PolicyFileError {
            throw VaultError(.setup, "policy file \(path): \(error.message)")
        } catch {
            throw VaultError(.setup, "policy file \(path) is not valid: \(error)")
        }
        // JSONDecoder keeps the first of two equal keys, where jq and most tools keep the last:
        // the file would mean one thing to its reviewer and another to Coffer.
        if let (key, place) = PolicyFile.duplicateKey(in: data) {
            throw VaultError(.setup, "policy file \(path): key '\(key)' appears twice in \(place)")
        }
        var roles: [String: RoleGrants] = [:]
        for (name, role) in file.roles {
            guard Self.isValidRoleName(name) else {
                throw VaultError(
                    .setup,
                    "policy file \(path): role name \(String(reflecting: String(name.prefix(64)))) must be 1 to 64 letters, digits and . _ : -, starting with a letter or digit"
                )
            }
            var grants = RoleGrants()
            for (category, level) in role.read ?? [:] {
                guard let c = DataCategory(rawValue: category) else {
                    throw VaultError(.setup, "policy file \(path): role \(name): unknown category '\(category)'")
                }
                guard let l = ReadLevel(rawValue: level) else {
                    throw VaultError(.setup, "policy file \(path): role \(name): unknown read level '\(level)'")
                }
                grants.read[c] = l
            }
            for (fieldName, level) in role.fields ?? [:] {
                guard (try? FieldCatalogue.field(named: fieldName)) != nil else {
                    throw VaultError(.setup, "policy file \(path): role \(name): unknown field '\(fieldName)'")
                }
                guard let l = ReadLevel(rawValue: level) else {
                    throw VaultError(.setup, "policy file \(path): role \(name): unknown read level '\(level)'")
                }
                grants.readFields[fieldName] = l
            }
            if let condition = role.requiresConsent {
                guard let field = try? FieldCatalogue.field(named: condition), field.kind == .yesNo else {
                    throw VaultError(
                        .setup, "policy file \(path): role \(name): requiresConsent must name a yes/no consent field")
                }
                grants.consentCondition = condition
            }
            for (category, levels) in role.purposes ?? [:] {
                guard let c = DataCategory(rawValue: category) else {
                    throw VaultError(.setup, "policy file \(path): role \(name): unknown category '\(category)'")
                }
                for (level, purposes) in levels {
                    guard let l = ReadLevel(rawValue: level), l != .none else {
                        throw VaultError(
                            .setup,
                            "policy file \(path): role \(name): purposes: level must be plain or masked, not '\(level)'"
                        )
                    }
                    for purpose in purposes {
                        guard let p = Purpose(rawValue: purpose) else {
                            throw VaultError(.setup, "policy file \(path): role \(name): unknown purpose '\(purpose)'")
                        }
                        grants.purposeReads[c, default: [:]][l, default: []].insert(p)
                    }
                }
            }
            grants.requiresPurpose = role.requiresPurpose ?? false
            for category in role.write ?? [] {
                guard let c = DataCategory(rawValue: category) else {
                    throw VaultError(.setup, "policy file \(path): role \(name): unknown category '\(category)'")
                }
                grants.write.insert(c)
            }
            for operation in role.operations ?? [] {
                guard let o = Privilege(rawValue: operation) else {
                    throw VaultError(.setup, "policy file \(path): role \(name): unknown operation '\(operation)'")
                }
                grants.operations.insert(o)
            }
            roles[name] = grants
        }
        return Policy(roles: roles)
    }

    /// What a policy file may hold. Every key must be one of these: a typo such as
    /// `requireConsent` would otherwise be dropped in silence, and with it the condition.
    private struct PolicyFile: Decodable {
        struct Role: Decodable {
            var read: [String: String]?
            var fields: [String: String]?
            var write: [String]?
            var requiresConsent: String?
            var operations: [String]?
            var purposes: [String: [String: [String]]]?
            var requiresPurpose: Bool?

            private enum CodingKeys: String, CodingKey, CaseIterable {
                case read, fields, write, requiresConsent, operations, purposes, requiresPurpose
            }

            init(from decoder: any Decoder) throws {
                let role = decoder.codingPath.last?.stringValue ?? "?"
                try PolicyFile.refuseUnknownKeys(decoder, CodingKeys.self, in: "role '\(role)'")
                let container = try decoder.container(keyedBy: CodingKeys.self)
                read = try container.decodeIfPresent([String: String].self, forKey: .read)
                fields = try container.decodeIfPresent([String: String].self, forKey: .fields)
                write = try container.decodeIfPresent([String].self, forKey: .write)
                requiresConsent = try container.decodeIfPresent(String.self, forKey: .requiresConsent)
                operations = try container.decodeIfPresent([String].self, forKey: .operations)
                purposes = try container.decodeIfPresent([String: [String: [String]]].self, forKey: .purposes)
                requiresPurpose = try container.decodeIfPresent(Bool.self, forKey: .requiresPurpose)
            }
        }
        var roles: [String: Role]

        private enum CodingKeys: String, CodingKey, CaseIterable {
            case roles
        }

        init(from decoder: any Decoder) throws {
            try Self.refuseUnknownKeys(decoder, CodingKeys.self, in: "the top level")
            roles = try decoder.container(keyedBy: CodingKeys.self).decode([String: Role].self, forKey: .roles)
        }

        private struct AnyKey: CodingKey {
            var stringValue: String
            var intValue: Int? { nil }
            init(stringValue: String) { self.stringValue = stringValue }
            init?(intValue: Int) { nil }
        }

        static func refuseUnknownKeys<Keys: CodingKey & CaseIterable>(
            _ decoder: any Decoder, _ known: Keys.Type, in place: String
        ) throws {
            let names = Keys.allCases.map(\.stringValue)
            let present = try decoder.container(keyedBy: AnyKey.self).allKeys.map(\.stringValue)
            if let unknown = present.sorted().first(where: { !names.contains($0) }) {
                throw PolicyFileError(
                    message: "unknown key '\(unknown)' in \(place) (known: \(names.sorted().joined(separator: ", ")))")
            }
        }

        /// The first key that appears twice in one object of the (valid) JSON `data`, and where:
        /// `roles.fraud` names the object that holds it.
        static func duplicateKey(in data: Data) -> (key: String, path: String)? {
            let bytes = [UInt8](data)
            // One entry per open object or array: the keys seen so far, and its name in the path.
            var levels: [(keys: Set<String>, isObject: Bool, expectsKey: Bool, name: String)] = []
            var lastKey: String?
            var i = 0
            while i < bytes.count {
                switch bytes[i] {
                case UInt8(ascii: "\""):
                    let start = i
                    i += 1
                    while i < bytes.count && bytes[i] != UInt8(ascii: "\"") {
                        i += bytes[i] == UInt8(ascii: "\\") ? 2 : 1
                    }
                    guard let last = levels.indices.last, levels[last].isObject, levels[last].expectsKey else { break }
                    let text =
                        (try? JSONDecoder().decode(String.self, from: Data(bytes[start...min(i, bytes.count - 1)])))
                    let key = text ?? String(decoding: bytes[(start + 1)..<min(i, bytes.count)], as: UTF8.self)
                    guard levels[last].keys.insert(key).inserted else {
                        let path = levels.map(\.name).filter { !$0.isEmpty }.joined(separator: ".")
                        return (key, path.isEmpty ? "the top level" : path)
                    }
                    levels[last].expectsKey = false
                    lastKey = key
                case UInt8(ascii: "{"), UInt8(ascii: "["):
                    let name = lastKey ?? (levels.last?.isObject == false ? "[]" : "")
                    levels.append(([], bytes[i] == UInt8(ascii: "{"), true, name))
                    lastKey = nil
                case UInt8(ascii: "}"), UInt8(ascii: "]"):
                    _ = levels.popLast()
                    lastKey = nil
                case UInt8(ascii: ","):
                    if let last = levels.indices.last, levels[last].isObject { levels[last].expectsKey = true }
                    lastKey = nil
                default:
                    break
                }
                i += 1
            }
            return nil
        }
    }

    private struct PolicyFileError: Error {
        let message: String
    }
}
