import CofferCrypto
import CofferStore
import Foundation
import Logging

/// What a client listing shows: never a secret or its hash.
public struct ClientInfo: Sendable, Hashable {
    public let name: String
    public let role: String
    public let locked: Bool
}

/// The outcome of an AUTH attempt.
public enum AuthOutcome: Sendable, Hashable {
    /// The binding goes into the session's `Caller`: the session ends when the record changes.
    case success(role: String, binding: ClientBinding)
    /// `consecutiveFailures` lets the server slow its reply as failures mount.
    case failure(consecutiveFailures: Int)

    /// The role, if AUTH succeeded.
    public var role: String? {
        if case .success(let role, _) = self { role } else { nil }
    }
}

extension Vault {
    static let secretLabel = "coffer.client-secret.v1"
    static let secretByteCount = 32

    /// Client names are shown in listings and audit entries, so they are restricted like ids.
    static func validateClientName(_ name: String) throws {
        guard (1...64).contains(name.utf8.count), name.utf8.allSatisfy({ SubjectID.isAllowed($0) }) else {
            throw VaultError(.invalid, "client name must be 1 to 64 characters of letters, digits and . _ : -")
        }
        // Secrets are 64 hex digits. A name of that shape would put a secret into every listing
        // and audit entry the day someone swaps AUTH's arguments.
        guard !Self.looksLikeSecret(name) else {
            throw VaultError(.invalid, "client name must not look like a secret (64 hex digits)")
        }
    }

    static func looksLikeSecret(_ name: String) -> Bool {
        name.utf8.count == 2 * secretByteCount
            && name.utf8.allSatisfy {
                (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0)
                    || (UInt8(ascii: "a")...UInt8(ascii: "f")).contains($0 | 0x20)
            }
    }

    static let recordLabel = "coffer.client-record.v1"

    /// The MAC over a client row: whoever can write the database but holds no key cannot make a
    /// marketing client an admin, or swap in another secret hash, without it failing.
    func recordMAC(_ record: ClientRecord) throws -> [UInt8] {
        try keys.authKey.withUnsafeBytes { key in
            try KeyedHash.hash(
                key: key, label: Self.recordLabel,
                parts: [
                    Array(record.name.utf8), Array(record.role.utf8), record.secretHash,
                    Array(String(record.createdAt.bitPattern).utf8),
                ])
        }
    }

    /// Refuses a client row whose MAC is missing or wrong (logged: it was changed outside Coffer).
    func checkRecord(_ record: ClientRecord) throws {
        let row = record.mac.map {
            VerifiedClientRow(
                name: record.name, role: record.role, secretHash: record.secretHash,
                createdAt: record.createdAt.bitPattern,
                mac: $0)
        }
        if let row, verifiedClientRows.withLock({ $0.contains(row) }) { return }
        guard let mac = record.mac, ConstantTime.equals(mac, try recordMAC(record)) else {
            logger.error(
                "a client row does not match its MAC: it was changed outside Coffer",
                metadata: ["client": "\(record.name)"])
            throw VaultError(.integrity, "the record of client '\(record.name)' failed its integrity check")
        }
        if let row {
            verifiedClientRows.withLock {
                if $0.count >= 1024 { $0.removeAll() }
                $0.insert(row)
            }
        }
    }

    /// Gives the rows that predate client MACs theirs (once, when the migration adds them).
    static func addMissingRecordMACs(_ vault: Vault) throws {
        try storageCall {
            try vault.store.write { tx in
                for record in try tx.clients() where record.mac == nil {
                    try tx.setClientMAC(name: record.name, mac: vault.recordMAC(record))
                }
            }
        }
    }

    func secretHash(name: String, secret: [UInt8]) throws -> [UInt8] {
        try keys.authKey.withUnsafeBytes { key in
            try KeyedHash.hash(key: key, label: Self.secretLabel, parts: [Array(name.utf8), secret])
        }
    }

    /// Registers a client and returns its secret: 256 random bits, hex-encoded, shown only here.
    /// Only a keyed BLAKE2b hash of it is stored.
    public func addClient(name: String, role: String, as caller: Caller) throws -> String {
        var raw = try Random.bytes(Self.secretByteCount)
        defer { Random.wipe(&raw) }
        let secret = raw.map { String(format: "%02x", $0) }.joined()
        try audited("CLIENT.ADD", caller) { [self] tx, draft in
            try resolve(caller, in: tx, recordingIn: &draft).require(.operation(.clients), "CLIENT.ADD")
            try Self.validateClientName(name)
            draft.subject = "client:" + name
            guard policy.isKnownRole(role) else {
                // Echoed only if it could be a role name: not a tab, a NUL or a line of its own.
                let shown = Policy.isValidRoleName(role) ? "'\(role)'" : "(not a valid role name)"
                let known = policy.roles.keys.sorted().joined(separator: ", ")
                throw VaultError(.invalid, "unknown role \(shown); known roles: \(known)")
            }
            guard try tx.client(named: name) == nil else {
                throw VaultError(.invalid, "client '\(name)' already exists")
            }
            let hash = try secretHash(name: name, secret: Array(secret.utf8))
            var record = ClientRecord(name: name, role: role, secretHash: hash, createdAt: Date().timeIntervalSince1970)
            record.mac = try recordMAC(record)
            try tx.insertClient(record)
        }
        return secret
    }

    /// Registered clients whose role the policy does not name (a role removed from a new policy
    /// file): `RoleGrants.none` denies them everything, and `serve` warns of them at start.
    public func clientsWithUnknownRoles() throws -> [(name: String, role: String)] {
        try Self.storageCall { try store.read { try $0.clients() } }
            .filter { !policy.isKnownRole($0.role) }.map { ($0.name, $0.role) }
    }

    public func listClients(as caller: Caller, now: Date = Date()) throws -> [ClientInfo] {
        try audited("CLIENT.LIST", caller) { [self] tx, draft in
            try resolve(caller, in: tx, recordingIn: &draft).require(.operation(.clients), "CLIENT.LIST")
            return try tx.clients().map {
                try checkRecord($0)
                return ClientInfo(
                    name: $0.name, role: $0.role,
                    locked: throttle.isLockedAnywhere(name: $0.name, now: now.timeIntervalSince1970))
            }
        }
    }

    /// Removes a client; its open connections fail from their next command.
    public func revokeClient(name: String, as caller: Caller) throws -> Bool {
        try audited("CLIENT.REVOKE", caller) { [self] tx, draft in
            try resolve(caller, in: tx, recordingIn: &draft).require(.operation(.clients), "CLIENT.REVOKE")
            try Self.validateClientName(name)
            draft.subject = "client:" + name
            return try tx.deleteClient(named: name)
        }
    }

    /// Lifts the name's lock-outs (from every origin) and clears its failure counts.
    public func unlockClient(name: String, as caller: Caller) throws -> Bool {
        try audited("CLIENT.UNLOCK", caller) { [self] tx, draft in
            try resolve(caller, in: tx, recordingIn: &draft).require(.operation(.clients), "CLIENT.UNLOCK")
            try Self.validateClientName(name)
            draft.subject = "client:" + name
            guard try tx.client(named: name) != nil else { return false }
            _ = throttle.unlock(name: name, now: Date().timeIntervalSince1970)
            return true
        }
    }

    /// Checks a client's secret in constant time. Failures are counted per (name, origin) by
    /// `AuthThrottle`: after `maximumFailedLogins` distinct wrong secrets from one origin the
    /// name is locked for that origin for `lockoutSeconds`, and even the right secret fails
    /// there until then. Unknown names cost the same hash and the same bookkeeping, and get the
    /// same answer, as wrong secrets; they are audited as `(unknown)`, never as the string sent.
    ///
    /// `origin` is what the audit trail records (`tcp 127.0.0.1:5123`); `peer` is what failures
    /// are counted by (`uid 1000` on the Unix socket, `ip 127.0.0.1` on TCP), the origin if nil.
    public func authenticate(
        client name: String, secret: [UInt8], origin: String = "local", peer: String? = nil, now: Date = Date()
    ) throws -> AuthOutcome {
        let presented = try secretHash(name: name, secret: secret)
        let clock = now.timeIntervalSince1970
        let key = AuthThrottle.Key(name: name, origin: peer ?? origin)
        let record = try Self.storageCall { try store.read { try $0.client(named: name) } }
        if let record { try checkRecord(record) }
        let matches = record.map { ConstantTime.equals(presented, $0.secretHash) } ?? false
        let locked = throttle.isLocked(key, now: clock)
        var entries: [AuditDraft] = []
        let outcome: AuthOutcome
        if let record, matches, !locked {
            outcome = .success(
                role: record.role, binding: ClientBinding(secretHash: record.secretHash, role: record.role))
            if let pending = throttle.recordSuccess(key) {
                entries.append(Self.repeatedFailures(pending, registered: true))
            }
            entries.append(
                AuditDraft(client: name, role: record.role, origin: origin, command: "AUTH", subject: nil, fields: []))
        } else {
            let digest = presented.prefix(8).reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
            let failure = throttle.recordFailure(key, digest: digest, now: clock)
            outcome = .failure(consecutiveFailures: failure.failures)
            let shown = record == nil ? "(unknown)" : name
            if failure.auditNow {
                entries.append(
                    AuditDraft(
                        client: shown, role: "-", origin: origin, command: "AUTH", subject: nil, fields: [],
                        outcome: .denied))
            }
            if failure.lockedNow, let heldBack = lockOutLog.admit() {
                logger.warning(
                    "client locked out after repeated failed AUTH",
                    metadata: LogThrottle.metadata(["client": "\(shown)", "peer": "\(key.origin)"], heldBack: heldBack))
            }
            if failure.lockedNow {
                entries.append(
                    AuditDraft(
                        client: shown, role: "-", origin: origin, command: "AUTH.LOCKOUT", subject: nil, fields: [],
                        outcome: .denied))
            }
        }
        if !entries.isEmpty {
            do {
                let drafts = entries
                try committer.perform { [audit] tx in for draft in drafts { try audit.append(draft, in: tx, now: now) }
                }
            } catch {
                logger.error("AUTH could not be recorded; refusing it")
                throw VaultError(.storage, "the audit entry could not be written, so AUTH was refused")
            }
        }
        return outcome
    }

    /// Writes the failed AUTHs that were counted but not audited one by one: one entry per
    /// (name, origin) whose audit window has closed (every one with `all`, at shutdown).
    public func flushAuthFailures(all: Bool = false, now: Date = Date()) throws {
        let pending = throttle.takePendingAudit(now: now.timeIntervalSince1970, all: all)
        guard !pending.isEmpty else { return }
        try Self.storageCall {
            try committer.perform { [audit] tx in
                for item in pending {
                    let registered =
                        try item.key != AuthThrottle.overflowKey && tx.client(named: item.key.name) != nil
                    try audit.append(Self.repeatedFailures(item, registered: registered), in: tx, now: now)
                }
            }
        }
    }

    /// The one entry that stands for `pending.count` failed AUTHs of one (name, origin).
    private static func repeatedFailures(_ pending: AuthThrottle.Pending, registered: Bool) -> AuditDraft {
        let overflow = pending.key == AuthThrottle.overflowKey
        return AuditDraft(
            client: overflow ? "(many)" : registered ? pending.key.name : "(unknown)", role: "-",
            origin: pending.key.origin, command: "AUTH.REPEATED", subject: nil, fields: ["count:\(pending.count)"],
            outcome: .denied)
    }
}

/// The columns of a client row that its MAC covers, and the MAC, of a row already checked.
struct VerifiedClientRow: Hashable, Sendable {
    let name: String
    let role: String
    let secretHash: [UInt8]
    /// The bits the MAC covers (0.0 and -0.0 are equal as doubles, not as bits).
    let createdAt: UInt64
    let mac: [UInt8]

    /// The MAC alone, as one run of bytes: it is a keyed hash of every other column, so it
    /// spreads rows as well as all of them would, and the synthesised hash fed the two 32-byte
    /// arrays to the hasher a byte at a time on every command (equality still compares all).
    func hash(into hasher: inout Hasher) {
        mac.withUnsafeBytes { hasher.combine(bytes: $0) }
    }
}
