import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

@Suite struct LockedMemoryTests {
    /// With RLIMIT_MEMLOCK at 0 (and, as root, without CAP_IPC_LOCK) no key page can be locked:
    /// the server says so at error level instead of leaving keys swappable in silence. The five
    /// are the four keys of a fresh vault and the root key they are sealed under.
    @Test func keysThatCannotBeLockedInMemoryAreReportedLoudly() throws {
        let root = CofferBinary.temporaryDirectory("memlock")
        #expect(try CofferBinary.run(["init", "--data", root + "/d", "--keys", root + "/k"]).status == 0)
        let process = Process()
        let serve =
            "ulimit -l 0 && exec \"$0\" serve --data \(root)/d --keys \(root)/k --unseal-file \(root)/k.share --no-socket --listen 127.0.0.1:0 --allow-root"
        if geteuid() == 0 {
            process.executableURL = URL(fileURLWithPath: "/usr/bin/setpriv")
            process.arguments = ["--bounding-set", "-ipc_lock", "--", "/bin/sh", "-c", serve, CofferBinary.path]
        } else {
            process.executableURL = URL(fileURLWithPath: "/bin/sh")
            process.arguments = ["-c", serve, CofferBinary.path]
        }
        let stderr = Pipe()
        process.standardError = stderr
        let collected = LinesCollector()
        try process.run()
        let reader = PipeReader(stderr.fileHandleForReading, into: collected)
        defer {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            reader.finish()
        }
        let deadline = Date().addingTimeInterval(20)
        while !collected.text.contains("coffer: ready") && process.isRunning && Date() < deadline { usleep(20_000) }
        #expect(collected.text.contains("coffer: ready"), "\(collected.text)")
        #expect(
            collected.text.contains(
                "error coffer: keys.unlocked=5 [CofferCore] keys could not be locked in memory and may be swapped to disk"
            ),
            "\(collected.text)")
    }
}
