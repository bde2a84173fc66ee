import Foundation

/// Waits for `condition` instead of sleeping a fixed time and hoping: checks
/// it every `interval` seconds until it holds or `timeout` seconds have
/// passed, and returns whether it held (checked once more at the deadline).
/// Use `#expect(waitUntil(timeout: 10) { … })` so a timeout fails the test.
public func waitUntil(timeout: Double, every interval: Double = 0.02, _ condition: () throws -> Bool) rethrows -> Bool {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
        if try condition() { return true }
        Thread.sleep(forTimeInterval: max(0, min(interval, deadline.timeIntervalSinceNow)))
    }
    return try condition()
}

/// `waitUntil` for async tests: sleeps with `Task.sleep`, so it blocks no thread.
public func waitUntil(timeout: Double, every interval: Double = 0.02, _ condition: () async throws -> Bool) async rethrows -> Bool {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
        if try await condition() { return true }
        try? await Task.sleep(for: .seconds(max(0, min(interval, deadline.timeIntervalSinceNow))))
    }
    return try await condition()
}

/// Milliseconds since 1970 on the wall clock: the clock the site's
/// timestamps (expiries, certificate dates) are written with.
public func wallClockMilliseconds() -> Int64 { Int64((Date().timeIntervalSince1970 * 1000).rounded(.down)) }
