import CofferStore

/// Everything needed to open a vault. Every parameter but the two directories has a default.
public struct VaultConfiguration: Sendable {
    /// Holds the data directory's lock, by default the server's socket and, with the SQLite
    /// backend, `coffer.db` (and its WAL). Mode 0700.
    public var dataDirectory: String
    /// Holds the key files. Mode 0700, kept apart from the data directory.
    public var keyDirectory: String
    /// Role grants; the built-in roles unless a policy file says otherwise.
    public var policy: Policy
    /// Where the records live: by default SQLite in the data directory.
    public var store: any StoreLocation
    /// `full` (default) keeps acknowledged writes through power loss (SQLite `synchronous`).
    public var durability: StoreDurability
    /// Distinct wrong secrets from one origin after which a client is locked out there.
    public var maximumFailedLogins: Int
    /// How long a lock-out lasts, in seconds.
    public var lockoutSeconds: Double
    /// Most KEK versions alive (not retired) at once; `KEYS.ROTATE` past it is refused until old
    /// versions are retired. Each costs a page of locked memory and four mappings (guard pages).
    public var maximumLiveKEKVersions: Int
    /// The root key of a sealed key directory, once unsealed; nil for an unsealed (raw) one.
    /// A sealed directory does not open without it.
    public var root: RootKey?
    /// Asked for the root key when the key directory turns out to be sealed and `root` is nil
    /// (the CLI reads a dev share file or asks the share holders at the terminal). It is called
    /// only when the vault is opened, so commands that go through a running server never ask.
    public var unsealer: (@Sendable (SealManifest) throws -> RootKey)?

    public init(
        dataDirectory: String,
        keyDirectory: String,
        policy: Policy = .builtIn,
        store: (any StoreLocation)? = nil,
        durability: StoreDurability = .full,
        maximumFailedLogins: Int = 10,
        lockoutSeconds: Double = 30 * 60,
        maximumLiveKEKVersions: Int = 64,
        root: RootKey? = nil
    ) {
        self.dataDirectory = dataDirectory
        self.keyDirectory = keyDirectory
        self.policy = policy
        self.store = store ?? SQLiteLocation(directory: dataDirectory)
        self.durability = durability
        self.maximumFailedLogins = maximumFailedLogins
        self.lockoutSeconds = lockoutSeconds
        self.maximumLiveKEKVersions = maximumLiveKEKVersions
        self.root = root
    }

    /// The root key to open the key directory with: the one given, or, for a sealed directory,
    /// the unsealer's; nil for a directory that is not sealed.
    func rootKey() throws -> RootKey? {
        if let root { return root }
        guard let unsealer, let manifest = try KeyDirectory.manifest(in: keyDirectory) else { return nil }
        return try unsealer(manifest)
    }
}
