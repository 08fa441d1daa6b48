import CofferStore

/// A caller resolved, inside the current transaction, to its role.
struct ResolvedRole {
    let name: String
    let policy: Policy
    let grants: RoleGrants

    /// The one decision function, wrapped to throw `NOPERM` naming `what`.
    @discardableResult
    func require(_ access: Access, _ what: @autoclosure () -> String) throws -> ReadLevel {
        let decision: Decision
        if name == Self.operatorRole {
            decision = Policy.decide(grants, access)
        } else {
            decision = policy.decide(role: name, access)
        }
        switch decision {
        case .allow(let level): return level
        case .deny: throw VaultError(.noPermission, "role '\(name)' may not \(what())")
        }
    }

    static let operatorRole = "(local operator)"
}

extension Vault {
    /// Resolves `caller` against the client table in the same transaction as the work it
    /// guards, so a client revoked a moment ago is refused now.
    func resolve(_ caller: Caller, in tx: any StoreReading) throws -> ResolvedRole {
        switch caller {
        case .localOperator:
            return ResolvedRole(name: ResolvedRole.operatorRole, policy: policy, grants: Policy.localOperator)
        case .client(let name):
            guard let client = try tx.client(named: name) else {
                throw VaultError(.noAuth, "client '\(name)' is no longer registered")
            }
            return ResolvedRole(name: client.role, policy: policy, grants: policy.roles[client.role] ?? RoleGrants())
        }
    }

    /// The role a caller has right now, for `WHOAMI`.
    public func role(of caller: Caller) throws -> String {
        try Self.storageCall { try store.read { tx in try resolve(caller, in: tx).name } }
    }
}
