import Foundation
import NIOConcurrencyHelpers

/// The daemon's one wake-up source: `SiteDaemon.run()` waits here between
/// delivery passes and does nothing else while nothing happens.
///
/// - `signal()` asks for a pass now (a poke, a change of the site file by
///   another process, a channel opened, a send queue with room again).
///   Signals coalesce: any number of them before the next `wait()` give one
///   wake-up, so a burst costs one pass (plus one if it goes on during it).
/// - `schedule(at:)` asks for a pass at a deadline (a dial back-off, a retry
///   after an error). Only the earliest deadline is armed: every pass is a
///   full pass, and a pass that finds work not yet due arms its timer again
///   (`SiteEngine.startDial`), so a later deadline dropped here is never lost.
///
/// One task waits at a time (the daemon's run loop).
public final class WakeUp: Sendable {
    private struct State {
        /// A signal arrived while nobody waited; the next wait returns at once.
        var pending: Bool
        var waiter: CheckedContinuation<Void, Never>?
        /// The armed timer: its deadline, its task, and a number that tells
        /// a timer that fires after it was replaced to do nothing.
        var deadline: Date?
        var timer: Task<Void, Never>?
        var generation: UInt64 = 0
        var closed = false
    }
    private let state: NIOLockedValueBox<State>
    let clock: any SiteClock

    /// `pending`: whether the first wait returns at once (the daemon's
    /// first pass at start).
    public init(clock: any SiteClock = SystemClock(), pending: Bool = false) {
        self.clock = clock
        state = NIOLockedValueBox(State(pending: pending))
    }

    /// Asks for a pass now.
    public func signal() {
        let waiter = state.withLockedValue { s -> CheckedContinuation<Void, Never>? in
            guard let w = s.waiter else {
                s.pending = true
                return nil
            }
            s.waiter = nil
            return w
        }
        waiter?.resume()
    }

    /// Asks for a pass at `deadline` (at once for a past one). An earlier
    /// armed deadline stays; a later one is replaced.
    public func schedule(at deadline: Date) {
        let replaced = state.withLockedValue { s -> Task<Void, Never>? in
            guard !s.closed else { return nil }
            if let armed = s.deadline, armed <= deadline { return nil }
            let old = s.timer
            s.generation &+= 1
            let generation = s.generation
            s.deadline = deadline
            s.timer = Task { [clock, weak self] in
                do { try await clock.sleep(until: deadline) } catch { return }
                self?.fire(generation)
            }
            return old
        }
        replaced?.cancel()
    }

    /// Whether `close()` was called: waits no longer wait.
    public var isClosed: Bool { state.withLockedValue { $0.closed } }

    /// The armed deadline, if any (for tests and diagnostics).
    public var armedDeadline: Date? { state.withLockedValue { $0.deadline } }

    private func fire(_ generation: UInt64) {
        let current = state.withLockedValue { s -> Bool in
            guard s.generation == generation else { return false }
            s.deadline = nil
            s.timer = nil
            return true
        }
        if current { signal() }
    }

    /// Returns at the next wake-up: at once when a signal is pending (and
    /// consumes it), when the source is closed, or when the task is cancelled.
    public func wait() async {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                let (now, previous) = state.withLockedValue { s -> (Bool, CheckedContinuation<Void, Never>?) in
                    if s.pending || s.closed || Task.isCancelled {
                        s.pending = false
                        return (true, nil)
                    }
                    defer { s.waiter = c }
                    return (false, s.waiter)
                }
                previous?.resume()  // only one waiter: an earlier one is let go
                if now { c.resume() }
            }
        } onCancel: {
            let waiter = state.withLockedValue { s -> CheckedContinuation<Void, Never>? in
                defer { s.waiter = nil }
                return s.waiter
            }
            waiter?.resume()
        }
    }

    /// Stops the timer and lets the waiter go; every later wait returns at once.
    public func close() {
        let (timer, waiter) = state.withLockedValue { s -> (Task<Void, Never>?, CheckedContinuation<Void, Never>?) in
            s.closed = true
            s.deadline = nil
            defer { s.timer = nil; s.waiter = nil }
            return (s.timer, s.waiter)
        }
        timer?.cancel()
        waiter?.resume()
    }
}
