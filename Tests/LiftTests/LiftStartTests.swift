import ChipModel
import Testing
@testable import ChipProtocol

/// O is site 1 with alice and amy. Alice owes zed (site 4) 500 on TC; amy
/// owes alice 400 on the internal T3; alice can pay bob (site 2) on T0a and
/// amy carol (site 3) on T0b.
@Suite struct LiftStartTests {
    let tc = "cccccccc-cccc-4ccc-8ccc-cccccccccccc", t0a = "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa"
    let t0b = "bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb", t3 = "33333333-3333-4333-8333-333333333333"
    let alice = Fx.chad("alice", site: 1), amy = Fx.chad("amy", site: 1), bob = Fx.chad("bob", site: 2)
    let carol = Fx.chad("carol", site: 3), zed = Fx.chad("zed", site: 4)
    let pad = Fx.nonce("dddddddd-dddd-4ddd-8ddd-dddddddddddd")

    var foreign: [RouteDiscovery.Foreign] {
        [
            RouteDiscovery.Foreign(
                uuid: tc, user: alice, partner: zed,
                half: LiftHalf(tally: tc, side: .stock, stockLimit: 1000, foilLimit: 1000, balance: -500)),
            RouteDiscovery.Foreign(
                uuid: t0a, user: alice, partner: bob,
                half: LiftHalf(tally: t0a, side: .foil, stockLimit: 700, foilLimit: 1000, balance: 0)),
            RouteDiscovery.Foreign(
                uuid: t0b, user: amy, partner: carol,
                half: LiftHalf(tally: t0b, side: .foil, stockLimit: 900, foilLimit: 1000, balance: 0))
        ]
    }
    var internalTallies: [RouteDiscovery.Internal] {
        [
            RouteDiscovery.Internal(
                uuid: t3, stock: alice.cuid, foil: amy.cuid,
                stockHalf: LiftHalf(tally: t3, side: .stock, stockLimit: 1000, foilLimit: 1000, balance: 400),
                foilHalf: LiftHalf(tally: t3, side: .foil, stockLimit: 1000, foilLimit: 1000, balance: 400))
        ]
    }
    func ask(units: Int64 = 1000, min: Int64 = 100, padding: [String] = []) -> LiftStart.Ask {
        LiftStart.Ask(qid: Fx.qid, units: units, min: min, referee: Fx.site(1), padding: padding)
    }

    @Test func circularQueries() throws {
        let qs = try LiftStart.circular(ask(padding: [pad]), foreign: foreign, internalTallies: internalTallies)
        #expect(qs.map(\.t0) == [t0a, t0b])
        #expect(qs.map(\.capacity) == [500, 400])
        #expect(qs.map(\.internalHops) == [[], [t3]])
        #expect(qs.allSatisfy { $0.closing == tc })
        guard case .query(let q) = qs[1].message.body else { return }
        #expect(qs[1].message.to == carol && qs[1].message.from == amy)
        #expect(q.find == .hop(Fx.nonce(tc)) && q.ttl == LiftLimits.maxTTLCirc && q.kind == .circ)
        #expect(q.path == [pad, Fx.nonce(t0b)])
        // A min over every segment: nothing to ask.
        #expect(try LiftStart.circular(ask(min: 501), foreign: foreign, internalTallies: internalTallies).isEmpty)
        // Out of range asks are refused.
        #expect(throws: LiftStart.Problem.self) { try LiftStart.circular(ask(min: 0), foreign: foreign, internalTallies: internalTallies) }
        #expect(throws: LiftStart.Problem.self) {
            try LiftStart.circular(ask(padding: [pad, pad, pad]), foreign: foreign, internalTallies: internalTallies)
        }
    }

    @Test func execMakesTheSegmentAndThePromise() throws {
        let qs = try LiftStart.circular(ask(padding: [pad]), foreign: foreign, internalTallies: internalTallies)
        let q = qs[1]
        let route = FoundRoute(path: [pad, Fx.nonce(t0b), Fx.nonce("eeeeeeee-eeee-4eee-8eee-eeeeeeeeeeee"), Fx.nonce(tc)], max: 450)
        let d = try LiftStart.exec(
            q, route: route, uuid: Fx.headerUUID, now: Fx.t0, originKey: Fx.originKey, siteKey: Fx.siteKey(1),
            foreign: foreign, internalTallies: internalTallies)
        guard case .insertLiftRecord(let record)? = d.effects.first else {
            Issue.record("no record")
            return
        }
        let h = record.header
        #expect(record.role == .origin && record.state == .exec && record.outgoing == t0b && record.internalHops == [t3])
        #expect(h.units == 400 && h.path == route.path && h.kind == .circ && h.deadlineMs - h.dateMs == LiftLimits.originLifeMs)
        #expect(h.originKey == Fx.originKey.publicKey && h.referee == Fx.site(1))
        let inside = try LiftChit.make(header: h, tally: t3, by: .stock, agentKey: Fx.siteKey(1))
        let out = try LiftChit.make(header: h, tally: t0b, by: .foil, agentKey: Fx.siteKey(1))
        #expect(out.verify(in: Fx.tally(t0b, stock: ("carol", 3), foil: ("amy", 1))))
        #expect(d.effects.contains(.insertLiftChit(inside, header: h, local: true)))
        #expect(d.effects.contains(.insertLiftChit(out, header: h, local: true)))
        let promise = LiftMessage(to: .user(carol), from: .user(amy), body: .promise(header: h, hop: 1, chit: out))
        #expect(d.effects.last == .enqueue(to: carol, topic: LiftTopic.promise(h.hash, hop: 1), message: .lift(promise), firstContact: false))
        // The promise O sends is one its successor takes as valid.
        #expect(try LiftMessage(json: promise.json) == promise)

        // A route that does not start with O's path, or carries under min.
        #expect(throws: LiftStart.Problem.self) {
            try LiftStart.exec(
                q, route: FoundRoute(path: [Fx.nonce(t0b)], max: 450), uuid: Fx.headerUUID, now: Fx.t0, originKey: Fx.originKey,
                siteKey: Fx.siteKey(1), foreign: foreign, internalTallies: internalTallies)
        }
        #expect(throws: LiftStart.Problem.noRoute) {
            try LiftStart.exec(
                q, route: FoundRoute(path: route.path, max: 99), uuid: Fx.headerUUID, now: Fx.t0, originKey: Fx.originKey,
                siteKey: Fx.siteKey(1), foreign: foreign, internalTallies: internalTallies)
        }
    }

    @Test func linearQueriesPreferThePayeesSite() throws {
        let find = LiftFind(agent: Fx.site(3).agent, seal: "c2VhbGVk")
        let qs = try LiftStart.linear(ask(units: 300, min: 300), payor: alice.cuid, find: find, foreign: foreign, internalTallies: internalTallies)
        #expect(qs.map(\.t0) == [t0b])
        guard case .query(let q) = qs.first?.message.body else { return }
        #expect(q.kind == .line && q.find == .payee(find) && q.ttl == LiftLimits.maxTTLLine)
        // A linear lift carries exactly its units, or does not start.
        let route = FoundRoute(path: q.path + [Fx.nonce("eeeeeeee-eeee-4eee-8eee-eeeeeeeeeeee")], max: 1000)
        let d = try LiftStart.exec(
            qs[0], route: route, uuid: Fx.headerUUID, now: Fx.t0, originKey: Fx.originKey, siteKey: Fx.siteKey(1),
            foreign: foreign, internalTallies: internalTallies)
        guard case .insertLiftRecord(let r)? = d.effects.first else { return }
        #expect(r.header.units == 300 && r.header.find == find)
        #expect(throws: LiftStart.Problem.noRoute) {
            try LiftStart.exec(
                qs[0], route: FoundRoute(path: route.path, max: 299), uuid: Fx.headerUUID, now: Fx.t0, originKey: Fx.originKey,
                siteKey: Fx.siteKey(1), foreign: foreign, internalTallies: internalTallies)
        }
        // No tally toward the payee's site: every capable one is asked (all
        // carry 300, so by uuid), tc too (alice may owe zed 500 more).
        let elsewhere = LiftFind(agent: Fx.site(7).agent, seal: "c2VhbGVk")
        #expect(
            try LiftStart.linear(
                ask(units: 300, min: 300), payor: alice.cuid, find: elsewhere, foreign: foreign,
                internalTallies: internalTallies
            ).map(\.t0) == [t0a, t0b, tc])
    }
}
