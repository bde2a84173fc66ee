import ChipModel
import ChipProtocol
import Testing
import TestSupport

/// Single decisions of the pure deciders, on snapshots built by memory
/// sites: what each rule decides, effect by effect.
@Suite struct DecisionTests {
    /// Bob (site b) is the stock, alice (site a) the foil, bob grants `limit`.
    static func tally(limit: Int64 = 10_000, seed: UInt64 = 7) throws -> (MemoryPair, String) {
        var sites = try MemoryPair(seed: seed)
        let id = try sites.openTally(bobSide: .stock, limit: limit)
        return (sites, id)
    }

    static func entries(_ m: SiteMessage?) -> [ChainEntry] {
        guard case .chit(let c)? = m, case .upd(_, let entries, _) = c.body else { return [] }
        return entries
    }

    @Test func anUpdWithAGapIsAnsweredWithNakAtOurHead() throws {
        var (sites, id) = try Self.tally()
        try sites.a.pay(tally: id, units: 100)
        try sites.a.pay(tally: id, units: 200)
        let t = try #require(sites.a.tallies[id])
        let all = Self.entries(sites.a.chainUpdate(tally: id, after: 0))
        #expect(all.map(\.index) == [1, 2])
        let gap = try #require(ChainDialog.update(t, entries: Array(all.dropFirst())))
        let decision = try sites.b.receive(gap, from: sites.a.agent)
        let core = try #require(t.core)
        let ours = try #require(sites.b.tallies[id])
        #expect(decision.effects.isEmpty)
        #expect(decision.ignored == nil)
        #expect(decision.replies == [.chit(.on(ours, .nak, .answer(tally: id, index: 0, hash: core.hash, refused: nil)))])
        #expect(sites.b.chain(of: id).isEmpty)
        // The whole update then extends the chain and is acked at its head.
        let whole = try #require(ChainDialog.update(t, entries: all))
        let ack = try sites.b.receive(whole, from: sites.a.agent)
        guard case .chit(let m)? = ack.replies.first, m.action == .ack, case .answer(_, let index, let hash, _) = m.body else {
            Issue.record("no ack: \(ack.replies)"); return
        }
        #expect(index == 2 && hash == all[1].hash)
        #expect(sites.b.tallies[id]?.balance == 300)
    }

    @Test func aTranOverTheLimitIsRefusedWithTheReason() throws {
        var (sites, id) = try Self.tally(limit: 10_000)
        // Bob (stock) pays alice: the balance goes down to at most minus alice's limit (0).
        let chit = try sites.b.pay(tally: id, units: 500, checkLimit: false)
        let (tran, uuids) = try #require(sites.b.pendingTransfer(tally: id, excluding: []))
        #expect(uuids == [chit.uuid])
        let decision = try sites.a.receive(tran, from: sites.b.agent)
        let reason = "the payment would exceed the tally's limit"
        #expect(decision.effects == [.insertChit(chit, local: false), .refuseChit(uuid: chit.uuid, reason: reason)])
        guard case .chit(let nak)? = decision.replies.first, nak.action == .nak, case .answer(_, nil, nil, let refused?) = nak.body else {
            Issue.record("no nak: \(decision.replies)"); return
        }
        #expect(refused == [ChitRefusal(uuid: chit.uuid, reason: reason)])
        #expect(sites.a.chits[chit.uuid]?.state == .refused && sites.a.tallies[id]?.balance == 0)
        // The nak refuses bob's pending chit on his site too.
        _ = try sites.b.receive(json: decision.replies[0].json, from: sites.a.agent)
        #expect(sites.b.chits[chit.uuid]?.state == .refused && sites.b.chits[chit.uuid]?.note == reason)
        // Within the limit (alice owes bob up to 10,000) the same path chains.
        let fits = try sites.a.pay(tally: id, units: 10_000)
        #expect(sites.a.chits[fits.uuid]?.state == .chained)
        #expect(throws: Refused.self) { try sites.a.pay(tally: id, units: 1) }
    }

    @Test func aForgedChitIsRefusedButNotStored() throws {
        var (sites, id) = try Self.tally()
        let t = try #require(sites.b.tallies[id])
        let forged = try Chit(
            tally: id, by: .stock, uuid: sites.b.newUUID(), date: "2026-12-01T00:00:00.000Z", units: 5, memo: nil,
            ref: nil, key: SigningKey.generate())
        let (tran, _) = try #require(ChainDialog.transfer(t, chits: [forged]))
        let decision = try sites.a.receive(tran, from: sites.b.agent)
        let foil = try #require(sites.a.tallies[id]), core = try #require(t.core)
        #expect(decision.effects.isEmpty)
        #expect(
            decision.replies == [
                .chit(
                    .on(
                        foil, .nak,
                        .answer(
                            tally: id, index: nil, hash: nil, refused: [ChitRefusal(uuid: forged.uuid, reason: "the signature does not verify")])))
            ])
        #expect(sites.a.chits[forged.uuid] == nil)
        // The same forged entry in an upd to the stock stops the update there.
        let entry = ChainEntry(index: 1, prior: core.hash, hash: Chain.entryHash(index: 1, prior: core.hash, chitHash: forged.hash), chit: forged)
        let upd = try #require(ChainDialog.update(foil, entries: [entry]))
        let answer = try sites.b.receive(upd, from: sites.a.agent)
        #expect(answer.effects.isEmpty)
        guard case .chit(let m)? = answer.replies.first else { Issue.record("no answer"); return }
        #expect(m.action == .nak)
    }

    @Test func aRepeatedTranChainsNothingTwice() throws {
        var (sites, id) = try Self.tally()
        try sites.a.pay(tally: id, units: 1_000)  // alice (foil) owes bob 1,000; bob may pay it back
        let upd = try #require(sites.a.chainUpdate(tally: id, after: 0))
        _ = try sites.b.receive(upd, from: sites.a.agent)
        let chit = try sites.b.pay(tally: id, units: 700)
        let (tran, _) = try #require(sites.b.pendingTransfer(tally: id, excluding: []))
        let first = try sites.a.receive(tran, from: sites.b.agent)
        let prior = try #require(sites.a.chain(of: id).first?.chainHash)
        let hash = Chain.entryHash(index: 2, prior: prior, chitHash: chit.hash)
        #expect(first.effects.contains(.chainChit(uuid: chit.uuid, index: 2, prior: prior, hash: hash)))
        #expect(first.replies.isEmpty)
        let again = try sites.a.receive(tran, from: sites.b.agent)
        #expect(again.effects.isEmpty && again.replies.isEmpty)
        #expect(sites.a.tallies[id]?.chainLength == 2 && sites.a.tallies[id]?.balance == 300)
    }

    @Test func aTranFromAnotherPeerOrOnAStockTallyIsIgnored() throws {
        var (sites, id) = try Self.tally()
        let chit = try sites.b.pay(tally: id, units: 1, checkLimit: false)
        let (tran, _) = try #require(sites.b.pendingTransfer(tally: id, excluding: []))
        let stranger = try AgentID(publicKey: SigningKey.generate().publicKey)
        #expect(try sites.a.receive(tran, from: stranger).ignored != nil)
        // The stock's site does not order the chain.
        #expect(try sites.b.receive(tran, from: sites.a.agent).ignored != nil)
        #expect(sites.a.chits[chit.uuid] == nil)
    }

    @Test func aReplayedTicketMakesNoSecondTally() throws {
        var sites = try MemoryPair(seed: 11)
        let ticket = try sites.bobsTicket(side: .stock, limit: 50)
        try sites.a.requestTally(sites.alice, ticket: ticket, accept: false)
        let ticketMessage = try #require(sites.outbox(.a).first)
        let offer = try sites.b.receive(json: ticketMessage.json, from: sites.a.agent)
        #expect(offer.effects.count == 3)  // consume, insert, enqueue
        #expect(sites.b.tickets[ticket.token]?.used != nil)
        // While the offer waits, a repeat is answered by the queued offer; no new row.
        let repeated = try sites.b.receive(json: ticketMessage.json, from: sites.a.agent)
        #expect(repeated == .apply([]))
        #expect(sites.b.tallies.count == 1 && sites.b.outbox.count == 1)
    }

    @Test func anOfferWithAWrongCertificateEndsTheRequest() throws {
        var sites = try MemoryPair(seed: 12)
        let ticket = try sites.bobsTicket(side: .stock, limit: 50)
        let request = try sites.a.requestTally(sites.alice, ticket: ticket, accept: false)
        let ticketMessage = try #require(sites.outbox(.a).first)
        _ = try sites.b.receive(json: ticketMessage.json, from: sites.a.agent)
        // Alice's site now holds another certificate for alice: the offer's is wrong.
        let chad = try #require(sites.a.users[sites.alice]).chad
        let other = try Certificate(
            chad: chad, type: .person, name: "Not Alice", email: nil, publicKey: SigningKey.generate().publicKey,
            date: "2026-12-01T00:00:00.000Z")
        sites.a.users[sites.alice] = MemoryUser(cuid: sites.alice, key: SigningKey.generate(), cert: other.json, chad: chad)
        let offer = try #require(sites.outbox(.b).first)
        let decision = try sites.a.receive(json: offer.json, from: sites.b.agent)
        #expect(decision.ignored?.contains("wrong certificate") == true)
        #expect(decision.effects.first.map { if case .voidRequest(request, _) = $0 { true } else { false } } == true)
        #expect(sites.a.tallies[request]?.state == .void && sites.a.outbox.isEmpty)
    }
}
