import Dispatch
import Foundation
import Synchronization

/// Counts shared by the load threads of one phase.
final class LoadCounters: Sendable {
    let ok = Atomic<Int>(0)
    let failed = Atomic<Int>(0)
    private let error = Mutex<String?>(nil)

    func fail(_ e: any Error) {
        failed.add(1, ordering: .relaxed)
        error.withLock { if $0 == nil { $0 = "\(e)" } }
    }
    var firstError: String? { error.withLock { $0 } }
}

/// What one load phase came to.
struct LoadResult {
    var ok: Int
    var failed: Int
    var seconds: Double
    var serverCPU: Double
    var clientCPU: Double
    var firstError: String?

    var perSecond: Double { seconds > 0 ? Double(ok) / seconds : 0 }
    /// Server CPU microseconds per completed operation.
    var serverMicros: Double { ok > 0 ? serverCPU * 1e6 / Double(ok) : 0 }
    /// Load-generator CPU microseconds per completed operation.
    var clientMicros: Double { ok > 0 ? clientCPU * 1e6 / Double(ok) : 0 }
}

enum Load {
    /// A thread gives up after this many failures in a row (the server is
    /// refusing or gone; counting on would only spin).
    static let maxConsecutiveFailures = 20

    /// Runs `body(thread)` on `threads` threads and waits for all of them, at
    /// most `limit` seconds; false if some thread was still running then.
    static func onThreads(_ threads: Int, limit: Double, _ body: @escaping @Sendable (Int) -> Void) -> Bool {
        let group = DispatchGroup()
        for t in 0..<threads {
            group.enter()
            let thread = Thread {
                body(t)
                group.leave()
            }
            thread.start()
        }
        return group.wait(timeout: .now() + limit) == .success
    }

    /// Repeats `op(thread, iteration)` on `threads` threads for `seconds`
    /// seconds, and measures the server's and this process's CPU meanwhile.
    /// Each `op` is bounded by its socket timeouts.
    static func repeated(
        threads: Int, seconds: Double, server: ServeChild, timeout: Double,
        _ op: @escaping @Sendable (Int, Int) throws -> Void
    ) -> LoadResult {
        let counters = LoadCounters()
        let serverStart = server.cpuSeconds() ?? 0
        let clientStart = ownCPUSeconds()
        let start = Date()
        let end = start.addingTimeInterval(seconds)
        let finished = onThreads(threads, limit: seconds + timeout + 10) { t in
            var i = 0, inARow = 0
            while Date() < end, inARow < maxConsecutiveFailures {
                do {
                    try op(t, i)
                    counters.ok.add(1, ordering: .relaxed)
                    inARow = 0
                } catch {
                    counters.fail(error)
                    inARow += 1
                }
                i += 1
            }
        }
        let elapsed = Date().timeIntervalSince(start)
        var result = LoadResult(
            ok: counters.ok.load(ordering: .relaxed), failed: counters.failed.load(ordering: .relaxed), seconds: elapsed,
            serverCPU: (server.cpuSeconds() ?? 0) - serverStart, clientCPU: ownCPUSeconds() - clientStart,
            firstError: counters.firstError)
        if !finished { result.firstError = (result.firstError ?? "") + " (a load thread did not finish in time)" }
        return result
    }
}
