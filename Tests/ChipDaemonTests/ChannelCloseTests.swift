import ChipModel
import ChipPeer
import Foundation
import NIOConcurrencyHelpers
import Testing
import TestSupport
@testable import ChipDaemon

/// Closing channels: nothing of a closed connection stays behind in the
/// engine or the node, and removing one does not walk the others.
@Suite(.serialized) struct ChannelCloseTests {
    @Test func channelOrderAddsRemovesAndWalksNewestFirst() {
        var order = ChannelOrder()
        for id in UInt64(1)...10 { order.append(id) }
        #expect(Array(order.newestFirst) == Array((UInt64(1)...10).reversed()))
        order.remove(10)
        order.remove(3)
        order.remove(3)
        order.remove(42)
        #expect(order.count == 8)
        #expect(order.newestFirst.first == 9, "the newest open one")
        #expect(Array(order.newestFirst) == [9, 8, 7, 6, 5, 4, 2, 1])
        order.append(11)
        #expect(order.newestFirst.first == 11)
        // Many out of order: what is left keeps its order.
        for id in UInt64(12)...5_000 { order.append(id) }
        for id in UInt64(12)...4_990 where id % 7 != 0 { order.remove(id) }
        let left = Array(order.newestFirst)
        #expect(left == left.sorted(by: >), "newest first")
        #expect(left.count == order.count)
        #expect(Array(left.prefix(10)) == Array((UInt64(4_991)...5_000).reversed()))
        for id in left { order.remove(id) }
        #expect(order.isEmpty)
        #expect(Array(order.newestFirst).isEmpty)
    }

    @Test func closingManyChannelsLeavesNoPerConnectionEntryBehind() async throws {
        let dir = try TempDir()
        let a = try TestSite(dir: dir, name: "alice"), b = try TestSite(dir: dir, name: "bob")
        var many = PeerLimits()
        many.handshakeRate = 100_000
        many.handshakeBurst = 100_000
        try await a.start(limits: many)
        try await b.start(limits: many)
        defer {
            Task {
                await a.stop(); await b.stop()
            }
        }
        try a.addPartner(b, cuid: "alice", otherCuid: "bob")
        try b.addPartner(a, cuid: "bob", otherCuid: "alice")
        let released = NIOLockedValueBox(0)
        await b.daemon?.engine.setMemoryRelease { released.withLockedValue { $0 += 1 } }
        let (na, nb) = (try #require(a.daemon?.node), try #require(b.daemon?.node))
        let (ea, eb) = (try #require(a.daemon?.engine), try #require(b.daemon?.engine))

        let count = 300
        var opened: [PeerConnection] = []
        for _ in 0..<count { opened.append(try await na.dial(host: "127.0.0.1", port: b.port, remote: b.agent)) }
        #expect(await eventually { await eb.openChannels(with: a.agent) == count })
        #expect(await eventually { await eb.perConnectionEntries() == 2 * count })
        #expect(nb.perConnectionEntries == 2 * count)

        // Closed out of order, newest and oldest first: the newest left is the one used.
        for (i, c) in opened.enumerated() where i % 2 == 0 || i == count - 1 { c.close() }
        #expect(await eventually { await ea.openChannels(with: b.agent) == count / 2 - 1 })
        #expect(await ea.openConnection(b.agent)?.id == opened[count - 3].id)
        for c in opened { c.close() }

        #expect(await eventually { await ea.perConnectionEntries() == 0 && na.perConnectionEntries == 0 && na.connectionCount == 0 })
        #expect(await eventually { await eb.perConnectionEntries() == 0 && nb.perConnectionEntries == 0 && nb.connectionCount == 0 })
        #expect(await eb.openChannels(with: a.agent) == 0)
        #expect(await eventually { released.withLockedValue { $0 } >= 1 }, "memory given back once they had all closed")

        // The site still opens a channel and uses it afterwards.
        let again = try await na.dial(host: "127.0.0.1", port: b.port, remote: b.agent)
        try await again.send(try a.message("after", from: "alice", to: b, toCuid: "bob"))
        #expect(await eventually { b.inbox.contains(action: "after") })
    }
}
