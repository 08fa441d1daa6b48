import CofferCore
import Synchronization

/// The vault a server serves. On a sealed key directory the server starts without one: it
/// listens, answers PING, HELLO, QUIT and the seal commands, and gets its vault when enough key
/// shares have been entered (`UNSEAL`); `SEAL` drops it again, and with it every key.
public final class VaultHandle: Sendable {
    /// The vault (nil while sealed) and how many unseals this server has seen: a session
    /// authenticated under an earlier one must AUTH again (SEAL ends every session's standing).
    private let current: Mutex<(vault: Vault?, epoch: Int)>
    /// `current` as every command checks it, without the lock or a retain of the vault (both
    /// event loops touching one lock and one reference count per command cost 6 % of PING's
    /// time in them): the epoch times two, plus one while a vault is open. Written under the
    /// lock with every change of `current`.
    private let servingState: Atomic<Int>
    /// Unseal progress; nil when the key directory is not sealed (raw key files).
    public let seal: SealState?
    private let opener: @Sendable (RootKey) throws -> Vault
    /// Where the shares of the unseal under way came from, for its audit entry.
    private let origins = Mutex<[String]>([])
    /// Share entries refused while sealed, audited at the next unseal; the first 1000 are kept
    /// (the rate limit allows 10 a minute, so that is 100 minutes of refusals).
    private let refused = Mutex<[(origin: String, error: VaultError)]>([])
    static let refusedKept = 1000

    /// A server on an open vault whose key directory is not sealed.
    public init(vault: Vault) {
        current = Mutex((vault, 0))
        servingState = Atomic(1)
        seal = nil
        opener = { _ in throw VaultError(.invalid, "the key directory is not sealed") }
    }

    /// A sealed server: `open` opens the vault with the root key the shares combined to.
    public init(sealed: SealState, open: @escaping @Sendable (RootKey) throws -> Vault) {
        current = Mutex((nil, 0))
        servingState = Atomic(0)
        seal = sealed
        opener = open
    }

    /// Nil while sealed.
    public var vault: Vault? { current.withLock { $0.vault } }

    /// The vault and its epoch, read together.
    var serving: (vault: Vault?, epoch: Int) { current.withLock { $0 } }

    /// Whether a vault is open and the epoch, read together, for the check every command makes.
    var servingEpoch: (open: Bool, epoch: Int) {
        let state = servingState.load(ordering: .acquiring)
        return (state & 1 == 1, state >> 1)
    }

    private func publish(_ value: (vault: Vault?, epoch: Int)) {
        servingState.store(value.epoch << 1 | (value.vault == nil ? 0 : 1), ordering: .releasing)
    }

    /// The reply to every command that needs the vault while it is sealed.
    var sealedError: VaultError {
        let progress = seal?.status().progress ?? "sealed"
        return VaultError(.sealed, "the vault is \(progress); enter key shares with UNSEAL (coffer unseal)")
    }

    /// One share towards the unseal. Shares are accepted on the Unix socket and over TLS only:
    /// plain TCP (loopback) would carry them in the clear past anyone who can sniff loopback.
    /// On the last share, the vault is opened with the root key and the unseal audited; if
    /// either fails, the server stays sealed and says why.
    func unseal(_ share: String, origin: String, peer: String) throws -> SealState.Status {
        try requireSecureTransport(origin, "UNSEAL")
        return try accept(share, origin: origin, peer: peer)
    }

    private func requireSecureTransport(_ origin: String, _ command: String) throws {
        guard origin == "unix" || origin.hasPrefix("tls ") else {
            let error = VaultError(.noPermission, "\(command) is accepted on the Unix socket and over TLS only")
            remember(error, from: origin)
            throw error
        }
    }

    private func remember(_ error: VaultError, from origin: String) {
        guard seal != nil, vault == nil else { return }
        refused.withLock { list in
            if list.count < Self.refusedKept { list.append((origin, error)) }
        }
    }

    /// `serve --unseal-file`: the dev share, read by the CLI from its file at start.
    public func unsealLocally(_ share: String, source: String) throws -> SealState.Status {
        try accept(share, origin: source, peer: source)
    }

    private func accept(_ share: String, origin: String, peer: String) throws -> SealState.Status {
        guard let seal else {
            throw VaultError(.invalid, "the vault is not sealed: its key directory has no seal manifest")
        }
        guard vault == nil else { throw VaultError(.invalid, "the vault is already unsealed") }
        let outcome: SealState.Outcome
        do { outcome = try seal.submit(share, from: peer) } catch {
            remember(error, from: origin)
            throw error
        }
        switch outcome {
        case .progress(let status):
            origins.withLock { $0.append(origin) }
            return status
        case .unsealed(let root):
            let from = origins.withLock { list in
                defer { list = [] }
                return list + [origin]
            }
            let opened: Vault
            do { opened = try opener(root) } catch {
                seal.openFailed()
                throw error
            }
            let attempts = refused.withLock { list in
                defer { list = [] }
                return list
            }
            do {
                try opened.recordUnseal(origins: from, refused: attempts)
            } catch {
                try? opened.close()
                seal.openFailed()
                throw error
            }
            current.withLock {
                $0 = (opened, $0.epoch + 1)
                publish($0)
            }
            seal.markUnsealed()
            return seal.status()
        }
    }

    /// `UNSEAL RESET`: on the Unix socket and over TLS only, like UNSEAL, and only from a peer
    /// that entered a share of the unseal under way; a refusal is audited at the next unseal.
    func resetUnseal(origin: String, peer: String) throws -> SealState.Status {
        guard let seal else {
            throw VaultError(.invalid, "the vault is not sealed: its key directory has no seal manifest")
        }
        try requireSecureTransport(origin, "UNSEAL RESET")
        do { try seal.reset(by: peer) } catch {
            remember(error, from: origin)
            throw error
        }
        origins.withLock { $0 = [] }
        return seal.status()
    }

    /// `SEAL`: decided and audited by the vault, then the vault is dropped from service and
    /// closed. Its keys are freed (and wiped by libsodium) when the last command still running
    /// on it finishes. Refused where the directory is not sealed: there would be no way back.
    func sealNow(as caller: Caller) throws {
        guard let seal else {
            throw VaultError(
                .invalid, "the key directory is not sealed (no seal manifest): SEAL would leave no way to unseal")
        }
        guard let vault else { throw sealedError }
        try vault.authorizeSeal(as: caller)
        current.withLock {
            $0.vault = nil
            publish($0)
        }
        seal.markSealed()
        try vault.close()
    }
}
