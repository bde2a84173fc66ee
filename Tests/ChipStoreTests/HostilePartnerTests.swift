import ChipModel
import Foundation
import Testing
import ChipProtocol
@testable import ChipStore

/// A partner site that signs nothing false but replays, re-indexes and
/// mislabels real messages must not move a balance or an invoice.
@Suite struct HostilePartnerTests {
    /// b issues the ticket as stock: b is the stock, a (alice) the foil that orders the chain.
    static func openTally() throws -> (PTwoSites, String) {
        let s = try PTwoSites()
        return (s, try ChainRun.openTally(s, issuerSide: .stock, limit: 1_000_000))
    }

    /// Delivers until neither side has anything to answer (bounded).
    static func exchange(_ s: PTwoSites, _ first: [PPacket]) throws {
        var queue = first
        for _ in 0..<100 where !queue.isEmpty { queue = try queue.flatMap { try s.deliver($0) } }
        #expect(queue.isEmpty, "the exchange did not settle")
    }

    /// A foil `upd` entry for `chit` at `index`, linked to `prior`.
    static func entry(_ chit: JSONValue, index: Int64, prior: String) throws -> JSONValue {
        let hash = try Chit(json: chit).hash
        return [
            "index": .integer(index), "prior": .string(prior),
            "hash": .string(Chain.entryHash(index: index, prior: prior, chitHash: hash)), "chit": chit
        ]
    }

    @Test func aChitAlreadyChainedOrRefusedCannotBeChainedAgainAtANewIndex() throws {
        let (s, id) = try Self.openTally()
        // alice (foil) pays first, so that bob has room; then the stock (bob,
        // site b) pays; the foil's site chains both and tells the stock.
        _ = try s.a.pay(tally: id, units: 20_000, memo: nil, ref: nil, key: s.key(.a))
        try Self.exchange(s, [PPacket(to: .b, message: try #require(try s.a.chainUpdate(tally: id, after: 0)))])
        _ = try s.b.pay(tally: id, units: 700, memo: nil, ref: nil, key: s.key(.b))
        guard let (tran, _) = try s.b.pendingTransfer(tally: id, excluding: []) else { throw PropertyViolation("no tran") }
        try Self.exchange(s, [PPacket(to: .a, message: tran)])
        guard let upd = try s.a.chainUpdate(tally: id, after: 1) else { throw PropertyViolation("no upd") }
        try Self.exchange(s, [PPacket(to: .b, message: upd)])
        let settled = try s.b.tally(id)
        let foilBalance = try s.a.tally(id).balance
        #expect(settled.balance == foilBalance && settled.balance != 0)
        let head = try s.b.chainHead(of: id)
        #expect(head.length == 2)

        // Hostile: bob's (validly signed) chit again as entry 3.
        let chitJSON = try #require(upd["object"]?["entries"]?.arrayValue?.last?["chit"])
        let again = try Self.entry(chitJSON, index: 3, prior: try #require(head.head))
        var forged = upd
        if case .object(var o) = upd, case .object(var object)? = o["object"] {
            object["entries"] = .array([again])
            o["object"] = .object(object)
            forged = .object(o)
        }
        let replies = try s.deliver(PPacket(to: .b, message: forged))
        #expect(replies.first?.message["action"]?.stringValue == "nak", "a fork is answered with our head")
        #expect(try s.b.tally(id).balance == settled.balance)
        #expect(try s.b.chainHead(of: id).length == 2)

        // A chit the foil refused cannot be chained later either.
        _ = try s.b.pay(tally: id, units: 5, memo: nil, ref: nil, key: s.key(.b))
        guard let (tran2, uuids) = try s.b.pendingTransfer(tally: id, excluding: []) else { throw PropertyViolation("no tran") }
        let refuse: JSONValue = [
            "target": "chit", "action": "nak", "to": tran2["from"] ?? .null, "from": tran2["to"] ?? .null,
            "object": ["tally": .string(id), "refused": .array([["uuid": .string(uuids[0]), "reason": "no"]])]
        ]
        _ = try s.b.receiveChainAnswer(refuse, from: s.agentA)
        #expect(try s.b.chits(tally: id).first { $0.chit.uuid == uuids[0] }?.state == .refused)
        let refusedJSON = try #require(tran2["object"]?["chits"]?.arrayValue?.first)
        var late = upd
        if case .object(var o) = upd, case .object(var object)? = o["object"] {
            object["entries"] = .array([try Self.entry(refusedJSON, index: 3, prior: try #require(head.head))])
            o["object"] = .object(object)
            late = .object(o)
        }
        _ = try s.deliver(PPacket(to: .b, message: late))
        #expect(try s.b.tally(id).balance == settled.balance)
        #expect(try s.b.chits(tally: id).first { $0.chit.uuid == uuids[0] }?.state == .refused)
    }

    @Test func anInvoiceIsSettledOnlyByTheAskedSidePayingTheAmountAndPaidOnce() throws {
        let (s, id) = try Self.openTally()
        // bob (stock, site b) invoices alice for 5.000 CHIPs.
        let invoice = try s.b.createInvoice(tally: id, units: 5000, memo: nil, ref: nil)
        guard let message = try s.b.outbox(for: s.agentA).first(where: { $0.topic == "invoice:" + invoice.uuid })?.message else {
            throw PropertyViolation("invoice not queued")
        }
        _ = try s.a.receiveInvoice(message, from: s.agentB)

        // alice pays 20 CHIPs (room for bob below), then 1 milliCHIP naming the
        // invoice: it stays open on bob's site.
        _ = try s.a.pay(tally: id, units: 20_000, memo: nil, ref: nil, key: s.key(.a))
        _ = try s.a.pay(tally: id, units: 1, memo: nil, ref: ["invoice": .string(invoice.uuid)], key: s.key(.a))
        try Self.exchange(s, [PPacket(to: .b, message: try #require(try s.a.chainUpdate(tally: id, after: 0)))])
        #expect(try s.b.invoice(invoice.uuid).state == .open)
        // bob paying alice "for" his own invoice does not settle it either.
        _ = try s.b.pay(tally: id, units: 9000, memo: nil, ref: ["invoice": .string(invoice.uuid)], key: s.key(.b))
        guard let (tran, _) = try s.b.pendingTransfer(tally: id, excluding: []) else { throw PropertyViolation("no tran") }
        try Self.exchange(s, [PPacket(to: .a, message: tran)])
        try Self.exchange(s, [PPacket(to: .b, message: try #require(try s.a.chainUpdate(tally: id, after: 2)))])
        #expect(try s.b.invoice(invoice.uuid).state == .open)

        // Paying it properly settles it; a second payment is refused before anything is signed.
        let chit = try s.a.payInvoice(invoice.uuid, key: s.key(.a))
        #expect(try s.a.invoice(invoice.uuid).state == .paid && s.a.invoice(invoice.uuid).chit == chit.chit.uuid)
        #expect(throws: ModelError.self) { try s.a.payInvoice(invoice.uuid, key: s.key(.a)) }
        // The guard inside the payment's transaction, past the check before it
        // (two payers racing): nothing is signed away twice.
        let chitsBefore = try s.a.chits(tally: id).count
        // (The decision a device's payment shares, InvoiceDialog.settlement: `state`.)
        #expect(throws: UserError(.state, "invoice \(invoice.uuid) is paid, no longer open (answered meanwhile)")) {
            try s.a.pay(tally: id, units: 5000, memo: nil, ref: nil, settling: invoice.uuid, key: s.key(.a))
        }
        #expect(try s.a.chits(tally: id).count == chitsBefore)
        try Self.exchange(s, [PPacket(to: .b, message: try #require(try s.a.chainUpdate(tally: id, after: 3)))])
        #expect(try s.b.invoice(invoice.uuid).state == .paid)
        #expect(try s.b.outbox(for: s.agentA).allSatisfy { $0.topic != "invoice:" + invoice.uuid })
    }

    @Test func aRefusalNamingAnotherTallysInvoiceCancelsNothing() throws {
        let (s, id) = try Self.openTally()
        let invoice = try s.b.createInvoice(tally: id, units: 10, memo: nil, ref: nil)
        guard let message = try s.b.outbox(for: s.agentA).first(where: { $0.topic == "invoice:" + invoice.uuid })?.message else {
            throw PropertyViolation("invoice not queued")
        }
        // A refuse on this tally for an invoice uuid that is not ours on it.
        let wrong: JSONValue = [
            "target": "chit", "action": "refuse", "to": message["to"] ?? .null, "from": message["from"] ?? .null,
            "object": ["tally": .string(id), "uuid": .string(TallyCore.newUUID()), "reason": "no"]
        ]
        #expect(try s.b.receiveRefusal(wrong, from: s.agentA) != .applied(replies: []))
        #expect(try s.b.outbox(for: s.agentA).contains { $0.topic == "invoice:" + invoice.uuid })
        // The real refusal ends it.
        var right = wrong
        if case .object(var o) = wrong, case .object(var object)? = o["object"] {
            object["uuid"] = .string(invoice.uuid)
            o["object"] = .object(object)
            right = .object(o)
        }
        #expect(try s.b.receiveRefusal(right, from: s.agentA) == .applied(replies: []))
        #expect(try s.b.invoice(invoice.uuid).state == .refused)
        #expect(try s.b.outbox(for: s.agentA).allSatisfy { $0.topic != "invoice:" + invoice.uuid })
    }

    @Test func longMemosAreBatchedBySizeAndTheChainsStillAgree() throws {
        let (s, id) = try Self.openTally()
        // 100 payments whose memos and refs are as large as allowed: one
        // batch of 100 would not fit a T message (65519 bytes).
        let memo = String(repeating: "é", count: Chit.maxMemo)
        let ref: JSONValue = ["note": .string(String(repeating: "r", count: Chit.maxRefBytes - 20))]
        _ = try s.a.payBatch(tally: id, payments: Array(repeating: (units: 1, memo: memo, ref: ref), count: 100), key: s.key(.a))
        var after: Int64 = 0
        for _ in 0..<100 {
            guard let upd = try s.a.chainUpdate(tally: id, after: after) else { break }
            #expect(upd.canonicalBytes.count <= 65519 - 16)
            let entries = try #require(upd["object"]?["entries"]?.arrayValue)
            #expect(entries.count < 100 && !entries.isEmpty)
            after = try #require(entries.last?["index"]?.integerValue)
            try Self.exchange(s, [PPacket(to: .b, message: upd)])
        }
        #expect(after == 100)
        #expect(try s.b.chainHead(of: id) == s.a.chainHead(of: id))
        #expect(try s.b.tally(id).balance == s.a.tally(id).balance)

        // The stock's pending chits travel in sized batches too.
        _ = try s.b.payBatch(tally: id, payments: Array(repeating: (units: 1, memo: memo, ref: ref), count: 30), key: s.key(.b))
        let (tran, uuids) = try #require(try s.b.pendingTransfer(tally: id, excluding: []))
        #expect(tran.canonicalBytes.count <= 65519 - 16 && uuids.count < 30)
        #expect(tran["object"]?["chits"]?.arrayValue?.count == uuids.count)
    }

    @Test func junkFromAPartnerIsNotStoredWithoutBound() throws {
        let (s, id) = try Self.openTally()
        // Invoices: at most maxOpenIncomingInvoices wait for an answer per tally.
        let template = try s.b.createInvoice(tally: id, units: 10, memo: nil, ref: nil)
        guard let message = try s.b.outbox(for: s.agentA).first(where: { $0.topic == "invoice:" + template.uuid })?.message,
            case .object(var envelope) = message, case .object(var object)? = envelope["object"]
        else {
            throw PropertyViolation("invoice not queued")
        }
        for _ in 0..<(SiteStore.maxOpenIncomingInvoices + 20) {
            object["uuid"] = .string(TallyCore.newUUID())
            envelope["object"] = .object(object)
            _ = try s.a.receiveInvoice(.object(envelope), from: s.agentB)
        }
        #expect(try s.a.invoices(tally: id).count == SiteStore.maxOpenIncomingInvoices)

        // A chit whose signature does not verify is refused and not stored.
        _ = try s.a.pay(tally: id, units: 5000, memo: nil, ref: nil, key: s.key(.a))
        try Self.exchange(s, [PPacket(to: .b, message: try #require(try s.a.chainUpdate(tally: id, after: 0)))])
        _ = try s.b.pay(tally: id, units: 7, memo: nil, ref: nil, key: s.key(.b))
        let (tran, _) = try #require(try s.b.pendingTransfer(tally: id, excluding: []))
        // A chit "by the stock" (bob) signed with alice's key.
        let forged = try Chit(
            tally: id, by: .stock, uuid: TallyCore.newUUID(), date: "2026-11-25T00:00:00.000Z", units: 7,
            memo: nil, ref: nil, key: try s.key(.a)(s.alice))
        guard case .object(var t) = tran, case .object(var to)? = t["object"] else { throw PropertyViolation("no tran") }
        to["chits"] = .array([forged.json])
        t["object"] = .object(to)
        let before = try s.a.chits(tally: id).count
        let replies = try s.deliver(PPacket(to: .a, message: .object(t)))
        #expect(replies.first?.message["action"]?.stringValue == "nak")
        #expect(try s.a.chits(tally: id).count == before)
    }

    @Test func aRequesterHasAnIKChannelOnlyWhileItsOfferWaits() throws {
        let s = try PTwoSites()
        let ticket = try s.ticket(side: .stock, limit: 1000)
        let request = try s.a.requestTally(cuid: s.alice, ticket: ticket, accept: false)
        let ticketMessage = try #require(try s.a.outbox(for: s.agentB).first { $0.topic == request }?.message)
        guard case .offer(let offer) = try s.b.redeemTicket(ticketMessage, userKey: s.key(.b)) else { throw PropertyViolation("no offer") }
        let requester = try s.a.user(s.alice).certificate.chad
        #expect(try s.b.ticketRedeemed(token: ticket.token, by: requester), "a repeat while the offer waits is let in")
        _ = try s.deliver(PPacket(to: .a, message: offer))
        let id = try #require(try s.a.tallies().first?.uuid)
        _ = try s.a.refuseTally(id)
        let void = try #require(try s.a.outbox(for: s.agentB).first { $0.topic == id }?.message)
        _ = try s.deliver(PPacket(to: .b, message: void))
        #expect(try s.b.tally(id).state == .void)
        #expect(try !s.b.ticketRedeemed(token: ticket.token, by: requester), "not once the offer is withdrawn")
    }

    @Test func anOversizedCertificateIsRefused() throws {
        let s = try PTwoSites()
        guard case .object(var cert) = try s.a.user(s.alice).certificate.json else { throw PropertyViolation("no cert") }
        #expect(throws: Never.self) { try Certificate(json: .object(cert)) }
        cert["place"] = .string(String(repeating: "p", count: Certificate.maxCanonicalBytes))
        #expect(throws: ModelError.self) { try Certificate(json: .object(cert)) }
    }

    @Test func anInvoiceWhosePaymentIsRefusedIsOpenAgain() throws {
        let (s, id) = try Self.openTally()
        // alice (foil) pays first so that bob (stock) has room to pay her invoice.
        _ = try s.a.pay(tally: id, units: 20_000, memo: nil, ref: nil, key: s.key(.a))
        try Self.exchange(s, [PPacket(to: .b, message: try #require(try s.a.chainUpdate(tally: id, after: 0)))])
        let invoice = try s.a.createInvoice(tally: id, units: 10, memo: nil, ref: nil)
        let message = try #require(try s.a.outbox(for: s.agentB).first { $0.topic == "invoice:" + invoice.uuid }?.message)
        _ = try s.b.receiveInvoice(message, from: s.agentA)
        let chit = try s.b.payInvoice(invoice.uuid, key: s.key(.b))
        #expect(try s.b.invoice(invoice.uuid).state == .paid)
        // alice's site refuses the pending chit (her user was locked, say).
        let nak: JSONValue = [
            "target": "chit", "action": "nak", "to": .null, "from": .null,
            "object": ["tally": .string(id), "refused": .array([["uuid": .string(chit.chit.uuid), "reason": "locked"]])]
        ]
        _ = try s.b.receiveChainAnswer(nak, from: s.agentA)
        let reopened = try s.b.invoice(invoice.uuid)
        #expect(reopened.state == .open && reopened.chit == nil, "bob may pay or refuse it again")
        #expect(try s.b.chits(tally: id).first { $0.chit.uuid == chit.chit.uuid }?.state == .refused)
    }
}
