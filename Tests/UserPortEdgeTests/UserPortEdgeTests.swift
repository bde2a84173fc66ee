import ChipChannel
import ChipModel
import ChipUserPort
import Foundation
import NIOCore
import Noise
import TestSupport
import Testing

/// The user port's edge over real TCP on loopback (protocol 10.1-10.4):
/// register, session, echo, and every limit and silent close, against a
/// fake host. Every wait is bounded and waits on a condition.
@Suite struct UserPortEdgeTests {
    @Test func registerThenSessionThenEcho() async throws {
        let f = try await Fixture()
        let key = KeyPair.generate()
        await f.host.addToken(token(1), user: f.alice)
        let (user, device) = try await UserPortClient.register(ticket: try f.ticket(token(1)), deviceName: "Pixel 7", deviceKey: key)
        #expect(user == f.alice)
        #expect(device == (try DeviceID(publicKey: key.publicKey)))
        // A spent token: silent close, counted.
        await #expect(throws: UserPortError.closedSilently) {
            _ = try await UserPortClient.register(ticket: try f.ticket(token(1)), deviceName: "again", deviceKey: .generate())
        }

        let session = try await f.connect(key)
        #expect(session.grant.user == f.alice)
        #expect(session.agent == f.site.agent)
        #expect(session.grant.scopes == Set(UserScope.allCases))
        let inbox = Inbox(session.messages)
        try await session.send(["id": "1", "cmd": "me.get"])
        try await session.send(["id": "2", "cmd": "tally.list", "args": ["limit": 5]])
        #expect(await eventually(10) { inbox.messages.count == 2 })
        #expect(inbox.messages.map { $0["id"] } == ["1", "2"])
        #expect(inbox.messages.first?["ok"] == true)
        #expect(inbox.messages.last?["data"]?["args"]?["limit"] == 5)

        // The site side: the session is found by user and device, and refuses an oversized message.
        let open = f.listener.sessions(user: f.alice)
        #expect(open.count == 1)
        #expect(f.listener.sessions(device: device).map(\.id) == open.map(\.id))
        let big = JSONValue.object(["data": .string(String(repeating: "x", count: 70_000))])
        await #expect(throws: UserPortError.tooLarge(70_011)) { try await open[0].send(big) }
        await #expect(throws: UserPortError.tooLarge(70_011)) { try await session.send(big) }
        #expect(await f.host.openedCount == 1)

        session.close()
        #expect(await eventually(10) { await f.host.closedCount == 1 && f.listener.connectionCount == 0 })
        #expect(f.listener.sessions(user: f.alice).isEmpty)
        await f.listener.shutdown()
    }

    @Test func unknownKeyClosesSilently() async throws {
        let f = try await Fixture()
        await #expect(throws: UserPortError.closedSilently) { _ = try await f.connect(.generate()) }
        #expect(await f.host.sessionCalls == 1)
        #expect(await f.host.openedCount == 0)
        #expect(await eventually(10) { f.listener.connectionCount == 0 })
        await f.listener.shutdown()
    }

    @Test func badFramesCloseSilentlyAndAskNothing() async throws {
        let f = try await Fixture()
        let peer = TestSite()
        let peerLocal = try peer.local
        let (_, firstContact) = try ChannelMachine.firstContact(local: peerLocal, remote: f.site.agent, ticketMessage: ["target": "tally"])
        let (_, laterContact) = try ChannelMachine.laterContact(local: peerLocal, remote: f.site.agent)
        func wire(_ actions: [ChannelAction]) -> [UInt8] {
            actions.flatMap { action -> [UInt8] in if case .send(let frame) = action { return frame.encoded } else { return [] } }
        }
        let zeros = [UInt8](repeating: 0, count: 64)
        let cases: [(String, [UInt8])] = [
            ("length 0", [0, 0, 0, 0]),
            ("length 16", [0, 0, 0, 16] + [UInt8(ascii: "I")] + zeros.prefix(15)),
            ("length 65537", [0, 1, 0, 1, UInt8(ascii: "I")] + zeros),
            ("length 2^32-1", [0xFF, 0xFF, 0xFF, 0xFF, UInt8(ascii: "I")] + zeros),
            ("unknown header", Frame(.T, []).encoded.prefix(4) + [UInt8(ascii: "Z")] + zeros.prefix(16)),
            ("T before I", Frame(.T, Array(zeros.prefix(32))).encoded),
            ("A from the device", Frame(.A, Array(zeros.prefix(48))).encoded),
            ("N header", Frame(.N, Array(zeros.prefix(48))).encoded),
            ("K header", Frame(.K, Array(zeros.prefix(48))).encoded),
            ("peer first contact (IK, empty prologue)", wire(firstContact)),
            ("peer later contact (N then K)", wire(laterContact))
        ]
        for (name, bytes) in cases {
            let raw = try await RawClient.connect(port: f.port)
            await raw.send(bytes)
            #expect(await raw.waitClosed(10), "\(name): not closed")
            #expect(raw.state.bytes.isEmpty, "\(name): the site answered")
        }
        #expect(await f.host.asked == 0)
        #expect(await eventually(10) { f.listener.connectionCount == 0 })
        await f.listener.shutdown()
    }

    @Test func aSecondIOnAnOpenSessionClosesIt() async throws {
        let f = try await Fixture()
        let key = try await f.registeredDevice()
        var raw = try await RawSession.open(f, key: key)
        #expect(await eventually(10) { await f.host.openedCount == 1 })
        // A request works, then a second I closes the session.
        for case .send(let frame) in try raw.machine.send(["id": "1", "cmd": "me.get"]) { await raw.raw.send(frame.encoded) }
        #expect(await eventually(10) { raw.raw.frames.count == 2 })
        let (_, again) = try UserChannelMachine.session(device: key, site: f.site.agent)
        for case .send(let frame) in again { await raw.raw.send(frame.encoded) }
        #expect(await raw.raw.waitClosed(10))
        #expect(await f.host.sessionCalls == 1)
        #expect(await eventually(10) { await f.host.closedCount == 1 })
        await f.listener.shutdown()
    }

    @Test func slowlorisIsClosedAtTheHandshakeTimeout() async throws {
        let f = try await Fixture { $0.handshakeTimeout = 0.5 }
        let (_, actions) = try UserChannelMachine.session(device: .generate(), site: f.site.agent)
        let bytes = actions.flatMap { action -> [UInt8] in if case .send(let frame) = action { return frame.encoded } else { return [] } }
        let raw = try await RawClient.connect(port: f.port)
        let started = Date()
        let dribble = Task {
            for byte in bytes {
                guard !raw.state.closed else { return }
                await raw.send([byte])
                try? await Task.sleep(for: .milliseconds(50))
            }
        }
        #expect(await raw.waitClosed(10))
        let elapsed = Date().timeIntervalSince(started)
        #expect(elapsed >= 0.4 && elapsed < Double(bytes.count) * 0.05, "closed after \(elapsed) s")
        dribble.cancel()
        #expect(await f.host.asked == 0)
        await f.listener.shutdown()
    }

    @Test func aHandshakeFloodHitsTheRateCapBesideAHealthySession() async throws {
        let f = try await Fixture {
            $0.handshakeBurst = 4
            $0.handshakeRate = 0.0001
        }
        let key = try await f.registeredDevice()  // token 1
        let session = try await f.connect(key)  // token 2
        let inbox = Inbox(session.messages)
        let asked = await f.host.asked
        var flood: [RawClient] = []
        for _ in 0..<10 { flood.append(try await RawClient.connect(port: f.port)) }
        // Two more are admitted (tokens 3 and 4); the other eight are closed at accept.
        #expect(await eventually(10) { flood.filter(\.state.closed).count == 8 })
        await #expect(throws: UserPortError.closedSilently) { _ = try await f.connect(key) }
        try await session.send(["id": "after the flood", "cmd": "me.get"])
        #expect(await eventually(10) { inbox.messages.count == 1 })
        #expect(inbox.messages.first?["id"] == "after the flood")
        #expect(await f.host.asked == asked)
        #expect(f.listener.connectionCount == 3)
        for raw in flood { raw.close() }
        await f.listener.shutdown()
    }

    @Test func connectionsPerAddressAreCapped() async throws {
        let f = try await Fixture { $0.maxConnectionsPerAddress = 3 }
        var raws: [RawClient] = []
        for _ in 0..<3 { raws.append(try await RawClient.connect(port: f.port)) }
        #expect(await eventually(10) { f.listener.connectionCount == 3 })
        let fourth = try await RawClient.connect(port: f.port)
        #expect(await fourth.waitClosed(10))
        raws[0].close()
        #expect(await eventually(10) { f.listener.connectionCount == 2 })
        let fifth = try await RawClient.connect(port: f.port)
        #expect(await eventually(10) { f.listener.connectionCount == 3 })
        #expect(!fifth.state.closed)
        for raw in raws + [fifth] { raw.close() }
        await f.listener.shutdown()
    }

    @Test func aClientConnectsFromTheLocalAddressItIsGiven() async throws {
        let f = try await Fixture { $0.maxConnectionsPerAddress = 1 }
        let key = KeyPair.generate()
        await f.host.addToken(token(1), user: f.alice)
        _ = try await UserPortClient.register(ticket: try f.ticket(token(1)), deviceName: "bench", deviceKey: key, localAddress: "127.0.0.2")
        // One connection per address: a second session from another address is let in beside the first.
        let first = try await UserPortClient.connect(address: try f.address, agent: f.site.agent, deviceKey: key, localAddress: "127.0.0.3")
        let second = try await UserPortClient.connect(address: try f.address, agent: f.site.agent, deviceKey: key, localAddress: "127.0.0.4")
        #expect(await f.host.addresses == ["127.0.0.2", "127.0.0.3", "127.0.0.4"])
        await #expect(throws: UserPortError.invalidArgument("not an IP address: nowhere")) {
            _ = try await UserPortClient.connect(address: try f.address, agent: f.site.agent, deviceKey: key, localAddress: "nowhere")
        }
        first.close()
        second.close()
        #expect(await eventually(10) { f.listener.connectionCount == 0 })
        await f.listener.shutdown()
    }

    @Test func failureWindowsCountPerKeyAndForget() {
        var w = FailureWindows(limit: 5, window: 60, maxKeys: 3)
        for t in 0..<4 { w.record("a", now: Double(t)) }
        #expect(!w.isBlocked("a", now: 4))
        w.record("a", now: 4)
        #expect(w.isBlocked("a", now: 5))
        #expect(!w.isBlocked("b", now: 5))
        #expect(w.isBlocked("a", now: 59.9))
        #expect(!w.isBlocked("a", now: 60.5))  // the first failure has left the window
        #expect(!w.isBlocked("a", now: 64.5))
        w.record("b", now: 65)
        w.record("c", now: 65)
        w.record("d", now: 65)
        w.record("e", now: 65)
        #expect(w.count <= 3)
    }

    @Test func fiveFailedRegistrationsCloseTheAddressForTheWindow() async throws {
        // Long enough that a loaded machine still sees the block inside it.
        let window = 10.0
        let f = try await Fixture { $0.failedRegistrationWindow = window }
        let started = Date()
        for n in 1...5 {
            await #expect(throws: UserPortError.closedSilently) {
                _ = try await UserPortClient.register(ticket: try f.ticket(token(100 + n)), deviceName: "d", deviceKey: .generate())
            }
        }
        #expect(await f.host.registerCalls == 5)
        await f.host.addToken(token(1), user: f.alice)
        await #expect(throws: UserPortError.closedSilently) {
            _ = try await UserPortClient.register(ticket: try f.ticket(token(1)), deviceName: "d", deviceKey: .generate())
        }
        await #expect(throws: UserPortError.closedSilently) { _ = try await f.connect(.generate()) }
        let blockedAt = Date().timeIntervalSince(started)
        #expect(blockedAt < window, "the test was too slow to see the block (\(blockedAt) s)")
        #expect(await f.host.asked == 5)
        // Once the window has passed, the valid ticket registers.
        let key = KeyPair.generate()
        #expect(
            await eventually(window + 10, every: 0.25) {
                (try? await UserPortClient.register(ticket: try f.ticket(token(1)), deviceName: "d", deviceKey: key)) != nil
            })
        #expect(Date().timeIntervalSince(started) >= window * 0.9)
        await f.listener.shutdown()
    }

    @Test func closeSessionsOfADeviceOrAUserClosesThemAtOnce() async throws {
        let f = try await Fixture()
        let phone = try await f.registeredDevice(1)
        let laptop = try await f.registeredDevice(2)
        let a = Inbox(try await f.connect(phone).messages)
        let b = Inbox(try await f.connect(phone).messages)
        let c = Inbox(try await f.connect(laptop).messages)
        #expect(await eventually(10) { await f.host.openedCount == 3 })
        let phoneID = try DeviceID(publicKey: phone.publicKey)
        #expect(f.listener.closeSessions(device: phoneID) == 2)
        #expect(await eventually(1) { a.ended && b.ended })
        #expect(!c.ended)
        #expect(await eventually(10) { f.listener.sessions(device: phoneID).isEmpty && f.listener.sessions(user: f.alice).count == 1 })
        #expect(f.listener.closeSessions(user: f.alice) == 1)
        #expect(await eventually(1) { c.ended })
        #expect(await eventually(10) { await f.host.closedCount == 3 })
        // Nothing of the three connections is left behind.
        #expect(await eventually(10) { f.listener.connectionCount == 0 && f.listener.perConnectionEntries == 0 })
        await f.listener.shutdown()
    }

    @Test func aRevokeWhileTheSiteAnswersTheSessionQuestionClosesIt() async throws {
        let f = try await Fixture()
        let key = try await f.registeredDevice()
        await f.host.hold()
        let attempt = Task { try await f.connect(key) }
        #expect(await eventually(10) { await f.host.heldCount == 1 })
        #expect(f.listener.closeSessions(device: try DeviceID(publicKey: key.publicKey)) == 1)
        await f.host.releaseSessions()
        await #expect(throws: UserPortError.self) { _ = try await attempt.value }
        #expect(await eventually(10) { f.listener.connectionCount == 0 })
        #expect(await eventually(10) { await f.host.openedCount == f.host.closedCount })
        await f.listener.shutdown()
    }

    @Test func theClientTimesOutAndReportsARefusedConnection() async throws {
        let f = try await Fixture()
        let key = try await f.registeredDevice()
        await f.host.hold()
        let started = Date()
        await #expect(throws: UserPortError.timedOut) {
            _ = try await UserPortClient.connect(address: try f.address, agent: f.site.agent, deviceKey: key, timeout: 0.5)
        }
        #expect(Date().timeIntervalSince(started) < 5)
        await f.host.releaseSessions()
        await f.listener.shutdown()
        let closedPort = try SiteAddress(host: "127.0.0.1", port: freePort())
        await #expect {
            _ = try await UserPortClient.connect(address: closedPort, agent: f.site.agent, deviceKey: key, timeout: 2)
        } throws: { error in
            guard case .connectFailed = error as? UserPortError else { return false }
            return true
        }
    }

    @Test func noCommonVersionGetsTheRefusalThenClose() async throws {
        let f = try await Fixture()
        let key = try await f.registeredDevice()
        let raw = try await RawClient.connect(port: f.port)
        var (machine, hello) = try UserChannelMachine.session(device: key, site: f.site.agent, versions: [7])
        for case .send(let frame) in hello { await raw.send(frame.encoded) }
        #expect(await raw.waitClosed(10))
        let frames = raw.frames
        #expect(frames.map(\.header) == [.A])
        #expect(machine.receive(try #require(frames.first)) == [.answered(.versionRefused)])
        #expect(await f.host.openedCount == 0)
        await f.listener.shutdown()
    }

    @Test func idleSessionsAreClosed() async throws {
        let f = try await Fixture { $0.idleTimeout = 3 }
        let key = try await f.registeredDevice()
        let session = try await f.connect(key)
        let inbox = Inbox(session.messages)
        // A frame every 0.5 s keeps it open past the idle time (with room for a loaded machine).
        for n in 1...8 {
            try await session.send(["id": .string("ping \(n)"), "cmd": "ping"])
            #expect(await eventually(10) { inbox.messages.count == n })
            try await Task.sleep(for: .milliseconds(500))
        }
        #expect(!inbox.ended)
        let started = Date()
        #expect(await eventually(10) { inbox.ended })
        #expect(Date().timeIntervalSince(started) >= 2)
        #expect(await eventually(10) { await f.host.closedCount == 1 })
        await f.listener.shutdown()
    }

    @Test func theNinthSessionOfAUserIsClosedSilently() async throws {
        let f = try await Fixture()
        let one = try await f.registeredDevice(1)
        let two = try await f.registeredDevice(2)
        var sessions: [UserClientSession] = []
        for n in 0..<UserPortDefaults.maxSessionsPerUser { sessions.append(try await f.connect(n % 2 == 0 ? one : two)) }
        await #expect(throws: UserPortError.closedSilently) { _ = try await f.connect(two) }
        #expect(await f.host.sessionCalls == 9)
        #expect(await eventually(10) { await f.host.openedCount == 8 })
        sessions[0].close()
        #expect(await eventually(10) { f.listener.sessions(user: f.alice).count == 7 })
        sessions.append(try await f.connect(two))
        #expect(await eventually(10) { f.listener.sessions(user: f.alice).count == 8 })
        await f.listener.shutdown()
    }

    @Test func aDeviceThatDoesNotReadIsClosedAtTheQueueCap() async throws {
        let f = try await Fixture { $0.maxQueuedBytes = 256 * 1024 }
        let key = try await f.registeredDevice()
        let raw = try await RawSession.open(f, key: key, receiveBuffer: 4096)
        try await raw.raw.channel.setOption(.autoRead, value: false).get()
        #expect(await eventually(10) { f.listener.sessions(user: f.alice).count == 1 })
        let session = try #require(f.listener.sessions(user: f.alice).first)
        let chunk = JSONValue.object(["event": "tally", "data": .string(String(repeating: "y", count: 60_000))])
        var sent = 0
        var refused = false
        // At most 2,000 frames (120 MB): kernel buffers, NIO's and the queue fill long before.
        for _ in 0..<2_000 {
            do {
                try await session.send(chunk)
                sent += 1
            } catch {
                #expect(error == .notOpen)
                refused = true
                break
            }
        }
        #expect(refused, "sent \(sent) frames without a close")
        #expect(await eventually(10) { await f.host.closedCount == 1 })
        raw.raw.close()
        await f.listener.shutdown()
    }
}
