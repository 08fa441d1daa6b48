/// The audit side of sealing. A sealed vault has no audit key in memory, so an unseal is
/// recorded once it has succeeded, by the vault it opened; a seal is decided and recorded
/// before the keys go.
extension Vault {
    /// Records a completed unseal: from where the shares came (origins only, never shares).
    public func recordUnseal(origins: [String]) throws {
        let caller = Caller.localOperator
        try audited("UNSEAL", caller) { [self] tx, draft in
            _ = try resolve(caller, in: tx, recordingIn: &draft)
            draft.origin = Array(Set(origins)).sorted().joined(separator: ",")
        }
    }

    /// `SEAL`: allowed to the roles that may manage keys (admin), and audited before the server
    /// drops the keys, so the trail shows who sealed the vault even though it is then unreadable
    /// until the next unseal.
    public func authorizeSeal(as caller: Caller) throws {
        _ = try audited("SEAL", caller) { [self] tx, draft in
            try resolve(caller, in: tx, recordingIn: &draft).require(.operation(.keys), "SEAL")
        }
    }
}
