import ChipModel
import ChipProtocol
import Testing
import TestSupport

/// Good lift chits in the chain (9.5, 9.7): the foil chains one when it
/// applies the decision, the stock takes it from `upd` with no limit check
/// whatever it holds of it, and nothing else gets a lift chit chained.
@Suite struct LiftChainTests {
    static let originKey = (try? SigningKey(seed: [UInt8](repeating: 42, count: 32))) ?? SigningKey.generate()
    static let refereeKey = (try? SigningKey(seed: [UInt8](repeating: 9, count: 32))) ?? SigningKey.generate()

    static func referee(_ key: SigningKey = refereeKey) throws -> LiftSite {
        LiftSite(agent: try AgentID(publicKey: key.publicKey), address: try SiteAddress(host: "referee.example", port: 9))
    }

    /// A circular header over tally `id` (R: `refereeKey`'s site).
    static func header(_ id: String, uuid: String = "6f1c3a52-8d2e-4b7a-9c41-2e5d8f0a7b13", units: Int64, origin: SigningKey = originKey)
        throws -> LiftHeader
    {
        let qid = Base64URL.encode(Array(0..<16))
        return try LiftHeader.make(
            uuid: uuid, kind: .circ, qid: qid, date: "2026-12-01T12:00:00.000Z", deadline: "2026-12-01T12:01:00.000Z", units: units,
            path: [try #require(HopNonce.nonce(qid: qid, tally: id))], referee: try referee(), find: nil, originKey: origin)
    }

    static func decision(_ h: LiftHeader, _ result: LiftResult, key: SigningKey = refereeKey) throws -> SignedDecision {
        try SignedDecision.make(
            lift: h.hash, result: result, date: "2026-12-01T12:00:01.000Z",
            commit: result == .good ? LiftAct.commit.sign(lift: h.hash, key: originKey) : nil, key: key)
    }

    /// Bob's site b is the stock, alice's site a the foil; bob grants 10,000.
    /// Alice's half pays a lift of `units` on it, chained by site a.
    static func chainedAtTheFoil(units: Int64 = 50_000) throws -> (MemoryPair, String, LiftChit, SignedDecision) {
        var (sites, id) = try DecisionTests.tally(limit: 10_000)
        let h = try header(id, units: units)
        let chit = try LiftChit.make(header: h, tally: id, by: .foil, agentKey: sites.a.siteKey)
        let good = try decision(h, .good)
        try sites.a.commit(.apply([.insertLiftChit(chit, header: h, local: true), .applyLiftDecision(good)]), now: sites.a.now())
        return (sites, id, chit, good)
    }

    /// The stock's answer to an `upd` holding `entry` as entry 1 is `nak` at
    /// its empty chain, and nothing changes.
    static func expectRefused(_ entry: ChainEntry, _ sites: inout MemoryPair, _ id: String, _ comment: Comment) throws {
        let foil = try #require(sites.a.tallies[id]), core = try #require(foil.core)
        let upd = try #require(ChainDialog.update(foil, entries: [entry]))
        try expectNak(upd.json, &sites, id, core, comment)
    }

    static func expectNak(_ json: JSONValue, _ sites: inout MemoryPair, _ id: String, _ core: TallyCore, _ comment: Comment) throws {
        let before = sites.b.fingerprint
        let d = try sites.b.receive(json: json, from: sites.a.agent)
        let stock = try #require(sites.b.tallies[id])
        #expect(d.effects.isEmpty, comment)
        #expect(d.replies == [.chit(.on(stock, .nak, .answer(tally: id, index: 0, hash: core.hash, refused: nil)))], comment)
        #expect(sites.b.fingerprint == before, comment)
    }

    /// A lift entry at index 1 on `id`, linked to the tally hash.
    static func entry(_ lift: GoodLiftChit, core: TallyCore) -> ChainEntry {
        ChainEntry(
            index: 1, prior: core.hash, hash: Chain.entryHash(index: 1, prior: core.hash, chitHash: lift.chit.hash), chit: .lift(lift))
    }

    @Test func aGoodLiftChitIsChainedByTheFoilAndTakenByAStockWithNoRecordOfIt() throws {
        var (sites, id, chit, good) = try Self.chainedAtTheFoil()
        // Past bob's limit of 10,000: a good lift chit has no limit check (9.5).
        #expect(sites.a.tallies[id]?.balance == 50_000 && sites.a.liftChits[chit.uuid]?.state == .chained)
        let upd = try #require(sites.a.chainUpdate(tally: id, after: 0))
        let entryJSON = try #require(upd.json["object"]?["entries"]?.arrayValue?.first)
        #expect(entryJSON["lift"]?["hash"]?.stringValue == chit.lift && entryJSON["decision"] == good.json)
        #expect(sites.b.liftChits.isEmpty)
        let d = try sites.b.receive(json: upd.json, from: sites.a.agent)
        let head = try #require(sites.a.tallies[id]?.chainHead)
        guard case .chit(let m)? = d.replies.first, m.action == .ack, case .answer(_, let index, let hash, nil) = m.body, index == 1, hash == head
        else {
            Issue.record("no ack at the foil's head: \(d.replies)"); return
        }
        #expect(d.effects.contains(.applyLiftDecision(good)))
        #expect(sites.b.liftChits[chit.uuid]?.state == .chained && sites.b.liftChits[chit.uuid]?.local == false)
        #expect(sites.b.liftDecisions[chit.lift]?[.good]?.applied == true)
        #expect(sites.b.tallies[id]?.chainHead == head && sites.b.tallies[id]?.balance == 50_000)
        #expect(sites.a.verifyTally(id) == [] && sites.b.verifyTally(id) == [])
        // A repeat changes nothing and is acknowledged again.
        let before = sites.b.fingerprint
        let again = try sites.b.receive(json: upd.json, from: sites.a.agent)
        #expect(sites.b.fingerprint == before && again.effects.isEmpty)
    }

    @Test func theStockTakesItsOwnVoidChitWhenTheFoilChainsItGood() throws {
        var (sites, id, chit, good) = try Self.chainedAtTheFoil(units: 500)
        let h = try #require(sites.a.liftHeaders[chit.lift])
        // The stock had stored the chit and applied a void (an equivocating referee).
        try sites.b.commit(
            .apply([.insertLiftChit(chit, header: h, local: false), .applyLiftDecision(try Self.decision(h, .void))]), now: sites.b.now())
        #expect(sites.b.liftChits[chit.uuid]?.state == .void)
        let upd = try #require(sites.a.chainUpdate(tally: id, after: 0))
        let d = try sites.b.receive(json: upd.json, from: sites.a.agent)
        #expect(!d.effects.contains { if case .insertLiftChit = $0 { true } else { false } })
        #expect(d.effects.contains(.applyLiftDecision(good)))
        #expect(sites.b.liftChits[chit.uuid]?.state == .chained)
        #expect(sites.b.liftDecisions[chit.lift]?[.good]?.applied == true && sites.b.liftDecisions[chit.lift]?[.void]?.applied == false)
        #expect(sites.b.tallies[id]?.chainHead == sites.a.tallies[id]?.chainHead)
    }

    @Test func aForgedHeaderIsANak() throws {
        var (sites, id, chit, good) = try Self.chainedAtTheFoil()
        let core = try #require(sites.a.tallies[id]?.core)
        let h = try #require(sites.a.liftHeaders[chit.lift])
        // Another valid header (another attempt), with its own good decision: it is not the chit's.
        let other = try Self.header(id, uuid: "7f1c3a52-8d2e-4b7a-9c41-2e5d8f0a7b13", units: 50_000)
        try Self.expectRefused(
            Self.entry(GoodLiftChit(chit: chit, header: other, decision: try Self.decision(other, .good)), core: core), &sites, id,
            "a header that does not hash to the chit's lift")
        // A header changed on the wire does not read (its hash and signature), so the update stops there.
        let foil = try #require(sites.a.tallies[id])
        let upd = try #require(ChainDialog.update(foil, entries: [Self.entry(GoodLiftChit(chit: chit, header: h, decision: good), core: core)]))
        let tampered = try #require(upd.json["object"]?["entries"]?.arrayValue?.first)
        let bigger = try #require(tampered["lift"]).objectValue.map { o -> JSONValue in
            var o = o
            o["units"] = .integer(60_000)
            return .object(o)
        }
        var entryObject = try #require(tampered.objectValue)
        entryObject["lift"] = bigger
        var object = try #require(upd.json["object"]?.objectValue)
        object["entries"] = .array([.object(entryObject)])
        var message = try #require(upd.json.objectValue)
        message["object"] = .object(object)
        try Self.expectNak(.object(message), &sites, id, core, "a tampered header")
    }

    @Test func aChitSignedByTheWrongKeyIsANak() throws {
        var (sites, id, _, good) = try Self.chainedAtTheFoil()
        let core = try #require(sites.a.tallies[id]?.core)
        let h = try Self.header(id, units: 50_000)
        // Signed by the user's key, by the stock's agent, by a stranger: only the payer half's agent signs (9.5).
        for key in [try sites.a.user(sites.alice).key, sites.b.siteKey, SigningKey.generate()] {
            let forged = try LiftChit.make(header: h, tally: id, by: .foil, agentKey: key)
            try Self.expectRefused(Self.entry(GoodLiftChit(chit: forged, header: h, decision: good), core: core), &sites, id, "a forged chit")
        }
        // The stock's agent's signature on a chit by the stock's side is the right one.
        let stockChit = try LiftChit.make(header: h, tally: id, by: .stock, agentKey: sites.b.siteKey)
        #expect(GoodLiftChit(chit: stockChit, header: h, decision: good).problem(in: core) == nil)
    }

    @Test func aDecisionByAnotherRefereeOrVoidIsANak() throws {
        var (sites, id, chit, _) = try Self.chainedAtTheFoil()
        let core = try #require(sites.a.tallies[id]?.core)
        let h = try #require(sites.a.liftHeaders[chit.lift])
        let stranger = try Self.decision(h, .good, key: SigningKey.generate())
        try Self.expectRefused(Self.entry(GoodLiftChit(chit: chit, header: h, decision: stranger), core: core), &sites, id, "another referee")
        let void = try Self.decision(h, .void)
        try Self.expectRefused(Self.entry(GoodLiftChit(chit: chit, header: h, decision: void), core: core), &sites, id, "a void decision")
        // A good decision whose commit is not the origin's.
        let noCommit = try SignedDecision.make(
            lift: h.hash, result: .good, date: "2026-12-01T12:00:01.000Z",
            commit: LiftAct.commit.sign(lift: h.hash, key: SigningKey.generate()), key: Self.refereeKey)
        try Self.expectRefused(Self.entry(GoodLiftChit(chit: chit, header: h, decision: noCommit), core: core), &sites, id, "a forged commit")
    }

    @Test func aLiftChitIsNeverTakenInTranNorRefusedByNak() throws {
        var (sites, id) = try DecisionTests.tally(limit: 10_000)
        let stock = try #require(sites.b.tallies[id])
        let h = try Self.header(id, units: 100)
        // Bob's half pays a lift on the tally: bob's site holds it pending.
        let chit = try LiftChit.make(header: h, tally: id, by: .stock, agentKey: sites.b.siteKey)
        try sites.b.commit(.apply([.insertLiftChit(chit, header: h, local: true)]), now: sites.b.now())
        #expect(sites.b.pendingTransfer(tally: id, excluding: []) == nil, "a lift chit is never in tran")
        // A tran carrying it (as a partner might send): the item is not a chit, so nothing is taken.
        let tran: JSONValue = [
            "target": "chit", "action": "tran", "to": sites.a.tallies[id]?.core?.cert(.foil).chad.json ?? .null,
            "from": stock.core?.cert(.stock).chad.json ?? .null, "object": ["tally": .string(id), "chits": [chit.json]]
        ]
        let d = try sites.a.receive(json: tran, from: sites.b.agent)
        #expect(d.effects.isEmpty && d.replies.isEmpty)
        #expect(sites.a.liftChits.isEmpty && sites.a.chits.isEmpty)
        // A nak naming it does not refuse it on the stock's site.
        let foil = try #require(sites.a.tallies[id])
        let nak = SiteMessage.chit(.on(foil, .nak, .answer(tally: id, index: nil, hash: nil, refused: [ChitRefusal(uuid: chit.uuid, reason: "no")])))
        let answer = try sites.b.receive(nak, from: sites.a.agent)
        #expect(answer.effects.isEmpty)
        #expect(sites.b.liftChits[chit.uuid]?.state == .pend)
    }

    @Test func theFoilsTranCheckCountsLiftReservations() throws {
        var (sites, id) = try DecisionTests.tally(limit: 10_000)
        // Alice owes bob 1,000; bob's pending lift chit of 800 moves the balance down (as bob paying).
        try sites.a.pay(tally: id, units: 1_000)
        _ = try sites.b.receive(try #require(sites.a.chainUpdate(tally: id, after: 0)), from: sites.a.agent)
        let h = try Self.header(id, units: 800)
        let lift = try LiftChit.make(header: h, tally: id, by: .stock, agentKey: sites.b.siteKey)
        try sites.a.commit(.apply([.insertLiftChit(lift, header: h, local: false)]), now: sites.a.now())
        // Bob pays 300: with the reserved 800 it would take alice's balance below 0 (her limit): refused.
        let chit = try sites.b.pay(tally: id, units: 300, checkLimit: false)
        let (tran, _) = try #require(sites.b.pendingTransfer(tally: id, excluding: []))
        let d = try sites.a.receive(tran, from: sites.b.agent)
        #expect(d.effects.contains(.refuseChit(uuid: chit.uuid, reason: "the payment would exceed the tally's limit")))
        // Once the lift is void, the reservation is gone and 200 fits (a new chit).
        try sites.a.commit(.apply([.applyLiftDecision(try Self.decision(h, .void))]), now: sites.a.now())
        let fits = try sites.b.pay(tally: id, units: 200, checkLimit: false)
        let (tran2, _) = try #require(sites.b.pendingTransfer(tally: id, excluding: [chit.uuid]))
        let d2 = try sites.a.receive(tran2, from: sites.b.agent)
        #expect(d2.effects.contains { if case .chainChit(fits.uuid, _, _, _) = $0 { true } else { false } })
        // Alice's own lift chit of 9,000 (pend) moves the balance her way: with it
        // she cannot pay 1,000 more (800 + 9,000 + 1,000 > 10,000), 100 fits.
        let h2 = try Self.header(id, uuid: "8f1c3a52-8d2e-4b7a-9c41-2e5d8f0a7b13", units: 9_000)
        let up = try LiftChit.make(header: h2, tally: id, by: .foil, agentKey: sites.a.siteKey)
        try sites.a.commit(.apply([.insertLiftChit(up, header: h2, local: true)]), now: sites.a.now())
        #expect(throws: Refused.self) { try sites.a.pay(tally: id, units: 1_000) }
        try sites.a.pay(tally: id, units: 100)
    }
}
