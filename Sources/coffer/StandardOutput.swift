import CofferCore
import Foundation

/// Secrets that exist nowhere else (an admin secret, key shares) go to stdout through this:
/// every byte is written or the call throws, where `print` drops them on a full or closed stdout
/// and `FileHandle.write(_:)` traps.
enum StandardOutput {
    static func write(_ text: String) throws {
        let bytes = Array(text.utf8)
        var offset = 0
        while offset < bytes.count {
            let written = bytes[offset...].withUnsafeBytes { Foundation.write(STDOUT_FILENO, $0.baseAddress, $0.count) }
            if written < 0 && errno == EINTR { continue }
            guard written > 0 else {
                throw VaultError(
                    .setup,
                    "standard output could not be written (\(String(cString: strerror(errno)))): nothing was kept")
            }
            offset += written
        }
    }
}
