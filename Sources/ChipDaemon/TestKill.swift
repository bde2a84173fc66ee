import ChipModel
import ChipProtocol
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// A test-only crash point (`CHIPSITE_TEST_KILL_AT`, doc/testing.md): serve
/// sends itself SIGKILL, once, at a chosen moment of a lift or of a
/// device's command, so an
/// end-to-end test can crash a real serve process exactly there. Nothing
/// sets it but that environment variable; a site never runs with it.
public enum TestKill: String, Sendable, CaseIterable {
    /// A lift `promise` arrived and is not handled yet (nothing stored).
    case promise
    /// A `promise` was handled and committed (chits pending, reservations
    /// made, the next promise or arrive queued); no answer has left yet.
    case reserved
    /// A referee's decision arrived (a `good` or `void` lift message, or a
    /// chain update carrying a decided lift chit) and is not applied yet.
    case decision
    /// As referee: a `commit` arrived and is not decided yet; for this
    /// site's own lift (it is its referee), the `arrive` or `refuse` that
    /// makes it call arrived and nothing of it is stored.
    case commit
    /// A device's command that changed something committed (with its reply
    /// in the cache) and the reply has not gone out (protocol 10.5).
    case reply
}

extension SiteEngine {
    /// Arms a test-only crash point (nil: none).
    public func setTestKill(_ k: TestKill?) { testKill = k }

    /// Dies (SIGKILL) if `k` is the armed crash point.
    func testKillPoint(_ k: TestKill, _ what: String) {
        guard testKill == k else { return }
        logger.critical("test: killed at \(k.rawValue) (CHIPSITE_TEST_KILL_AT)", metadata: ["message": "\(what)"])
        kill(getpid(), SIGKILL)
    }

    /// The crash points met before a lift message is handled.
    func testKillBefore(_ m: LiftMessage) {
        guard testKill != nil else { return }
        switch m.action {
        case .promise: testKillPoint(.promise, "promise")
        case .good, .void: testKillPoint(.decision, m.action.rawValue)
        case .commit: testKillPoint(.commit, "commit")
        case .arrive, .refuse:
            // An originator that is its lift's referee (chipsite's O names
            // itself) decides in the transaction of the answer that makes
            // it call (SiteStore.commitLift): that is its commit's moment.
            if testKill == .commit, (try? store.liftState(m.lift)) == .exec {
                testKillPoint(.commit, "the answer that makes this site, its lift's referee, call")
            }
        default: break
        }
    }

    /// The crash point met before a chain update is handled: one carrying a
    /// lift chit brings its lift's decision (9.5).
    func testKillBefore(_ m: SiteMessage) {
        guard testKill == .decision, case .chit = m, m.json.canonicalString.contains("\"decision\"") else { return }
        testKillPoint(.decision, "a chain update with a lift's decision")
    }
}
