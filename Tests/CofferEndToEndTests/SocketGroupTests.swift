import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The layout of `Deploy/coffer.service` (issue 10.8): the data directory stays 0700 and the
/// socket lives in a runtime directory of its own, 0750 and owned by the service's user and
/// group (`RuntimeDirectory=coffer`, `--socket /run/coffer/coffer.sock`), so a user in that group
/// can connect and any other user gets EACCES. Needs root, to create the users (CI runs as root),
/// and a `/` that other users may search (some sandboxes make it 0700; then no non-root process
/// can even load its shared libraries).
@Suite(
    .enabled(if: geteuid() == 0, "creates system users and groups: needs root"),
    .enabled(if: othersCanSearchTheRoot(), "/ is not searchable by other users here")
)
struct SocketGroupTests {
    /// Runs a program and returns its exit status and its stdout and stderr together.
    static func run(_ executable: String, _ arguments: [String]) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let out = Pipe()
        process.standardOutput = out
        process.standardError = out
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    @discardableResult
    static func must(_ executable: String, _ arguments: [String]) throws -> String {
        let (status, output) = try run(executable, arguments)
        guard status == 0 else { throw TestFailure("\(executable) \(arguments) failed (\(status)): \(output)") }
        return output
    }

    @Test func aUserInTheServiceGroupConnectsThroughTheRuntimeDirectoryAndOthersCannot() throws {
        let tag = String(UUID().uuidString.prefix(6)).lowercased()
        let group = "cofsock-\(tag)"
        let service = "cofsvc-\(tag)"
        let member = "cofin-\(tag)"
        let outsider = "cofout-\(tag)"
        let directory = TemporaryDirectory("socket-group")
        let root = directory.path
        var created: [String] = []
        var server: TestServer?
        // The server (running as the service user) stops first, then the users and group go.
        defer {
            server?.stop(signal: SIGKILL)
            for user in created.reversed() where user != group { _ = try? Self.run("/usr/sbin/userdel", [user]) }
            if created.contains(group) { _ = try? Self.run("/usr/sbin/groupdel", [group]) }
        }
        try Self.must("/usr/sbin/groupadd", ["--system", group])
        created.append(group)
        let nologin = ["--system", "--no-create-home", "--shell", "/usr/sbin/nologin"]
        try Self.must("/usr/sbin/useradd", nologin + ["--no-user-group", "--gid", group, service])
        created.append(service)
        try Self.must(
            "/usr/sbin/useradd", nologin + ["--no-user-group", "--gid", "nogroup", "--groups", group, member])
        created.append(member)
        try Self.must("/usr/sbin/useradd", nologin + ["--no-user-group", "--gid", "nogroup", outsider])
        created.append(outsider)

        // As systemd sets it up: the service owns its (0700) data directory and the runtime
        // directory, mode 0750, group-accessible.
        let run = root + "/run"
        try Self.must("/usr/bin/chown", ["\(service):\(group)", root])
        // Searchable by the group, as /run is: the directory was made with the test process's
        // umask, which SQLiteStore's open sets to 077 for a moment while other suites run in
        // the same process (then the group member was refused at this directory, not at the
        // socket: CI failed so on 2026-12-06).
        try Self.must("/usr/bin/chmod", ["0755", root])
        try Self.must("/usr/bin/install", ["-d", "-m", "0750", "-o", service, "-g", group, run])
        let socket = run + "/coffer.sock"
        let running = try TestServer(
            root: root, socket: socket,
            launcher: ["/usr/bin/setpriv", "--reuid=\(service)", "--regid=\(group)", "--init-groups", "--"])
        server = running

        var info = stat()
        #expect(stat(running.data, &info) == 0 && info.st_mode & 0o777 == 0o700, "the data directory stays 0700")
        #expect(stat(socket, &info) == 0)
        #expect(info.st_mode & 0o777 == 0o660)
        #expect(info.st_uid == getpwnam(service).pointee.pw_uid)
        #expect(info.st_gid == getgrnam(group).pointee.gr_gid)

        let inGroup = try Self.run("/usr/sbin/runuser", ["-u", member, "--", "redis-cli", "-s", socket, "PING"])
        #expect(inGroup.status == 0 && inGroup.output == "PONG\n", "\(inGroup)")
        let notInGroup = try Self.run("/usr/sbin/runuser", ["-u", outsider, "--", "redis-cli", "-s", socket, "PING"])
        #expect(notInGroup.status != 0)
        #expect(notInGroup.output.contains("Permission denied"), "\(notInGroup)")
        // The old layout's path, inside the 0700 data directory, is out of the group's reach.
        let dataSocket = try Self.run(
            "/usr/sbin/runuser", ["-u", member, "--", "redis-cli", "-s", running.data + "/coffer.sock", "PING"])
        #expect(dataSocket.output.contains("Permission denied"), "\(dataSocket)")
        #expect(running.stop() == 0)
        #expect(!FileManager.default.fileExists(atPath: socket), "the socket is removed at shutdown")
    }
}

private func othersCanSearchTheRoot() -> Bool {
    var info = stat()
    return stat("/", &info) == 0 && info.st_mode & 0o001 != 0
}
