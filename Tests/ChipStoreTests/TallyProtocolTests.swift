import ChipModel
import Foundation
import Testing
import TestSupport
import ChipProtocol
@testable import ChipStore

/// The tally dialog between two site files, message by message, without a
/// network: what each side commits and answers (protocol sections 6-7).
@Suite struct TallyProtocolTests {
    /// The two sites of the property tests (PTwoSites), with the steps these tests take.
    typealias Sites = PTwoSites
}

extension PTwoSites {
    /// a asks; returns the ticket message a queued.
    func request(_ t: TallyTicket, accept: Bool = false) throws -> JSONValue {
        let id = try a.requestTally(cuid: alice, ticket: t, accept: accept)
        return try #require(try a.outbox(for: agentB).first { $0.topic == id }?.message)
    }

    func offer(for ticketMessage: JSONValue) throws -> JSONValue {
        guard case .offer(let offer) = try b.redeemTicket(ticketMessage, userKey: { try self.b.userKey($0, sealingKey: nil) }) else {
            throw StoreError.database("no offer")
        }
        return offer
    }
}

extension TallyProtocolTests {
    @Test func requestOfferAcceptOpenOnBothSides() throws {
        let s = try Sites()
        let ticketMessage = try s.request(try s.ticket())
        let offer = try s.offer(for: ticketMessage)
        // A repeated ticket message gets the same offer, not a second tally.
        #expect(try s.offer(for: ticketMessage) == offer)
        #expect(try s.b.tallies().count == 1)
        #expect(try s.a.receiveTally(offer, from: try s.b.agent(), autoAcceptKey: { _ in nil }) == .applied(replies: []))
        let offered = try #require(try s.a.tallies().first)
        #expect(offered.state == .peerOffer)
        #expect(try s.a.outbox(for: try s.b.agent()).isEmpty, "the ticket message was applied")
        let opened = try s.a.acceptTally(offered.uuid) { try s.a.userKey($0, sealingKey: nil) }
        #expect(opened.state == .open && opened.signaturesValid)
        let open = try #require(try s.a.outbox(for: try s.b.agent()).first?.message)
        guard case .applied(let replies) = try s.b.receiveTally(open, from: try s.a.agent(), autoAcceptKey: { _ in nil }) else {
            Issue.record("open not applied"); return
        }
        #expect(try s.b.tally(offered.uuid).state == .open)
        #expect(try s.b.tally(offered.uuid).signaturesValid)
        #expect(try s.b.outbox(for: try s.a.agent()).isEmpty, "the offer was applied")
        // b answers open with open; a drops its queued open; a repeat changes nothing.
        #expect(try s.a.receiveTally(try #require(replies.first), from: try s.b.agent(), autoAcceptKey: { _ in nil }) == .applied(replies: []))
        #expect(try s.a.outbox(for: try s.b.agent()).isEmpty)
        #expect(try s.a.tally(offered.uuid).sign == (try s.b.tally(offered.uuid).sign))
    }

    @Test func messagesFromTheWrongPeerOrTamperedAreIgnored() throws {
        let s = try Sites()
        let offer = try s.offer(for: try s.request(try s.ticket()))
        let stranger = try AgentID(publicKey: SigningKey.generate().publicKey)
        if case .applied = try s.a.receiveTally(offer, from: stranger, autoAcceptKey: { _ in nil }) {
            Issue.record("an offer from a site that is not the partner was applied")
        }
        // Tampered: limit changed after signing; the hash no longer matches.
        var object = try #require(offer["object"]?.objectValue)
        var stock = try #require(object["stock"]?.objectValue)
        stock["terms"] = ["limit": 999_999]
        object["stock"] = .object(stock)
        var tampered = try #require(offer.objectValue)
        tampered["object"] = .object(object)
        if case .applied = try s.a.receiveTally(.object(tampered), from: try s.b.agent(), autoAcceptKey: { _ in nil }) {
            Issue.record("a tampered offer was applied")
        }
        #expect(try s.a.tallies().allSatisfy { $0.state == .draft })
        // The genuine offer still works afterwards.
        #expect(try s.a.receiveTally(offer, from: try s.b.agent(), autoAcceptKey: { _ in nil }) == .applied(replies: []))
    }

    @Test func oneTimeTokensAreConsumedOnceEvenWhenRacing() async throws {
        let s = try Sites()
        let t = try s.ticket()
        // Two requesters (two users of a) race for one one-time token.
        try s.a.addUser(cuid: try CUID("carol"), name: "Carol", email: nil, sealingKey: nil)
        let m1 = try s.request(t)
        _ = try s.a.requestTally(cuid: try CUID("carol"), ticket: t, accept: false)
        let m2 = try #require(try s.a.outbox(for: try s.b.agent()).map(\.message).first { $0 != m1 })
        let b = s.b
        async let r1 = Task.detached { try b.redeemTicket(m1, userKey: { try b.userKey($0, sealingKey: nil) }) }.value
        async let r2 = Task.detached { try b.redeemTicket(m2, userKey: { try b.userKey($0, sealingKey: nil) }) }.value
        let outcomes = try await [r1, r2]
        #expect(outcomes.filter { if case .offer = $0 { return true } else { return false } }.count == 1)
        #expect(outcomes.contains(.refused("ticket already used")))
        #expect(try s.b.tallies().count == 1)
    }

    @Test func autoAcceptOnlyWhenOurUserGrantsNoCredit() throws {
        let s = try Sites()
        let offer = try s.offer(for: try s.request(try s.ticket(), accept: true))
        #expect(try s.a.receiveTally(offer, from: try s.b.agent(), autoAcceptKey: { try s.a.userKey($0, sealingKey: nil) }) == .applied(replies: []))
        #expect(try s.a.tallies().first?.state == .open)
        #expect(try s.a.outbox(for: try s.b.agent()).first?.message["action"] == "open")
    }
}
