import Foundation

/// Where the engine and the daemon read the time and wait for it. `serve`
/// uses ``SystemClock``; tests pass a clock they move by hand, so that
/// back-offs, retries and expiries run without sleeping.
public protocol SiteClock: Sendable {
    /// Now, as wall-clock time.
    var now: Date { get }
    /// Returns once `now` has reached `deadline` (at once for a past one);
    /// throws `CancellationError` when the task is cancelled first.
    func sleep(until deadline: Date) async throws
}

extension SiteClock {
    /// Now in milliseconds since 1970 (the protocol's timestamps).
    public var milliseconds: Int64 { Int64((now.timeIntervalSince1970 * 1000).rounded(.down)) }
}

/// The machine's clock. A sleep is measured on the monotonic clock from
/// the wall-clock distance at its start, so a wall-clock step only moves
/// a timer by as much; a pass that wakes early finds the work not yet due
/// and arms its timer again.
public struct SystemClock: SiteClock {
    public init() {}
    public var now: Date { Date() }
    public func sleep(until deadline: Date) async throws {
        let seconds = deadline.timeIntervalSince(Date())
        if seconds > 0 { try await Task.sleep(for: .seconds(seconds)) }
        try Task.checkCancellation()
    }
}

/// Where the engine draws random numbers (the jitter of dial back-offs).
public protocol SiteRandom: Sendable {
    /// A uniformly drawn number in `range`.
    func double(in range: ClosedRange<Double>) -> Double
}

/// The system's random number generator.
public struct SystemRandom: SiteRandom {
    public init() {}
    public func double(in range: ClosedRange<Double>) -> Double { Double.random(in: range) }
}

/// The machine's clock moved by a fixed `offset` (seconds; a test's
/// `CHIPSITE_TEST_CLOCK_OFFSET_MS`, doc/testing.md): a serve process that
/// behaves as if that much time had passed, with no real wait. Sleeps are
/// measured as ``SystemClock``'s, from the distance to the moved clock.
public struct OffsetClock: SiteClock {
    public let offset: TimeInterval
    public init(offset: TimeInterval) { self.offset = offset }
    public var now: Date { Date().addingTimeInterval(offset) }
    public func sleep(until deadline: Date) async throws {
        try await SystemClock().sleep(until: deadline.addingTimeInterval(-offset))
    }
}
