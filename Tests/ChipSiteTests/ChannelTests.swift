import ChipChannel
import ChipModel
import ChipPeer
import Foundation
import Testing
@testable import ChipSite
@testable import ChipStore

/// Two sites, two site files, real TCP on loopback, in this process.
@Suite(.serialized) struct SiteChannelTests {
    @Test func firstContactWithATicketThenNKAfterTheIdleClose() async throws {
        let dir = try TempDir()
        let a = try TestSite(dir: dir, name: "alice"), b = try TestSite(dir: dir, name: "bob")
        var fastIdle = PeerLimits()
        fastIdle.idleTimeout = 1
        try await a.start()
        try await b.start(limits: fastIdle)
        defer { Task { await a.stop(); await b.stop() } }

        let ticket = try b.store.issueTicket(cuid: try CUID("bob"), expiresAt: Int64(Date().timeIntervalSince1970 * 1000) + 3_600_000,
                                             reuse: false, bound: nil, terms: [:])
        let ticketMessage: JSONValue = [
            "target": "tally", "action": "ticket", "to": try b.chad("bob").json, "from": try a.chad("alice").json,
            "ticket": ["token": .string(ticket.token), "cert": (try a.store.user(try CUID("alice"))).certificate.json],
        ]
        try a.store.enqueue(to: try b.chad("bob"), topic: "ticket", message: ticketMessage, firstContact: true)
        a.daemon?.poke()
        #expect(await eventually { b.inbox.contains(action: "ticket") }, "the ticket message arrived over IK")
        #expect(await eventually { await b.daemon?.engine.openChannels(with: a.agent) == 1 })

        // The responder closes the idle channel; a later message goes over N+K.
        try a.addPartner(b, cuid: "alice", otherCuid: "bob")
        try b.addPartner(a, cuid: "bob", otherCuid: "alice")
        #expect(await eventually(5) { await b.daemon?.engine.openChannels(with: a.agent) == 0 }, "idle close")
        try a.store.removeOutbox(id: try #require(try a.store.outbox(for: b.agent).first).id)
        try a.store.enqueue(to: try b.chad("bob"), topic: "t2", message: try a.message("later", from: "alice", to: b, toCuid: "bob"))
        a.daemon?.poke()
        #expect(await eventually { b.inbox.contains(action: "later") }, "the later message arrived over N+K")
    }

    @Test func oneChannelCarriesBothDirectionsAndBothTallies() async throws {
        let dir = try TempDir()
        let a = try TestSite(dir: dir, name: "alice"), b = try TestSite(dir: dir, name: "bob")
        try await a.start()
        try await b.start()
        defer { Task { await a.stop(); await b.stop() } }
        try a.addPartner(b, cuid: "alice", otherCuid: "bob")
        try b.addPartner(a, cuid: "bob", otherCuid: "alice")
        try a.store.enqueue(to: try b.chad("bob"), topic: "t1", message: try a.message("one", from: "alice", to: b, toCuid: "bob", topic: "t1"))
        a.daemon?.poke()
        #expect(await eventually { b.inbox.contains(action: "one") })
        // b answers on the channel a opened, for two tallies, while a sends more.
        for i in 0..<20 {
            try b.store.enqueue(to: try a.chad("alice"), topic: "t\(i % 2)",
                                message: try b.message("back\(i)", from: "bob", to: a, toCuid: "alice", topic: "t\(i % 2)"))
            try a.store.enqueue(to: try b.chad("bob"), topic: "t\(i % 2)",
                                message: try a.message("forth\(i)", from: "alice", to: b, toCuid: "bob", topic: "t\(i % 2)"))
        }
        a.daemon?.poke()
        b.daemon?.poke()
        #expect(await eventually { (0..<20).allSatisfy { a.inbox.contains(action: "back\($0)") && b.inbox.contains(action: "forth\($0)") } })
        #expect(await a.daemon?.engine.openChannels(with: b.agent) == 1, "b reused the channel a opened")
        #expect(await b.daemon?.engine.openChannels(with: a.agent) == 1)
    }

    @Test func simultaneousOpensGiveTwoUsableChannels() async throws {
        let dir = try TempDir()
        let a = try TestSite(dir: dir, name: "alice"), b = try TestSite(dir: dir, name: "bob")
        try await a.start()
        try await b.start()
        defer { Task { await a.stop(); await b.stop() } }
        try a.addPartner(b, cuid: "alice", otherCuid: "bob")
        try b.addPartner(a, cuid: "bob", otherCuid: "alice")
        guard let na = a.daemon?.node, let nb = b.daemon?.node else { return }
        async let ca = na.dial(host: "127.0.0.1", port: b.port, remote: b.agent)
        async let cb = nb.dial(host: "127.0.0.1", port: a.port, remote: a.agent)
        let (fromA, fromB) = try await (ca, cb)
        try await fromA.send(try a.message("via-a", from: "alice", to: b, toCuid: "bob"))
        try await fromB.send(try b.message("via-b", from: "bob", to: a, toCuid: "alice"))
        #expect(await eventually { b.inbox.contains(action: "via-a") && a.inbox.contains(action: "via-b") })
        #expect(await a.daemon?.engine.openChannels(with: b.agent) == 2)
    }

    @Test func theOutboxDeliversAfterThePeerComesBack() async throws {
        let dir = try TempDir()
        let a = try TestSite(dir: dir, name: "alice"), b = try TestSite(dir: dir, name: "bob")
        try await a.start()
        try await b.start()
        let bPort = b.port
        try a.addPartner(b, cuid: "alice", otherCuid: "bob")
        try b.addPartner(a, cuid: "bob", otherCuid: "alice")
        await b.stop()
        try a.store.enqueue(to: try b.chad("bob"), topic: "t", message: try a.message("queued", from: "alice", to: b, toCuid: "bob"))
        a.daemon?.poke()
        try await Task.sleep(for: .milliseconds(700))
        #expect(try a.store.outbox(for: b.agent).first?.attempts ?? 0 >= 1, "a tried while b was down")
        #expect(!b.inbox.contains(action: "queued"))
        try await b.start(port: bPort)
        defer { Task { await a.stop(); await b.stop() } }
        #expect(await eventually(20) { b.inbox.contains(action: "queued") }, "delivered after b came back")
        #expect(try a.store.outbox(for: b.agent).count == 1, "kept until applied")
    }
}
