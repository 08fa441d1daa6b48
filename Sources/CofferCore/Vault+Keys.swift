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
    public func rotateKEK(as caller: Caller) throws -> UInt32 {
        try requireDataDirectoryLock("KEYS.ROTATE")
        let version = try audited("KEYS.ROTATE", caller) { [self] tx, draft -> UInt32 in
            try resolve(caller, in: tx, recordingIn: &draft).require(.operation(.keys), "KEYS.ROTATE")
            let known = try tx.kekRecords().map(\.version) + keys.kekVersions
            let version = (known.max() ?? 0) + 1
            let path = KeyDirectory.path(configuration.keyDirectory, KeyDirectory.kekFileName(version: version))
            // The file is durable before the database names it current, so a crash in between
            // (or a failed commit) leaves a newer unreferenced file, which the next open adopts.
            let key = try SymmetricKey.random()
            try KeyDirectory.writeKey(key, to: path)
            do {
                try KeyDirectory.syncDirectory(configuration.keyDirectory)
                try tx.setCurrentKEK(version, at: Date().timeIntervalSince1970)
            } catch {
                unlink(path)
                throw error
            }
            draft.fields = ["kek:\(version)"]
            keys.add(key, version: version, makeCurrent: false)
            return version
        }
        keys.setCurrent(version)
        logger.notice("KEK rotated", metadata: ["kek.current": "\(version)"])
        return version
    }

    /// `KEYS.STATUS`.
    public func keyStatus(as caller: Caller) throws -> KeyStatus {
        try audited("KEYS.STATUS", caller) { [self] tx, draft in
            try resolve(caller, in: tx, recordingIn: &draft).require(.operation(.keys), "KEYS.STATUS")
            let counts = try tx.dekCounts()
            let current = keys.currentKEKVersion
            let versions = try tx.kekRecords().map {
                KeyStatus.Version(version: $0.version, state: $0.state.rawValue, dataKeys: counts[$0.version] ?? 0)
            }
            let pending = counts.filter { $0.key != current }.values.reduce(0, +)
            return KeyStatus(current: current, versions: versions, pending: pending, rewrap: rewrapProgress.snapshot)
        }
    }

    /// `KEYS.RETIRE v`: refused while `v` is current or still wraps a DEK; otherwise the key
    /// file is overwritten and deleted and the version recorded as retired. From then on no
    /// copy of the data (a backup included) whose DEKs were wrapped only under `v` can be read.
    public func retireKEK(_ version: UInt32, as caller: Caller) throws {
        try requireDataDirectoryLock("KEYS.RETIRE")
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
            let wrapped = try tx.dekCounts()[version] ?? 0
            guard wrapped == 0 else {
                throw VaultError(
                    .invalid, "KEK version \(version) still wraps \(wrapped) data keys; wait for the rewrap to finish")
            }
            try tx.retireKEK(version, at: Date().timeIntervalSince1970)
            let path = KeyDirectory.path(configuration.keyDirectory, KeyDirectory.kekFileName(version: version))
            if FileManager.default.fileExists(atPath: path) { try KeyDirectory.destroyKey(at: path) }
            keys.remove(version: version)
        }
        logger.notice("KEK retired", metadata: ["kek.version": "\(version)"])
    }

    /// Rewraps up to `limit` DEKs that are not under the current KEK, in one transaction. Only
    /// the 32-byte DEKs are unwrapped and re-sealed; no field value is decrypted. Returns how
    /// many were rewrapped (0 when none remain). Safe to stop at any moment: each batch commits
    /// whole, and the next call carries on from what the database says.
    @discardableResult
    public func rewrapBatch(limit: Int = 1000) throws -> Int {
        try requireDataDirectoryLock("the rewrap")
        let count = try Self.storageCall {
            try store.write { tx -> Int in
                let current = keys.currentKEKVersion
                let batch = try tx.subjectsNotWrapped(under: current, limit: limit)
                guard !batch.isEmpty else { return 0 }
                try scratch.withScratch { scratch in
                    for (subject, wrapped) in batch {
                        try envelope.unwrapDEK(wrapped, subject: subject, in: scratch)
                        try tx.updateSubjectKey(subject, key: envelope.wrapDEK(subject: subject, in: scratch))
                    }
                }
                return batch.count
            }
        }
        rewrapProgress.record(count)
        store.boundWAL()
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
            try scratch.withScratch { scratch in
                try envelope.unwrapDEK(wrapped, subject: subject, in: scratch)
                var plain = try fields.map {
                    try envelope.open($0.sealed, subject: subject, field: $0.name, in: scratch)
                }
                defer { for index in plain.indices { Random.wipe(&plain[index]) } }
                try tx.updateSubjectKey(subject, key: envelope.newDEK(subject: subject, in: scratch))
                for (field, value) in zip(fields, plain) {
                    try tx.upsertSealedField(
                        subject: subject, name: field.name,
                        sealed: envelope.seal(value, subject: subject, field: field.name, in: scratch))
                }
            }
            return true
        }
    }
}
