import CofferCrypto
import CofferStore
import Foundation
import Metrics
import Synchronization

/// How a command ended, as the audit trail records it.
public enum AuditOutcome: String, Sendable, Hashable {
    case ok
    case denied
    case invalid
    case error
    /// A consent-conditioned grant found no consent: the fields were answered as absent.
    case noConsent = "no-consent"
    /// DETOKENIZE or TOKEN.REVOKE named a token the vault does not know (never issued, revoked,
    /// or ended by SHRED or a new card).
    case unknownToken = "unknown-token"

    init(_ error: any Error) {
        switch (error as? VaultError)?.code {
        case .noPermission, .noAuth, .wrongPass, .noPurpose: self = .denied
        case .invalid: self = .invalid
        default: self = .error
        }
    }
}

/// What a command contributes to its audit entry; the log adds the sequence number, the time
/// and the MAC.
struct AuditDraft {
    var client: String
    var role: String
    var origin: String
    var command: String
    var subject: String?
    var fields: [String]
    var outcome: AuditOutcome = .ok
    var purpose: AccessPurpose? = nil
}

/// The tamper-evident audit trail: each entry carries
/// `MAC = BLAKE2b(audit.key, "coffer.audit.v1", previous MAC ‖ the entry's own columns)`, so
/// changing, deleting, inserting or reordering a stored entry breaks the chain from there on.
/// An entry that states a purpose is MACed under `coffer.audit.v2` with the purpose and ticket
/// as two more columns; one without keeps v1, so entries written before purposes existed still
/// verify, and removing or adding a purpose changes which MAC is expected: it breaks the chain.
struct AuditLog: Sendable {
    /// Made at first use, after `coffer serve` has chosen the metrics backend.
    static let appendTimer = Metrics.Timer(label: "coffer_audit_append_duration_seconds")

    static let label = "coffer.audit.v1"
    static let labelWithPurpose = "coffer.audit.v2"
    static let genesis = [UInt8](repeating: 0, count: 32)

    let key: SymmetricKey

    /// Fixed-width UTC with milliseconds (`2026-11-29T07:30:00.123Z`), formatted by hand: this
    /// runs once per command, and `String(format:)` was the largest cost of an audit append.
    /// Entries come many to a second, so the part up to the second is remembered from the last
    /// call (`gmtime_r` and its digits were 1.4 % of the committer's time per GET).
    static func timestamp(_ date: Date) -> String {
        let millis = Int64((date.timeIntervalSince1970 * 1000).rounded(.down))
        // Floored, so a time before 1970 has a second below it and milliseconds 0...999.
        let second = millis >= 0 ? millis / 1000 : (millis - 999) / 1000
        var out = lastSecond.withLock { last -> [UInt8] in
            if last.second != second {
                last = (second, secondPrefix(second))
            }
            return last.prefix
        }
        out.reserveCapacity(24)
        digits(Int(millis - second * 1000), 3, into: &out)
        out.append(UInt8(ascii: "Z"))
        return String(decoding: out, as: UTF8.self)
    }

    /// The second of the last timestamp and its text up to the decimal point.
    private static let lastSecond = Mutex<(second: Int64, prefix: [UInt8])>((.min, []))

    /// `2026-11-29T07:30:00.`
    private static func secondPrefix(_ second: Int64) -> [UInt8] {
        var seconds = time_t(second)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        var out = [UInt8]()
        out.reserveCapacity(24)
        digits(Int(parts.tm_year) + 1900, 4, into: &out)
        out.append(UInt8(ascii: "-"))
        digits(Int(parts.tm_mon) + 1, 2, into: &out)
        out.append(UInt8(ascii: "-"))
        digits(Int(parts.tm_mday), 2, into: &out)
        out.append(UInt8(ascii: "T"))
        digits(Int(parts.tm_hour), 2, into: &out)
        out.append(UInt8(ascii: ":"))
        digits(Int(parts.tm_min), 2, into: &out)
        out.append(UInt8(ascii: ":"))
        digits(Int(parts.tm_sec), 2, into: &out)
        out.append(UInt8(ascii: "."))
        return out
    }

    private static func digits(_ value: Int, _ width: Int, into out: inout [UInt8]) {
        var divisor = 1
        for _ in 1..<width { divisor *= 10 }
        var rest = value
        while divisor > 0 {
            out.append(UInt8(ascii: "0") + UInt8(rest / divisor % 10))
            rest %= divisor
            divisor /= 10
        }
    }

    func mac(previous: [UInt8], _ record: AuditRecord) throws -> [UInt8] {
        let withPurpose = record.purpose != nil || record.ticket != nil
        return try key.withUnsafeBytes { key in
            try KeyedHash.hash(key: key, label: withPurpose ? Self.labelWithPurpose : Self.label) { message in
                message.part(previous)
                message.part(String(record.seq).utf8)
                message.part(record.at.utf8)
                message.part(record.client.utf8)
                message.part(record.role.utf8)
                message.part(record.origin.utf8)
                message.part(record.command.utf8)
                Self.optional(record.subject, into: &message)
                message.part(record.fields.utf8)
                message.part(record.outcome.utf8)
                if withPurpose {
                    Self.optional(record.purpose, into: &message)
                    Self.optional(record.ticket, into: &message)
                }
            }
        }
    }

    /// An optional column: 1 and its bytes, or a lone 0 (so "" and nil differ).
    private static func optional(_ text: String?, into message: inout KeyedHash.Message) {
        if let text { message.part(tag: 1, text.utf8) } else { message.part(tag: 0, EmptyCollection<UInt8>()) }
    }

    /// Appends `draft` as the next entry, inside the caller's transaction.
    func append(_ draft: AuditDraft, in tx: any StoreWriting, now: Date = Date()) throws {
        let started = ContinuousClock.now
        defer { Self.appendTimer.record(duration: ContinuousClock.now - started) }
        let last = try tx.lastAudit()
        var record = AuditRecord(
            seq: (last?.seq ?? 0) + 1, at: Self.timestamp(now), client: draft.client, role: draft.role,
            origin: draft.origin, command: draft.command, subject: draft.subject,
            fields: draft.fields.joined(separator: ","), outcome: draft.outcome.rawValue, mac: [],
            purpose: draft.purpose?.purpose.rawValue, ticket: draft.purpose?.ticket)
        record.mac = try mac(previous: last?.mac ?? Self.genesis, record)
        try tx.appendAudit(record)
    }

    enum Verification: Equatable {
        case ok(count: Int)
        case tampered(seq: Int64, reason: String)
    }

    /// Walks the whole chain in pages.
    func verify(_ store: any VaultStore) throws -> Verification {
        var previous = Self.genesis
        var expected: Int64 = 1
        var count = 0
        while true {
            let page = try store.read { try $0.auditRecords(after: expected - 1, limit: 5000) }
            if page.isEmpty { return .ok(count: count) }
            for record in page {
                if record.seq != expected {
                    return .tampered(seq: expected, reason: "entry \(expected) is missing")
                }
                guard ConstantTime.equals(try mac(previous: previous, record), record.mac) else {
                    return .tampered(seq: record.seq, reason: "entry \(record.seq) does not match its MAC")
                }
                previous = record.mac
                expected += 1
                count += 1
            }
        }
    }

    /// One entry as a JSON object on one line (for AUDIT.TAIL and `coffer audit export`).
    static func json(_ record: AuditRecord) -> String {
        var object: [String: Any] = [
            "seq": record.seq, "at": record.at, "client": record.client, "role": record.role, "origin": record.origin,
            "command": record.command,
            "fields": record.fields.isEmpty ? [] : record.fields.split(separator: ",").map(String.init),
            "outcome": record.outcome, "mac": record.mac.map { String(format: "%02x", $0) }.joined(),
        ]
        object["subject"] = record.subject ?? NSNull()
        object["purpose"] = record.purpose ?? NSNull()
        object["ticket"] = record.ticket ?? NSNull()
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data("{}".utf8)
        return String(decoding: data, as: UTF8.self)
    }
}
