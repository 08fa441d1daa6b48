import CofferCore
import CofferProtocol
import Foundation
import NIOCore
import Synchronization

/// The server's answers to the monitoring commands (INFO, CLIENT LIST, CONFIG GET) once the
/// vault core has allowed them: figures of the request path, the connections and the vault,
/// with Redis's field names where they mean the same. No value, subject, secret or client
/// name goes into INFO; CLIENT LIST (admin only) names connections' clients, never a secret.
final class ServerMonitor: Sendable {
    let registry: ConnectionRegistry
    var stats: ServerStats { registry.stats }
    let idleTimeoutSeconds: Int64
    /// The TCP port, once bound (0 without TCP).
    private let port = Atomic<Int>(0)
    private let started = ContinuousClock.now

    init(registry: ConnectionRegistry, idleTimeoutSeconds: Int64) {
        self.registry = registry
        self.idleTimeoutSeconds = idleTimeoutSeconds
    }

    func setTCPPort(_ value: Int) { port.store(value, ordering: .relaxed) }

    static let sections = ["server", "clients", "stats", "commandstats", "errorstats", "latencystats", "coffer"]
    static let defaultSections: Set<String> = ["server", "clients", "stats", "errorstats", "coffer"]

    /// The sections `INFO` names: none means the default ones; `all`, `everything` and
    /// `default` as in Redis; unknown names select nothing.
    static func selected(_ requested: [String]) -> [String] {
        if requested.isEmpty || requested.contains("default") {
            return sections.filter { defaultSections.contains($0) || requested.contains($0) }
        }
        if requested.contains("all") || requested.contains("everything") { return sections }
        return sections.filter(requested.contains)
    }

    /// INFO's text: `# Section` headers and `field:value` lines, ended by CRLF as Redis does.
    func info(sections requested: [String], vault: VaultInfo) -> String {
        var lines: [String] = []
        for section in Self.selected(requested) {
            if !lines.isEmpty { lines.append("") }
            lines.append("# " + section.prefix(1).uppercased() + section.dropFirst())
            lines += fields(section, vault: vault)
        }
        return lines.map { $0 + "\r\n" }.joined()
    }

    private func fields(_ section: String, vault: VaultInfo) -> [String] {
        let stats = self.stats
        switch section {
        case "server":
            return [
                "coffer_version:\(CommandDispatcher.version)",
                "redis_mode:standalone",
                "process_id:\(ProcessInfo.processInfo.processIdentifier)",
                "tcp_port:\(port.load(ordering: .relaxed))",
                // The threads that answer requests (`--event-loops`; the shared group is made with this many).
                "event_loops:\(NIOSingletons.groupLoopCountSuggestion)",
                "uptime_in_seconds:\((ContinuousClock.now - started).components.seconds)",
                "uptime_in_days:\((ContinuousClock.now - started).components.seconds / 86_400)",
            ]
        case "clients":
            return [
                "connected_clients:\(registry.count)",
                // Coffer has no blocking commands.
                "blocked_clients:0",
                "maxclients:\(registry.maximumClients)",
            ]
        case "stats":
            return [
                "total_connections_received:\(stats.connectionsReceived.load)",
                "total_commands_processed:\(stats.totalCommands)",
                "instantaneous_ops_per_sec:\(stats.opsPerSecond)",
                "rejected_connections:\(stats.connectionsRejected.load)",
                "evicted_clients:\(stats.connectionsEvicted.load)",
                "total_error_replies:\(stats.errorReplies)",
            ]
        case "commandstats":
            return CommandTable.labels.indices.compactMap { i in
                let calls = stats.calls(label: i)
                guard calls > 0 else { return nil }
                let usec = stats.microseconds(label: i)
                let rejected = stats.count(label: i, .denied) + stats.count(label: i, .invalid)
                let failed = stats.count(label: i, .failed)
                return "cmdstat_\(Self.redisName(i)):calls=\(calls),usec=\(usec),usec_per_call="
                    + String(format: "%.2f", Double(usec) / Double(calls))
                    + ",rejected_calls=\(rejected),failed_calls=\(failed)"
            }
        case "errorstats":
            return ServerStats.Outcome.errorWords.indices.compactMap { i in
                let count = stats.errors(i)
                return count > 0 ? "errorstat_\(ServerStats.Outcome.errorWords[i]):count=\(count)" : nil
            }
        case "latencystats":
            return CommandTable.labels.indices.compactMap { i in
                guard let p50 = stats.percentile(0.5, label: i), let p99 = stats.percentile(0.99, label: i),
                    let p999 = stats.percentile(0.999, label: i)
                else { return nil }
                return "latency_percentiles_usec_\(Self.redisName(i)):"
                    + String(format: "p50=%.3f,p99=%.3f,p99.9=%.3f", p50, p99, p999)
            }
        case "coffer":
            return [
                // INFO needs an authenticated client, and no client authenticates while the vault
                // is sealed: whoever reads this section reads it unsealed.
                "sealed:0",
                "kek_current_version:\(vault.currentKEKVersion)",
                "deks_pending_rewrap:\(vault.pendingRewrap)",
                "deks_rewrapped:\(vault.rewrapDone)",
                "audit_head_seq:\(vault.auditHeadSeq)",
                "subjects:\(vault.subjects)",
                "auth_failures:\(vault.authFailures)",
                "auth_lockouts:\(vault.lockouts)",
                "unknown_tokens:\(vault.unknownTokens)",
            ]
        default:
            return []
        }
    }

    /// A command's name in INFO: its label, which follows Redis's naming (`client|list`).
    static func redisName(_ index: Int) -> String { CommandTable.labels[index] }

    /// `CONFIG GET pattern`: the few settings that mean the same as Redis's, matched with
    /// Redis's glob (`*`, `?`). Nothing else is configurable at run time.
    func config(matching pattern: String) -> [(String, String)] {
        let settings: [(String, String)] = [
            ("maxclients", "\(registry.maximumClients)"),
            ("timeout", "\(idleTimeoutSeconds)"),
            ("port", "\(port.load(ordering: .relaxed))"),
            ("databases", "1"),
        ]
        return settings.filter { Self.glob(pattern.lowercased(), matches: $0.0) }
    }

    /// Redis's glob, enough for CONFIG GET: `*` any run, `?` any one character.
    static func glob(_ pattern: String, matches text: String) -> Bool {
        // Setting names are short; a long pattern matches none, and must not recurse deeply.
        guard pattern.count <= 64 else { return false }
        let p = Array(pattern)
        let t = Array(text)
        var memo: [Int: Bool] = [:]
        func match(_ i: Int, _ j: Int) -> Bool {
            if let known = memo[i * (t.count + 1) + j] { return known }
            let result: Bool
            if i == p.count {
                result = j == t.count
            } else if p[i] == "*" {
                result = match(i + 1, j) || (j < t.count && match(i, j + 1))
            } else {
                result = j < t.count && (p[i] == "?" || p[i] == t[j]) && match(i + 1, j + 1)
            }
            memo[i * (t.count + 1) + j] = result
            return result
        }
        return match(0, 0)
    }

    /// `CLIENT LIST`: one line per open connection, oldest first.
    func clientList() -> String {
        let now = NIODeadline.now().uptimeNanoseconds
        return registry.connections.map { $0.line(now: now) + "\n" }.joined()
    }
}
