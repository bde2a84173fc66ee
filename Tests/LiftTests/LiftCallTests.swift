import ChipModel
import Testing
@testable import ChipProtocol

@Suite struct LiftCallTests {
    let alice = Fx.chad("alice", site: 1), bob = Fx.chad("bob", site: 2), carol = Fx.chad("carol", site: 3)
    /// A linear lift paying someone at site 3.
    let header = Fx.header(kind: .line, units: 400, find: LiftFind(agent: Fx.site(3).agent, seal: "c2VhbGVk"))
    var relay: LiftRecord { LiftRecord(header: header, role: .relay, state: .part, hop: 0, answer: .ack, outgoing: Fx.otherTallyUUID) }
    var origin: LiftRecord { LiftRecord(header: header, role: .origin, state: .exec, hop: nil, answer: nil) }
    var now: Int64 { Fx.t0 + 2000 }

    func relaySnapshot(answer: LiftAnswer? = nil) -> LiftCall.Snapshot {
        LiftCall.Snapshot(
            site: Fx.site(2), record: relay, promisedHop: 1, promiseAnswer: answer,
            predecessor: LiftCall.Predecessor(hop: 0, user: alice, ours: bob))
    }
    func originSnapshot(_ record: LiftRecord? = nil) -> LiftCall.Snapshot {
        LiftCall.Snapshot(site: Fx.site(1), record: record ?? origin, promisedHop: 1, originKey: Fx.originKey)
    }
    func fromCarol(_ body: LiftMessage.Body) -> LiftMessage { LiftMessage(to: .user(bob), from: .user(carol), body: body) }
    var arriveSign: String { LiftAct.arrive.sign(lift: header.hash, key: Fx.siteKey(3)) }

    func passedBack(_ d: Decision) -> [LiftMessage.Body] {
        d.effects.compactMap {
            if case .enqueue(let to, LiftTopic.back(header.hash), .lift(let m), _) = $0, to == alice { return m.body }; return nil
        }
    }
    func called(_ d: Decision) -> LiftAct? {
        for e in d.effects { if case .setLiftState(_, .call, let act) = e { return act } }
        return nil
    }

    @Test func aRelayPassesRefusalsBack() {
        // The promise's own answer: recorded, passed back with its reason, not acknowledged.
        let first = LiftCall.decide(fromCarol(.refuse(lift: header.hash, hop: 1, reason: .capacity)), snapshot: relaySnapshot(), now: now)
        #expect(first.effects.contains(.setPromiseAnswer(lift: header.hash, hop: 1, answer: .refuse(.capacity))))
        #expect(first.effects.contains(.dropOutbox(topic: LiftTopic.promise(header.hash, hop: 1))))
        #expect(passedBack(first) == [.refuse(lift: header.hash, hop: 0, reason: .capacity)])
        #expect(first.replies.isEmpty)
        // One from further on, after our promise was acknowledged: passed back and acknowledged.
        let later = LiftCall.decide(fromCarol(.refuse(lift: header.hash, hop: 1, reason: .route)), snapshot: relaySnapshot(answer: .ack), now: now)
        #expect(passedBack(later) == [.refuse(lift: header.hash, hop: 0, reason: .route)])
        #expect(later.replies.count == 1)
        #expect(
            !later.effects.contains {
                if case .setPromiseAnswer = $0 { return true }; return false
            })
    }

    @Test func aRelayPassesVerifiedArrivalsBack() {
        let d = LiftCall.decide(fromCarol(.arrive(lift: header.hash, hop: 1, sign: arriveSign)), snapshot: relaySnapshot(answer: .ack), now: now)
        #expect(passedBack(d) == [.arrive(lift: header.hash, hop: 0, sign: arriveSign)])
        #expect(d.replies == [.lift(LiftMessage(to: .user(carol), from: .user(bob), body: .ack(lift: header.hash, hop: 1, of: .arrive)))])
        // Not signed by find.agent: dropped.
        let forged = LiftAct.arrive.sign(lift: header.hash, key: Fx.siteKey(4))
        let bad = LiftCall.decide(fromCarol(.arrive(lift: header.hash, hop: 1, sign: forged)), snapshot: relaySnapshot(answer: .ack), now: now)
        #expect(bad.ignored != nil && bad.effects.isEmpty && bad.replies.isEmpty)
        // Another hop, or no record: not ours.
        #expect(LiftCall.decide(fromCarol(.arrive(lift: header.hash, hop: 2, sign: arriveSign)), snapshot: relaySnapshot(), now: now).ignored != nil)
        var none = relaySnapshot()
        none.record = nil
        #expect(LiftCall.decide(fromCarol(.arrive(lift: header.hash, hop: 1, sign: arriveSign)), snapshot: none, now: now).ignored != nil)
        // Decided already: acknowledged, not passed back.
        var decided = relaySnapshot(answer: .ack)
        decided.record?.state = .void
        let late = LiftCall.decide(fromCarol(.arrive(lift: header.hash, hop: 1, sign: arriveSign)), snapshot: decided, now: now)
        #expect(passedBack(late).isEmpty && late.replies.count == 1)
    }

    @Test func theOriginatorCalls() throws {
        let arrive = fromCarol(.arrive(lift: header.hash, hop: 1, sign: arriveSign))
        let d = LiftCall.decide(arrive, snapshot: originSnapshot(), now: now)
        #expect(called(d) == .commit)
        let toR = d.effects.compactMap { e -> LiftMessage? in
            if case .enqueueToReferee(let r, LiftTopic.call(header.hash), .lift(let m)) = e, r == header.referee { return m }
            return nil
        }
        #expect(toR.count == 1)
        guard case .call(.commit, let h, let sign)? = toR.first?.body else { return }
        #expect(h == header && header.verify(.commit, sign: sign))
        #expect(toR.first?.from == .site(Fx.site(1)) && toR.first?.to == .site(header.referee))
        // Under a second before the deadline: abort, never commit.
        #expect(called(LiftCall.decide(arrive, snapshot: originSnapshot(), now: header.deadlineMs - 999)) == .abort)
        #expect(called(LiftCall.decide(arrive, snapshot: originSnapshot(), now: header.deadlineMs - 1000)) == .commit)
        // Any refuse: abort.
        #expect(called(LiftCall.decide(fromCarol(.refuse(lift: header.hash, hop: 1, reason: .busy)), snapshot: originSnapshot(), now: now)) == .abort)
        // Called already: never both.
        var calledRecord = origin
        calledRecord.state = .call
        #expect(called(LiftCall.decide(arrive, snapshot: originSnapshot(calledRecord), now: now)) == nil)
        // A key that is not the lift's origin key calls nothing.
        var wrongKey = originSnapshot()
        wrongKey.originKey = Fx.key(43)
        #expect(called(LiftCall.decide(arrive, snapshot: wrongKey, now: now)) == nil)
    }

    @Test func theOriginatorsTimerAborts() {
        let s = originSnapshot()
        #expect(LiftCall.tick(origin, s, now: header.deadlineMs - 1000).isEmpty)
        #expect(LiftCall.tick(origin, s, now: header.deadlineMs - 999).first == .setLiftState(lift: header.hash, state: .call, call: .abort))
        var calledRecord = origin
        calledRecord.state = .call
        #expect(LiftCall.tick(calledRecord, s, now: header.deadlineMs).isEmpty)
    }

    @Test func timeoutQuerySchedule() {
        let deadline = header.deadlineMs, last: Int64 = 5_000_000
        #expect(LiftCall.nextQuery(deadline: deadline, attempt: 0, jitter: 500, lastAt: nil) == deadline + 2500)
        #expect(LiftCall.nextQuery(deadline: deadline, attempt: 0, jitter: 9999, lastAt: nil) == deadline + 4000)
        #expect(LiftCall.nextQuery(deadline: deadline, attempt: 1, jitter: 0, lastAt: last) == last + 2000)
        #expect(LiftCall.nextQuery(deadline: deadline, attempt: 2, jitter: 0, lastAt: last) == last + 4000)
        #expect(LiftCall.nextQuery(deadline: deadline, attempt: 8, jitter: 0, lastAt: last) == last + 256_000)
        #expect(LiftCall.nextQuery(deadline: deadline, attempt: 9, jitter: 0, lastAt: last) == last + 300_000)
        #expect(LiftCall.nextQuery(deadline: deadline, attempt: 500, jitter: 0, lastAt: last) == last + 300_000)
    }
}
