import ChipChannel
import Glibc
import ChipModel
import ChipPeer
import Foundation
import Noise
import Testing
import TestSupport
@testable import ChipDaemon
import ChipProtocol
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
        defer {
            Task {
                await a.stop(); await b.stop()
            }
        }

        let ticket = try b.store.issueTicket(
            cuid: try CUID("bob"), expiresAt: Int64(Date().timeIntervalSince1970 * 1000) + 3_600_000,
            reuse: false, bound: nil, terms: [:])
        let ticketMessage: JSONValue = [
            "target": "tally", "action": "ticket", "to": try b.chad("bob").json, "from": try a.chad("alice").json,
            "ticket": ["token": .string(ticket.token), "cert": (try a.store.user(try CUID("alice"))).certificate.json]
        ]
        try a.store.enqueue(to: try b.chad("bob"), topic: "ticket", message: ticketMessage, firstContact: true)
        // Seen (the inbox) but not handled: this synthetic ticket's certificate
        // does not name the requester, and b would close the channel at once
        // on refusing it (then only a race would find it open).
        await b.daemon?.engine.injectFaults { m, _ in m["action"]?.stringValue == "ticket" ? .drop : .deliver }
        a.daemon?.poke()
        #expect(await eventually { b.inbox.contains(action: "ticket") }, "the ticket message arrived over IK")
        #expect(await eventually { await b.daemon?.engine.openChannels(with: a.agent) == 1 })

        // The ticket message has done its work (a real requester drops it when
        // the offer arrives; this one is synthetic), so a does not dial again.
        try a.store.removeOutbox(id: try #require(try a.store.outbox(for: b.agent).first).id)
        // The responder closes the idle channel; a later message goes over N+K.
        try a.addPartner(b, cuid: "alice", otherCuid: "bob")
        try b.addPartner(a, cuid: "bob", otherCuid: "alice")
        #expect(await eventually(10) { await b.daemon?.engine.openChannels(with: a.agent) == 0 }, "idle close")
        try a.store.enqueue(to: try b.chad("bob"), topic: "t2", message: try a.message("later", from: "alice", to: b, toCuid: "bob"))
        a.daemon?.poke()
        #expect(await eventually { b.inbox.contains(action: "later") }, "the later message arrived over N+K")
    }

    @Test func oneChannelCarriesBothDirectionsAndBothTallies() async throws {
        let dir = try TempDir()
        let a = try TestSite(dir: dir, name: "alice"), b = try TestSite(dir: dir, name: "bob")
        try await a.start()
        try await b.start()
        defer {
            Task {
                await a.stop(); await b.stop()
            }
        }
        try a.addPartner(b, cuid: "alice", otherCuid: "bob")
        try b.addPartner(a, cuid: "bob", otherCuid: "alice")
        try a.store.enqueue(to: try b.chad("bob"), topic: "t1", message: try a.message("one", from: "alice", to: b, toCuid: "bob", topic: "t1"))
        a.daemon?.poke()
        #expect(await eventually { b.inbox.contains(action: "one") })
        // b answers on the channel a opened, for two tallies, while a sends more.
        for i in 0..<20 {
            try b.store.enqueue(
                to: try a.chad("alice"), topic: "t\(i % 2)",
                message: try b.message("back\(i)", from: "bob", to: a, toCuid: "alice", topic: "t\(i % 2)"))
            try a.store.enqueue(
                to: try b.chad("bob"), topic: "t\(i % 2)",
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
        defer {
            Task {
                await a.stop(); await b.stop()
            }
        }
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
        #expect(try await eventually(10) { try a.store.outbox(for: b.agent).first?.attempts ?? 0 >= 1 }, "a tried while b was down")
        #expect(!b.inbox.contains(action: "queued"))
        try await b.start(port: bPort)
        defer {
            Task {
                await a.stop(); await b.stop()
            }
        }
        #expect(await eventually(20) { b.inbox.contains(action: "queued") }, "delivered after b came back")
        #expect(try a.store.outbox(for: b.agent).count == 1, "kept until applied")
    }

    @Test func aPartnerThatStopsReadingIsCutOffAndOthersStillGetTheirMessages() async throws {
        let dir = try TempDir()
        let a = try TestSite(dir: dir, name: "alice"), b = try TestSite(dir: dir, name: "bob"), c = try TestSite(dir: dir, name: "carol")
        var limits = PeerLimits()
        limits.maxQueuedBytes = 65536
        limits.writeStallTimeout = 1
        try await a.start(limits: limits)
        try await c.start()
        defer {
            Task {
                await a.stop(); await c.stop()
            }
        }
        b.port = 1  // bob never listens: a's redials fail at once
        try a.addPartner(b, cuid: "alice", otherCuid: "bob")
        try a.addPartner(c, cuid: "alice", otherCuid: "carol")
        try c.addPartner(a, cuid: "carol", otherCuid: "alice")
        // 200 messages of 60 kB for bob (12 MB: more than the socket buffers hold).
        try a.enqueueLarge(200, to: b, cuid: "bob")
        // bob connects (N+K), takes the channel open, and never reads again.
        let frozen = try FrozenPeer(site: b, port: a.port, remote: a.agent)
        defer { frozen.close() }
        #expect(await eventually { await a.daemon?.engine.openChannels(with: b.agent) == 1 })
        // a is busy with bob once bob's messages pile up unread in his socket.
        #expect(await eventually(10) { frozen.unreadBytes > 0 }, "a sends to the stuck partner")
        try a.store.enqueue(to: try c.chad("carol"), topic: "t", message: try a.message("hello", from: "alice", to: c, toCuid: "carol"))
        a.daemon?.poke()
        #expect(await eventually(10) { c.inbox.contains(action: "hello") }, "a stuck partner does not hold up the others")
        // Each pass queues at most half the queue limit; poking makes the passes
        // come fast enough to fill the socket buffers, then NIO's, then stall.
        #expect(
            await eventually(15) {
                a.daemon?.poke()
                return await a.daemon?.engine.openChannels(with: b.agent) == 0
            }, "the stuck channel is dropped")
        #expect(try a.store.outbox(for: b.agent).count == 200, "what was not taken stays in the outbox")
    }

    @Test func aSlowButLivePartnerIsNotCutOff() async throws {
        let dir = try TempDir()
        let a = try TestSite(dir: dir, name: "alice"), b = try TestSite(dir: dir, name: "bob")
        var limits = PeerLimits()
        limits.writeStallTimeout = 1  // a watchdog that is not called off by progress would cut it at once
        try await a.start(limits: limits)
        defer { Task { await a.stop() } }
        b.port = 1
        try a.addPartner(b, cuid: "alice", otherCuid: "bob")
        try a.enqueueLarge(40, to: b, cuid: "bob")
        let slow = try FrozenPeer(site: b, port: a.port, remote: a.agent)
        defer { slow.close() }
        // A few hundred kB/s (small reads, 20 ms apart) for about 12 s.
        let got = try slow.readSlowly(chunk: 16_384, pause: 0.02, seconds: 40, messages: 40)
        #expect(got == 40, "all 2.4 MB arrived over one channel")
        #expect(await a.daemon?.engine.openChannels(with: b.agent) == 1)
        // A waiting write goes on after 64 KiB drained, not half the buffer.
        #expect(limits.writeBufferLow == (1 << 20) - 65536)
        var small = PeerLimits()
        small.maxQueuedBytes = 65536
        #expect(small.writeBufferLow == 32768)
    }
}

extension TestSite {
    /// Queues `count` messages of about 60 kB each from alice to `other`'s `cuid`.
    func enqueueLarge(_ count: Int, to other: TestSite, cuid: String) throws {
        let pad = JSONValue.string(String(repeating: "x", count: 60_000))
        for i in 0..<count {
            guard case .object(var m) = try message("big\(i)", from: "alice", to: other, toCuid: cuid) else { return }
            m["pad"] = pad
            try store.enqueue(to: try other.chad(cuid), topic: "big\(i)", message: .object(m))
        }
    }
}

/// A raw partner: completes N+K as `site` over a blocking socket with a small
/// receive buffer, then never reads again (or reads slowly, `readSlowly`).
final class FrozenPeer {
    let fd: Int32
    private var machine: ChannelMachine?
    private var reader = FrameReader()

    init(site: TestSite, port: Int, remote: AgentID) throws {
        var secret = site.key.curve25519SecretKey()
        defer { Crypto.wipe(&secret) }
        let local = LocalSite(agent: site.agent, staticKey: try KeyPair(privateKey: secret))
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw StoreError.database("socket") }
        var small: Int32 = 4096
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, socklen_t(MemoryLayout<Int32>.size))
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { Glibc.close(fd); throw StoreError.database("connect") }
        var (machine, actions) = try ChannelMachine.laterContact(local: local, remote: remote)
        var reader = FrameReader()
        var buffer = [UInt8](repeating: 0, count: 4096)
        defer { self.machine = machine; self.reader = reader }
        // At most 20 reads (each bounded by SO_RCVTIMEO) until A opens the channel.
        for _ in 0..<20 {
            for case .send(let frame) in actions {
                let bytes = frame.encoded
                guard bytes.withUnsafeBytes({ send(fd, $0.baseAddress, $0.count, 0) }) == bytes.count else { throw StoreError.database("send") }
            }
            actions = []
            if machine.isOpen { return }
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            guard n > 0 else { break }
            reader.append(buffer[0..<n])
            while let frame = try reader.next() { actions += machine.receive(frame) }
        }
        Glibc.close(fd)
        throw StoreError.database("the frozen peer's channel did not open")
    }

    /// Reads slowly for at most `seconds`: `chunk` bytes, then a pause of
    /// `pause` seconds; stops early once `messages` messages arrived.
    /// Returns the messages delivered.
    func readSlowly(chunk: Int, pause: Double, seconds: Double, messages wanted: Int) throws -> Int {
        guard var machine else { return 0 }
        defer { self.machine = machine }
        var delivered = 0
        var buffer = [UInt8](repeating: 0, count: chunk)
        let end = Date().addingTimeInterval(seconds)
        while Date() < end, delivered < wanted {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            guard n > 0 else { break }
            reader.append(buffer[0..<n])
            while let frame = try reader.next() {
                for case .deliver in machine.receive(frame) { delivered += 1 }
            }
            Thread.sleep(forTimeInterval: pause)
        }
        return delivered
    }

    /// Bytes that arrived and were not read yet (FIONREAD).
    var unreadBytes: Int {
        var n: Int32 = 0
        return ioctl(fd, UInt(FIONREAD), &n) == 0 ? Int(n) : 0
    }

    func close() { Glibc.close(fd) }
}
