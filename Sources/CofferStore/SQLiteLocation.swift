import Foundation

/// A vault in one SQLite file, `coffer.db` in the data directory (with its `-wal` and `-shm`
/// beside it): the embedded default backend.
public struct SQLiteLocation: StoreLocation {
    public let path: String

    /// The database file of the vault whose data directory is `directory`.
    public init(directory: String) {
        self.path = (directory.hasSuffix("/") ? directory : directory + "/") + SQLiteStore.fileName
    }

    public init(path: String) { self.path = path }

    public var description: String { path }

    private var files: [String] { [path, path + "-wal", path + "-shm"] }

    /// One file, which several processes of one machine share under SQLite's locks; KEK changes
    /// are decided by the data directory's lock.
    public var isShared: Bool { false }

    public var isOccupied: Bool { files.contains { FileManager.default.fileExists(atPath: $0) } }

    public func open(durability: StoreDurability) throws -> any VaultStore {
        try SQLiteStore(path: path, durability: durability, create: false)
    }

    public func create(durability: StoreDurability) throws -> any VaultStore {
        guard !isOccupied else { throw StoreError("\(path) already exists; refusing to touch it") }
        return try SQLiteStore(path: path, durability: durability, create: true)
    }

    public func destroyCreated() {
        for file in files { unlink(file) }
    }
}
