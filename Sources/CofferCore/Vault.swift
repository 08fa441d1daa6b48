import CofferCrypto
import CofferStore
import Foundation
import Logging
import Synchronization

/// An open vault: the one place where every access decision, every encryption and every
/// write is made. The server and the CLI both call this API; neither decides anything itself.
public final class Vault: Sendable {
    public let configuration: VaultConfiguration
    let store: any VaultStore
    let keys: KeyRing
    let envelope: Envelope
    let audit: AuditLog
    let scratch = KeyScratchPool()
    let committer: GroupCommitter
    let throttle: AuthThrottle
    /// Lock-outs are logged at most 10 a second (each is audited as `AUTH.LOCKOUT`): many
    /// names and loopback origins could otherwise write a line each (an outside attack made 200
    /// in 15 s, growing with names and addresses).
    let lockOutLog = LogThrottle(limit: 10, per: .seconds(1))
    /// Shredded subjects whose WAL wipe waits behind a reader.
    let pendingWipes = Mutex<[String]>([])
    /// Clients running a long command (AUDIT.VERIFY) right now.
    let longCommands = Mutex<Set<String>>([])
    /// Client rows whose MAC has been checked, by every column the MAC covers plus the MAC:
    /// a row that differs in any of them is not in here and is checked again. Saves a keyed hash
    /// per command (every command resolves its caller). Bounded: emptied when it grows past 1,024.
    let verifiedClientRows = Mutex<Set<VerifiedClientRow>>([])
    public let rewrapProgress = RewrapProgress()
    /// Sealed or not, for INFO and `/health`; always unsealed until a sealed start exists.
    let logger: Logger
    /// The data directory's lock, if this vault holds it (SQLite: only then may it change KEKs).
    let lock: DataDirectoryLock?
    /// May change KEKs: the holder of the data directory's lock, or on a shared store any
    /// vault opened by an owner (a serving node, an offline `coffer keys`), each change taken
    /// under the store's own key-change lock.
    let mayChangeKEKs: Bool
    /// This process's name in a shared store's node table (host and process ID).
    public let nodeID: String
    /// The current KEK version whose missing key file was last logged (once per version).
    let missingKEKReported = Atomic<UInt32>(0)
    /// Held for the whole of a rotation or retirement, so they run one at a time.
    let keyChanges = Mutex(())
    /// DETOKENIZE and TOKEN.REVOKE calls that named an unknown token (`unknownTokenCount`).
    let unknownTokens = Atomic<Int>(0)
    /// False when the lock is lent by a sealed server, which keeps the data directory across
    /// SEAL and UNSEAL while vaults come and go.
    let releasesLock: Bool

    private init(
        configuration: VaultConfiguration, store: any VaultStore, keys: KeyRing, lock: DataDirectoryLock?,
        mayChangeKEKs: Bool, releasesLock: Bool = true, logger: Logger
    ) {
        self.configuration = configuration
        self.store = store
        self.keys = keys
        self.lock = lock
        self.mayChangeKEKs = mayChangeKEKs
        var host = [CChar](repeating: 0, count: 256)
        gethostname(&host, host.count - 1)
        self.nodeID = "\(String(cString: host)):\(getpid())"
        self.releasesLock = releasesLock
        self.envelope = Envelope(keys: keys)
        self.audit = AuditLog(key: keys.auditKey)
        self.committer = GroupCommitter(store: store)
        self.throttle = AuthThrottle(
            configuration: AuthThrottle.Configuration(
                maximumFailures: configuration.maximumFailedLogins, lockoutSeconds: configuration.lockoutSeconds))
        self.logger = logger
        store.onWipeCompleted { [weak self] in self?.auditCompletedWipes() }
    }

    public var policy: Policy { configuration.policy }
    /// The data directory's lock, if this vault owns the directory.
    public var dataDirectoryLock: DataDirectoryLock? { lock }
    public var currentKEKVersion: UInt32 { keys.currentKEKVersion }

    /// Opens an existing vault, refusing if a key file is exposed or malformed, or if a KEK
    /// version that stored data still references is missing.
    ///
    /// With an `owner`, the vault takes the data directory's lock for it (see
    /// `DataDirectoryLock`; refused, naming the holder, if another process has it) and keeps it
    /// until `close()`: it alone may change KEKs, and it repairs an interrupted rotation or
    /// retirement at open. Without one, the vault works alongside whoever holds the lock
    /// (audit, clients, backup: SQLite serialises the writers) but refuses every KEK change.
    public static func open(
        _ configuration: VaultConfiguration, owner: DataDirectoryLock.Holder? = nil,
        logger: Logger = Logger(label: "coffer.vault")
    ) throws -> Vault {
        try checkOpenable(configuration)
        if configuration.store.isShared {
            return try open(configuration, lock: nil, mayChangeKEKs: owner != nil, logger: logger)
        }
        let lock = try owner.map { try DataDirectoryLock.acquire(configuration.dataDirectory, for: $0) }
        return try open(configuration, lock: lock, logger: logger)
    }

    /// Opens a vault with the data directory's lock that a sealed server took at start and
    /// keeps: closing this vault (SEAL) leaves the lock with the server.
    public static func open(
        _ configuration: VaultConfiguration, borrowing lock: DataDirectoryLock,
        logger: Logger = Logger(label: "coffer.vault")
    ) throws -> Vault {
        try open(configuration, lock: lock, releasesLock: false, logger: logger)
    }

    /// The same, with the lock (or none) in hand: `initialize` holds it from before the
    /// database exists.
    static func open(
        _ configuration: VaultConfiguration, lock: DataDirectoryLock?, mayChangeKEKs: Bool? = nil,
        releasesLock: Bool = true, logger: Logger
    ) throws -> Vault {
        let mayChangeKEKs = mayChangeKEKs ?? (lock != nil)
        try checkOpenable(configuration)
        if let lock, lock.path != DataDirectoryLock.path(in: configuration.dataDirectory) {
            throw VaultError(.setup, "the lock \(lock.path) is not the lock of \(configuration.dataDirectory)")
        }
        let keys = try KeyDirectory.load(from: configuration.keyDirectory, root: configuration.rootKey())
        let store = try storageCall { try configuration.store.open(durability: configuration.durability) }
        let referenced = try storageCall { try store.read { try $0.referencedKEKVersions() } }
        for version in referenced where !keys.kekVersions.contains(version) {
            throw VaultError(
                .keys,
                "KEK version \(version) still wraps stored data keys but \(KeyDirectory.path(configuration.keyDirectory, KeyDirectory.kekFileName(version: version))) is missing"
            )
        }
        if configuration.store.isShared {
            // Only one node repairs, and none while another is in the middle of a KEK change.
            var repairing = false
            do {
                try store.withKeyChangeLock {
                    repairing = mayChangeKEKs
                    try reconcileKEKs(
                        store: store, keys: keys, configuration: configuration, repairing: repairing, logger: logger)
                }
            } catch  where !repairing {
                try reconcileKEKs(
                    store: store, keys: keys, configuration: configuration, repairing: false, logger: logger)
            }
            // A KEK another node adds later is read from the shared key directory when first
            // needed: the data key that names it shows the database vouches for it.
            let directory = configuration.keyDirectory
            let root = keys.root
            keys.loadsMissingVersions { version in
                try? KeyDirectory.readKey(
                    KeyDirectory.path(directory, KeyDirectory.kekFileName(version: version)), root: root)
            }
        } else {
            try reconcileKEKs(
                store: store, keys: keys, configuration: configuration, repairing: lock != nil, logger: logger)
        }
        let unlocked = keys.unlockedKeyCount
        if unlocked > 0 {
            logger.error(
                "keys could not be locked in memory and may be swapped to disk: raise RLIMIT_MEMLOCK (LimitMEMLOCK= in the unit) or retire old KEK versions",
                metadata: ["keys.unlocked": "\(unlocked)"])
        }
        logger.info(
            "vault opened",
            metadata: ["kek.current": "\(keys.currentKEKVersion)", "kek.versions": "\(keys.kekVersions)"])
        let vault = Vault(
            configuration: configuration, store: store, keys: keys, lock: lock, mayChangeKEKs: mayChangeKEKs,
            releasesLock: releasesLock, logger: logger)
        if store.clientMACsNeeded { try Vault.addMissingRecordMACs(vault) }
        // Only the process that owns the data directory takes wipes over: a CLI command beside a
        // running server leaves them (and the warnings below) to it.
        if lock != nil { try vault.takeOverPendingWipes() }
        for client in try vault.clientsWithUnknownRoles() where mayChangeKEKs {
            logger.warning(
                "a client's role is not in the policy: it is refused every command but AUTH and WHOAMI; revoke it or add the role",
                metadata: ["client": "\(client.name)", "role": "\(client.role)"])
        }
        return vault
    }

    /// Creates a new vault: the data directory and its database, the key directory and its
    /// keys, and the first admin client, named `admin`, whose secret is returned (once).
    /// Refuses, touching nothing, if either directory already holds a vault.
    public static func initialize(
        _ configuration: VaultConfiguration, adminName: String = "admin",
        logger: Logger = Logger(label: "coffer.vault")
    ) throws -> String {
        try initialize(configuration, adminName: adminName, manifest: nil, logger: logger)
    }

    /// Creates a new vault whose key directory is sealed under a fresh root key R, split into
    /// `shares` Shamir shares of which `threshold` unseal it. The admin's secret and the shares'
    /// text exist nowhere else: `deliver` hands them out (prints them) before the vault is
    /// finished, and if it throws, everything created is removed again, since a vault whose
    /// shares were lost can never be opened. R is dropped when this returns. A threshold of 1
    /// (dev mode, where one share is R itself) is allowed only with a single share.
    public static func initializeSealed(
        _ configuration: VaultConfiguration, shares: Int, threshold: Int, adminName: String = "admin",
        logger: Logger = Logger(label: "coffer.vault"),
        deliver: (_ adminSecret: String, _ shares: [String]) throws -> Void
    ) throws {
        try checkShareCounts(shares: shares, threshold: threshold)
        let root = try RootKey(key: SymmetricKey.random(), generation: 1)
        let split = try root.key.withUnsafeBytes { try Shamir.split($0, shares: shares, threshold: threshold) }
        let manifest = try SealManifest(root: root, threshold: threshold, shares: split)
        let texts = try split.map { try ShareText.encode($0, generation: root.generation) }
        var sealed = configuration
        sealed.root = root
        _ = try initialize(sealed, adminName: adminName, manifest: manifest, logger: logger) { secret in
            try deliver(secret, texts)
        }
    }

    /// The same, returning the secret and the shares to a caller that keeps them itself.
    public static func initializeSealed(
        _ configuration: VaultConfiguration, shares: Int, threshold: Int, adminName: String = "admin",
        logger: Logger = Logger(label: "coffer.vault")
    ) throws -> (adminSecret: String, shares: [String]) {
        var made = (adminSecret: "", shares: [String]())
        try initializeSealed(
            configuration, shares: shares, threshold: threshold, adminName: adminName, logger: logger
        ) { made = ($0, $1) }
        return made
    }

    private static func initialize(
        _ configuration: VaultConfiguration, adminName: String, manifest: SealManifest?, logger: Logger,
        deliver: (String) throws -> Void = { _ in }
    ) throws -> String {
        try checkSeparate(configuration)
        if try storageCall({ try configuration.store.isOccupied }) {
            throw VaultError(.setup, "a vault already exists at \(configuration.store); refusing to touch it")
        }
        if KeyDirectory.holdsKeys(configuration.keyDirectory) {
            throw VaultError(
                .setup, "key directory \(configuration.keyDirectory) already holds key files; refusing to touch it")
        }
        var created: [String] = []
        var storeCreated = false
        let shared = configuration.store.isShared
        do {
            var lock: DataDirectoryLock?
            if !shared {
                try KeyDirectory.makePrivateDirectory(configuration.dataDirectory)
                lock = try DataDirectoryLock.acquire(configuration.dataDirectory, for: .init(command: "init"))
            }
            created =
                (lock.map { [$0.path] } ?? [])
                + [
                    KeyDirectory.kekFileName(version: 1), KeyDirectory.indexKeyFile, KeyDirectory.authKeyFile,
                    KeyDirectory.auditKeyFile, SealManifest.fileName,
                ].map { KeyDirectory.path(configuration.keyDirectory, $0) }
            try KeyDirectory.create(at: configuration.keyDirectory, root: configuration.root, manifest: manifest)
            storeCreated = true
            let store = try storageCall { try configuration.store.create(durability: configuration.durability) }
            try storageCall { try store.close() }
            let vault = try open(configuration, lock: lock, mayChangeKEKs: true, logger: logger)
            let secret = try vault.addClient(name: adminName, role: "admin", as: .localOperator)
            try vault.close()
            try deliver(secret)
            return secret
        } catch {
            if storeCreated { configuration.store.destroyCreated() }
            for path in created { unlink(path) }
            throw error
        }
    }

    /// The database records every KEK version and its state; the key directory holds the files.
    /// The database decides:
    ///
    /// - a key file newer than the current version that the database never recorded is refused,
    ///   never adopted: a rotation records its version (`pending`) before it writes the file, so
    ///   such a file was put there by someone else;
    /// - a rotation interrupted after recording its version is finished if its file exists (the
    ///   file is synced before the version is made current), or else forgotten: no data key can
    ///   be wrapped under a pending version;
    /// - a retirement interrupted after it was recorded has its key file destroyed now.
    ///
    /// Only the holder of the data directory's lock repairs; a vault opened alongside it takes
    /// the database's word and leaves pending and retired versions to the holder.
    private static func reconcileKEKs(
        store: any VaultStore, keys: KeyRing, configuration: VaultConfiguration, repairing: Bool, logger: Logger
    ) throws {
        let records = try storageCall { try store.read { try $0.kekRecords() } }
        guard var current = records.first(where: { $0.state == .current })?.version else {
            throw VaultError(.keys, "the database records no current KEK version")
        }
        let files = Set(keys.kekVersions)
        let recorded = Set(records.map(\.version))
        if let planted = files.subtracting(recorded).filter({ $0 > current }).min() {
            throw VaultError(
                .keys,
                "key file \(KeyDirectory.path(configuration.keyDirectory, KeyDirectory.kekFileName(version: planted))) is not recorded in the database: no rotation to KEK version \(planted) was begun, so it is not adopted. Unless you know where it came from, treat it as planted: move it out of the key directory, keep it for investigation, and start again"
            )
        }
        if repairing, let pending = records.first(where: { $0.state == .pending })?.version {
            if files.contains(pending) {
                try storageCall { try store.write { try $0.promotePendingKEK(pending) } }
                logger.notice("completed an interrupted KEK rotation", metadata: ["kek.current": "\(pending)"])
                current = pending
            } else {
                try storageCall { try store.write { try $0.deletePendingKEK(pending) } }
                logger.notice(
                    "dropped a KEK rotation interrupted before its key file was written",
                    metadata: ["kek.version": "\(pending)"])
            }
        }
        for record in records where record.state == .retired && files.contains(record.version) {
            keys.remove(version: record.version)
            guard repairing else { continue }
            let path = KeyDirectory.path(configuration.keyDirectory, KeyDirectory.kekFileName(version: record.version))
            try KeyDirectory.destroyKey(at: path)
            try KeyDirectory.syncDirectory(configuration.keyDirectory)
            logger.notice("finished an interrupted KEK retirement", metadata: ["kek.version": "\(record.version)"])
        }
        guard files.contains(current) else {
            throw VaultError(
                .keys,
                "the database says KEK version \(current) is current but \(KeyDirectory.path(configuration.keyDirectory, KeyDirectory.kekFileName(version: current))) is missing"
            )
        }
        keys.setCurrent(current)
    }

    /// Closes the database cleanly (checkpointing the WAL).
    public func close() throws {
        // A wipe completing from here on is audited by the next owner, not by a stopped committer.
        store.onWipeCompleted {}
        committer.stop()
        defer { if releasesLock { lock?.release() } }
        try Self.storageCall { try store.close() }
    }

    /// KEKs change only in the process that holds the data directory (see `DataDirectoryLock`),
    /// or on a shared store in a vault opened by an owner.
    func requireDataDirectoryLock(_ command: String) throws {
        guard !mayChangeKEKs else { return }
        if configuration.store.isShared {
            throw VaultError(.setup, "\(command) runs in a serving node or an owning command, not alongside one")
        }
        let owner = (try? DataDirectoryLock.holder(of: configuration.dataDirectory)) ?? nil
        throw VaultError(
            .setup,
            "\(command) needs the lock of data directory \(configuration.dataDirectory)\(owner.map { ", which \($0) holds" } ?? ""); KEKs change only in the process that holds it"
        )
    }

    /// A vault released without `close()` (an error path, a test) still stops its commit and
    /// checkpoint threads and closes its connections, instead of leaving them running against
    /// the files until the process exits. Both steps do nothing after an explicit close.
    deinit {
        committer.stop()
        try? store.close()
        if releasesLock { lock?.release() }
    }

    /// A vault exists at the data directory, which is writable and apart from the keys. Public
    /// so a sealed server checks it at start, before it waits for the shares.
    public static func checkOpenable(_ configuration: VaultConfiguration) throws {
        try checkSeparate(configuration)
        if configuration.store.isShared {
            guard try storageCall({ try configuration.store.isOccupied }) else {
                throw VaultError(.setup, "no vault in \(configuration.store); run coffer init --store")
            }
            return
        }
        guard try configuration.store.isOccupied else {
            throw VaultError(
                .setup,
                "no vault at \(configuration.dataDirectory) (\(configuration.store) is missing); run coffer init")
        }
        // SQLite would open a WAL database on a read-only filesystem and only fail at the first
        // write; say so at start instead.
        guard access(configuration.dataDirectory, W_OK) == 0 else {
            throw VaultError(
                .setup,
                "data directory \(configuration.dataDirectory) is not writable: \(String(cString: strerror(errno)))")
        }
    }

    /// Data and keys must never share a directory, nor sit one inside the other: a copy of the
    /// data directory must not carry the keys with it.
    static func checkSeparate(_ configuration: VaultConfiguration) throws {
        // A shared store keeps no files of this machine apart from the keys.
        guard !configuration.store.isShared else { return }
        let data = try LocalPath.canonical(configuration.dataDirectory)
        let keys = try LocalPath.canonical(configuration.keyDirectory)
        if LocalPath.isWithin(data, keys) || LocalPath.isWithin(keys, data) {
            throw VaultError(
                .setup,
                "the data directory (\(data)) and the key directory (\(keys)) must be separate; neither may contain the other"
            )
        }
    }

    /// Runs a storage call, turning database errors into a `STORAGE` error that carries no values.
    static func storageCall<T>(_ body: () throws -> T) throws -> T {
        do { return try body() } catch { throw mapped(error) }
    }

    static func mapped(_ error: any Error) -> VaultError {
        switch error {
        case let error as VaultError: error
        case let error as CryptoError: VaultError(.integrity, "\(error)")
        default: VaultError(.storage, "storage failed: \(error)")
        }
    }
}
