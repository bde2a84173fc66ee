import ChipModel
import ChipPeer
import Foundation
import NIOConcurrencyHelpers
import Testing
import TestSupport
@testable import ChipDaemon
@testable import ChipStore

/// A clock tests move by hand: sleepers wake when `advance` passes their deadline.
final class ManualClock: SiteClock {
    private struct Sleeper {
        let deadline: Date
        let continuation: CheckedContinuation<Void, any Error>
    }
    private struct State {
        var now: Date
        var sleepers: [UInt64: Sleeper] = [:]
        var nextID: UInt64 = 0
    }
    private let state: NIOLockedValueBox<State>

    init(_ start: Date = Date(timeIntervalSince1970: 1_800_000_000)) { state = NIOLockedValueBox(State(now: start)) }

    var now: Date { state.withLockedValue { $0.now } }
    /// Tasks sleeping on this clock now.
    var sleeping: Int { state.withLockedValue { $0.sleepers.count } }

    func sleep(until deadline: Date) async throws {
        let id = state.withLockedValue { s -> UInt64 in
            s.nextID += 1
            return s.nextID
        }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (c: CheckedContinuation<Void, any Error>) in
                let result = state.withLockedValue { s -> Result<Void, any Error>? in
                    if Task.isCancelled { return .failure(CancellationError()) }
                    if deadline <= s.now { return .success(()) }
                    s.sleepers[id] = Sleeper(deadline: deadline, continuation: c)
                    return nil
                }
                if let result { c.resume(with: result) }
            }
        } onCancel: {
            let sleeper = state.withLockedValue { $0.sleepers.removeValue(forKey: id) }
            sleeper?.continuation.resume(throwing: CancellationError())
        }
    }

    func advance(by seconds: TimeInterval) {
        let due = state.withLockedValue { s -> [Sleeper] in
            s.now = s.now.addingTimeInterval(seconds)
            let now = s.now
            let due = s.sleepers.filter { $0.value.deadline <= now }
            for id in due.keys { s.sleepers[id] = nil }
            return Array(due.values)
        }
        for sleeper in due { sleeper.continuation.resume() }
    }
}

/// Counts the returns of `wait()` on a task of its own.
final class Waits: Sendable {
    private let count = NIOLockedValueBox(0)
    let task: Task<Void, Never>
    init(_ wake: WakeUp) {
        let count = self.count
        task = Task {
            while !Task.isCancelled {
                await wake.wait()
                count.withLockedValue { $0 += 1 }
            }
        }
    }
    var value: Int { count.withLockedValue { $0 } }
}

@Suite struct WakeUpTests {
    @Test func signalsCoalesceIntoOneWakeUp() async throws {
        let wake = WakeUp(clock: ManualClock())
        wake.signal()
        wake.signal()
        wake.signal()
        await wake.wait()  // returns at once: a signal is pending
        let waits = Waits(wake)
        defer { waits.task.cancel() }
        // Three signals gave one wake-up: the next wait sleeps.
        try await Task.sleep(for: .milliseconds(100))
        #expect(waits.value == 0)
        wake.signal()
        #expect(await eventually(5) { waits.value == 1 })
        try await Task.sleep(for: .milliseconds(100))
        #expect(waits.value == 1, "one signal, one wake-up")
    }

    @Test func aTimerFiresAtTheInjectedDeadlineAndTheEarliestWins() async throws {
        let clock = ManualClock()
        let wake = WakeUp(clock: clock)
        let waits = Waits(wake)
        defer { waits.task.cancel() }
        wake.schedule(at: clock.now.addingTimeInterval(10))
        wake.schedule(at: clock.now.addingTimeInterval(30))  // later: dropped
        #expect(wake.armedDeadline == clock.now.addingTimeInterval(10))
        #expect(await eventually(5) { clock.sleeping == 1 }, "one timer sleeps on the clock")
        clock.advance(by: 9.999)
        try await Task.sleep(for: .milliseconds(100))
        #expect(waits.value == 0, "not before the deadline")
        clock.advance(by: 0.001)
        #expect(await eventually(5) { waits.value == 1 }, "at the deadline")
        #expect(wake.armedDeadline == nil)

        // An earlier deadline replaces the armed one (whose timer is cancelled).
        wake.schedule(at: clock.now.addingTimeInterval(60))
        wake.schedule(at: clock.now.addingTimeInterval(5))
        #expect(await eventually(5) { clock.sleeping == 1 })
        clock.advance(by: 5)
        #expect(await eventually(5) { waits.value == 2 })
        clock.advance(by: 60)
        try await Task.sleep(for: .milliseconds(100))
        #expect(waits.value == 2, "the replaced timer does not fire")

        // A past deadline fires at once.
        wake.schedule(at: clock.now.addingTimeInterval(-1))
        #expect(await eventually(5) { waits.value == 3 })
    }

    @Test func cancellingTheWaiterAndClosingEndTheWait() async throws {
        let wake = WakeUp(clock: ManualClock())
        let returned = NIOLockedValueBox(false)
        let task = Task {
            await wake.wait()
            returned.withLockedValue { $0 = true }
        }
        try await Task.sleep(for: .milliseconds(50))
        #expect(!returned.withLockedValue { $0 })
        task.cancel()
        #expect(await eventually(5) { returned.withLockedValue { $0 } }, "cancellation ends the wait")

        let clock = ManualClock()
        let closing = WakeUp(clock: clock)
        closing.schedule(at: clock.now.addingTimeInterval(10))
        #expect(await eventually(5) { clock.sleeping == 1 })
        let waiter = Task { await closing.wait() }
        closing.close()
        await waiter.value
        #expect(await eventually(5) { clock.sleeping == 0 }, "close cancels the timer")
        await closing.wait()  // returns at once once closed
    }
}

/// The daemon sleeps while nothing happens, and wakes for what needs it.
@Suite(.serialized) struct IdleDaemonTests {
    @Test func anIdleDaemonRunsNoPasses() async throws {
        let dir = try TempDir()
        let a = try TestSite(dir: dir, name: "alice")
        try await a.start(watch: true)
        defer { Task { await a.stop() } }
        let daemon = try #require(a.daemon)
        #expect(await eventually(5) { daemon.passCount == 1 }, "the first pass at start")
        // The old loop ran a pass every second and looked for a poke every 4 ms.
        try await Task.sleep(for: .milliseconds(2500))
        #expect(daemon.passCount == 1, "no pass while nothing happens")
        #expect(daemon.wake.armedDeadline == nil, "no timer armed")
        for _ in 0..<10 { daemon.poke() }
        #expect(await eventually(5) { daemon.passCount >= 2 })
        try await Task.sleep(for: .milliseconds(300))
        #expect(daemon.passCount <= 3, "ten pokes in a row: one pass at once, at most one more for those during it")
    }

    @Test func aCommitFromAnotherConnectionWithoutAPokeWakesTheDaemon() async throws {
        let dir = try TempDir()
        let a = try TestSite(dir: dir, name: "alice"), b = try TestSite(dir: dir, name: "bob")
        try await a.start(watch: true)
        try await b.start()
        defer {
            Task {
                await a.stop(); await b.stop()
            }
        }
        let daemon = try #require(a.daemon)
        try a.addPartner(b, cuid: "alice", otherCuid: "bob")
        try b.addPartner(a, cuid: "bob", otherCuid: "alice")
        #expect(await eventually(5) { daemon.passCount == 1 })
        // The daemon's own commits do not change data_version: no pass for them.
        try a.store.enqueue(to: try b.chad("bob"), topic: "own", message: try a.message("own", from: "alice", to: b, toCuid: "bob"))
        try a.store.removeOutbox(id: try #require(try a.store.outbox(for: b.agent).first).id)
        try await Task.sleep(for: .milliseconds(300))
        #expect(daemon.passCount == 1, "own commits do not wake the daemon")
        // Another connection (a CLI command that could not poke) commits an intent.
        let cli = try SiteStore.open(at: a.path)
        try cli.enqueue(to: try b.chad("bob"), topic: "t", message: try a.message("unpoked", from: "alice", to: b, toCuid: "bob"))
        #expect(await eventually(5) { b.inbox.contains(action: "unpoked") }, "delivered without a poke")
        #expect(daemon.passCount >= 2)
    }

    @Test func aDialRetryRunsAtTheInjectedClocksDeadline() async throws {
        let dir = try TempDir()
        let a = try TestSite(dir: dir, name: "alice"), b = try TestSite(dir: dir, name: "bob")
        let clock = ManualClock()
        try await a.start(clock: clock, random: FixedRandom(0))
        defer { Task { await a.stop() } }
        let daemon = try #require(a.daemon)
        b.port = 1  // nobody listens: every dial fails at once
        try a.addPartner(b, cuid: "alice", otherCuid: "bob")
        try a.store.enqueue(to: try b.chad("bob"), topic: "t", message: try a.message("queued", from: "alice", to: b, toCuid: "bob"))
        daemon.poke()
        // The first failure: back-off 0.5 s × 0.5 (the injected jitter, its low end) = 0.25 s.
        #expect(await eventually(5) { (try? a.store.outbox(for: b.agent).first?.attempts) == 1 })
        #expect(await eventually(5) { daemon.wake.armedDeadline == clock.now.addingTimeInterval(0.25) })
        let passes = daemon.passCount
        clock.advance(by: 0.2)
        try await Task.sleep(for: .milliseconds(200))
        #expect(daemon.passCount == passes, "no pass before the back-off ends")
        clock.advance(by: 0.05)
        #expect(await eventually(5) { (try? a.store.outbox(for: b.agent).first?.attempts) == 2 }, "dialed again at the deadline")
        // The second failure doubles it: 1 s × 0.5.
        #expect(await eventually(5) { daemon.wake.armedDeadline == clock.now.addingTimeInterval(0.5) })
    }
}

/// A random source that always draws the same point of the range (0 = low end, 1 = high end).
struct FixedRandom: SiteRandom {
    let fraction: Double
    init(_ fraction: Double) { self.fraction = fraction }
    func double(in range: ClosedRange<Double>) -> Double { range.lowerBound + (range.upperBound - range.lowerBound) * fraction }
}
