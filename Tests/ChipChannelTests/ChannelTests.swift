import ChipModel
import Noise
import Testing
@testable import ChipChannel

/// A site identity for tests: agent key and its X25519 conversion.
struct TestSite {
    let key = SigningKey.generate()
    var agent: AgentID { (try? AgentID(publicKey: key.publicKey)) ?? { preconditionFailure() }() }
    var local: LocalSite {
        get throws {
            var sk = key.curve25519SecretKey()
            defer { Crypto.wipe(&sk) }
            return LocalSite(agent: agent, staticKey: try KeyPair(privateKey: sk))
        }
    }
    func chad(_ cuid: String) throws -> CHAD {
        CHAD(cuid: try CUID(cuid), agent: agent, address: try SiteAddress(host: "127.0.0.1", port: 65430))
    }
}

func ticketMessage(from: CHAD, to: CHAD, token: String = String(repeating: "ab", count: 16)) -> JSONValue {
    [
        "target": "tally", "action": "ticket", "to": to.json, "from": from.json,
        "ticket": ["token": .string(token), "cert": ["chad": from.json]]
    ]
}

func frames(_ actions: [ChannelAction]) -> [Frame] {
    actions.compactMap { if case .send(let f) = $0 { return f } else { return nil } }
}

func isClose(_ actions: [ChannelAction]) -> Bool {
    actions.count == 1 && { if case .close = actions[0] { return true } else { return false } }()
}

@Suite struct FrameReaderTests {
    @Test func framesSurviveAnyChunking() throws {
        let sent = [
            Frame(.T, [UInt8](repeating: 7, count: 16)), Frame(.I, [UInt8](repeating: 1, count: 300)),
            Frame(.A, [UInt8](repeating: 2, count: 65535))
        ]
        let wire = sent.flatMap(\.encoded)
        for chunk in [1, 3, 17, 4096, wire.count] {
            var reader = FrameReader()
            var got = [Frame]()
            var i = 0
            while i < wire.count {
                reader.append(wire[i..<min(i + chunk, wire.count)])
                while let f = try reader.next() { got.append(f) }
                i += chunk
            }
            #expect(got == sent, "chunk \(chunk)")
            #expect(reader.bufferedCount == 0)
        }
    }

    @Test func badLengthsAndHeadersFailBeforeTheBodyArrives() {
        for length: UInt32 in [0, 16, 65537, UInt32.max] {
            var reader = FrameReader()
            reader.append([UInt8(length >> 24), UInt8(length >> 16 & 0xFF), UInt8(length >> 8 & 0xFF), UInt8(length & 0xFF)])
            #expect(throws: FrameError.lengthOutOfRange(length)) { try reader.next() }
        }
        var reader = FrameReader()
        reader.append([0, 0, 0, 17, UInt8(ascii: "X")])
        #expect(throws: FrameError.unknownHeader(UInt8(ascii: "X"))) { try reader.next() }
        var lowered = FrameReader(maxLength: 100)
        lowered.append([0, 0, 0, 101])
        #expect(throws: FrameError.lengthOutOfRange(101)) { try lowered.next() }
    }
}

@Suite struct ChannelMachineTests {
    @Test func firstContactWithATicketOpensAndCarriesMessagesBothWays() throws {
        let a = TestSite(), b = TestSite()
        let ticket = ticketMessage(from: try a.chad("alice"), to: try b.chad("bob"))
        var (initiator, out) = try ChannelMachine.firstContact(local: try a.local, remote: b.agent, ticketMessage: ticket)
        var responder = ChannelMachine.responder(local: try b.local)
        let i = try #require(frames(out).first)
        #expect(i.header == .I)
        let asked = responder.receive(i)
        guard case .ask(.ticket(let presented)) = asked.first else { Issue.record("no ticket question: \(asked)"); return }
        #expect(presented.token == String(repeating: "ab", count: 16))
        #expect(presented.from == (try a.chad("alice")))
        let accepted = responder.answer(true)
        #expect(accepted.contains(.opened(a.agent)))
        #expect(accepted.contains(.deliver(ticket)))
        let aFrame = try #require(frames(accepted).first)
        #expect(aFrame.header == .A)
        #expect(initiator.receive(aFrame) == [.opened(b.agent)])

        let toB: JSONValue = ["target": "tally", "action": "offer", "from": try a.chad("alice").json, "to": try b.chad("bob").json]
        let toA: JSONValue = ["target": "chit", "action": "ack", "from": try b.chad("bob").json, "to": try a.chad("alice").json]
        for _ in 0..<3 {
            out = try initiator.send(toB)
            #expect(responder.receive(try #require(frames(out).first)) == [.deliver(toB)])
            out = try responder.send(toA)
            #expect(initiator.receive(try #require(frames(out).first)) == [.deliver(toA)])
        }
    }

    @Test func refusedTicketClosesSilently() throws {
        let a = TestSite(), b = TestSite()
        let (_, out) = try ChannelMachine.firstContact(
            local: try a.local, remote: b.agent,
            ticketMessage: ticketMessage(from: try a.chad("a"), to: try b.chad("b")))
        var responder = ChannelMachine.responder(local: try b.local)
        _ = responder.receive(try #require(frames(out).first))
        #expect(isClose(responder.answer(false)))
        #expect(responder.isClosed)
    }

    @Test func ticketFromAnAgentWhoseKeyIsNotTheHandshakeKeyIsRefused() throws {
        let a = TestSite(), b = TestSite(), mallory = TestSite()
        // Mallory's handshake, claiming to be a.
        let (_, out) = try ChannelMachine.firstContact(
            local: try mallory.local, remote: b.agent,
            ticketMessage: ticketMessage(from: try a.chad("a"), to: try b.chad("b")))
        var responder = ChannelMachine.responder(local: try b.local)
        #expect(isClose(responder.receive(try #require(frames(out).first))))
        // A ticket for another site is refused too.
        let (_, out2) = try ChannelMachine.firstContact(
            local: try a.local, remote: b.agent,
            ticketMessage: ticketMessage(from: try a.chad("a"), to: try mallory.chad("m")))
        var responder2 = ChannelMachine.responder(local: try b.local)
        #expect(isClose(responder2.receive(try #require(frames(out2).first))))
        // A malformed token is refused before any question is asked.
        let (_, out3) = try ChannelMachine.firstContact(
            local: try a.local, remote: b.agent,
            ticketMessage: ticketMessage(from: try a.chad("a"), to: try b.chad("b"), token: "XYZ"))
        var responder3 = ChannelMachine.responder(local: try b.local)
        #expect(isClose(responder3.receive(try #require(frames(out3).first))))
    }

    @Test func laterContactWithNAndKOpensForAKnownAgent() throws {
        let a = TestSite(), b = TestSite()
        var (initiator, out) = try ChannelMachine.laterContact(local: try a.local, remote: b.agent)
        let sent = frames(out)
        #expect(sent.map(\.header) == [.N, .K])
        var responder = ChannelMachine.responder(local: try b.local)
        #expect(responder.receive(sent[0]) == [.ask(.agent(a.agent))])
        #expect(responder.receive(sent[1]) == [])  // K waits for the answer
        let opened = responder.answer(true)
        #expect(opened.contains(.opened(a.agent)))
        #expect(initiator.receive(try #require(frames(opened).first)) == [.opened(b.agent)])
        #expect(initiator.isOpen && responder.isOpen)
    }

    @Test func unknownAgentIsClosedAndAForgedNCannotCompleteKK() throws {
        let a = TestSite(), b = TestSite(), mallory = TestSite()
        let (_, out) = try ChannelMachine.laterContact(local: try a.local, remote: b.agent)
        var responder = ChannelMachine.responder(local: try b.local)
        _ = responder.receive(frames(out)[0])
        #expect(isClose(responder.answer(false)))

        // Mallory names a (a known agent) in N but can only run KK with its own key.
        let (_, forged) = try ChannelMachine.laterContact(local: try mallory.local, remote: b.agent)
        let (_, honestN) = try ChannelMachine.laterContact(local: try a.local, remote: b.agent)
        var r2 = ChannelMachine.responder(local: try b.local)
        #expect(r2.receive(frames(honestN)[0]) == [.ask(.agent(a.agent))])
        #expect(r2.answer(true) == [])
        #expect(isClose(r2.receive(frames(forged)[1])))
    }

    @Test func framesOutOfOrderClose() throws {
        let a = TestSite(), b = TestSite()
        let (_, nk) = try ChannelMachine.laterContact(local: try a.local, remote: b.agent)
        for frame in [Frame(.T, [UInt8](repeating: 0, count: 40)), frames(nk)[1], Frame(.A, [UInt8](repeating: 0, count: 48))] {
            var responder = ChannelMachine.responder(local: try b.local)
            #expect(isClose(responder.receive(frame)), "\(frame.header) first")
            #expect(responder.receive(frame) == [])  // closed stays closed
        }
        var responder = ChannelMachine.responder(local: try b.local)
        #expect(isClose(responder.receive(Frame(.I, [UInt8](repeating: 9, count: 200)))))
        var r2 = ChannelMachine.responder(local: try b.local)
        #expect(isClose(r2.receive(Frame(.N, [UInt8](repeating: 9, count: 80)))))
    }

    @Test func envelopeChecksDropButKeepTheChannel() throws {
        let a = TestSite(), b = TestSite(), c = TestSite()
        var (initiator, out) = try ChannelMachine.laterContact(local: try a.local, remote: b.agent)
        var responder = ChannelMachine.responder(local: try b.local)
        _ = responder.receive(frames(out)[0]); _ = responder.receive(frames(out)[1])
        _ = initiator.receive(try #require(frames(responder.answer(true)).first))
        let wrongFrom: JSONValue = ["target": "tally", "action": "x", "from": try c.chad("c").json, "to": try b.chad("b").json]
        let wrongTo: JSONValue = ["target": "tally", "action": "x", "from": try a.chad("a").json, "to": try c.chad("c").json]
        let badTarget: JSONValue = ["target": "nope", "action": "x", "from": try a.chad("a").json, "to": try b.chad("b").json]
        for m in [wrongFrom, wrongTo, badTarget] {
            let r = responder.receive(try #require(frames(try initiator.send(m)).first))
            guard case .dropped = r.first else { Issue.record("not dropped: \(r)"); continue }
        }
        #expect(responder.isOpen)
        // A tampered T closes.
        var t = try #require(frames(try initiator.send(wrongFrom)).first)
        t.body[3] ^= 0x40
        #expect(isClose(responder.receive(t)))
    }
}
