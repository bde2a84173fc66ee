import ChipModel
import Foundation
import GRDB
import Testing
import ChipProtocol
@testable import ChipStore

/// Lift chits in real site files (9.2, 9.5, 9.7): decisions applied by the
/// store, the foil chaining good ones with no limit check, the stock taking
/// them from `upd`, reservations in every payment, and `tally verify`.
@Suite struct LiftChainStoreTests {
    static let originKey = (try? SigningKey(seed: [UInt8](repeating: 42, count: 32))) ?? SigningKey.generate()
    static let refereeKey = (try? SigningKey(seed: [UInt8](repeating: 9, count: 32))) ?? SigningKey.generate()

    /// Site b (bob) is the stock and grants alice (site a, the foil) 10,000.
    static func openTally() throws -> (PTwoSites, String) {
        let s = try PTwoSites()
        return (s, try ChainRun.openTally(s, issuerSide: .stock, limit: 10_000))
    }

    static func header(_ id: String, units: Int64, uuid: String = "6f1c3a52-8d2e-4b7a-9c41-2e5d8f0a7b13") throws -> LiftHeader {
        let qid = Base64URL.encode(Array(0..<16))
        let referee = LiftSite(agent: try AgentID(publicKey: refereeKey.publicKey), address: try SiteAddress(host: "referee.example", port: 9))
        return try LiftHeader.make(
            uuid: uuid, kind: .circ, qid: qid, date: "2026-12-01T12:00:00.000Z", deadline: "2026-12-01T12:01:00.000Z", units: units,
            path: [try #require(HopNonce.nonce(qid: qid, tally: id))], referee: referee, find: nil, originKey: originKey)
    }

    static func decision(_ h: LiftHeader, _ result: LiftResult, date: String = "2026-12-01T12:00:01.000Z") throws -> SignedDecision {
        try SignedDecision.make(
            lift: h.hash, result: result, date: date, commit: result == .good ? LiftAct.commit.sign(lift: h.hash, key: originKey) : nil,
            key: refereeKey)
    }

    /// The chit of `by`'s half on `id`, signed by that half's site key.
    static func chit(_ s: PTwoSites, _ h: LiftHeader, _ id: String, by: TallySide) throws -> LiftChit {
        // Site b holds the stock's half, site a the foil's.
        let site = by == .stock ? s.b : s.a
        return try LiftChit.make(header: h, tally: id, by: by, agentKey: try site.siteKey(sealingKey: nil))
    }

    /// Applies lift effects in one transaction, as the store applies a decider's.
    static func apply(_ store: SiteStore, _ effects: [Effect]) throws {
        try store.database.write { db in _ = try SiteStore.commit(.apply(effects), db, now: SiteStore.now()) }
    }

    static func state(_ store: SiteStore, _ uuid: String) throws -> String? {
        try store.database.read { db in try String.fetchOne(db, sql: "SELECT state FROM chits WHERE uuid = ?", arguments: [uuid]) }
    }

    static func decisions(_ store: SiteStore, _ lift: String) throws -> [String: Bool] {
        try store.database.read { db in
            Dictionary(
                uniqueKeysWithValues: try Row.fetchAll(db, sql: "SELECT result, applied FROM lift_decisions WHERE lift = ?", arguments: [lift])
                    .map { ($0["result"] as String, $0["applied"] as Bool) })
        }
    }

    /// Sends the foil's chain after `after` to the stock and answers until done.
    static func sync(_ s: PTwoSites, _ id: String, after: Int64 = 0) throws -> [PPacket] {
        let upd = try #require(try s.a.chainUpdate(tally: id, after: after))
        return try s.deliver(PPacket(to: .b, message: upd))
    }

    @Test func goodAtTheFoilChainsWithNoLimitCheckAndEndsTheRecord() throws {
        let (s, id) = try Self.openTally()
        let h = try Self.header(id, units: 50_000)
        let chit = try Self.chit(s, h, id, by: .foil)
        try Self.apply(s.a, [.insertLiftChit(chit, header: h, local: true)])
        // A repeat of the chit changes nothing.
        try Self.apply(s.a, [.insertLiftChit(chit, header: h, local: true)])
        try s.a.database.write { db in
            try db.execute(
                sql: """
                    INSERT INTO lifts (lift, role, state, origin_secret, created, updated) VALUES (?, 'origin', 'call', ?, 'x', 'x')
                    """, arguments: [h.hash, Data(repeating: 0, count: 33)])
        }
        #expect(try Self.state(s.a, chit.uuid) == "pend")
        try Self.apply(s.a, [.applyLiftDecision(try Self.decision(h, .good))])
        // Past bob's limit of 10,000: a good lift chit is chained with no limit check.
        let t = try s.a.tally(id)
        #expect(t.balance == 50_000 && t.chainLength == 1)
        #expect(try Self.state(s.a, chit.uuid) == "chained")
        let record = try s.a.database.read { db in
            try Row.fetchOne(db, sql: "SELECT state, origin_secret FROM lifts WHERE lift = ?", arguments: [h.hash])
        }
        #expect(record?["state"] == "good")
        #expect((record?["origin_secret"] as Data?) == nil)
        #expect(try Self.decisions(s.a, h.hash) == ["good": true])
        #expect(try s.a.verifyTally(id) == [])
        // A lift chit is no payment: the chit list and chain(of:) leave it out.
        #expect(try s.a.chits(tally: id).isEmpty && s.a.chain(of: id).isEmpty)
        // A repeat of the decision changes nothing.
        try Self.apply(s.a, [.applyLiftDecision(try Self.decision(h, .good, date: "2026-12-01T12:00:02.000Z"))])
        #expect(try s.a.tally(id).chainLength == 1 && s.a.tally(id).balance == 50_000)
    }

    @Test func theStockSetsGoodAndChainsItFromTheFoilsUpd() throws {
        let (s, id) = try Self.openTally()
        _ = try s.a.pay(tally: id, units: 3_000, memo: nil, ref: nil, key: s.key(.a))
        let h = try Self.header(id, units: 800)
        // Bob's half pays the lift: bob's site made the chit, alice's got it in a promise.
        let chit = try Self.chit(s, h, id, by: .stock)
        let good = try Self.decision(h, .good)
        try Self.apply(s.b, [.insertLiftChit(chit, header: h, local: true), .applyLiftDecision(good)])
        #expect(try Self.state(s.b, chit.uuid) == "good")
        #expect(try s.b.tally(id).chainLength == 0)
        try Self.apply(s.a, [.insertLiftChit(chit, header: h, local: false), .applyLiftDecision(good)])
        #expect(try s.a.tally(id).chainLength == 2 && s.a.tally(id).balance == 2_200)
        let replies = try Self.sync(s, id)
        #expect(replies.first?.message["action"]?.stringValue == "ack")
        _ = try replies.map { try s.deliver($0) }
        #expect(try Self.state(s.b, chit.uuid) == "chained")
        let (foil, stock) = (try s.a.chainHead(of: id), try s.b.chainHead(of: id))
        #expect(foil.length == 2 && stock.length == 2 && foil.head == stock.head)
        #expect(try s.b.tally(id).balance == 2_200)
        #expect(try s.a.verifyTally(id) == [] && s.b.verifyTally(id) == [])
        #expect(try s.a.chainWork().isEmpty)
    }

    @Test func aStockWithNoRecordTakesTheEntryAndItsDecision() throws {
        let (s, id) = try Self.openTally()
        let h = try Self.header(id, units: 700)
        let chit = try Self.chit(s, h, id, by: .foil)
        try Self.apply(s.a, [.insertLiftChit(chit, header: h, local: true), .applyLiftDecision(try Self.decision(h, .good))])
        let replies = try Self.sync(s, id)
        #expect(replies.first?.message["action"]?.stringValue == "ack")
        #expect(try Self.state(s.b, chit.uuid) == "chained")
        #expect(try Self.decisions(s.b, h.hash) == ["good": true])
        #expect(try s.b.chainHead(of: id).head == s.a.chainHead(of: id).head)
        #expect(try s.b.verifyTally(id) == [])
    }

    @Test func voidKeepsTheChitAsEvidenceAndFreesTheReservation() throws {
        let (s, id) = try Self.openTally()
        let h = try Self.header(id, units: 9_000)
        let chit = try Self.chit(s, h, id, by: .foil)
        try Self.apply(s.a, [.insertLiftChit(chit, header: h, local: true)])
        #expect(throws: StoreError.self) { try s.a.pay(tally: id, units: 2_000, memo: nil, ref: nil, key: s.key(.a)) }
        try Self.apply(s.a, [.applyLiftDecision(try Self.decision(h, .void))])
        #expect(try Self.state(s.a, chit.uuid) == "void")
        #expect(try s.a.tally(id).chainLength == 0 && s.a.tally(id).balance == 0)
        #expect(try Self.decisions(s.a, h.hash) == ["void": true])
        _ = try s.a.pay(tally: id, units: 2_000, memo: nil, ref: nil, key: s.key(.a))
    }

    @Test func voidThenGoodUpgradesAndChainsAndGoodIsNeverUndone() throws {
        let (s, id) = try Self.openTally()
        _ = try s.a.pay(tally: id, units: 9_500, memo: nil, ref: nil, key: s.key(.a))
        let h = try Self.header(id, units: 2_000)
        let chit = try Self.chit(s, h, id, by: .foil)
        let void = try Self.decision(h, .void), good = try Self.decision(h, .good)
        try Self.apply(s.a, [.insertLiftChit(chit, header: h, local: true), .applyLiftDecision(void)])
        #expect(try Self.state(s.a, chit.uuid) == "void")
        // The referee equivocates: good after void chains it, even past the limit (9.7).
        try Self.apply(s.a, [.applyLiftDecision(good)])
        #expect(try Self.state(s.a, chit.uuid) == "chained")
        #expect(try s.a.tally(id).balance == 11_500 && s.a.tally(id).chainLength == 2)
        #expect(try Self.decisions(s.a, h.hash) == ["void": false, "good": true])
        // A void after good, as proof or applied, changes nothing.
        try Self.apply(s.a, [.storeDecisionProof(void), .applyLiftDecision(void)])
        #expect(try Self.state(s.a, chit.uuid) == "chained" && s.a.tally(id).balance == 11_500)
        #expect(try Self.decisions(s.a, h.hash) == ["void": false, "good": true])
        #expect(try s.a.verifyTally(id) == [])
        // The stock conforms.
        _ = try Self.sync(s, id)
        #expect(try s.b.chainHead(of: id).head == s.a.chainHead(of: id).head && s.b.tally(id).balance == 11_500)
    }

    @Test func aProofIsStoredOnce() throws {
        let (s, id) = try Self.openTally()
        let h = try Self.header(id, units: 100)
        let chit = try Self.chit(s, h, id, by: .foil)
        try Self.apply(s.a, [.insertLiftChit(chit, header: h, local: true), .applyLiftDecision(try Self.decision(h, .good))])
        try Self.apply(
            s.a,
            [.storeDecisionProof(try Self.decision(h, .void)), .storeDecisionProof(try Self.decision(h, .void, date: "2026-12-01T12:00:09.000Z"))])
        #expect(try Self.decisions(s.a, h.hash) == ["void": false, "good": true])
    }

    @Test func paymentsCountPendingLiftChitsMovingTheirWay() throws {
        let (s, id) = try Self.openTally()
        _ = try s.a.pay(tally: id, units: 5_000, memo: nil, ref: nil, key: s.key(.a))
        _ = try Self.sync(s, id)
        // Alice's half pays a lift of 4,000 (pend on both sites): it moves the balance as alice paying.
        let h = try Self.header(id, units: 4_000)
        let up = try Self.chit(s, h, id, by: .foil)
        try Self.apply(s.a, [.insertLiftChit(up, header: h, local: true)])
        try Self.apply(s.b, [.insertLiftChit(up, header: h, local: false)])
        // 5,000 + 4,000 + 2,000 would pass bob's limit of 10,000: refused; 1,000 fits.
        #expect(throws: StoreError.self) { try s.a.pay(tally: id, units: 2_000, memo: nil, ref: nil, key: s.key(.a)) }
        #expect(throws: StoreError.self) { try s.a.payBatch(tally: id, payments: [(600, nil, nil), (600, nil, nil)], key: s.key(.a)) }
        _ = try s.a.pay(tally: id, units: 1_000, memo: nil, ref: nil, key: s.key(.a))
        // Bob paying moves the balance the other way: the lift counts as void for him.
        _ = try s.b.pay(tally: id, units: 3_000, memo: nil, ref: nil, key: s.key(.b))
        // A lift of bob's half (2,000, pend) and his pending 3,000 leave no room for 500 more (alice grants bob nothing).
        let h2 = try Self.header(id, units: 2_000, uuid: "7f1c3a52-8d2e-4b7a-9c41-2e5d8f0a7b13")
        let down = try Self.chit(s, h2, id, by: .stock)
        try Self.apply(s.b, [.insertLiftChit(down, header: h2, local: true)])
        #expect(throws: StoreError.self) { try s.b.pay(tally: id, units: 500, memo: nil, ref: nil, key: s.key(.b)) }
        // The stock's tran carries only its payment, never a lift chit.
        let (tran, uuids) = try #require(try s.b.pendingTransfer(tally: id, excluding: []))
        #expect(uuids.count == 1 && !uuids.contains(down.uuid) && !uuids.contains(up.uuid))
        #expect(tran["object"]?["chits"]?.arrayValue?.count == 1)
        #expect(try s.b.chainWork().allSatisfy { $0.tally == id })
    }

    @Test func theFoilRefusesAStockPaymentThatALiftReservationLeavesNoRoomFor() throws {
        let (s, id) = try Self.openTally()
        _ = try s.a.pay(tally: id, units: 1_000, memo: nil, ref: nil, key: s.key(.a))
        _ = try Self.sync(s, id)
        let h = try Self.header(id, units: 800)
        let down = try Self.chit(s, h, id, by: .stock)
        try Self.apply(s.a, [.insertLiftChit(down, header: h, local: false)])
        // Bob's 300 fits on his site (he does not hold the lift chit), not with the foil's reservation.
        let paid = try s.b.pay(tally: id, units: 300, memo: nil, ref: nil, key: s.key(.b))
        let (tran, _) = try #require(try s.b.pendingTransfer(tally: id, excluding: []))
        let replies = try s.deliver(PPacket(to: .a, message: tran))
        #expect(replies.first?.message["action"]?.stringValue == "nak")
        #expect(try s.a.chainHead(of: id).length == 1)
        _ = try replies.map { try s.deliver($0) }
        #expect(try Self.state(s.b, paid.chit.uuid) == "refused")
    }

    @Test func tallyVerifyChecksLiftChitsAndReportsATamperedOne() throws {
        let (s, id) = try Self.openTally()
        _ = try s.a.pay(tally: id, units: 1_000, memo: nil, ref: nil, key: s.key(.a))
        let h = try Self.header(id, units: 400)
        let chit = try Self.chit(s, h, id, by: .stock)
        let good = try Self.decision(h, .good)
        try Self.apply(s.a, [.insertLiftChit(chit, header: h, local: false), .applyLiftDecision(good)])
        _ = try s.a.pay(tally: id, units: 100, memo: nil, ref: nil, key: s.key(.a))
        #expect(try s.a.verifyTally(id) == [])
        _ = try Self.sync(s, id)
        #expect(try s.b.verifyTally(id) == [] && s.b.chainHead(of: id).head == s.a.chainHead(of: id).head)

        // The decision's bytes changed (its date): R's signature no longer verifies.
        var o = try #require(good.json.objectValue), inner = try #require(good.decision.objectValue)
        inner["date"] = "2026-12-01T12:00:05.000Z"
        o["decision"] = .object(inner)
        try s.a.database.write { db in
            try db.execute(sql: "UPDATE lift_decisions SET decision = ? WHERE lift = ?", arguments: [JSONValue.object(o).canonicalString, h.hash])
        }
        #expect(try s.a.verifyTally(id) == ["chit 2 (\(chit.uuid)): the referee's signature does not verify"])

        // The chit's signature replaced by the user's: not the payer half's agent's.
        let userSign = Base64URL.encode(try s.b.userKey(s.bob, sealingKey: nil).sign(chit.core.canonicalBytes))
        try s.b.database.write { db in try db.execute(sql: "UPDATE chits SET sign = ? WHERE uuid = ?", arguments: [userSign, chit.uuid]) }
        #expect(try s.b.verifyTally(id) == ["chit 2 (\(chit.uuid)): the lift chit's signature is not the payer half's agent's"])

        // No header for it: reported, and the link is still checked with the stored chit hash.
        try s.b.database.writeWithoutTransaction { db in
            // (Outside a transaction: the pragma does nothing inside one.)
            try db.execute(sql: "PRAGMA foreign_keys = OFF")
            try db.execute(sql: "DELETE FROM lift_headers WHERE lift = ?", arguments: [h.hash])
        }
        let noHeader = try s.b.verifyTally(id)
        #expect(noHeader == ["chit 2 (\(chit.uuid)): no header is stored for its lift"], "\(noHeader)")
        // Its units changed: the chit no longer hashes to its stored hash (nor the chits to the balance).
        try s.a.database.write { db in
            let core = chit.core.objectValue.map { o -> JSONValue in
                var o = o
                o["units"] = .integer(40_000)
                return .object(o)
            }
            try db.execute(sql: "UPDATE chits SET core = ? WHERE uuid = ?", arguments: [core?.canonicalString, chit.uuid])
        }
        let problems = try s.a.verifyTally(id)
        #expect(problems.first == "chit 2 (\(chit.uuid)): the lift chit: invalid: the lift chit does not hash to its hash")
        // The foil refuses to send a chain it cannot read back.
        #expect(throws: StoreError.self) { try s.a.chainUpdate(tally: id, after: 0) }
    }
}
