import ChipModel
import Noise
import Testing
@testable import ChipChannel

/// The user port's channel (protocol 10.1-10.4): register and session round
/// trips between the device and site machines in memory, and every silent close.

private func userFrames(_ actions: [UserChannelAction]) -> [Frame] {
    actions.compactMap { if case .send(let f) = $0 { return f } else { return nil } }
}

private func isSilentClose(_ actions: [UserChannelAction]) -> Bool {
    actions.count == 1 && { if case .close = actions[0] { return true } else { return false } }()
}

private func delivered(_ actions: [UserChannelAction]) -> [JSONValue] {
    actions.compactMap { if case .deliver(let m) = $0 { return m.json } else { return nil } }
}

private func ticket(for site: TestSite, token: String = String(repeating: "c3", count: 16), user: String? = "alice") throws -> UserTicket {
    var cuid: CUID?
    if let user { cuid = try CUID(user) }
    return try UserTicket(
        address: try SiteAddress(host: "127.0.0.1", port: UserPortDefaults.defaultPort), agent: site.agent,
        user: cuid, token: token, expires: nil)
}

/// A device's `I` frame carrying an arbitrary payload, for the strict-payload cases.
private func rawHello(_ payload: JSONValue, device: KeyPair, site: TestSite) throws -> Frame {
    let rs: [UInt8] = try #require(site.agent.noiseStaticKey)
    let hs = try Handshake(
        pattern: .IK, hash: .blake2b, initiator: true, prologue: UserChannelMachine.prologue,
        localStatic: device, remoteStatic: rs)
    return Frame(.I, try hs.writeMessage(payload.canonicalBytes))
}

private let grant: UserSessionGrant = {
    guard let alice = try? CUID("alice") else { preconditionFailure("alice is a CUID") }
    return UserSessionGrant(user: alice, custody: .site, scopes: Set(UserScope.allCases), features: ["events"])
}()

/// An open session between a device and the site.
private func openSession(_ site: TestSite, device: KeyPair = .generate()) throws -> (device: UserChannelMachine, site: UserChannelMachine) {
    var (client, out) = try UserChannelMachine.session(device: device, site: site.agent)
    var server = UserChannelMachine.responder(local: try site.local)
    let asked = server.receive(try #require(userFrames(out).first))
    #expect(asked == [.ask(.session(try DeviceID(publicKey: device.publicKey)))])
    let answered = server.answerSession(grant)
    #expect(answered.contains(.opened(device: try DeviceID(publicKey: device.publicKey), user: grant.user)))
    out = client.receive(try #require(userFrames(answered).first))
    #expect(out == [.answered(.session(version: 1, agent: site.agent, grant: grant))])
    #expect(client.isOpen && server.isOpen)
    return (client, server)
}

@Suite struct UserChannelTests {
    @Test func registrationIsOneRoundTripThenClose() throws {
        let site = TestSite(), device = KeyPair.generate()
        let t = try ticket(for: site)
        var (client, out) = try UserChannelMachine.register(device: device, ticket: t, deviceName: "Pixel 7")
        var server = UserChannelMachine.responder(local: try site.local)
        let i = try #require(userFrames(out).first)
        #expect(i.header == .I)
        let id = try DeviceID(publicKey: device.publicKey)
        #expect(server.receive(i) == [.ask(.register(UserRegistration(token: t.token, user: try CUID("alice"), deviceName: "Pixel 7", device: id)))])
        let answered = server.answerRegistration(try CUID("alice"))
        #expect(answered.count == 2)
        guard case .closeAfterSend = answered.last else { Issue.record("no close after send: \(answered)"); return }
        #expect(server.isClosed)
        out = client.receive(try #require(userFrames(answered).first))
        #expect(out == [.answered(.registered(version: 1, user: try CUID("alice"), device: id))])
        #expect(client.isClosed)
    }

    @Test func refusedRegistrationAndUnknownKeysCloseSilently() throws {
        let site = TestSite()
        let (_, out) = try UserChannelMachine.register(device: .generate(), ticket: try ticket(for: site, user: nil), deviceName: "d")
        var server = UserChannelMachine.responder(local: try site.local)
        guard case .ask(.register(let r)) = server.receive(try #require(userFrames(out).first)).first else {
            Issue.record("no question"); return
        }
        #expect(r.user == nil)
        #expect(isSilentClose(server.answerRegistration(nil)))
        #expect(server.isClosed)

        let (_, session) = try UserChannelMachine.session(device: .generate(), site: site.agent)
        var server2 = UserChannelMachine.responder(local: try site.local)
        _ = server2.receive(try #require(userFrames(session).first))
        #expect(isSilentClose(server2.answerSession(nil)))
        // An answer to a question never asked does nothing.
        #expect(server2.answerSession(grant) == [])
    }

    @Test func sessionCarriesJSONBothWaysAndSurvivesManyMessages() throws {
        var (client, server) = try openSession(TestSite())
        for n in 0..<5 {
            let request: JSONValue = ["id": .string("r\(n)"), "cmd": "ping"]
            #expect(delivered(server.receive(try #require(userFrames(try client.send(request)).first))) == [request])
            let reply: JSONValue = ["id": .string("r\(n)"), "ok": true, "data": ["time": "2026-11-24T21:00:00.000Z"]]
            #expect(delivered(client.receive(try #require(userFrames(try server.send(reply)).first))) == [reply])
        }
        // A float is delivered flagged (bad_request is the command layer's), not a close.
        let body = Array(#"{"id":"f","cmd":"chit.request","args":{"units":1.5}}"#.utf8)
        let got = server.receive(Frame(.T, try encryptRaw(&client, body)))
        guard case .deliver(let m) = got.first else { Issue.record("not delivered: \(got)"); return }
        #expect(m.hasBadNumber)
    }

    @Test func versionNegotiation() throws {
        let site = TestSite()
        // register with no common version: A says so, the ticket is never asked about.
        let (c1, o1) = try UserChannelMachine.register(device: .generate(), ticket: try ticket(for: site), deviceName: "d", versions: [7, 9])
        var client1 = c1
        var s1 = UserChannelMachine.responder(local: try site.local)
        let a1 = s1.receive(try #require(userFrames(o1).first))
        guard case .closeAfterSend = a1.last else { Issue.record("no refusal: \(a1)"); return }
        #expect(client1.receive(try #require(userFrames(a1).first)) == [.answered(.versionRefused)])
        // session with no common version: a known key is told, an unknown one is not.
        let (c2, o2) = try UserChannelMachine.session(device: .generate(), site: site.agent, versions: [2])
        var client2 = c2
        var s2 = UserChannelMachine.responder(local: try site.local)
        guard case .ask(.session) = s2.receive(try #require(userFrames(o2).first)).first else { Issue.record("no question"); return }
        let a2 = s2.answerSession(grant)
        #expect(client2.receive(try #require(userFrames(a2).first)) == [.answered(.versionRefused)])
        #expect(!s2.isOpen)
        let (_, o3) = try UserChannelMachine.session(device: .generate(), site: site.agent, versions: [2])
        var s3 = UserChannelMachine.responder(local: try site.local)
        _ = s3.receive(try #require(userFrames(o3).first))
        #expect(isSilentClose(s3.answerSession(nil)))
        // Several versions, one in common: it is picked.
        let (_, o4) = try UserChannelMachine.session(device: .generate(), site: site.agent, versions: [3, 1, 2])
        var s4 = UserChannelMachine.responder(local: try site.local)
        _ = s4.receive(try #require(userFrames(o4).first))
        _ = s4.answerSession(grant)
        #expect(s4.isOpen)
    }

    @Test func malformedHelloPayloadsCloseSilently() throws {
        let site = TestSite(), device = KeyPair.generate()
        let token: JSONValue = .string(String(repeating: "ab", count: 16))
        let payloads: [JSONValue] = [
            ["op": "register", "v": [1], "token": token],  // no device name
            ["op": "register", "v": [1], "token": token, "device": "d", "extra": 1],
            ["op": "register", "v": [1], "token": "ABCD", "device": "d"],
            ["op": "register", "v": [1], "token": token, "device": ""],
            ["op": "register", "v": [1], "token": token, "device": .string(String(repeating: "x", count: 65))],
            ["op": "register", "v": [1], "token": token, "device": "tab\there"],
            ["op": "register", "v": [1], "token": token, "device": "d", "user": "bad user"],
            ["op": "session", "v": [1], "token": token],
            ["op": "session", "v": []],
            ["op": "session", "v": [0]],
            ["op": "session", "v": "1"],
            ["op": "session"],
            ["op": "login", "v": [1]],
            ["v": [1]],
            "session"
        ]
        for p in payloads {
            var server = UserChannelMachine.responder(local: try site.local)
            #expect(isSilentClose(server.receive(try rawHello(p, device: device, site: site))), "\(p.canonicalString)")
        }
    }

    @Test func framesOutOfOrderAndForeignHeadersClose() throws {
        let site = TestSite()
        let (_, hello) = try UserChannelMachine.session(device: .generate(), site: site.agent)
        let i = try #require(userFrames(hello).first)
        // T before I, A from a device, N or K (the peer port's) on the user port.
        for frame in [
            Frame(.T, [UInt8](repeating: 0, count: 40)), Frame(.A, [UInt8](repeating: 0, count: 48)),
            Frame(.N, [UInt8](repeating: 0, count: 80)), Frame(.K, [UInt8](repeating: 0, count: 64))
        ] {
            var server = UserChannelMachine.responder(local: try site.local)
            #expect(isSilentClose(server.receive(frame)), "\(frame.header) first")
            #expect(server.receive(i) == [])  // closed stays closed
        }
        // A second I while the question is open, and a T before A.
        var s1 = UserChannelMachine.responder(local: try site.local)
        _ = s1.receive(i)
        #expect(isSilentClose(s1.receive(i)))
        var s2 = UserChannelMachine.responder(local: try site.local)
        _ = s2.receive(i)
        #expect(isSilentClose(s2.receive(Frame(.T, [UInt8](repeating: 1, count: 32)))))
        // A second I on an open session.
        var (_, server) = try openSession(site)
        #expect(isSilentClose(server.receive(i)))
        // Garbage I bodies: too short, too long, random.
        for body in [[UInt8](repeating: 9, count: 95), [UInt8](repeating: 9, count: 200), [UInt8](repeating: 9, count: 2000)] {
            var s = UserChannelMachine.responder(local: try site.local)
            #expect(isSilentClose(s.receive(Frame(.I, body))))
        }
    }

    @Test func badFrameLengthsAndHeadersCloseWithNothingWritten() throws {
        let site = TestSite()
        var wires: [[UInt8]] = [0, 16, 65537, UInt32.max].map { (l: UInt32) in
            [UInt8(l >> 24), UInt8(l >> 16 & 0xFF), UInt8(l >> 8 & 0xFF), UInt8(l & 0xFF)]
        }
        wires.append([0, 0, 0, 17, UInt8(ascii: "X")] + [UInt8](repeating: 0, count: 16))
        for wire in wires {
            var server = UserChannelMachine.responder(local: try site.local)
            var reader = FrameReader()
            reader.append(wire)
            var actions = [UserChannelAction]()
            do {
                while let f = try reader.next() { actions += server.receive(f) }
            } catch {
                actions += server.reject(error)
            }
            #expect(isSilentClose(actions), "\(wire.prefix(5))")
            #expect(userFrames(actions).isEmpty && server.isClosed)
        }
        // A healthy session beside them is unaffected.
        var (client, server) = try openSession(site)
        #expect(delivered(server.receive(try #require(userFrames(try client.send(["id": "x", "cmd": "ping"])).first))).count == 1)
    }

    @Test func badTransportMessagesCloseTheSession() throws {
        var (client, server) = try openSession(TestSite())
        // Not JSON, a non-object, a duplicate key, nesting beyond 32.
        let bodies: [[UInt8]] = [
            Array("nope".utf8), Array("[1]".utf8), Array(#"{"id":"a","id":"b"}"#.utf8),
            Array((String(repeating: "[", count: 32) + "{}" + String(repeating: "]", count: 32)).utf8)
        ]
        for body in bodies {
            var (c, s) = try openSession(TestSite())
            #expect(isSilentClose(s.receive(Frame(.T, try encryptRaw(&c, body)))))
        }
        // Nesting of exactly 32 is delivered.
        let ok = Array(("{\"a\":" + String(repeating: "[", count: 31) + String(repeating: "]", count: 31) + "}").utf8)
        #expect(delivered(server.receive(Frame(.T, try encryptRaw(&client, ok)))).count == 1)
        // A tampered T closes.
        var t = try #require(userFrames(try client.send(["id": "x"])).first)
        t.body[0] ^= 1
        #expect(isSilentClose(server.receive(t)))
    }

    @Test func peerAndUserHandshakesNeverCross() throws {
        let a = TestSite(), b = TestSite()
        // A peer-protocol IK (empty prologue) on the user port.
        let (_, peerOut) = try ChannelMachine.firstContact(
            local: try a.local, remote: b.agent,
            ticketMessage: ticketMessage(from: try a.chad("alice"), to: try b.chad("bob")))
        var userPort = UserChannelMachine.responder(local: try b.local)
        #expect(isSilentClose(userPort.receive(try #require(frames(peerOut).first))))
        // A peer-protocol N/K on the user port.
        let (_, later) = try ChannelMachine.laterContact(local: try a.local, remote: b.agent)
        var userPort2 = UserChannelMachine.responder(local: try b.local)
        #expect(isSilentClose(userPort2.receive(frames(later)[0])))
        // A user-protocol IK on the peer port: register and session.
        let (_, reg) = try UserChannelMachine.register(device: .generate(), ticket: try ticket(for: b), deviceName: "d")
        let (_, ses) = try UserChannelMachine.session(device: .generate(), site: b.agent)
        for out in [reg, ses] {
            var peerPort = ChannelMachine.responder(local: try b.local)
            #expect(isClose(peerPort.receive(try #require(userFrames(out).first))))
        }
        // Only the prologue separates them: a hello of the right shape under the
        // peer prologue, and a ticket message under the user prologue, both close.
        let device0 = KeyPair.generate()
        let rs: [UInt8] = try #require(b.agent.noiseStaticKey)
        let peerHello = try Handshake(
            pattern: .IK, hash: .blake2b, initiator: true, prologue: ChannelMachine.prologue,
            localStatic: device0, remoteStatic: rs)
        var userPort3 = UserChannelMachine.responder(local: try b.local)
        #expect(isSilentClose(userPort3.receive(Frame(.I, try peerHello.writeMessage(Array(#"{"op":"session","v":[1]}"#.utf8))))))
        let userTicketIK = try Handshake(
            pattern: .IK, hash: .blake2b, initiator: true, prologue: UserChannelMachine.prologue,
            localStatic: try a.local.staticKey, remoteStatic: rs)
        let ticketPayload = ticketMessage(from: try a.chad("alice"), to: try b.chad("bob")).canonicalBytes
        var peerPort2 = ChannelMachine.responder(local: try b.local)
        #expect(isClose(peerPort2.receive(Frame(.I, try userTicketIK.writeMessage(ticketPayload)))))
        // The same two with the right prologue get as far as the question.
        let rightHello = try Handshake(
            pattern: .IK, hash: .blake2b, initiator: true, prologue: UserChannelMachine.prologue,
            localStatic: device0, remoteStatic: rs)
        var userPort4 = UserChannelMachine.responder(local: try b.local)
        #expect(
            userPort4.receive(Frame(.I, try rightHello.writeMessage(Array(#"{"op":"session","v":[1]}"#.utf8))))
                == [.ask(.session(try DeviceID(publicKey: device0.publicKey)))])
        let rightTicket = try Handshake(
            pattern: .IK, hash: .blake2b, initiator: true, prologue: ChannelMachine.prologue,
            localStatic: try a.local.staticKey, remoteStatic: rs)
        var peerPort3 = ChannelMachine.responder(local: try b.local)
        guard case .ask(.ticket)? = peerPort3.receive(Frame(.I, try rightTicket.writeMessage(ticketPayload))).first else {
            Issue.record("the peer port did not read a ticket under the empty prologue"); return
        }
        // And a site answering with the wrong prologue never completes the device's handshake.
        let device = KeyPair.generate()
        let (c, hello) = try UserChannelMachine.session(device: device, site: b.agent)
        var client = c
        let hs = try Handshake(pattern: .IK, hash: .blake2b, initiator: false, prologue: [], localStatic: try b.local.staticKey)
        let helloBody = try #require(userFrames(hello).first).body
        #expect(throws: NoiseError.self) { _ = try hs.readMessage(helloBody) }
        #expect(isSilentClose(client.receive(Frame(.A, [UInt8](repeating: 0, count: 48)))))
    }

    @Test func deviceChecksTheSiteItDialed() throws {
        let site = TestSite(), other = TestSite()
        // Only the site with the ticket's agent key can answer: another one cannot read the hello.
        let (_, out) = try UserChannelMachine.session(device: .generate(), site: site.agent)
        var wrong = UserChannelMachine.responder(local: try other.local)
        #expect(isSilentClose(wrong.receive(try #require(userFrames(out).first))))
    }

    @Test func sendingBeforeOpenFails() throws {
        let (c, _) = try UserChannelMachine.session(device: .generate(), site: TestSite().agent)
        var client = c
        #expect(throws: ChannelError.notOpen) { _ = try client.send(["id": "x"]) }
        client.shutdown()
        #expect(client.isClosed)
    }

    @Test func constantsAreTheSpecs() {
        #expect(UserChannelMachine.prologue == Array("chipsite-user/1".utf8) && UserChannelMachine.prologue.count == 15)
        #expect(UserPortDefaults.handshakeTimeout == 10 && UserPortDefaults.idleTimeout == 300)
        #expect(UserPortDefaults.maxRequestsInFlight == 32 && UserPortDefaults.maxSessionsPerUser == 8)
        #expect(UserPortDefaults.maxDevicesPerUser == 16 && UserPortDefaults.failedRegistrationsPerWindow == 5)
        #expect(UserPortDefaults.failedRegistrationWindow == 60 && UserPortDefaults.defaultPort == 65431)
    }
}

/// Encrypts raw bytes (not necessarily JSON) as the device's next `T` body.
private func encryptRaw(_ client: inout UserChannelMachine, _ body: [UInt8]) throws -> [UInt8] {
    guard case .open(let transport) = client.state else { throw ChannelError.notOpen }
    client.sentCount += 1
    return try transport.encrypt(body)
}
