import ChipModel
import TestSupport
import Testing
@testable import ChipProtocol

/// A referee site's store as the property runs need it: one decision per H,
/// insert only (what `storeRefereeDecision` asks of the real store).
struct RefereeBook {
    var decisions: [String: SignedDecision] = [:]

    /// Runs one request through the decider and "commits" it; returns what was answered.
    mutating func handle(_ m: LiftMessage, now: Int64) -> LiftMessage.Body? {
        let header: LiftHeader
        switch m.body {
        case .call(_, let h, _), .query(let h): header = h
        default: return nil
        }
        let d = Referee.decide(
            m, snapshot: Referee.Snapshot(site: Fx.site(Fx.refereeN), stored: decisions[header.hash]), now: now,
            key: Fx.siteKey(Fx.refereeN))
        for effect in d.effects {
            if case .storeRefereeDecision(let s, _) = effect, decisions[s.lift] == nil { decisions[s.lift] = s }
        }
        guard d.ignored == nil, case .lift(let answer)? = d.replies.first else { return nil }
        return answer.body
    }
}

@Suite struct RefereeTests {
    let header = Fx.header()
    var deadline: Int64 { header.deadlineMs }
    let asker = LiftParty.agent(Fx.agent(Fx.key(77)))
    var commit: LiftMessage {
        LiftMessage(
            to: .site(Fx.site(9)), from: asker, body: .call(.commit, header: header, sign: LiftAct.commit.sign(lift: header.hash, key: Fx.originKey)))
    }
    var abort: LiftMessage {
        LiftMessage(
            to: .site(Fx.site(9)), from: asker, body: .call(.abort, header: header, sign: LiftAct.abort.sign(lift: header.hash, key: Fx.originKey)))
    }
    var query: LiftMessage { LiftMessage(to: .site(Fx.site(9)), from: asker, body: .query(header: header)) }

    func decide(_ m: LiftMessage, stored: SignedDecision? = nil, now: Int64, site: Int = Fx.refereeN) -> Decision {
        Referee.decide(m, snapshot: Referee.Snapshot(site: Fx.site(site), stored: stored), now: now, key: Fx.siteKey(site))
    }

    func decision(_ d: Decision) -> SignedDecision? {
        guard case .lift(let m)? = d.replies.first, case .decision(let s, nil) = m.body else { return nil }
        return s
    }

    @Test func commitBeforeTheDeadlineIsGood() throws {
        let d = decide(commit, now: deadline - 1)
        let s = try #require(decision(d))
        #expect(s.result == .good)
        #expect(s.commit == LiftAct.commit.sign(lift: header.hash, key: Fx.originKey))
        #expect(s.problem(for: header) == nil)
        #expect(s.date == Fx.ts(deadline - 1))
        // Stored before any answer carries it, and answered on the request's channel to the asker.
        #expect(d.effects == [.storeRefereeDecision(s, deadline: header.deadline)])
        guard case .lift(let m)? = d.replies.first else { return }
        #expect(m.to == asker)
        #expect(m.from == .site(Fx.site(9)))
    }

    @Test func commitAtOrAfterTheDeadlineIsVoid() throws {
        for now in [deadline, deadline + 1, deadline + 86_400_000] {
            let s = try #require(decision(decide(commit, now: now)))
            #expect(s.result == .void)
            #expect(s.commit == nil)
        }
    }

    @Test func abortIsVoidAnyTime() throws {
        for now in [header.dateMs - 1000, deadline - 1, deadline + 5] {
            #expect(try #require(decision(decide(abort, now: now))).result == .void)
        }
    }

    @Test func queryBeforeTheDeadlineIsPendingAndStoresNothing() {
        let d = decide(query, now: deadline - 10_000)
        #expect(d.effects.isEmpty)
        guard case .lift(let m)? = d.replies.first, case .pending(let lift, nil, let retry) = m.body else {
            Issue.record("no pending: \(d)")
            return
        }
        #expect(lift == header.hash)
        #expect(retry == 11_000)  // until deadline + 1 s
        // A referee clock far behind still names at most 5 min, which askers read.
        let behind = decide(query, now: deadline - 3_600_000)
        guard case .lift(let far)? = behind.replies.first, case .pending(_, nil, let longest) = far.body else { return }
        #expect(longest == LiftLimits.maxRetryMs)
        #expect((try? LiftMessage(json: far.json)) == far)
    }

    @Test func queryAtTheDeadlineIsVoidAndStored() throws {
        let d = decide(query, now: deadline)
        let s = try #require(decision(d))
        #expect(s.result == .void)
        #expect(d.effects == [.storeRefereeDecision(s, deadline: header.deadline)])
    }

    @Test func theStoredDecisionIsAnsweredAsStored() throws {
        let stored = try #require(decision(decide(abort, now: deadline - 30_000)))
        for m in [commit, abort, query] {
            for now in [deadline - 20_000, deadline + 20_000] {
                let d = decide(m, stored: stored, now: now)
                #expect(d.effects.isEmpty)
                #expect(decision(d) == stored)
                #expect(decision(d)?.json.canonicalBytes == stored.json.canonicalBytes)
            }
        }
    }

    @Test func dropsWhatItMustNotDecide() throws {
        // Another referee named.
        #expect(decide(commit, now: deadline - 1, site: 3).ignored != nil)
        // An abort's signature offered as a commit, a commit signed by another key.
        let swapped = LiftMessage(
            to: .site(Fx.site(9)), from: asker,
            body: .call(.commit, header: header, sign: LiftAct.abort.sign(lift: header.hash, key: Fx.originKey)))
        #expect(decide(swapped, now: deadline - 1).ignored != nil)
        let forged = LiftMessage(
            to: .site(Fx.site(9)), from: asker,
            body: .call(.commit, header: header, sign: LiftAct.commit.sign(lift: header.hash, key: Fx.key(43))))
        #expect(decide(forged, now: deadline - 1).ignored != nil)
        // A commit for another lift's header.
        let other = Fx.header(uuid: "7a2d4b63-9e3f-4c8b-8d52-3f6e9a1b8c24")
        let otherCommit = LiftMessage(
            to: .site(Fx.site(9)), from: asker,
            body: .call(.commit, header: other, sign: LiftAct.commit.sign(lift: header.hash, key: Fx.originKey)))
        #expect(decide(otherCommit, now: deadline - 1).ignored != nil)
        // Past the keep period: a lift never seen.
        #expect(decide(query, now: deadline + LiftLimits.keepMs).ignored != nil)
        #expect(decide(query, now: deadline + LiftLimits.keepMs - 1).ignored == nil)
        // A signing key that is not the site's.
        #expect(
            Referee.decide(commit, snapshot: Referee.Snapshot(site: Fx.site(9), stored: nil), now: deadline - 1, key: Fx.siteKey(3)).ignored != nil)
        // Not a referee message.
        #expect(decide(LiftMessage(to: .site(Fx.site(9)), from: asker, body: .pending(lift: header.hash, hop: nil, retry: 1)), now: 0).ignored != nil)
    }

    /// Seeded: any interleaving of commit, abort and query around the
    /// deadline gives one decision per H, never changed, good exactly when
    /// the first request that decided was a commit before the deadline.
    @Test(arguments: 1...300) func oneDecisionNeverChanged(seed: Int) throws {
        var rng = SplitMix64(seed: UInt64(seed))
        var book = RefereeBook()
        let requests = [commit, abort, query]
        var first: (LiftMessage, Int64)?
        var answered: SignedDecision?
        for _ in 0..<Int.random(in: 1...12, using: &rng) {
            let m = requests[Int.random(in: 0..<3, using: &rng)]
            // Often exactly at the deadline and a millisecond either side.
            let offsets: [Int64] = [-1, 0, 1, Int64.random(in: -3000...3000, using: &rng)]
            let now = deadline + offsets[Int.random(in: 0..<offsets.count, using: &rng)]
            let before = book.decisions[header.hash]
            guard let body = book.handle(m, now: now) else {
                Issue.record("seed \(seed): a valid request was not answered")
                return
            }
            if before == nil, book.decisions[header.hash] != nil { first = (m, now) }
            switch body {
            case .decision(let d, nil):
                #expect(d == book.decisions[header.hash], "seed \(seed): answered other bytes than stored")
                if let answered { #expect(d == answered, "seed \(seed): the decision changed") }
                answered = d
            case .pending(_, nil, let retry):
                #expect(book.decisions[header.hash] == nil && now < deadline && retry > 0, "seed \(seed): pending after a decision")
            default:
                Issue.record("seed \(seed): unexpected answer \(body)")
            }
        }
        guard let (m, at) = first, let d = book.decisions[header.hash] else { return }
        let shouldBeGood = m.action == .commit && at < deadline
        #expect((d.result == .good) == shouldBeGood, "seed \(seed)")
        #expect(d.problem(for: header) == nil)
    }
}

@Suite struct DecisionApplyTests {
    let header = Fx.header()
    let alice = Fx.chad("alice", site: 1)  // ours
    let bob = Fx.chad("bob", site: 2)  // predecessor's user, hop 0
    let carol = Fx.chad("carol", site: 3)  // successor's user, hop 1

    var neighbours: [DecisionApply.Neighbour] {
        [
            DecisionApply.Neighbour(hop: 0, user: bob, ours: alice, successor: false, answered: true),
            DecisionApply.Neighbour(hop: 1, user: carol, ours: alice, successor: true, answered: true)
        ]
    }

    func fromBob(_ d: SignedDecision) -> LiftMessage { LiftMessage(to: .user(alice), from: .user(bob), body: .decision(d, hop: 0)) }
    func fromR(_ d: SignedDecision) -> LiftMessage {
        LiftMessage(to: .site(Fx.site(1)), from: .site(Fx.site(9)), body: .decision(d, hop: nil))
    }
    func snapshot(
        held: [SignedDecision] = [], known: Bool = true, neighbours n: [DecisionApply.Neighbour]? = nil, passed: Bool = false
    ) -> DecisionApply.Snapshot {
        DecisionApply.Snapshot(header: header, held: held, known: known, neighbours: n ?? neighbours, passed: passed)
    }
    func enqueued(_ d: Decision) -> [Int] {
        d.effects.compactMap {
            if case .enqueue(_, _, .lift(let m), _) = $0 { return m.hop }; return nil
        }
    }
    func acked(_ d: Decision) -> Bool {
        d.replies.contains {
            if case .lift(let m) = $0, case .ack(_, 0, _) = m.body { return true }; return false
        }
    }

    @Test func judge() {
        let good = Fx.decision(header, .good), void = Fx.decision(header, .void)
        let voidLater = Fx.decision(header, .void, at: Fx.t0 + 9000)
        #expect(DecisionApply.judge(good, header: header, held: []) == .apply(.good))
        #expect(DecisionApply.judge(void, header: header, held: []) == .apply(.void))
        #expect(DecisionApply.judge(voidLater, header: header, held: [void]) == .repeated)  // a different date alone
        #expect(DecisionApply.judge(good, header: header, held: [void]) == .upgrade)
        #expect(DecisionApply.judge(void, header: header, held: [good]) == .proof)
        #expect(DecisionApply.judge(void, header: header, held: [void, good]) == .repeated)
        if case .invalid = DecisionApply.judge(Fx.decision(header, .good, key: Fx.siteKey(4)), header: header, held: []) {
        } else {
            Issue.record("a decision not by R was taken")
        }
    }

    @Test func firstDecisionFromANeighbour() {
        let good = Fx.decision(header, .good)
        let d = DecisionApply.decide(fromBob(good), snapshot: snapshot())
        #expect(d.ignored == nil)
        #expect(d.effects.first == .applyLiftDecision(good))
        #expect(d.effects.contains(.dropOutbox(topic: LiftTopic.back(header.hash))))
        #expect(d.effects.contains(.dropOutbox(topic: LiftTopic.call(header.hash))))
        #expect(!d.effects.contains(.dropOutbox(topic: LiftTopic.promise(header.hash, hop: 1))))  // only a void drops the promise
        #expect(enqueued(d) == [1])  // not back to bob, who sent it
        #expect(acked(d))
    }

    @Test func voidFromRGoesToEveryNeighbourThatMayHaveIt() {
        let void = Fx.decision(header, .void)
        // The successor never answered our promise: it gets nothing.
        var n = neighbours
        n[1].answered = false
        let d = DecisionApply.decide(fromR(void), snapshot: snapshot(neighbours: n))
        #expect(d.effects.contains(.dropOutbox(topic: LiftTopic.promise(header.hash, hop: 1))))
        #expect(enqueued(d) == [0])
        #expect(d.replies.isEmpty)  // nobody acknowledges R's answers
        #expect(enqueued(DecisionApply.decide(fromR(void), snapshot: snapshot())).sorted() == [0, 1])
    }

    @Test func voidThenGoodIsGoodWithProof() {
        let good = Fx.decision(header, .good), void = Fx.decision(header, .void)
        let d = DecisionApply.decide(fromBob(good), snapshot: snapshot(held: [void]))
        #expect(d.effects.contains(.storeDecisionProof(void)))
        #expect(d.effects.contains(.applyLiftDecision(good)))
        #expect(d.effects.contains(.refereeEquivocated(referee: Fx.site(9).agent, lift: header.hash)))
        #expect(enqueued(d) == [1])
        #expect(acked(d))
    }

    @Test func goodThenVoidIsProofOnly() {
        let good = Fx.decision(header, .good), void = Fx.decision(header, .void)
        let d = DecisionApply.decide(fromBob(void), snapshot: snapshot(held: [good]))
        #expect(
            !d.effects.contains {
                if case .applyLiftDecision = $0 { return true }; return false
            })
        #expect(d.effects.contains(.storeDecisionProof(void)))
        #expect(enqueued(d).isEmpty)
        #expect(acked(d))
    }

    @Test func repeatsAndStrangers() {
        let void = Fx.decision(header, .void)
        let repeatD = DecisionApply.decide(fromBob(Fx.decision(header, .void, at: Fx.t0 + 7000)), snapshot: snapshot(held: [void], passed: true))
        #expect(repeatD.effects == [.dropOutbox(topic: LiftTopic.decision(header.hash, hop: 0))])
        #expect(acked(repeatD))
        // Applied from a chain entry and not yet passed on: it goes on now, once, to the others.
        let first = DecisionApply.decide(fromBob(void), snapshot: snapshot(held: [void], passed: false))
        #expect(enqueued(first) == [1] && first.effects.last == .setDecisionPassed(lift: header.hash))
        #expect(acked(first))
        // Neither record nor chit: not acknowledged, so the sender keeps it queued.
        let unknown = DecisionApply.decide(fromBob(void), snapshot: snapshot(known: false))
        #expect(unknown.ignored != nil && unknown.replies.isEmpty && unknown.effects.isEmpty)
        // Not valid: dropped unanswered.
        let bad = DecisionApply.decide(fromBob(Fx.decision(header, .void, key: Fx.siteKey(4))), snapshot: snapshot())
        #expect(bad.ignored != nil && bad.replies.isEmpty)
    }

    @Test func statusIsAnsweredWithTheDecisionOrPending() {
        let status = LiftMessage(to: .user(alice), from: .user(bob), body: .status(lift: header.hash, hop: 0))
        let void = Fx.decision(header, .void)
        let held = DecisionApply.status(status, held: [void])
        #expect(held.replies == [.lift(LiftMessage(to: .user(bob), from: .user(alice), body: .decision(void, hop: 0)))])
        let none = DecisionApply.status(status, held: [])
        #expect(none.replies == [.lift(LiftMessage(to: .user(bob), from: .user(alice), body: .pending(lift: header.hash, hop: 0, retry: 2000)))])
    }
}
