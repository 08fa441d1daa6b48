import CofferCore
import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// How the CLI gets the root key of a sealed key directory: typed at the terminal by the share
/// holders (echo off), or, for a dev vault of one share only, read from a share file.
enum Unsealing {
    /// Every command's unsealer: asked only when a command opens the vault itself.
    static func unsealer(file: String?) -> @Sendable (SealManifest) throws -> RootKey {
        { manifest in try root(manifest, file: file) }
    }

    static func root(_ manifest: SealManifest, file: String?) throws -> RootKey {
        let state = SealState(manifest: manifest)
        if let file {
            let share = try readShareFile(file, manifest: manifest)
            guard case .unsealed(let root) = try state.submit(share) else {
                throw VaultError(.sealed, "the share in \(file) did not unseal the vault")
            }
            return root
        }
        guard isatty(STDIN_FILENO) == 1 else {
            throw VaultError(
                .sealed,
                "the key directory is sealed: run this at a terminal where \(manifest.threshold) share holders type their shares, or use the running server"
            )
        }
        note(
            "coffer: the key directory is sealed: \(manifest.threshold) of its \(manifest.shareCount) share holders type their shares (not shown)"
        )
        while true {
            let entered = state.status().entered
            let text = try readSecretLine(prompt: "share \(entered + 1) of \(manifest.threshold): ")
            let outcome: SealState.Outcome
            do { outcome = try state.submit(text) } catch {
                guard error.code == .invalid else { throw error }
                note("coffer: \(error.message); try again")
                continue
            }
            if case .unsealed(let root) = outcome { return root }
        }
    }

    /// A dev vault's share file, with a loud warning each time: whoever can read it and the key
    /// directory has every key, which is no better than raw key files and not dual control.
    /// Refused unless it is this user's regular file, mode 0600 or tighter, and the vault is a
    /// single-share one (a file cannot hold the quorum of a real one).
    static func readShareFile(_ path: String, manifest: SealManifest) throws -> String {
        guard manifest.threshold == 1, manifest.shareCount == 1 else {
            throw VaultError(
                .sealed,
                "--unseal-file is for a dev vault of one share; this vault needs \(manifest.threshold) of \(manifest.shareCount) shares, typed by their holders"
            )
        }
        let fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else {
            throw VaultError(.sealed, "unseal file \(path) cannot be opened: \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else {
            throw VaultError(.sealed, "unseal file \(path) is not a regular file")
        }
        guard info.st_mode & 0o077 == 0, info.st_uid == geteuid() else {
            throw VaultError(
                .sealed,
                "unseal file \(path) must be owned by the user coffer runs as and have mode 0600 (it has \(String(info.st_mode & 0o777, radix: 8)), uid \(info.st_uid))"
            )
        }
        var bytes = [UInt8](repeating: 0, count: 512)
        let n = bytes.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        guard n > 0 else { throw VaultError(.sealed, "unseal file \(path) is empty or unreadable") }
        defer { for index in bytes.indices { bytes[index] = 0 } }
        note(
            "coffer: WARNING: unsealing from \(path). Anyone who can read that file and the key directory has every key: this is a dev or automation convenience, not dual control"
        )
        return String(decoding: bytes[0..<n], as: UTF8.self)
    }

    /// A line from the terminal with echo off, restored whatever happens.
    static func readSecretLine(prompt: String) throws -> String {
        FileHandle.standardError.write(Data(prompt.utf8))
        var saved = termios()
        let isTerminal = tcgetattr(STDIN_FILENO, &saved) == 0
        if isTerminal {
            var quiet = saved
            quiet.c_lflag &= ~tcflag_t(ECHO)
            tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet)
        }
        defer {
            if isTerminal { tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved) }
            FileHandle.standardError.write(Data("\n".utf8))
        }
        guard let line = readLine(strippingNewline: true) else { throw VaultError(.sealed, "no share was entered") }
        return line
    }
}
