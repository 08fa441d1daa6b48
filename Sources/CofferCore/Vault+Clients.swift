import CofferCrypto
import CofferStore
import Foundation

/// What a client listing shows: never a secret or its hash.
public struct ClientInfo: Sendable, Hashable {
    public let name: String
    public let role: String
    public let locked: Bool
}

/// The outcome of an AUTH attempt.
public enum AuthOutcome: Sendable, Hashable {
    case success(role: String)
    /// `consecutiveFailures` lets the server slow its reply as failures mount.
    case failure(consecutiveFailures: Int)
}

extension Vault {
    static let secretLabel = "coffer.client-secret.v1"
    static let secretByteCount = 32

    /// Client names are shown in listings and audit entries, so they are restricted like ids.
    static func validateClientName(_ name: String) throws {
        guard (1...64).contains(name.utf8.count), name.utf8.allSatisfy({ SubjectID.isAllowed($0) }) else {
            throw VaultError(.invalid, "client name must be 1 to 64 characters of letters, digits and . _ : -")
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
                throw VaultError(
                    .invalid,
                    "unknown role '\(role)'; known roles: \(policy.roles.keys.sorted().joined(separator: ", "))")
            }
            guard try tx.client(named: name) == nil else {
                throw VaultError(.invalid, "client '\(name)' already exists")
            }
            let hash = try secretHash(name: name, secret: Array(secret.utf8))
            try tx.insertClient(
                ClientRecord(name: name, role: role, secretHash: hash, createdAt: Date().timeIntervalSince1970))
        }
        return secret
    }

    public func listClients(as caller: Caller, now: Date = Date()) throws -> [ClientInfo] {
        try audited("CLIENT.LIST", caller) { [self] tx, draft in
            try resolve(caller, in: tx, recordingIn: &draft).require(.operation(.clients), "CLIENT.LIST")
            return try tx.clients().map {
                ClientInfo(name: $0.name, role: $0.role, locked: ($0.lockedUntil ?? 0) > now.timeIntervalSince1970)
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

    /// Lifts a lock-out and clears the failure count.
    public func unlockClient(name: String, as caller: Caller) throws -> Bool {
        try audited("CLIENT.UNLOCK", caller) { [self] tx, draft in
            try resolve(caller, in: tx, recordingIn: &draft).require(.operation(.clients), "CLIENT.UNLOCK")
            try Self.validateClientName(name)
            draft.subject = "client:" + name
            guard try tx.client(named: name) != nil else { return false }
            try tx.updateClientLock(name: name, failedAttempts: 0, lockedUntil: nil)
            return true
        }
    }

    /// Checks a client's secret in constant time. After `maximumFailedLogins` failures in a row
    /// the client is locked for `lockoutSeconds`, and even the right secret fails until then.
    /// Unknown names cost the same hash, and get the same answer, as wrong secrets.
    public func authenticate(
        client name: String, secret: [UInt8], origin: String = "local", now: Date = Date()
    ) throws -> AuthOutcome {
        let presented = try secretHash(name: name, secret: secret)
        let clock = now.timeIntervalSince1970
        // The claimed name is audited only if it is a well-formed client name.
        let auditedName = (try? Self.validateClientName(name)) != nil ? name : "(invalid)"
        var entry = AuditDraft(
            client: auditedName, role: "-", origin: origin, command: "AUTH", subject: nil, fields: [])
        do {
            return try Self.storageCall {
                try store.write { tx -> AuthOutcome in
                    let outcome = try checkSecret(name: name, presented: presented, clock: clock, in: tx)
                    switch outcome {
                    case .success(let role):
                        entry.role = role
                    case .failure(let failures):
                        entry.outcome = .denied
                        if failures == configuration.maximumFailedLogins {
                            try audit.append(entry, in: tx, now: now)
                            entry.command = "AUTH.LOCKOUT"
                        }
                    }
                    try audit.append(entry, in: tx, now: now)
                    return outcome
                }
            }
        } catch {
            logger.error("AUTH could not be recorded; refusing it")
            throw VaultError(.storage, "the audit entry could not be written, so AUTH was refused")
        }
    }

    /// The lock-out bookkeeping of one AUTH attempt, inside its transaction.
    private func checkSecret(name: String, presented: [UInt8], clock: Double, in tx: any StoreWriting) throws
        -> AuthOutcome
    {
        guard let client = try tx.client(named: name) else { return .failure(consecutiveFailures: 1) }
        let matches = ConstantTime.equals(presented, client.secretHash)
        let locked = (client.lockedUntil ?? 0) > clock
        if matches && !locked {
            if client.failedAttempts != 0 || client.lockedUntil != nil {
                try tx.updateClientLock(name: name, failedAttempts: 0, lockedUntil: nil)
            }
            return .success(role: client.role)
        }
        // A lock that has expired starts a fresh count.
        let previous = client.lockedUntil.map { $0 <= clock } == true ? 0 : client.failedAttempts
        let failures = previous + 1
        var lockedUntil = client.lockedUntil
        if locked {
            // Attempts during a lock-out do not extend it, but are counted.
        } else if failures >= configuration.maximumFailedLogins {
            lockedUntil = clock + configuration.lockoutSeconds
            logger.warning("client locked out after repeated failed AUTH", metadata: ["client": "\(name)"])
        } else {
            lockedUntil = nil
        }
        try tx.updateClientLock(name: name, failedAttempts: failures, lockedUntil: lockedUntil)
        return .failure(consecutiveFailures: failures)
    }
}
