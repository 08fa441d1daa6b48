#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// Paths as the operator typed them (relative, one character long, with trailing slashes, `.`
/// and `..`), handled with plain string work and POSIX calls. Foundation's path helpers are not
/// used: on Linux `deletingLastPathComponent` trapped on a one-character relative name, which
/// crashed `coffer init --data d` (issue 16.1).
enum LocalPath {
    /// `path` without its trailing slashes (`/` stays `/`), so that `lstat` looks at a symlink
    /// itself rather than at what it points to.
    static func trimmed(_ path: String) -> String {
        var result = Substring(path)
        while result.count > 1 && result.hasSuffix("/") { result = result.dropLast() }
        return String(result)
    }

    /// `directory` and `name` joined by exactly one slash.
    static func join(_ directory: String, _ name: String) -> String {
        let base = trimmed(directory)
        if base.isEmpty { return name }
        return base.hasSuffix("/") ? base + name : base + "/" + name
    }

    /// The directory that holds `path`'s last component: `a` → `.`, `/a` → `/`, `a/b/` → `a`.
    static func parent(_ path: String) -> String {
        let base = trimmed(path)
        guard let slash = base.lastIndex(of: "/") else { return "." }
        let head = trimmed(String(base[..<slash]))
        return head.isEmpty ? "/" : head
    }

    /// `path`'s last component: `a/b/` → `b`, `b` → `b`.
    static func lastComponent(_ path: String) -> String {
        let base = trimmed(path)
        guard let slash = base.lastIndex(of: "/") else { return base }
        return String(base[base.index(after: slash)...])
    }

    /// `path` made absolute against the working directory.
    static func absolute(_ path: String) throws(VaultError) -> String {
        if path.hasPrefix("/") { return path }
        guard let directory = getcwd(nil, 0) else {
            throw VaultError(.setup, "the working directory cannot be read: \(String(cString: strerror(errno)))")
        }
        defer { free(directory) }
        return join(String(cString: directory), path)
    }

    /// `realpath(3)` of an existing path, or nil.
    static func resolved(_ path: String) -> String? {
        guard let result = realpath(path, nil) else { return nil }
        defer { free(result) }
        return String(cString: result)
    }

    /// The absolute path `path` denotes, with every symlink of its existing part resolved and
    /// `.`, `..` and repeated slashes removed from the part that does not exist yet. Used to
    /// compare locations (is this inside that?), never to open anything.
    static func canonical(_ path: String) throws(VaultError) -> String {
        let full = try absolute(path)
        var existing = full
        var rest: [Substring] = []
        while true {
            if let real = resolved(existing) {
                var components = real.split(separator: "/")
                for part in rest.reversed() {
                    switch part {
                    case ".": continue
                    case "..": _ = components.popLast()
                    default: components.append(part)
                    }
                }
                return "/" + components.joined(separator: "/")
            }
            let name = trimmed(existing).split(separator: "/").last.map { Substring($0) } ?? ""
            rest.append(name)
            let up = parent(existing)
            if up == existing { return full }
            existing = up
        }
    }

    /// True if `path` is `container` or lies inside it (both canonical).
    static func isWithin(_ path: String, _ container: String) -> Bool {
        path == container || container == "/" || path.hasPrefix(container + "/")
    }

    /// Creates `directory` and any missing parents (like `mkdir -p`, mode 0777 less the umask).
    static func makeDirectories(_ directory: String) throws(VaultError) {
        let full = try absolute(directory)
        var prefix = ""
        for component in full.split(separator: "/") {
            prefix += "/" + component
            var info = stat()
            if stat(prefix, &info) == 0 && (info.st_mode & S_IFMT) == S_IFDIR { continue }
            if mkdir(prefix, 0o777) != 0 && errno != EEXIST {
                throw VaultError(.setup, "directory \(prefix) cannot be created: \(String(cString: strerror(errno)))")
            }
        }
    }
}
