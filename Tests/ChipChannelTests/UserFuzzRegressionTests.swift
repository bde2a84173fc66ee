import ChipModel
import Foundation
import Noise
import Testing
@testable import ChipChannel

/// The `user_channel` fuzz inputs (Fuzz/corpus/user_channel/ and any kept in
/// Fuzz/regressions/user_channel/) replayed through the same entry point and
/// properties as Fuzz/Targets/user_channel.swift.
@Suite struct UserFuzzRegressionTests {
    /// Site B of Fuzz/Support/FuzzSupport.swift (seed bytes 0xB2): the seeds hold frames to it.
    let local: LocalSite
    let alice: CUID

    init() throws {
        let key = try SigningKey(seed: [UInt8](repeating: 0xB2, count: SigningKey.seedLength))
        var secret = key.curve25519SecretKey()
        defer { Crypto.wipe(&secret) }
        local = LocalSite(agent: try AgentID(publicKey: key.publicKey), staticKey: try KeyPair(privateKey: secret))
        alice = try CUID("alice")
    }

    static func inputs(_ target: String) -> [(name: String, bytes: [UInt8])] {
        let fuzz = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Fuzz")
        var out: [(String, [UInt8])] = []
        for kind in ["corpus", "regressions"] {
            let dir = fuzz.appendingPathComponent(kind).appendingPathComponent(target)
            for name in ((try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []).sorted() {
                guard let data = FileManager.default.contents(atPath: dir.appendingPathComponent(name).path) else { continue }
                out.append(("\(kind)/\(target)/\(name)", [UInt8](data)))
            }
        }
        return out
    }

    /// Runs the site's actions; returns what it sent and the kinds of action seen.
    func run(
        _ machine: inout UserChannelMachine, _ actions: [UserChannelAction], yes: Bool, opened: inout Bool,
        asked: inout [String], _ name: String
    ) -> [Frame] {
        var pending = actions, sent = [Frame]()
        while !pending.isEmpty {
            switch pending.removeFirst() {
            case .ask(.register):
                asked.append("register")
                pending += machine.answerRegistration(yes ? alice : nil)
            case .ask(.session):
                asked.append("session")
                pending += machine.answerSession(yes ? UserSessionGrant(user: alice, custody: .site, scopes: [.read]) : nil)
            case .opened: opened = true
            case .deliver(let m):
                #expect(opened && machine.isOpen && m.json.objectValue != nil, "\(name): delivered before open")
                pending += (try? machine.send(["id": "x", "ok": true, "data": [:]])) ?? []
            case .close, .closeAfterSend: #expect(machine.isClosed, "\(name): close on an open machine")
            case .answered: Issue.record("\(name): the site read an answer")
            case .send(let f): sent.append(f)
            }
        }
        return sent
    }

    @Test func replay() throws {
        let inputs = Self.inputs("user_channel")
        #expect(inputs.count >= 9, "seeds missing")
        var askedBySeed: [String: [String]] = [:]
        for (name, input) in inputs {
            guard let control = input.first else { continue }
            var machine = UserChannelMachine.responder(local: local)
            var opened = false, asked = [String]()
            if control & 0x80 == 0 {
                var reader = FrameReader()
                reader.append(input.dropFirst())
                while !machine.isClosed {
                    do {
                        guard let frame = try reader.next() else { break }
                        _ = run(&machine, machine.receive(frame), yes: control & 1 == 1, opened: &opened, asked: &asked, name)
                    } catch {
                        _ = run(&machine, machine.reject(error), yes: false, opened: &opened, asked: &asked, name)
                    }
                }
            } else {
                let (c, hello) = try UserChannelMachine.session(
                    device: try KeyPair(privateKey: [UInt8](repeating: 0xD1, count: 32)),
                    site: local.agent)
                var client = c
                let hi = try #require(hello.compactMap { if case .send(let f) = $0 { f } else { nil } }.first)
                let a = run(&machine, machine.receive(hi), yes: true, opened: &opened, asked: &asked, name)
                _ = client.receive(try #require(a.first))
                #expect(client.isOpen && machine.isOpen, "\(name): no session")
                for chunk in input.dropFirst().split(separator: 0, omittingEmptySubsequences: false) where !machine.isClosed {
                    guard case .open(let transport) = client.state else { break }
                    let body = try transport.encrypt(Array(chunk))
                    client.sentCount += 1
                    for reply in run(&machine, machine.receive(Frame(.T, body)), yes: true, opened: &opened, asked: &asked, name) {
                        guard case .deliver? = client.receive(reply).first else { Issue.record("\(name): reply lost"); break }
                    }
                }
            }
            machine.shutdown()
            askedBySeed[name] = asked
        }
        // The seeds' real hellos really reach site B's questions.
        #expect(askedBySeed["corpus/user_channel/register"] == ["register"])
        #expect(askedBySeed["corpus/user_channel/session-t"] == ["session"])
        #expect(askedBySeed["corpus/user_channel/second-i"] == ["session"])
        #expect(askedBySeed["corpus/user_channel/peer-ik"] == [])
        #expect(askedBySeed["corpus/user_channel/t-before-i"] == [])
    }
}
