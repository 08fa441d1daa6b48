import CofferCrypto
import CofferStore
import Foundation
import Synchronization

/// What `KEYS.STATUS` reports.
public struct KeyStatus: Sendable, Hashable {
    public struct Version: Sendable, Hashable {
        public let version: UInt32
        public let state: String
        public let dataKeys: Int
    }

    public let current: UInt32
    public let versions: [Version]
    /// DEKs still wrapped under a version other than the current one.
    public let pending: Int
    /// Shredded subjects whose wrapped DEK a shared store may still hold somewhere it cannot
    /// wipe (PostgreSQL: dead tuples, WAL, archives, replicas), under versions not yet retired:
    /// their shred is complete once those versions are retired. Always 0 on SQLite.
    public let shreddedAwaitingRetirement: Int
    public let rewrap: RewrapProgress.Snapshot
}

/// Progress of the background rewrap, for `KEYS.STATUS` and the CLI's progress bar.
public final class RewrapProgress: Sendable {
    public struct Snapshot: Sendable, Hashable {
        /// DEKs rewrapped since this process started.
        public let done: Int
        /// DEKs per second over the current run, 0 when idle.
        public let rate: Double
        public let running: Bool
    }

    private let state = Mutex<(done: Int, runDone: Int, runStart: Double?, lastRate: Double)>((0, 0, nil, 0))

    func record(_ count: Int, now: Double = Date().timeIntervalSince1970) {
        state.withLock { state in
            if count == 0 {
                state.runStart = nil
                state.runDone = 0
                return
            }
            if state.runStart == nil { state.runStart = now }
            state.done += count
            state.runDone += count
            let elapsed = now - state.runStart!
            if elapsed > 0 { state.lastRate = Double(state.runDone) / elapsed }
        }
    }

    public var snapshot: Snapshot {
        state.withLock {
            Snapshot(done: $0.done, rate: $0.runStart == nil ? 0 : $0.lastRate, running: $0.runStart != nil)
        }
    }
}

extension Vault {
    /// `KEYS.ROTATE`: writes KEK version n+1 (mode 0600) and makes it current at once; every
    /// DEK created or rewrapped from now on is wrapped under it. Existing DEKs move over in the
    /// background (`rewrapBatch`). Returns the new version.
    ///
    /// Three steps, so no transaction ever waits on key-file I/O (a group commit would hold every
    /// request of its batch behind the fsync) and a crash between any two is repaired at open:
    ///
    /// 1. record version n+1 as `pending` (the caller's permission is checked here);
    /// 2. write and sync `kek-<n+1>.key`, outside any transaction;
    /// 3. make n+1 current, in the transaction that carries the command's audit entry.
    ///
    /// Rotations and retirements run one at a time, and the in-memory current version is set
    /// from what step 3 committed, never from the order in which callers wake up.
    public func rotateKEK(as caller: Caller) throws -> UInt32 {
        try requireDataDirectoryLock("KEYS.ROTATE")
        return try keyChanges.withLock { _ in
            try Self.storageCall { try store.withKeyChangeLock { try rotateHoldingLocks(as: caller) } }
        }
    }

    private func rotateHoldingLocks(as caller: Caller) throws -> UInt32 {
        do {
            let (version, role) = try beginRotation(as: caller)
            let path = KeyDirectory.path(configuration.keyDirectory, KeyDirectory.kekFileName(version: version))
            let key: SymmetricKey
            do {
                key = try SymmetricKey.random()
                try KeyDirectory.writeKey(key, to: path, root: keys.root)
                try KeyDirectory.syncDirectory(configuration.keyDirectory)
            } catch {
                abandonRotation(version, path: path)
                try auditFailure("KEYS.ROTATE", caller, fields: ["kek:\(version)"], role: role, error)
            }
            if !key.isLockedInMemory {
                logger.error(
                    "the new KEK could not be locked in memory and may be swapped to disk: raise RLIMIT_MEMLOCK (LimitMEMLOCK=) or retire old versions",
                    metadata: ["kek.version": "\(version)"])
            }
            keys.add(key, version: version, makeCurrent: false)
            let current: UInt32
            do {
                current = try audited("KEYS.ROTATE", caller, fields: ["kek:\(version)"]) { tx, draft in
                    draft.role = role
                    try tx.promotePendingKEK(version)
                    guard let current = try tx.kekRecords().first(where: { $0.state == .current })?.version else {
                        throw VaultError(.keys, "the database records no current KEK version")
                    }
                    return current
                }
            } catch {
                keys.remove(version: version)
                abandonRotation(version, path: path)
                throw error
            }
            keys.setCurrent(current)
            logger.notice("KEK rotated", metadata: ["kek.current": "\(current)"])
            return current
        }
    }

    /// On a shared store, keeps this node in step with the others, once a second: adopts the
    /// KEK versions they made current, forgets retired ones, and records which version this
    /// node wraps new keys under, so that no version a live node still uses is retired.
    public func keepInStep(now: Double = Date().timeIntervalSince1970) throws {
        guard configuration.store.isShared else { return }
        try Self.storageCall {
            let records = try store.read { try $0.kekRecords() }
            adopt(records)
            try store.recordNode(nodeID, currentKEK: keys.currentKEKVersion, at: now)
            if mayChangeKEKs { destroyRetiredKeyFiles(records) }
            if let current = records.first(where: { $0.state == .current })?.version,
                current != keys.currentKEKVersion, missingKEKReported.exchange(current, ordering: .relaxed) != current
            {
                logger.error(
                    "the database says KEK version \(current) is current but this node cannot read \(KeyDirectory.path(configuration.keyDirectory, KeyDirectory.kekFileName(version: current))): it keeps wrapping new keys under \(keys.currentKEKVersion), cannot read keys wrapped under \(current), and holds up the retirement of \(keys.currentKEKVersion); copy the key file to this node"
                )
            }
        }
    }

    /// Each node keeps its own copy of the key directory: a version retired on another node
    /// still has its file here. Destroy it as soon as the retirement is seen, so that a
    /// database edited to revive the version finds no key to revive.
    private func destroyRetiredKeyFiles(_ records: [KEKRecord]) {
        for record in records where record.state == .retired {
            let path = KeyDirectory.path(configuration.keyDirectory, KeyDirectory.kekFileName(version: record.version))
            guard FileManager.default.fileExists(atPath: path) else { continue }
            do {
                try KeyDirectory.destroyKey(at: path)
                try KeyDirectory.syncDirectory(configuration.keyDirectory)
                logger.notice(
                    "destroyed the key file of a KEK version retired on another node",
                    metadata: ["kek.version": "\(record.version)"])
            } catch {
                logger.error(
                    "the key file of a retired KEK version could not be destroyed",
                    metadata: ["kek.version": "\(record.version)"])
            }
        }
    }

    /// Makes the keyring agree with the database's KEK records (shared stores).
    func adopt(_ records: [KEKRecord]) {
        for record in records {
            switch record.state {
            case .retired: keys.remove(version: record.version)
            case .current:
                if (try? keys.kek(version: record.version)) != nil { keys.setCurrent(record.version) }
            case .active, .pending: break
            }
        }
    }

    /// How long a node's record of its current KEK counts as live.
    static let nodeLiveSeconds = 10.0

    /// Step 1 of a rotation: checks the caller and the limit, and records the next version as
    /// pending. A refusal is audited as the command's outcome.
    private func beginRotation(as caller: Caller) throws -> (version: UInt32, role: String) {
        do {
            return try Self.storageCall {
                try committer.perform { [self] tx in
                    let role = try resolve(caller, in: tx)
                    try role.require(.operation(.keys), "KEYS.ROTATE")
                    let records = try tx.kekRecords()
                    if let pending = records.first(where: { $0.state == .pending }) {
                        throw VaultError(
                            .keys,
                            "KEK version \(pending.version) is pending from an interrupted rotation; restart the server to finish it"
                        )
                    }
                    let live = records.filter { $0.state != .retired }.count
                    guard live < configuration.maximumLiveKEKVersions else {
                        throw VaultError(
                            .invalid,
                            "\(live) KEK versions are live, the most allowed (\(configuration.maximumLiveKEKVersions)); retire old versions (KEYS.RETIRE) once KEYS.STATUS shows they wrap 0 data keys"
                        )
                    }
                    let version = ((records.map(\.version) + keys.kekVersions).max() ?? 0) + 1
                    try tx.insertPendingKEK(version, at: Date().timeIntervalSince1970)
                    return (version, role.name)
                }
            }
        } catch {
            try auditFailure("KEYS.ROTATE", caller, role: nil, error)
        }
    }

    /// Appends the audit entry of a command that failed outside its transaction, and rethrows.
    private func auditFailure(
        _ command: String, _ caller: Caller, fields: [String] = [], role: String?, _ error: any Error
    ) throws -> Never {
        try audited(command, caller, fields: fields) { [self] tx, draft in
            if let role { draft.role = role } else { _ = try? resolve(caller, in: tx, recordingIn: &draft) }
            throw error
        }
        throw error
    }

    /// Undoes steps 2 and 1 of a rotation that failed, in that order: a crash in between leaves
    /// a pending version without a file, which the next open drops (the other order would leave
    /// an unrecorded file, which it refuses). If the database cannot be reached, the next open
    /// finds the pending version and finishes or drops it.
    private func abandonRotation(_ version: UInt32, path: String) {
        do {
            unlink(path)
            try KeyDirectory.syncDirectory(configuration.keyDirectory)
            try Self.storageCall { try committer.perform { tx in try tx.deletePendingKEK(version) } }
        } catch {
            logger.error(
                "a failed KEK rotation could not be undone; the next start finishes or drops it",
                metadata: ["kek.version": "\(version)"])
        }
    }

    /// `KEYS.STATUS`.
    public func keyStatus(as caller: Caller) throws -> KeyStatus {
        try audited("KEYS.STATUS", caller) { [self] tx, draft in
            try resolve(caller, in: tx, recordingIn: &draft).require(.operation(.keys), "KEYS.STATUS")
            let counts = try tx.dekCounts()
            let records = try tx.kekRecords()
            // Another node may have rotated since this one last caught up (`keepInStep`, once a
            // second): count what is pending against the version the database calls current.
            if configuration.store.isShared { adopt(records) }
            let current = keys.currentKEKVersion
            let versions = records.map {
                KeyStatus.Version(version: $0.version, state: $0.state.rawValue, dataKeys: counts[$0.version] ?? 0)
            }
            let pending = counts.filter { $0.key != current }.values.reduce(0, +)
            return KeyStatus(
                current: current, versions: versions, pending: pending,
                shreddedAwaitingRetirement: try tx.shreddedAwaitingRetirement(), rewrap: rewrapProgress.snapshot)
        }
    }

    /// `KEYS.RETIRE v`: refused while `v` is current or still wraps a DEK; otherwise the version
    /// is recorded as retired and then its key file is overwritten and deleted. From then on no
    /// copy of the data (a backup included) whose DEKs were wrapped only under `v` can be read.
    ///
    /// The file is destroyed after the commit, outside any transaction: a crash in between
    /// leaves a retired version with its file, which the next open destroys.
    public func retireKEK(_ version: UInt32, as caller: Caller) throws {
        try requireDataDirectoryLock("KEYS.RETIRE")
        try keyChanges.withLock { _ in
            try Self.storageCall { try store.withKeyChangeLock { try retireHoldingLocks(version, as: caller) } }
        }
        logger.notice("KEK retired", metadata: ["kek.version": "\(version)"])
    }

    private func retireHoldingLocks(_ version: UInt32, as caller: Caller) throws {
        do {
            let now = Date().timeIntervalSince1970
            try audited("KEYS.RETIRE", caller, fields: ["kek:\(version)"]) { [self] tx, draft in
                try resolve(caller, in: tx, recordingIn: &draft).require(.operation(.keys), "KEYS.RETIRE")
                guard let record = try tx.kekRecords().first(where: { $0.version == version }) else {
                    throw VaultError(.invalid, "KEK version \(version) does not exist")
                }
                guard record.state != .current, version != keys.currentKEKVersion else {
                    throw VaultError(.invalid, "KEK version \(version) is current; rotate first")
                }
                guard record.state != .retired else {
                    throw VaultError(.invalid, "KEK version \(version) is already retired")
                }
                guard record.state != .pending else {
                    throw VaultError(.invalid, "KEK version \(version) is a rotation in progress")
                }
                let users = try store.nodesUsing(kek: version, seenSince: now - Self.nodeLiveSeconds)
                    .filter { $0 != nodeID }
                guard users.isEmpty else {
                    throw VaultError(
                        .invalid,
                        "KEK version \(version) is still current on node \(users.joined(separator: ", ")); nodes pick up a rotation within a second, so try again"
                    )
                }
                let wrapped = try tx.dekCounts()[version] ?? 0
                guard wrapped == 0 else {
                    throw VaultError(
                        .invalid,
                        "KEK version \(version) still wraps \(wrapped) data keys; wait for the rewrap to finish")
                }
                try tx.retireKEK(version, at: Date().timeIntervalSince1970)
            }
            keys.remove(version: version)
            let path = KeyDirectory.path(configuration.keyDirectory, KeyDirectory.kekFileName(version: version))
            do {
                if FileManager.default.fileExists(atPath: path) { try KeyDirectory.destroyKey(at: path) }
                try KeyDirectory.syncDirectory(configuration.keyDirectory)
            } catch {
                logger.error("a retired KEK's file could not be destroyed", metadata: ["kek.version": "\(version)"])
                throw VaultError(
                    .keys,
                    "KEK version \(version) is retired but \(path) could not be destroyed; the next start destroys it")
            }
        }
    }

    /// Command batches committed so far. The rewrap loop compares it across a batch of its own:
    /// if it moved, commands were kept waiting for the writer meanwhile.
    public var commandBatchesCommitted: Int { committer.batchesCommitted }

    /// Rewraps up to `limit` DEKs that are not under the current KEK, in one transaction, and
    /// (on the SQLite store) stops taking keys once the batch has held the writer for `budget`;
    /// its commit follows. Every command that arrives meanwhile waits for the batch, so its
    /// length, not the count, is what they feel: on a vault larger than the page cache a batch's
    /// rows are read from disk, and a call with 250 of them took a median 5.2–6.3 ms,
    /// its commit included. At least one DEK is
    /// rewrapped per call, so the rewrap always advances; the keys selected and not reached are
    /// left for the next call. Only the 32-byte DEKs are unwrapped and re-sealed; no field value
    /// is decrypted. Returns how many were rewrapped (0 when none remain). Safe to stop at any
    /// moment: each batch commits whole, and the next call carries on from what the database says.
    @discardableResult
    public func rewrapBatch(limit: Int = 1000, budget: Duration? = nil) throws -> Int {
        try requireDataDirectoryLock("the rewrap")
        let shared = configuration.store.isShared
        let count = try Self.storageCall {
            try store.writeUnchained { tx -> Int in
                // Another node may have rotated: never move keys back to an older version.
                if shared { adopt(try tx.kekRecords()) }
                let current = keys.currentKEKVersion
                // Only on SQLite does every command wait for the batch (its one writer). On a shared
                // store the rewrap stays out of the audit chain's lock, so only a command changing
                // or shredding one of the batch's subjects' keys (REKEY, SHRED) waits, and each row
                // is a round trip: with 2 ms batches, a node left 366 of MigrateTests' keys
                // unrewrapped after a minute.
                let deadline = shared ? nil : budget.map { ContinuousClock.now + $0 }
                let batch = try tx.subjectsNotWrapped(under: current, limit: limit)
                guard !batch.isEmpty else { return 0 }
                return try scratch.withScratch { scratch in
                    var done = 0
                    for (subject, wrapped) in batch {
                        try envelope.unwrapDEK(wrapped, subject: subject, in: scratch)
                        try tx.updateSubjectKey(subject, key: envelope.wrapDEK(subject: subject, in: scratch))
                        done += 1
                        if let deadline, ContinuousClock.now >= deadline { break }
                    }
                    return done
                }
            }
        }
        rewrapProgress.record(count)
        store.boundLog()
        return count
    }

    /// `REKEY subject`: a fresh DEK for one subject, and every field re-sealed under it, in one
    /// transaction (a cryptoperiod on DEKs, or a suspected leak).
    public func rekey(subject: String, as caller: Caller) throws -> Bool {
        try audited("REKEY", caller, subject: subject) { [self] tx, draft in
            try resolve(caller, in: tx, recordingIn: &draft).require(.operation(.keys), "REKEY")
            try SubjectID.validate(subject)
            guard let wrapped = try tx.subjectKey(subject) else { return false }
            let fields = try tx.allSealedFields(subject)
            // REKEY's own audit entry comes next: every field is re-sealed bound to it.
            let writeSeq = try (tx.lastAudit()?.seq ?? 0) + 1
            try scratch.withScratch { scratch in
                try envelope.unwrapDEK(wrapped, subject: subject, in: scratch)
                var plain = try fields.map {
                    try envelope.open($0.field, subject: subject, name: $0.name, in: scratch)
                }
                defer { for index in plain.indices { Random.wipe(&plain[index]) } }
                try tx.updateSubjectKey(subject, key: envelope.newDEK(subject: subject, in: scratch))
                for (field, value) in zip(fields, plain) {
                    try tx.upsertSealedField(
                        subject: subject, name: field.name,
                        sealed: envelope.seal(
                            value, subject: subject, field: field.name, writeSeq: writeSeq, in: scratch),
                        writeSeq: writeSeq)
                }
            }
            return true
        }
    }
}
