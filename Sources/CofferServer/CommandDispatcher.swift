import CofferCore
import CofferProtocol
import Foundation
import Logging
import NIOPosix

/// Runs one parsed request for a session and produces its reply. It decides nothing about
/// access itself: every data and admin command goes to the vault core with the session's
/// caller, and the vault's single decision function answers.
struct CommandDispatcher: Sendable {
    let vault: Vault
    let threadPool: NIOThreadPool
    let logger: Logger

    static let version = "0.1.0"

    struct Reply {
        var value: RESPValue
        var close = false
    }

    func execute(_ request: RESPRequest, session: inout Session, limits: RESPLimitSwitch) async -> Reply {
        let reply = await respond(to: request, session: &session, limits: limits)
        // Tell the decoder the outcome: it may be holding requests back until AUTH is answered.
        limits.settle(authenticated: session.isAuthenticated)
        return reply
    }

    private func respond(to request: RESPRequest, session: inout Session, limits: RESPLimitSwitch) async -> Reply {
        let command: Command
        do {
            command = try CommandParser.parse(request)
        } catch let error as CommandError {
            // Anonymous connections learn nothing about the command set but that AUTH is needed.
            if !session.isAuthenticated { return Reply(value: .error("NOAUTH Authentication required.")) }
            return Reply(value: .error(error.description))
        } catch {
            return Reply(value: .error("ERR \(error)"))
        }
        guard session.isAuthenticated || command.allowedBeforeAuth else {
            return Reply(value: .error("NOAUTH Authentication required."))
        }
        do {
            return try await run(command, session: &session, limits: limits)
        } catch let error as VaultError {
            if error.code == .noAuth {
                // The client was revoked: the connection is anonymous from now on.
                session.client = nil
            }
            if error.code == .integrity || error.code == .storage {
                logger.error("command failed", metadata: ["command": "\(command.name)", "error": "\(error.code)"])
            }
            return Reply(value: .error(error.description))
        } catch {
            logger.error("command failed", metadata: ["command": "\(command.name)"])
            return Reply(value: .error("ERR internal error"))
        }
    }

    /// Vault work runs on the thread pool, never on an event loop or the cooperative pool.
    private func work<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await threadPool.runIfActive(body)
    }

    private func run(_ command: Command, session: inout Session, limits: RESPLimitSwitch) async throws -> Reply {
        let vault = self.vault
        let caller = session.caller
        switch command {
        case .ping(let message):
            return Reply(value: message.map { .bulkString($0) } ?? .simpleString("PONG"))
        case .echo(let message):
            return Reply(value: .bulkString(message))
        case .quit:
            return Reply(value: .simpleString("OK"), close: true)
        case .auth(let client, let secret):
            try await authenticate(client: client, secret: secret, session: &session, limits: limits)
            return Reply(value: .simpleString("OK"))
        case .hello(let version, let credentials, let clientName):
            if let version, version != 2 && version != 3 {
                return Reply(value: .error("NOPROTO unsupported protocol version"))
            }
            if let credentials {
                try await authenticate(
                    client: credentials.client, secret: credentials.secret, session: &session, limits: limits)
            }
            if let version { session.protocolVersion = version }
            if let clientName { session.connectionName = clientName }
            return Reply(value: helloReply(session))
        case .whoami:
            let role = try await work { try vault.role(of: caller) }
            return Reply(value: .array([.bulk(session.client ?? "-"), .bulk(role)]))
        case .put(let subject, let values):
            // The data commands go straight to the vault's group committer: the task waits, no thread does.
            let count = try await vault.put(subject: subject, values: values.map { ($0.field, $0.value) }, as: caller)
            return Reply(value: .integer(count))
        case .get(let subject, let fields):
            let values = try await vault.get(subject: subject, fields: fields, as: caller)
            return Reply(value: .array(values.map { $0.map(RESPValue.bulkString) ?? .null }))
        case .export(let subject):
            let pairs = try await vault.export(subject: subject, as: caller)
            return Reply(value: .map(pairs.map { (.bulk($0.field), .bulkString($0.value)) }))
        case .delete(let subject, let fields):
            return Reply(value: .integer(try await vault.delete(subject: subject, fields: fields, as: caller)))
        case .exists(let subject):
            return Reply(value: .integer(try await vault.exists(subject: subject, as: caller) ? 1 : 0))
        case .find(let kindName, let value):
            guard let kind = IndexKind(rawValue: kindName) else {
                return Reply(value: .error("ERR FIND takes 'email' or 'phone', not '\(kindName.prefix(32))'"))
            }
            let subjects = try await vault.find(kind, value: value, as: caller)
            return Reply(value: .array(subjects.map(RESPValue.bulk)))
        case .shred(let subject):
            return Reply(value: .integer(try await work { try vault.shred(subject: subject, as: caller) } ? 1 : 0))
        case .clientAdd(let name, let role):
            return Reply(value: .bulk(try await work { try vault.addClient(name: name, role: role, as: caller) }))
        case .clientList:
            let clients = try await work { try vault.listClients(as: caller) }
            return Reply(value: .array(clients.map { .bulk("\($0.name) \($0.role)\($0.locked ? " locked" : "")") }))
        case .clientRevoke(let name):
            return Reply(value: .integer(try await work { try vault.revokeClient(name: name, as: caller) } ? 1 : 0))
        case .keysRotate:
            let version = try await work { try vault.rotateKEK(as: caller) }
            return Reply(value: .integer(Int(version)))
        case .keysStatus:
            let status = try await work { try vault.keyStatus(as: caller) }
            return Reply(value: Self.statusReply(status))
        case .keysRetire(let version):
            try await work { try vault.retireKEK(version, as: caller) }
            return Reply(value: .simpleString("OK"))
        case .rekey(let subject):
            return Reply(value: .integer(try await work { try vault.rekey(subject: subject, as: caller) } ? 1 : 0))
        case .auditTail(let count):
            let lines = try await work { try vault.auditTail(count, as: caller) }
            return Reply(value: .array(lines.map(RESPValue.bulk)))
        case .auditVerify:
            switch try await work({ try vault.verifyAudit(as: caller) }) {
            case .verified(let count):
                return Reply(value: .simpleString("OK \(count) entries verified"))
            case .tampered(let seq, let reason):
                return Reply(value: .error("TAMPERED at seq \(seq): \(reason)"))
            }
        case .clientHousekeeping(let subcommand, let name):
            switch subcommand {
            case "SETNAME":
                session.connectionName = name
                return Reply(value: .simpleString("OK"))
            case "GETNAME":
                return Reply(value: session.connectionName.map(RESPValue.bulk) ?? .null)
            case "ID":
                return Reply(value: .integer(session.id))
            default:
                return Reply(value: .simpleString("OK"))
            }
        case .commandIntrospection:
            return Reply(value: .array([]))
        }
    }

    static func statusReply(_ status: KeyStatus) -> RESPValue {
        .map([
            (.bulk("current"), .integer(Int(status.current))),
            (
                .bulk("versions"),
                .array(
                    status.versions.map { .array([.integer(Int($0.version)), .bulk($0.state), .integer($0.dataKeys)]) })
            ),
            (.bulk("rewrap.pending"), .integer(status.pending)),
            (.bulk("rewrap.done"), .integer(status.rewrap.done)),
            (.bulk("rewrap.rate"), .bulk(String(format: "%.0f/s", status.rewrap.rate))),
            (.bulk("rewrap.state"), .bulk(status.pending == 0 ? "idle" : "running")),
        ])
    }

    /// Checks the secret in the vault core; failures are slowed in proportion to the run of
    /// failures against that name (capped), on top of the lock-out the core applies.
    private func authenticate(
        client: String, secret: [UInt8], session: inout Session, limits: RESPLimitSwitch
    ) async throws {
        let vault = self.vault
        let origin = session.origin
        let outcome = try await work { try vault.authenticate(client: client, secret: secret, origin: origin) }
        switch outcome {
        case .success:
            session.client = client
        case .failure(let failures):
            logger.notice("AUTH failed", metadata: ["connection": "\(session.id)"])
            try? await Task.sleep(for: .milliseconds(50 * min(failures, 10)))
            throw VaultError(.wrongPass, "invalid client name or secret, or the client is locked")
        }
    }

    private func helloReply(_ session: Session) -> RESPValue {
        var pairs: [(RESPValue, RESPValue)] = [
            (.bulk("server"), .bulk("coffer")),
            (.bulk("version"), .bulk(Self.version)),
            (.bulk("proto"), .integer(session.protocolVersion)),
            (.bulk("id"), .integer(session.id)),
            (.bulk("mode"), .bulk("standalone")),
            (.bulk("role"), .bulk("master")),
            (.bulk("modules"), .array([])),
        ]
        if let name = session.client { pairs.append((.bulk("client"), .bulk(name))) }
        return .map(pairs)
    }
}
