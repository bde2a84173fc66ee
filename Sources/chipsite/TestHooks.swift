import ChipDaemon
import Foundation

/// Test-only hooks read from the environment (doc/testing.md), so that
/// end-to-end tests can run a real `serve` as if time had passed and crash
/// it at a chosen moment of a lift. Never set them on a real site.
enum TestHooks {
    /// `CHIPSITE_TEST_CLOCK_OFFSET_MS`: milliseconds added to the clock of
    /// `serve` (every timer, timestamp and deadline check) and of `doctor`'s
    /// lifts check. A whole number, ± at most 10 years; anything else is ignored.
    static var clockOffsetMs: Int64? {
        guard let text = ProcessInfo.processInfo.environment["CHIPSITE_TEST_CLOCK_OFFSET_MS"], let ms = Int64(text), ms != 0,
            abs(ms) <= 10 * 366 * 86_400_000
        else { return nil }
        return ms
    }

    /// `CHIPSITE_TEST_KILL_AT`: `promise`, `reserved`, `decision`, `commit`
    /// or `reply` (ChipDaemon `TestKill`): serve sends itself SIGKILL there, once.
    static var killAt: TestKill? {
        ProcessInfo.processInfo.environment["CHIPSITE_TEST_KILL_AT"].flatMap(TestKill.init(rawValue:))
    }
}
