import Foundation
import NIOSSL
import PostgresNIO

/// A vault in a PostgreSQL database, shared by any number of `coffer serve` nodes. Named by a
/// libpq connection URI: `postgresql://USER[:PASSWORD]@[HOST][:PORT]/DB[?PARAMS]`, where the
/// host may also be a query parameter (`host=/run/postgresql`, a Unix-socket directory) and
/// `sslmode`, `sslrootcert`, `port`, `user`, `password` and `dbname` are understood as libpq
/// does. TLS is required, and the server's certificate verified, whenever the host is not a
/// Unix socket, unless the URI says otherwise with `sslmode`.
public struct PostgresLocation: StoreLocation {
    /// What the URI says, with the password kept out of `description`.
    public let host: String
    public let port: Int
    public let user: String
    let password: String?
    public let database: String
    public let sslMode: SSLMode
    let rootCertificate: String?

    public enum SSLMode: String, Sendable, CaseIterable {
        case disable, allow, prefer, require
        case verifyCA = "verify-ca"
        case verifyFull = "verify-full"
    }

    /// The URI forms `coffer` accepts, for messages.
    public static let form = "postgresql://USER@HOST[:PORT]/DB or postgresql://USER@/DB?host=/run/postgresql"

    public static func isURI(_ text: String) -> Bool {
        text.hasPrefix("postgresql://") || text.hasPrefix("postgres://")
    }

    /// libpq's other form: `host=/run/postgresql dbname=coffer user=coffer`, values quoted
    /// with `'…'` where they hold spaces (`\'` and `\\` inside).
    static func keywordValues(_ text: String) throws -> [String: String] {
        var parameters: [String: String] = [:]
        var rest = Substring(text)
        func skipSpaces() { rest = rest.drop { $0 == " " || $0 == "\t" || $0 == "\n" } }
        skipSpaces()
        while !rest.isEmpty {
            let key = rest.prefix { $0 != "=" && $0 != " " }
            rest = rest.dropFirst(key.count)
            skipSpaces()
            guard !key.isEmpty, rest.first == "=" else {
                throw StoreError("connection string: expected key=value at '\(key)'")
            }
            rest = rest.dropFirst()
            skipSpaces()
            var value = ""
            if rest.first == "'" {
                rest = rest.dropFirst()
                var closed = false
                while let c = rest.first {
                    rest = rest.dropFirst()
                    if c == "\\", let next = rest.first {
                        value.append(next)
                        rest = rest.dropFirst()
                    } else if c == "'" {
                        closed = true
                        break
                    } else {
                        value.append(c)
                    }
                }
                guard closed else { throw StoreError("connection string: unterminated quoted value of \(key)") }
            } else {
                value = String(rest.prefix { $0 != " " && $0 != "\t" && $0 != "\n" })
                rest = rest.dropFirst(value.count)
            }
            parameters[String(key)] = value
            skipSpaces()
        }
        return parameters
    }

    /// `password` (from `PGPASSWORD`) is used when the URI carries none. Takes both of libpq's
    /// forms: a URI, or `key=value` pairs.
    public init(uri: String, password fallback: String? = nil) throws {
        var parameters: [String: String] = [:]
        let components: URLComponents
        if Self.isURI(uri) {
            guard let parsed = URLComponents(string: uri) else {
                throw StoreError("not a valid PostgreSQL connection URI (\(Self.form))")
            }
            components = parsed
            for item in components.queryItems ?? [] {
                guard let value = item.value else {
                    throw StoreError("connection URI parameter \(item.name) has no value")
                }
                parameters[item.name] = value
            }
        } else if uri.contains("=") {
            parameters = try Self.keywordValues(uri)
            components = URLComponents()
        } else {
            throw StoreError("not a PostgreSQL connection URI (\(Self.form)) nor key=value pairs")
        }
        let known: Set = ["host", "port", "user", "password", "dbname", "sslmode", "sslrootcert", "application_name"]
        if let unknown = parameters.keys.sorted().first(where: { !known.contains($0) }) {
            throw StoreError(
                "connection URI parameter \(unknown) is not supported (supported: \(known.sorted().joined(separator: ", ")))"
            )
        }
        let host = parameters["host"] ?? components.percentEncodedHost.flatMap { $0.removingPercentEncoding } ?? ""
        self.host = host.isEmpty ? "/run/postgresql" : host
        if let text = parameters["port"] {
            guard let port = Int(text), (1...65535).contains(port) else {
                throw StoreError("connection URI port \(text) is not a port number")
            }
            self.port = port
        } else {
            self.port = components.port ?? 5432
        }
        guard let user = parameters["user"] ?? components.user, !user.isEmpty else {
            throw StoreError("connection URI names no user (\(Self.form))")
        }
        self.user = user
        self.password = parameters["password"] ?? components.password ?? fallback
        passwordInURI = parameters["password"] != nil || components.password != nil
        let path = components.path.hasPrefix("/") ? String(components.path.dropFirst()) : components.path
        guard let database = parameters["dbname"] ?? (path.isEmpty ? nil : path), !database.isEmpty else {
            throw StoreError("connection URI names no database (\(Self.form))")
        }
        self.database = database
        let isSocket = self.host.hasPrefix("/")
        if let text = parameters["sslmode"] {
            guard let mode = SSLMode(rawValue: text) else {
                throw StoreError(
                    "connection URI sslmode \(text) is not one of \(SSLMode.allCases.map(\.rawValue).joined(separator: ", "))"
                )
            }
            sslMode = mode
        } else {
            // A Unix socket never leaves the machine; anything else is encrypted and verified.
            sslMode = isSocket ? .disable : .verifyFull
        }
        if isSocket, sslMode != .disable, sslMode != .allow, sslMode != .prefer {
            throw StoreError("sslmode=\(sslMode.rawValue) asks for TLS, which a Unix-socket host does not use")
        }
        rootCertificate = parameters["sslrootcert"]
    }

    public var isUnixSocket: Bool { host.hasPrefix("/") }

    /// The password came in the URI itself, where `ps` shows it to every local user.
    public private(set) var passwordInURI = false

    public var description: String {
        "postgresql://\(user)@\(isUnixSocket ? "" : host)\(isUnixSocket ? "" : ":\(port)")/\(database)\(isUnixSocket ? "?host=\(host)&port=\(port)" : "")"
    }

    /// What the server's certificate is checked for, as libpq does: `verify-full` checks the
    /// chain and the host name, `verify-ca` the chain, and so does `require` when a root
    /// certificate file is given; `require` without one, `prefer` and `allow` check nothing.
    var verifiesChain: Bool {
        switch sslMode {
        case .verifyFull, .verifyCA: true
        case .require: rootCertificate != nil
        case .prefer, .allow, .disable: false
        }
    }

    var verifiesHostname: Bool { sslMode == .verifyFull }

    /// The TLS settings the URI asks for, nil for none (`disable`); `required` false means
    /// `prefer`/`allow` (a server without TLS is accepted).
    private func tlsSettings() -> (configuration: TLSConfiguration, required: Bool)? {
        guard !isUnixSocket, sslMode != .disable else { return nil }
        var tls = TLSConfiguration.makeClientConfiguration()
        switch (verifiesChain, verifiesHostname) {
        case (true, true): tls.certificateVerification = .fullVerification
        case (true, false): tls.certificateVerification = .noHostnameVerification
        case (false, _): tls.certificateVerification = .none
        }
        if let rootCertificate { tls.trustRoots = .file(rootCertificate) }
        return (tls, sslMode == .require || sslMode == .verifyCA || sslMode == .verifyFull)
    }

    /// postgres-nio's pool configuration for this URI.
    func clientConfiguration() throws -> PostgresClient.Configuration {
        var configuration: PostgresClient.Configuration
        if isUnixSocket {
            configuration = .init(
                unixSocketPath: socketPath, username: user, password: password, database: database)
        } else {
            let mode: PostgresClient.Configuration.TLS
            if let (tls, required) = tlsSettings() {
                mode = required ? .require(tls) : .prefer(tls)
            } else {
                mode = .disable
            }
            configuration = .init(
                host: host, port: port, username: user, password: password, database: database, tls: mode)
        }
        configuration.options.minimumConnections = 1
        configuration.options.maximumConnections = 8
        configuration.options.connectTimeout = .seconds(5)
        configuration.options.additionalStartupParameters = [("application_name", "coffer")]
        return configuration
    }

    /// The same for one connection: `PostgresStore` opens one first, so that a database that
    /// cannot be reached (or refuses TLS) is reported with its reason, not as a pool timeout.
    func connectionConfiguration() throws -> PostgresConnection.Configuration {
        if isUnixSocket {
            return .init(unixSocketPath: socketPath, username: user, password: password, database: database)
        }
        let mode: PostgresConnection.Configuration.TLS
        if let (tls, required) = tlsSettings() {
            let context = try NIOSSLContext(configuration: tls)
            mode = required ? .require(context) : .prefer(context)
        } else {
            mode = .disable
        }
        var configuration = PostgresConnection.Configuration(
            host: host, port: port, username: user, password: password, database: database, tls: mode)
        configuration.options.connectTimeout = .seconds(5)
        return configuration
    }

    var socketPath: String { host + "/.s.PGSQL.\(port)" }

    public var isShared: Bool { true }

    public var isOccupied: Bool {
        get throws { try PostgresStore.withTemporaryStore(self) { try $0.hasTables() } }
    }

    public func open(durability: StoreDurability) throws -> any VaultStore {
        let store = try PostgresStore(location: self, durability: durability)
        do {
            try store.migrate(creating: false)
        } catch {
            try? store.close()
            throw error
        }
        return store
    }

    public func create(durability: StoreDurability) throws -> any VaultStore {
        let store = try PostgresStore(location: self, durability: durability)
        do {
            guard try !store.hasTables() else {
                throw StoreError("database \(database) is not empty; refusing to touch it")
            }
            try store.migrate(creating: true)
        } catch {
            try? store.close()
            throw error
        }
        return store
    }

    public func destroyCreated() {
        try? PostgresStore.withTemporaryStore(self) { try $0.dropSchema() }
    }
}
