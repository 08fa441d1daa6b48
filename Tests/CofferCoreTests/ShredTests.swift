import CofferCore
import Foundation
import GRDB
import Testing

@Suite struct ShredTests {
    @Test func shredLeavesNoTraceInTheDataFiles() throws {
        let t = try TestVault()
        // Bulk both before and after, so the victim's pages are interior, not at the file's end.
        for i in 0..<200 { _ = try t.put("before-\(i)", [("name", "Person \(i)"), ("email", "p\(i)@example.com")]) }
        let email = "victim.\(UUID().uuidString.prefix(8))@example.com"
        let name = "VICTIM-\(UUID().uuidString)"
        let address = String(repeating: "long address line ", count: 300)  // spills to overflow pages
        _ = try t.put(
            "victim", [("name", name), ("email", email), ("phone", "+15550001234"), ("postal_address", address)])
        _ = try t.put("victim", [("card.pan", "4111111111111111")], as: TestVault.billing)
        _ = try t.put("victim", [("name", name + "-updated")])  // an older ciphertext existed too
        for i in 0..<200 { _ = try t.put("after-\(i)", [("name", "Person \(i)")]) }

        var secrets: [(String, [UInt8])] = [
            ("wrapped DEK", try #require(try t.fetchBlob("SELECT wrapped_dek FROM subject WHERE id='victim'")))
        ]
        for field in ["name", "email", "phone", "postal_address", "card.pan"] {
            let sealed = try #require(
                try t.fetchBlob("SELECT sealed FROM field WHERE subject_id='victim' AND name=?", [field]))
            secrets.append(("\(field) ciphertext", sealed))
        }
        for kind in ["email", "phone"] {
            secrets.append(
                (
                    "\(kind) index tag",
                    try #require(
                        try t.fetchBlob("SELECT tag FROM blind_index WHERE subject_id='victim' AND kind=?", [kind]))
                ))
        }
        // Sanity check of the scan itself: before the shred, every secret's first 40 bytes (nonce
        // and MAC, random) are found on disk. Long values span overflow pages, so afterwards every
        // 32-byte chunk is searched for, not only the whole value.
        try t.vault.close()
        let reopened = try Vault.open(t.configuration)
        for (what, bytes) in secrets {
            #expect(
                !(try DataFileScan.occurrences(of: Array(bytes.prefix(40)), under: t.configuration.dataDirectory))
                    .isEmpty, "\(what) not found before shred")
        }

        #expect(try reopened.shred(subject: "victim", as: TestVault.admin) == .wiped)
        #expect(try reopened.shred(subject: "victim", as: TestVault.admin) == .absent)
        for (what, bytes) in secrets {
            for start in stride(from: 0, to: bytes.count, by: 32) {
                let chunk = Array(bytes[start..<min(start + 32, bytes.count)])
                guard chunk.count >= 16 else { continue }
                let hits = try DataFileScan.occurrences(of: chunk, under: t.configuration.dataDirectory)
                #expect(hits.isEmpty, "\(what) bytes \(start)..<\(start + chunk.count) still present in \(hits)")
            }
        }
        for plaintext in [name, email, "+15550001234", "4111111111111111"] {
            #expect(
                try DataFileScan.occurrences(of: Array(plaintext.utf8), under: t.configuration.dataDirectory).isEmpty)
        }
        // Reads answer as if the subject never existed.
        #expect(try reopened.get(subject: "victim", fields: ["name"], as: TestVault.support) == [nil])
        #expect(try reopened.exists(subject: "victim", as: TestVault.support) == false)
        #expect(try reopened.find(.email, value: Array(email.utf8), as: TestVault.support).isEmpty)
        // Everyone else is intact.
        #expect(
            try reopened.get(subject: "before-7", fields: ["name"], as: TestVault.support) == [Array("Person 7".utf8)])
    }

    /// A reader holding an old snapshot (a long backup) used to make SHRED wait up to 100 s
    /// while holding the writer, stalling every client. Now SHRED answers at once, says the
    /// wipe is pending, nobody else waits, and once the reader lets go the wipe completes by
    /// itself and is audited; then no byte of the subject is left.
    @Test func aShredBehindALongReaderAnswersAtOnceAndWipesLater() throws {
        let t = try Self.vaultWithOthers()
        _ = try t.put("victim", [("name", "Victim Name"), ("email", "victim@example.com")])
        let dek = try #require(try t.fetchBlob("SELECT wrapped_dek FROM subject WHERE id='victim'"))
        // A reader that holds its snapshot, as a backup in progress does.
        let reader = try HeldReader(t)
        let outcome = try t.vault.shred(subject: "victim", as: TestVault.admin)
        #expect(outcome == .pending)
        // Others are not held up: a write and a read go through while the wipe waits.
        _ = try t.put("after", [("name", "After")])
        #expect(try t.get("after", ["name"], as: TestVault.support) == ["After"])
        #expect(try t.get("victim", ["name"], as: TestVault.support) == [nil])
        try reader.release()
        // The background checkpointer retries every 250 ms; poll with a deadline.
        let deadline = Date().addingTimeInterval(10)
        var audited = false
        while Date() < deadline && !audited {
            audited = try t.vault.auditTail(20, as: TestVault.admin).contains { $0.contains("SHRED.WIPED") }
            if !audited { usleep(50_000) }
        }
        #expect(audited, "the completed wipe was not audited")
        try Self.expectNoChunk(of: dek, under: t.configuration.dataDirectory)
    }

    /// A process that stops (or is killed) while a shred's wipe waits for a reader used to
    /// forget it: the wrapped key and every ciphertext stayed in the WAL, deep in a file the log
    /// no longer grows into, and `SHRED.WIPED` never came (found by an outside attack on
    /// 2026-12-07). The next process wipes as it opens, or once the reader lets go, and audits it.
    @Test func aWipeLeftPendingIsFinishedAndAuditedByTheNextProcess() throws {
        let t = try Self.vaultWithOthers()
        _ = try t.put("victim", [("name", "Victim Name"), ("email", "victim@example.com")])
        let dek = try #require(try t.fetchBlob("SELECT wrapped_dek FROM subject WHERE id='victim'"))
        let reader = try HeldReader(t)
        #expect(try t.vault.shred(subject: "victim", as: TestVault.admin) == .pending)
        try t.vault.close()

        // A command beside the server (no lock) leaves the wipe alone.
        let beside = try Vault.open(t.configuration)
        #expect(!beside.wipePending)
        try beside.close()
        // The next server opens while the reader still holds its snapshot.
        let next = try Vault.open(t.configuration, owner: .init(command: "test"))
        defer { try? next.close() }
        #expect(next.wipePending)
        try reader.release()
        let deadline = Date().addingTimeInterval(10)
        var wiped: [String] = []
        while Date() < deadline && wiped.isEmpty {
            wiped = try next.auditTail(20, as: TestVault.admin).filter { $0.contains("SHRED.WIPED") }
            if wiped.isEmpty { usleep(50_000) }
        }
        #expect(wiped.count == 1 && wiped.first?.contains("victim") == true, "\(wiped)")
        #expect(!next.wipePending)
        try Self.expectNoChunk(of: dek, under: t.configuration.dataDirectory)
        // Audited once: a later open has nothing left to take over.
        try next.close()
        let third = try Vault.open(t.configuration, owner: .init(command: "test"))
        defer { try? third.close() }
        #expect(!third.wipePending)
        #expect(try third.auditTail(50, as: TestVault.admin).filter { $0.contains("SHRED.WIPED") }.count == 1)
        let queue = try DatabaseQueue(path: t.configuration.dataDirectory + "/coffer.db")
        defer { try? queue.close() }
        #expect(try queue.read { try Int.fetchOne($0, sql: "SELECT count(*) FROM pending_wipe") } == 0)
    }

    /// A shred wiped at once owes nothing: no row is left for the next owner to audit again.
    @Test func aShredWipedAtOnceLeavesNothingOwed() throws {
        let t = try TestVault()
        _ = try t.put("victim", [("name", "Victim Name")])
        #expect(try t.vault.shred(subject: "victim", as: TestVault.admin) == .wiped)
        let queue = try DatabaseQueue(path: t.configuration.dataDirectory + "/coffer.db")
        #expect(try queue.read { try Int.fetchOne($0, sql: "SELECT count(*) FROM pending_wipe") } == 0)
        try queue.close()
        try t.vault.close()
        let next = try Vault.open(t.configuration, owner: .init(command: "test"))
        defer { try? next.close() }
        #expect(try next.auditTail(50, as: TestVault.admin).filter { $0.contains("SHRED.WIPED") }.isEmpty)
    }

    /// A command run offline while the server is stopped (`coffer clients`, `coffer keys`) opens
    /// and exits within moments: with no reader left, the wipe it owes is done, and audited,
    /// before `open` returns. It used to meet the background checkpointer's first pass, fail, and
    /// leave the wipe to a retry the command never lived to make (found by an outside attack).
    @Test func anOwnerWithNoReaderLeftWipesBeforeOpenReturns() throws {
        let t = try Self.vaultWithOthers()
        _ = try t.put("victim", [("name", "Victim Name")])
        let dek = try #require(try t.fetchBlob("SELECT wrapped_dek FROM subject WHERE id='victim'"))
        let reader = try HeldReader(t)
        #expect(try t.vault.shred(subject: "victim", as: TestVault.admin) == .pending)
        try t.vault.close()
        try reader.release()

        let offline = try Vault.open(t.configuration, owner: .init(command: "clients"))
        #expect(!offline.wipePending)
        #expect(try offline.auditTail(20, as: TestVault.admin).filter { $0.contains("SHRED.WIPED") }.count == 1)
        try offline.close()
        try Self.expectNoChunk(of: dek, under: t.configuration.dataDirectory)
    }

    /// A vault with 50 bystanders, so that a victim's pages are not the file's only ones.
    static func vaultWithOthers() throws -> TestVault {
        let t = try TestVault()
        for i in 0..<50 { _ = try t.put("other-\(i)", [("name", "Person \(i)")]) }
        return t
    }

    /// No 32-byte chunk of `bytes` in any file under `directory`.
    static func expectNoChunk(
        of bytes: [UInt8], under directory: String, sourceLocation: SourceLocation = #_sourceLocation
    ) throws {
        for start in stride(from: 0, to: bytes.count, by: 32) {
            let chunk = Array(bytes[start..<min(start + 32, bytes.count)])
            #expect(
                try DataFileScan.occurrences(of: chunk, under: directory).isEmpty, sourceLocation: sourceLocation)
        }
    }
}

/// A reader that holds its snapshot of the vault's database on a thread of its own, as a
/// backup in progress does, until `release()`.
final class HeldReader {
    private let queue: DatabaseQueue
    private let releasing = DispatchSemaphore(value: 0)
    private let finished = DispatchSemaphore(value: 0)

    init(_ t: TestVault) throws {
        queue = try DatabaseQueue(path: t.configuration.dataDirectory + "/coffer.db")
        let holding = DispatchSemaphore(value: 0)
        Thread { [queue, releasing, finished] in
            try? queue.read { db in
                _ = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM subject")
                holding.signal()
                releasing.wait()
            }
            finished.signal()
        }.start()
        holding.wait()
    }

    func release() throws {
        releasing.signal()
        finished.wait()
        try queue.close()
    }
}
