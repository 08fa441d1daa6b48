import Synchronization

/// Guarded working memory for per-request keys (an unwrapped DEK, the keys derived from it).
///
/// `sodium_malloc` costs an mmap and two mprotects, far too much to pay per request, so
/// scratch buffers are allocated once, lent to one operation at a time by `KeyScratchPool`,
/// and wiped before they go back.
public final class KeyScratch: @unchecked Sendable {
    // @unchecked Sendable: a KeyScratch is only reachable through `KeyScratchPool.withScratch`,
    // which hands it to exactly one caller at a time (it is removed from the pool's free list
    // under the pool's mutex), so its memory is never touched by two threads at once.
    public static let slotLength = 32
    public static let slotCount = 3

    private let bytes: SecureBytes

    fileprivate init() throws {
        bytes = try SecureBytes(count: Self.slotLength * Self.slotCount)
    }

    /// Lends slot `index` (0..<slotCount) as 32 writable bytes.
    public func withSlot<R, E: Error>(_ index: Int, _ body: (UnsafeMutableRawBufferPointer) throws(E) -> R) throws(E)
        -> R
    {
        precondition(index >= 0 && index < Self.slotCount)
        return try bytes.withUnsafeMutableBytes { (all) throws(E) -> R in
            try body(
                UnsafeMutableRawBufferPointer(
                    rebasing: all[(index * Self.slotLength)..<((index + 1) * Self.slotLength)]))
        }
    }

    fileprivate func wipe() { bytes.wipe() }
}

public final class KeyScratchPool: Sendable {
    private let free = Mutex<[KeyScratch]>([])
    private let limit: Int

    /// At most `limit` idle buffers are kept; more may exist briefly under a burst.
    public init(limit: Int = 64) { self.limit = limit }

    public func withScratch<R, E: Error>(_ body: (KeyScratch) throws(E) -> R) throws -> R {
        let scratch = try free.withLock { $0.popLast() } ?? KeyScratch()
        defer {
            scratch.wipe()
            free.withLock { list in if list.count < limit { list.append(scratch) } }
        }
        return try body(scratch)
    }
}
