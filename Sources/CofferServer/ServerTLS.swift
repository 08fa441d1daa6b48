import NIOCore
import NIOSSL

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// TLS for the TCP listener: the server's certificate chain and key, and optionally the CA that
/// client certificates must chain to (mutual TLS).
public struct ServerTLS: Sendable, Hashable {
    public var certificateChainPath: String
    public var privateKeyPath: String
    /// When set, every client must present a certificate issued by one of these CAs.
    public var clientCAPath: String?

    public init(certificateChainPath: String, privateKeyPath: String, clientCAPath: String? = nil) {
        self.certificateChainPath = certificateChainPath
        self.privateKeyPath = privateKeyPath
        self.clientCAPath = clientCAPath
    }

    /// TLS 1.2 suites allowed: forward-secret key exchange and AEAD only. (TLS 1.3's suites are all
    /// AEAD and BoringSSL does not let them be narrowed.) No RSA key exchange, no CBC, no SHA-1 MACs.
    static let cipherSuites = [
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-RSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        "ECDHE-RSA-CHACHA20-POLY1305",
    ].joined(separator: ":")

    /// Loads the files and builds the context, failing with a message that names the file at fault,
    /// so `coffer serve` refuses to start rather than serving without the TLS it was asked for.
    public func makeContext() throws -> NIOSSLContext {
        try Self.checkPrivateKeyMode(privateKeyPath)
        let chain: [NIOSSLCertificate]
        do { chain = try NIOSSLCertificate.fromPEMFile(certificateChainPath) } catch {
            throw ServerError("cannot load the TLS certificate chain \(certificateChainPath): \(Self.describe(error))")
        }
        guard !chain.isEmpty else {
            throw ServerError("the TLS certificate file \(certificateChainPath) holds no PEM certificate")
        }
        let key: NIOSSLPrivateKey
        do { key = try NIOSSLPrivateKey(file: privateKeyPath, format: .pem) } catch {
            throw ServerError("cannot load the TLS private key \(privateKeyPath): \(Self.describe(error))")
        }
        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key))
        if let clientCAPath {
            let roots: [NIOSSLCertificate]
            do { roots = try NIOSSLCertificate.fromPEMFile(clientCAPath) } catch {
                throw ServerError("cannot load the client CA file \(clientCAPath): \(Self.describe(error))")
            }
            guard !roots.isEmpty else {
                throw ServerError("the client CA file \(clientCAPath) holds no PEM certificate")
            }
            configuration.trustRoots = .certificates(roots)
            // Verify the chain; a server cannot check a client's host name.
            configuration.certificateVerification = .noHostnameVerification
            configuration.sendCANameList = true
        }
        configuration.minimumTLSVersion = .tlsv12
        configuration.cipherSuites = Self.cipherSuites
        configuration.renegotiationSupport = .none
        do { return try NIOSSLContext(configuration: configuration) } catch {
            throw ServerError(
                "cannot use \(certificateChainPath) with \(privateKeyPath) (does the key match the certificate?): \(Self.describe(error))"
            )
        }
    }

    /// The key is the one secret here that the vault does not keep in guarded memory, so at least
    /// refuse a file every local user can read, as ssh does. Group read stays allowed for the
    /// common root:coffer 0640 layout.
    static func checkPrivateKeyMode(_ path: String) throws {
        var info = stat()
        guard stat(path, &info) == 0 else {
            throw ServerError("cannot read the TLS private key \(path): \(String(cString: strerror(errno)))")
        }
        if info.st_mode & 0o007 != 0 {
            throw ServerError(
                "refusing the TLS private key \(path): other users can access it (mode \(String(info.st_mode & 0o777, radix: 8))); chmod o= it"
            )
        }
    }

    static func describe(_ error: any Error) -> String {
        switch error {
        case NIOSSLError.noSuchFilesystemObject: return "no such file"
        case NIOSSLError.failedToLoadCertificate: return "not a PEM certificate"
        case NIOSSLError.failedToLoadPrivateKey: return "not a PEM private key"
        case let error as IOError: return error.description
        default: return "\(error)"
        }
    }
}
