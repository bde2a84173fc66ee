import ChipModel
import Testing
@testable import ChipProtocol

/// Site 2 (bob, dave) between alice (site 1) and carol (site 3): alice pays
/// bob on T1 (bob owes her 500), bob pays carol on T2, bob pays dave on the
/// internal T3 (dave owes bob 400).
@Suite struct PromiseDialogTests {
    let t1 = Fx.tallyUUID, t2 = Fx.otherTallyUUID, t3 = "33333333-3333-4333-8333-333333333333"
    let alice = Fx.chad("alice", site: 1), bob = Fx.chad("bob", site: 2), carol = Fx.chad("carol", site: 3), dave = Fx.chad("dave", site: 2)
    var now: Int64 { Fx.t0 + 1000 }

    var inbound: PromiseDialog.Inbound {
        PromiseDialog.Inbound(
            core: Fx.tally(t1, stock: ("bob", 2), foil: ("alice", 1)), user: bob, partner: alice,
            half: LiftHalf(tally: t1, side: .stock, stockLimit: 1000, foilLimit: 1000, balance: -500))
    }
    func outgoing(carolLimit: Int64 = 700) -> RouteDiscovery.Foreign {
        RouteDiscovery.Foreign(
            uuid: t2, user: bob, partner: carol,
            half: LiftHalf(tally: t2, side: .foil, stockLimit: carolLimit, foilLimit: 1000, balance: 0))
    }
    var internalT3: RouteDiscovery.Internal {
        RouteDiscovery.Internal(
            uuid: t3, stock: bob.cuid, foil: dave.cuid,
            stockHalf: LiftHalf(tally: t3, side: .stock, stockLimit: 1000, foilLimit: 1000, balance: 400),
            foilHalf: LiftHalf(tally: t3, side: .foil, stockLimit: 1000, foilLimit: 1000, balance: 400))
    }

    func header(units: Int64 = 400, kind: LiftKind = .circ, path: [String]? = nil) -> LiftHeader {
        Fx.header(kind: kind, units: units, path: path, find: LiftFind(agent: Fx.site(2).agent, seal: "c2VhbGVk"))
    }
    func promise(_ h: LiftHeader, hop: Int = 0, signer: SigningKey = Fx.siteKey(1), tally: String? = nil) -> LiftMessage {
        let chit = (try? LiftChit.make(header: h, tally: tally ?? t1, by: .foil, agentKey: signer))!
        return LiftMessage(to: .user(bob), from: .user(alice), body: .promise(header: h, hop: hop, chit: chit))
    }
    func snapshot(_ change: (inout PromiseDialog.Snapshot) -> Void = { _ in }) -> PromiseDialog.Snapshot {
        var s = PromiseDialog.Snapshot(
            site: Fx.site(2), tallies: [inbound], foreign: [outgoing()], internalTallies: [internalT3],
            unlocked: [bob.cuid, dave.cuid])
        change(&s)
        return s
    }
    func decide(_ m: LiftMessage, _ s: PromiseDialog.Snapshot? = nil, at: Int64? = nil) -> Decision {
        PromiseDialog.decide(m, snapshot: s ?? snapshot(), now: at ?? now, key: Fx.siteKey(2))
    }
    func answer(_ d: Decision) -> LiftMessage.Body? {
        guard case .lift(let m)? = d.replies.first else { return nil }
        return m.body
    }
    func refusal(_ d: Decision) -> LiftRefusal? {
        if case .refuse(_, _, let r)? = answer(d) { return r }
        return nil
    }

    @Test func aRelayReservesAndPromisesOn() throws {
        let h = header()
        let d = decide(promise(h))
        #expect(answer(d) == .ack(lift: h.hash, hop: 0, of: .promise))
        guard case .promise(_, _, let inChit) = promise(h).body else { return }
        #expect(d.effects.first == .insertLiftChit(inChit, header: h, local: false))
        let out = try LiftChit.make(header: h, tally: t2, by: .foil, agentKey: Fx.siteKey(2))
        #expect(out.verify(in: Fx.tally(t2, stock: ("carol", 3), foil: ("bob", 2))))
        #expect(d.effects.contains(.insertLiftChit(out, header: h, local: true)))
        #expect(d.effects.contains(.insertLiftRecord(LiftRecord(header: h, role: .relay, state: .part, hop: 0, answer: .ack, outgoing: t2))))
        let next = LiftMessage(to: .user(carol), from: .user(bob), body: .promise(header: h, hop: 1, chit: out))
        #expect(d.effects.contains(.enqueue(to: carol, topic: LiftTopic.promise(h.hash, hop: 1), message: .lift(next), firstContact: false)))
    }

    @Test func repeatsGetTheStoredAnswer() {
        let h = header()
        let stored = decide(promise(h), snapshot { $0.answered = .refuse(.capacity) })
        #expect(stored.effects.isEmpty && refusal(stored) == .capacity)
        let held = decide(promise(h), snapshot { $0.holdsChit = true })
        #expect(held.effects.isEmpty && answer(held) == .ack(lift: h.hash, hop: 0, of: .promise))
    }

    @Test func invalidAndLateStoreNothing() {
        let h = header()
        let cases: [(String, LiftMessage, PromiseDialog.Snapshot)] = [
            ("signed by the user, not the agent", promise(h, signer: Fx.userKey("alice")), snapshot()),
            ("signed by another site", promise(h, signer: Fx.siteKey(3)), snapshot()),
            ("on the wrong hop", promise(h, hop: 1), snapshot()),
            ("a chit for another tally", promise(h, tally: t2), snapshot()),
            ("no open tally", promise(h), snapshot { $0.tallies = [] })
        ]
        for (what, m, s) in cases {
            let d = decide(m, s)
            #expect(refusal(d) == .invalid, "\(what)")
            #expect(d.effects.isEmpty, "\(what)")
        }
        var fromCarol = promise(h)
        fromCarol.from = .user(carol)
        #expect(decide(fromCarol).effects.isEmpty && refusal(decide(fromCarol)) == .invalid)
        let invalid = LiftMessage(to: .user(bob), from: .user(alice), body: .invalidPromise(lift: h.hash, hop: 0, why: "x", object: [:]))
        #expect(refusal(decide(invalid)) == .invalid && decide(invalid).effects.isEmpty)
        let late = decide(promise(h), at: h.deadlineMs)
        #expect(refusal(late) == .late && late.effects.isEmpty)
    }

    @Test func checkedRefusalsKeepTheChitAndRecordPart() {
        let h = header()
        let big = header(units: 501)  // bob owes alice only 500
        let cases: [(LiftRefusal, LiftHeader, Decision)] = [
            (.referee, h, decide(promise(h), snapshot { $0.acceptsReferee = false })),
            (.time, h, decide(promise(h), at: h.deadlineMs - 6999)),  // a relay with one hop left needs 7 s
            (.time, h, decide(promise(h), at: h.dateMs - LiftLimits.dateAheadMs - 1)),
            (.capacity, big, decide(promise(big))),
            (.busy, h, decide(promise(h), snapshot { $0.withPartner = LiftLimits.maxLiftsPerPartner })),
            (.route, h, decide(promise(h), snapshot { $0.record = LiftRecord(header: h, role: .relay, state: .part, hop: 3, answer: .ack) })),
            (.route, h, decide(promise(h), snapshot { $0.foreign = [] })),
            (.capacity, h, decide(promise(h), snapshot { $0.foreign = [outgoing(carolLimit: 399)] }))
        ]
        for (reason, h, d) in cases {
            #expect(refusal(d) == reason)
            #expect(d.effects.count == 2, "\(reason): the chit and the record")
            #expect(d.effects.last == .insertLiftRecord(LiftRecord(header: h, role: .relay, state: .part, hop: 0, answer: .refuse(reason))))
            #expect(
                !d.effects.contains {
                    if case .enqueue = $0 { return true }; return false
                })
        }
        // Exactly 7 s left is enough.
        #expect(answer(decide(promise(h), at: h.deadlineMs - 7000)) == .ack(lift: h.hash, hop: 0, of: .promise))
    }

    @Test func anAlreadyDecidedLiftTakesItsResult() {
        let h = header()
        let void = Fx.decision(h, .void)
        let d = decide(promise(h), snapshot { $0.decided = void })
        #expect(answer(d) == .ack(lift: h.hash, hop: 0, of: .promise))
        #expect(d.effects.count == 2 && d.effects.last == .applyLiftDecision(void))
    }

    @Test func theLinearTerminusArrives() throws {
        let h = header(kind: .line, path: [Fx.nonce(t1)])
        let seal = SealContents(qid: Fx.qid, cuid: dave.cuid, units: 400)
        let d = decide(promise(h), snapshot { $0.seal = seal })
        #expect(answer(d) == .ack(lift: h.hash, hop: 0, of: .promise))
        // Bob pays dave on T3 (bob the stock).
        let inside = try LiftChit.make(header: h, tally: t3, by: .stock, agentKey: Fx.siteKey(2))
        #expect(d.effects.contains(.insertLiftChit(inside, header: h, local: true)))
        #expect(d.effects.contains(.insertLiftRecord(LiftRecord(header: h, role: .terminus, state: .part, hop: 0, answer: .ack, internalHops: [t3]))))
        let arrive = d.effects.compactMap { e -> String? in
            if case .enqueue(let to, _, .lift(let m), _) = e, to == alice, case .arrive(_, 0, let sign) = m.body { return sign }
            return nil
        }
        #expect(arrive.count == 1)
        #expect(LiftAct.arrive.verify(arrive.first ?? "", lift: h.hash, publicKey: Fx.site(2).agent.publicKey))
        // Bob himself as the payee: no internal hop.
        let direct = decide(promise(h), snapshot { $0.seal = SealContents(qid: Fx.qid, cuid: bob.cuid, units: 400) })
        #expect(
            direct.effects.filter {
                if case .insertLiftChit = $0 { return true }; return false
            }.count == 1)
        // Seal that does not fit, a locked payee, and a payee too far.
        #expect(refusal(decide(promise(h), snapshot { $0.seal = nil })) == .route)
        #expect(refusal(decide(promise(h), snapshot { $0.seal = SealContents(qid: Fx.qid, cuid: dave.cuid, units: 401) })) == .route)
        #expect(
            refusal(
                decide(
                    promise(h),
                    snapshot {
                        $0.seal = seal; $0.unlocked = [bob.cuid]
                    })) == .route)
        let far = header(units: 1450, kind: .line, path: [Fx.nonce(t1)])
        #expect(refusal(decide(promise(far), snapshot { $0.seal = SealContents(qid: Fx.qid, cuid: dave.cuid, units: 1450) })) == .capacity)
    }

    @Test func theCircleComesHome() {
        let h = header(path: [Fx.nonce(t2), Fx.nonce(t1)])
        let d = decide(promise(h, hop: 1), snapshot { $0.record = LiftRecord(header: h, role: .origin, state: .exec, hop: nil, answer: nil) })
        #expect(answer(d) == .ack(lift: h.hash, hop: 1, of: .promise))
        #expect(d.effects.count == 1)  // without the origin key there is no call
        // O, still in exec: the check passes and it commits; a failed check aborts.
        let exec = LiftRecord(header: h, role: .origin, state: .exec, hop: nil, answer: nil)
        let o = decide(
            promise(h, hop: 1),
            snapshot {
                $0.record = exec; $0.originKey = Fx.originKey
            })
        #expect(o.effects.contains(.setLiftState(lift: h.hash, state: .call, call: .commit)))
        let big = header(units: 501, path: [Fx.nonce(t2), Fx.nonce(t1)])
        let bigExec = LiftRecord(header: big, role: .origin, state: .exec, hop: nil, answer: nil)
        let aborted = decide(
            promise(big, hop: 1),
            snapshot {
                $0.record = bigExec; $0.originKey = Fx.originKey
            })
        #expect(aborted.effects.contains(.setLiftState(lift: big.hash, state: .call, call: .abort)))
        #expect(answer(aborted) == .ack(lift: big.hash, hop: 1, of: .promise))
    }
}
