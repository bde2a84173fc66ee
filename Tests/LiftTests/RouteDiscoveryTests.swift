import ChipModel
import Testing
@testable import ChipProtocol

/// Site 2 (S) with users bob and dave. Alice (site 1) pays bob on T1, where
/// bob owes alice 500. Bob can pay carol (site 3) on T2, and dave over the
/// internal tally T3, and dave can pay erin (site 4) on T4.
struct DiscoveryWorld {
    static let t1 = "11111111-1111-4111-8111-111111111111"
    static let t2 = "22222222-2222-4222-8222-222222222222"
    static let t3 = "33333333-3333-4333-8333-333333333333"
    static let t4 = "44444444-4444-4444-8444-444444444444"
    static let closing = "55555555-5555-4555-8555-555555555555"

    let alice = Fx.chad("alice", site: 1), bob = Fx.chad("bob", site: 2), carol = Fx.chad("carol", site: 3)
    let dave = Fx.chad("dave", site: 2), erin = Fx.chad("erin", site: 4)

    /// Bob as the stock on T1 with balance -500: alice's lift may clear 500 into his half.
    var t1: RouteDiscovery.Foreign {
        RouteDiscovery.Foreign(
            uuid: Self.t1, user: bob, partner: alice,
            half: LiftHalf(tally: Self.t1, side: .stock, stockLimit: 1000, foilLimit: 1000, balance: -500))
    }
    /// Bob as the foil on T2, carol's limit `carolLimit`.
    func t2(carolLimit: Int64 = 700) -> RouteDiscovery.Foreign {
        RouteDiscovery.Foreign(
            uuid: Self.t2, user: bob, partner: carol,
            half: LiftHalf(tally: Self.t2, side: .foil, stockLimit: carolLimit, foilLimit: 1000, balance: 0))
    }
    /// Dave as the foil on T4, erin's limit 900.
    var t4: RouteDiscovery.Foreign {
        RouteDiscovery.Foreign(
            uuid: Self.t4, user: dave, partner: erin,
            half: LiftHalf(tally: Self.t4, side: .foil, stockLimit: 900, foilLimit: 1000, balance: 0))
    }
    /// Bob the stock, dave the foil, dave owes bob `debt`: bob → dave carries `debt` circularly.
    func t3(debt: Int64 = 400) -> RouteDiscovery.Internal {
        RouteDiscovery.Internal(
            uuid: Self.t3, stock: bob.cuid, foil: dave.cuid,
            stockHalf: LiftHalf(tally: Self.t3, side: .stock, stockLimit: 1000, foilLimit: 1000, balance: debt),
            foilHalf: LiftHalf(tally: Self.t3, side: .foil, stockLimit: 1000, foilLimit: 1000, balance: debt))
    }

    func snapshot(
        foreign: [RouteDiscovery.Foreign]? = nil, seen: Bool = false, overLimit: Bool = false, accepts: Bool = true,
        seal: SealContents? = nil
    ) -> RouteDiscovery.Snapshot {
        RouteDiscovery.Snapshot(
            site: Fx.site(2).agent, foreign: foreign ?? [t1, t2(), t4], internalTallies: [t3()],
            unlocked: [bob.cuid, dave.cuid], seen: seen, overLimit: overLimit, acceptsReferee: accepts, seal: seal)
    }

    func query(
        kind: LiftKind = .circ, units: Int64 = 1000, min: Int64 = 100, ttl: Int64 = 3, wait: Int64 = 4000,
        find: RouteFind? = nil, path: [String]? = nil
    ) -> RouteMessage {
        RouteMessage(
            to: bob, from: alice,
            body: .query(
                RouteQuery(
                    qid: Fx.qid, kind: kind, units: units, min: min, ttl: ttl, wait: wait, referee: Fx.site(9),
                    find: find ?? .hop(Fx.nonce(Self.closing)), path: path ?? [Fx.nonce(Self.t1)])))
    }
}

@Suite struct RouteDiscoveryTests {
    let w = DiscoveryWorld()

    func noneReason(_ step: RouteDiscovery.Step) -> RouteNoneReason? {
        if case .answer(let m) = step, case .noRoute(_, let r) = m.body { return r }
        return nil
    }

    @Test func dropsAQueryNotOnItsHop() {
        let wrong = w.query(path: [Fx.nonce(DiscoveryWorld.t2)])
        if case .drop = RouteDiscovery.decide(wrong, snapshot: w.snapshot()) {} else { Issue.record("a query off its hop was answered") }
        var swapped = w.query()
        swapped.from = w.carol
        if case .drop = RouteDiscovery.decide(swapped, snapshot: w.snapshot()) {} else { Issue.record("a query from another user was answered") }
    }

    @Test func noneReasonsInOrder() {
        let q = w.query()
        #expect(noneReason(RouteDiscovery.decide(q, snapshot: w.snapshot(seen: true, accepts: false))) == .dup)
        #expect(noneReason(RouteDiscovery.decide(q, snapshot: w.snapshot(overLimit: true, accepts: false))) == .referee)
        #expect(noneReason(RouteDiscovery.decide(q, snapshot: w.snapshot(overLimit: true))) == .busy)
        #expect(noneReason(RouteDiscovery.decide(w.query(ttl: 5), snapshot: w.snapshot())) == .busy)
        #expect(noneReason(RouteDiscovery.decide(w.query(wait: 5001), snapshot: w.snapshot())) == .busy)
        // T1 clears at most 500 into bob's half.
        #expect(noneReason(RouteDiscovery.decide(w.query(min: 501), snapshot: w.snapshot())) == .noRoute)
        #expect(noneReason(RouteDiscovery.decide(w.query(min: 500), snapshot: w.snapshot())) == nil)
        #expect(noneReason(RouteDiscovery.decide(w.query(ttl: 0), snapshot: w.snapshot())) == .ttl)
        // 400 ms left: a forward would get 150 ms.
        #expect(noneReason(RouteDiscovery.decide(w.query(wait: 400), snapshot: w.snapshot())) == .time)
        #expect(noneReason(RouteDiscovery.decide(w.query(wait: 4000), snapshot: w.snapshot(), elapsed: 3600)) == .time)
        // Answers go back to the asker.
        if case .answer(let m) = RouteDiscovery.decide(q, snapshot: w.snapshot(seen: true)) {
            #expect(m.to == w.alice && m.from == w.bob && m.qid == Fx.qid)
        }
    }

    @Test func circularMatch() {
        // The closing hop is T2: bob pays carol, who is O's user.
        let q = w.query(find: .hop(Fx.nonce(DiscoveryWorld.t2)))
        guard case .answer(let m) = RouteDiscovery.decide(q, snapshot: w.snapshot()), case .good(_, let routes) = m.body else {
            Issue.record("no match")
            return
        }
        #expect(routes == [FoundRoute(path: [Fx.nonce(DiscoveryWorld.t1), Fx.nonce(DiscoveryWorld.t2)], max: 500)])
        // Carol's limit 300 caps the segment; under min it is no match, and there is nowhere else to go.
        let small = RouteDiscovery.decide(
            w.query(min: 301, find: .hop(Fx.nonce(DiscoveryWorld.t2))),
            snapshot: w.snapshot(foreign: [w.t1, w.t2(carolLimit: 300)]))
        #expect(noneReason(small) == .noRoute)
    }

    @Test func forwardsLargestFirstOverInternalHops() {
        guard case .forward(let forwards, let inbound, let within) = RouteDiscovery.decide(w.query(), snapshot: w.snapshot(), elapsed: 50) else {
            Issue.record("no forward")
            return
        }
        #expect(inbound == DiscoveryWorld.t1)
        #expect(within == 4000 - 100 - 50)
        // T2 carries min(500, 700) directly; T4 min(500, T3's 400, 900) through dave.
        #expect(forwards.map(\.tally) == [DiscoveryWorld.t2, DiscoveryWorld.t4])
        #expect(forwards.map(\.capacity) == [500, 400])
        #expect(forwards.map(\.internalHops) == [[], [DiscoveryWorld.t3]])
        guard case .query(let q) = forwards[1].message.body else { return }
        #expect(forwards[1].message.to == w.erin && forwards[1].message.from == w.dave)
        #expect(q.ttl == 2 && q.wait == 4000 - 250 - 50)
        #expect(q.path == [Fx.nonce(DiscoveryWorld.t1), Fx.nonce(DiscoveryWorld.t4)])
        // A min over T3's capacity leaves only T2.
        guard case .forward(let narrow, _, _) = RouteDiscovery.decide(w.query(min: 401), snapshot: w.snapshot()) else { return }
        #expect(narrow.map(\.tally) == [DiscoveryWorld.t2])
        // A full path is not extended.
        let full = [String](repeating: Fx.nonce("66666666-6666-4666-8666-666666666666"), count: 7) + [Fx.nonce(DiscoveryWorld.t1)]
        #expect(noneReason(RouteDiscovery.decide(w.query(path: full), snapshot: w.snapshot())) == .ttl)
    }

    @Test func fanOutIsFour() {
        let many = (0..<6).map { n in
            let uuid = "7777777\(n)-7777-4777-8777-777777777777"
            return RouteDiscovery.Foreign(
                uuid: uuid, user: w.bob, partner: Fx.chad("p\(n)", site: 10 + n),
                half: LiftHalf(tally: uuid, side: .foil, stockLimit: Int64(100 + 50 * n), foilLimit: 0, balance: 0))
        }
        guard case .forward(let forwards, _, _) = RouteDiscovery.decide(w.query(), snapshot: w.snapshot(foreign: [w.t1] + many)) else {
            Issue.record("no forward")
            return
        }
        #expect(forwards.count == LiftLimits.fanOut)
        #expect(forwards.map(\.capacity) == [350, 300, 250, 200])
    }

    /// A circular query goes first on the hops whose partner owes bob (only
    /// they can clear with the partner's default target of 0), however much
    /// more the others could carry into debt; a linear one by capacity alone.
    @Test func circularForwardsPreferHopsThatClear() {
        let many = (0..<6).map { n in
            let uuid = "7777777\(n)-7777-4777-8777-777777777777"
            return RouteDiscovery.Foreign(
                uuid: uuid, user: w.bob, partner: Fx.chad("p\(n)", site: 10 + n),
                half: LiftHalf(tally: uuid, side: .foil, stockLimit: Int64(100 + 50 * n), foilLimit: 0, balance: 0))
        }
        // Bob the stock, his partner owes him 150: a circle clears up to 150 here.
        let owed = "88888888-8888-4888-8888-888888888888"
        let clears = RouteDiscovery.Foreign(
            uuid: owed, user: w.bob, partner: Fx.chad("q", site: 20),
            half: LiftHalf(tally: owed, side: .stock, stockLimit: 1000, foilLimit: 0, balance: 150))
        let snapshot = w.snapshot(foreign: [w.t1] + many + [clears])
        guard case .forward(let circ, _, _) = RouteDiscovery.decide(w.query(), snapshot: snapshot) else {
            Issue.record("no forward")
            return
        }
        #expect(circ.map(\.tally).first == owed && circ.map(\.capacity) == [150, 350, 300, 250])
        let find = LiftFind(agent: Fx.site(9).agent, seal: "c2VhbGVk")
        guard case .forward(let line, _, _) = RouteDiscovery.decide(w.query(kind: .line, find: .payee(find)), snapshot: snapshot) else {
            Issue.record("no forward")
            return
        }
        #expect(line.map(\.capacity) == [350, 300, 250, 200])
    }

    @Test func linearTerminusAndForwarding() {
        let find = LiftFind(agent: Fx.site(2).agent, seal: "c2VhbGVk")
        let q = w.query(kind: .line, units: 300, min: 300, ttl: 5, find: .payee(find))
        let seal = SealContents(qid: Fx.qid, cuid: w.dave.cuid, units: 300)
        // Dave is reached over T3, which carries 400 for a linear lift too here.
        guard case .answer(let m) = RouteDiscovery.decide(q, snapshot: w.snapshot(seal: seal)), case .good(_, let routes) = m.body else {
            Issue.record("no match")
            return
        }
        #expect(routes == [FoundRoute(path: [Fx.nonce(DiscoveryWorld.t1)], max: 300)])
        // Any mismatch: none, never forwarded.
        for bad in [
            nil, SealContents(qid: Fx.qid, cuid: w.dave.cuid, units: 301),
            SealContents(
                qid: Fx.nonce(DiscoveryWorld.t1).prefix(22).description,
                cuid: w.dave.cuid, units: 300), SealContents(qid: Fx.qid, cuid: Fx.cuid("zed"), units: 300)
        ] {
            #expect(noneReason(RouteDiscovery.decide(q, snapshot: w.snapshot(seal: bad))) == .noRoute)
        }
        // Toward site 4: only the tally whose partner is there.
        let toErin = w.query(kind: .line, units: 300, min: 300, ttl: 5, find: .payee(LiftFind(agent: Fx.site(4).agent, seal: "c2VhbGVk")))
        guard case .forward(let forwards, _, _) = RouteDiscovery.decide(toErin, snapshot: w.snapshot()) else {
            Issue.record("no forward")
            return
        }
        #expect(forwards.map(\.tally) == [DiscoveryWorld.t4])
    }

    @Test func answerFoldsReplies() {
        let q = w.query()
        guard case .forward(let forwards, _, _) = RouteDiscovery.decide(q, snapshot: w.snapshot()) else { return }
        let p2 = [Fx.nonce(DiscoveryWorld.t1), Fx.nonce(DiscoveryWorld.t2)]
        let p4 = [Fx.nonce(DiscoveryWorld.t1), Fx.nonce(DiscoveryWorld.t4)]
        let x = Fx.nonce("88888888-8888-4888-8888-888888888888"), y = Fx.nonce("99999999-9999-4999-8999-999999999999")
        let replies: [String: RouteMessage] = [
            DiscoveryWorld.t2: RouteMessage(
                to: w.bob, from: w.carol,
                body: .good(
                    qid: Fx.qid,
                    routes: [
                        FoundRoute(path: p2 + [x, y], max: 450), FoundRoute(path: p2 + [x], max: 450),
                        FoundRoute(path: p4 + [x], max: 900)  // not what was sent on T2: ignored
                    ])),
            DiscoveryWorld.t4: RouteMessage(
                to: w.dave, from: w.erin,
                body: .good(
                    qid: Fx.qid,
                    routes: [
                        FoundRoute(path: p4 + [y], max: 1000), FoundRoute(path: p4 + [x], max: 50)  // under min
                    ]))
        ]
        guard let a = RouteDiscovery.answer(q, forwards: forwards, replies: replies), case .good(_, let routes) = a.body else {
            Issue.record("no answer")
            return
        }
        #expect(a.to == w.alice && a.from == w.bob)
        // Largest max first, then shortest; each capped by S's segment (T4's is 400).
        #expect(routes == [FoundRoute(path: p2 + [x], max: 450), FoundRoute(path: p2 + [x, y], max: 450), FoundRoute(path: p4 + [y], max: 400)])
        let none = RouteDiscovery.answer(q, forwards: forwards, replies: [:])
        #expect(none?.body == .noRoute(qid: Fx.qid, reason: .noRoute))
    }

    @Test func internalReachIsAtMostFourHops() {
        // u0 → u1 → … → u5 over five internal tallies, each carrying 100.
        let users = (0...5).map { Fx.cuid("u\($0)") }
        let tallies = (0..<5).map { n in
            let uuid = "aaaaaaa\(n)-aaaa-4aaa-8aaa-aaaaaaaaaaaa"
            return RouteDiscovery.Internal(
                uuid: uuid, stock: users[n], foil: users[n + 1],
                stockHalf: LiftHalf(tally: uuid, side: .stock, stockLimit: 0, foilLimit: 1000, balance: 100),
                foilHalf: LiftHalf(tally: uuid, side: .foil, stockLimit: 0, foilLimit: 1000, balance: 100))
        }
        let reached = RouteDiscovery.reach(from: users[0], width: 500, min: 50, kind: .circ, tallies)
        #expect(reached[users[4]]?.hops.count == 4)
        #expect(reached[users[4]]?.width == 100)
        #expect(reached[users[5]] == nil)
        #expect(RouteDiscovery.reach(from: users[0], width: 500, min: 101, kind: .circ, tallies).count == 1)
    }
}
