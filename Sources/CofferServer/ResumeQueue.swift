import NIOCore

/// The connections of one event loop that used up their share of a turn (`ConnectionHandler.
/// requestsPerTurn`) with input left, served in rounds between the loop's polls of its sockets.
///
/// NIO runs, in one tick, every task that is due, including tasks that earlier tasks of the
/// tick queued. Had each connection queued its own resumption, a few connections flooding blank
/// lines would have kept one tick going until all their input was parsed, while every other
/// connection on the loop waited (a PING took 47 ms behind three of them). One task resumes
/// every waiting connection once, then, if any is still behind, queues the next round a little
/// after it ends: nothing is due then, so the tick ends and the loop serves its ready sockets
/// first.
final class ResumeQueue {
    /// The pause between rounds; a pipelining client meets it at most once per share.
    static let pause = TimeAmount.microseconds(20)

    private let loop: any EventLoop
    private var waiting: [ConnectionHandler] = []
    private var roundQueued = false
    private var running = false

    init(loop: any EventLoop) { self.loop = loop }

    /// Resumes `handler` in the next round.
    func add(_ handler: ConnectionHandler) {
        waiting.append(handler)
        if !running { queueRound() }
    }

    private func queueRound() {
        guard !roundQueued, !waiting.isEmpty else { return }
        roundQueued = true
        loop.assumeIsolated().scheduleTask(in: Self.pause) { [self] in
            roundQueued = false
            running = true
            let round = waiting
            waiting = []
            for handler in round { handler.resume() }
            running = false
            queueRound()
        }
    }
}
