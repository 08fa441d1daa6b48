import CofferCrypto
import CofferStore

/// A caller resolved, inside the current transaction, to its role.
struct ResolvedRole {
    let name: String
    let grants: RoleGrants
    /// The purpose the command stated, weighed by purpose-conditioned grants.
    var purpose: Purpose? = nil

    /// The one decision function, wrapped to throw `NOPERM` naming `what`, on the grants
    /// resolved with the caller: a role the policy does not name has `RoleGrants.none`, which
    /// deny everything.
    @discardableResult
    func require(_ access: Access, _ what: @autoclosure () -> String) throws -> ReadLevel {
        switch Policy.decide(grants, access, purpose: purpose) {
        case .allow(let level): return level
        case .deny: throw VaultError(.noPermission, "role '\(name)' may not \(what())")
        case .noPurpose:
            throw VaultError(
                .noPurpose, "role '\(name)' may \(what()) only for a stated purpose: add PURPOSE <purpose>")
        }
    }

    static let operatorRole = "(local operator)"

    /// The read grant for `field`, or `NOPERM`.
    func requireRead(_ field: Field) throws -> ReadGrant {
        let level = try require(.read(field), "read field '\(field.name)'")
        return ReadGrant(level: level, requiresConsent: grants.consentCondition)
    }
}

/// A permitted read: how much is seen, and which consent field (if any) must say `yes`.
struct ReadGrant {
    let level: ReadLevel
    let requiresConsent: String?
}

extension Vault {
    /// Resolves `caller` against the client table in the same transaction as the work it
    /// guards, so a client revoked a moment ago is refused now.
    func resolve(_ caller: Caller, in tx: any StoreReading) throws -> ResolvedRole {
        switch caller.identity {
        case .localOperator:
            return ResolvedRole(name: ResolvedRole.operatorRole, grants: Policy.localOperator)
        case .anonymous:
            throw VaultError(.noAuth, "Authentication required.")
        case .client(let name, let binding):
            guard let record = try tx.client(named: name) else {
                throw VaultError(.noAuth, "client '\(name)' is no longer registered")
            }
            try checkRecord(record)
            // A name revoked and added again, or given a new secret or role, is a different
            // client: the session that authenticated against the old record ends here.
            if let binding,
                !(binding.role == record.role && ConstantTime.equals(binding.secretHash, record.secretHash))
            {
                throw VaultError(.noAuth, "client '\(name)' was revoked or changed since this session authenticated")
            }
            return ResolvedRole(
                name: record.role, grants: policy.roles[record.role] ?? .none,
                purpose: caller.purpose?.purpose)
        }
    }

    /// Resolves the caller and records its role in the command's audit entry.
    func resolve(_ caller: Caller, in tx: any StoreReading, recordingIn draft: inout AuditDraft) throws -> ResolvedRole
    {
        let role = try resolve(caller, in: tx)
        draft.role = role.name
        return role
    }

    /// The role a caller has right now, for `WHOAMI`.
    public func role(of caller: Caller) throws -> String {
        try run(whoamiCall(as: caller))
    }

    public func whoamiCall(as caller: Caller) -> Call<String> {
        Call("WHOAMI", caller) { [self] tx, draft in try resolve(caller, in: tx, recordingIn: &draft).name }
    }
}
