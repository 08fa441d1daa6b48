import CCofferSystem
import Foundation
import Logging

#if canImport(Glibc)
    import Glibc
#endif

/// Start-up hardening for `coffer serve`: no core dumps (they would hold keys and plaintext),
/// no ptrace attach by other processes of the same user, and no running as root by accident.
enum ProcessHardening {
    static func apply(allowRoot: Bool, logger: Logger) throws {
        var noCore = rlimit(rlim_cur: 0, rlim_max: 0)
        if setrlimit(Int32(RLIMIT_CORE.rawValue), &noCore) != 0 {
            logger.warning("could not disable core dumps (RLIMIT_CORE)", metadata: ["errno": "\(errno)"])
        }
        if coffer_set_non_dumpable() != 0 {
            logger.warning("could not mark the process non-dumpable (PR_SET_DUMPABLE)", metadata: ["errno": "\(errno)"])
        }
        if geteuid() == 0 && !allowRoot {
            throw CLIError(
                "refusing to run as root: run as a dedicated user (see Deploy/coffer.service), or pass --allow-root")
        }
        // libsodium locks guarded key pages with mlock; with a tiny RLIMIT_MEMLOCK that fails
        // silently and keys could be swapped out. Say so.
        let memlock = coffer_memlock_limit()
        if memlock >= 0 && memlock < 1024 * 1024 {
            logger.warning(
                "RLIMIT_MEMLOCK is below 1 MiB; key pages may not all be locked in memory (raise LimitMEMLOCK)",
                metadata: ["memlock.bytes": "\(memlock)"])
        }
    }
}
