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

    public init(
        dataDirectory: String,
        keyDirectory: String,
        policy: Policy = .builtIn,
        store: (any StoreLocation)? = nil,
        durability: StoreDurability = .full,
        maximumFailedLogins: Int = 10,
        lockoutSeconds: Double = 30 * 60,
        maximumLiveKEKVersions: Int = 64
    ) {
        self.dataDirectory = dataDirectory
        self.keyDirectory = keyDirectory
        self.policy = policy
        self.store = store ?? SQLiteLocation(directory: dataDirectory)
        self.durability = durability
        self.maximumFailedLogins = maximumFailedLogins
        self.lockoutSeconds = lockoutSeconds
        self.maximumLiveKEKVersions = maximumLiveKEKVersions
    }
}
