import ChipModel
import Foundation
import Noise
import Testing
@testable import ChipChannel

/// The fuzz inputs of one target (doc/testing.md): the committed seed corpus
/// `Fuzz/corpus/<target>/` and the inputs kept from crashes or hangs
/// `Fuzz/regressions/<target>/`, as (file name, bytes).
private func fuzzInputs(_ target: String) -> [(name: String, bytes: [UInt8])] {
    let fuzz = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Fuzz")
    var out: [(String, [UInt8])] = []
    for kind in ["corpus", "regressions"] {
        let dir = fuzz.appendingPathComponent(kind).appendingPathComponent(target)
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []
        for name in names.sorted() {
            guard let data = FileManager.default.contents(atPath: dir.appendingPathComponent(name).path) else { continue }
            out.append(("\(kind)/\(target)/\(name)", [UInt8](data)))
        }
    }
    return out
}

/// The fixed sites of Fuzz/Support/FuzzSupport.swift: the seeds hold frames
/// between them, so the keys must be the same (seed bytes 0xA1 and 0xB2).
fileprivate struct FuzzSite {
    let agent: AgentID
    let local: LocalSite

    init(fill: UInt8) throws {
        let key = try SigningKey(seed: [UInt8](repeating: fill, count: SigningKey.seedLength))
        agent = try AgentID(publicKey: key.publicKey)
        var secret = key.curve25519SecretKey()
        defer { Crypto.wipe(&secret) }
        local = LocalSite(agent: agent, staticKey: try KeyPair(privateKey: secret))
    }
}

/// Every fuzz input of the channel's targets goes through the same entry
/// point as in its fuzz target (Fuzz/Targets/NAME.swift) and must give a clean
/// result or a clean error, with the target's properties holding.
@Suite struct FuzzRegressionTests {
    fileprivate let siteA: FuzzSite
    fileprivate let siteB: FuzzSite

    init() throws {
        siteA = try FuzzSite(fill: 0xA1)
        siteB = try FuzzSite(fill: 0xB2)
    }

    @Test(arguments: ["frame", "handshake", "channel", "transport", "envelope", "ticket_message"])
    func replay(target: String) throws {
        let inputs = fuzzInputs(target)
        #expect(!inputs.isEmpty, "no fuzz inputs for \(target)")
        for (name, input) in inputs {
            switch target {
            case "frame": frame(input, name)
            case "handshake": handshake(input)
            case "channel": channel(input, name)
            case "transport": try transport(input, name)
            case "envelope": envelope(input, name)
            default: ticketMessage(input, name)
            }
        }
    }

    /// The seeds' real handshake messages really open a channel on site B.
    @Test func seedFramesOpenChannels() throws {
        for seed in ["ik-accepted", "n-kk-accepted"] {
            let input = try #require(fuzzInputs("channel").first { $0.name.hasSuffix("/" + seed) }?.bytes)
            var reader = FrameReader()
            reader.append(input.dropFirst())
            var machine = ChannelMachine.responder(local: siteB.local)
            while let frame = try reader.next(), !machine.isOpen {
                for action in machine.receive(frame) where { if case .ask = action { true } else { false } }() {
                    _ = machine.answer(true)
                }
            }
            #expect(machine.isOpen, "\(seed) did not open")
            #expect(machine.peer == siteA.agent)
        }
    }

    /// Hostile streams written by hand: refused before any body is buffered.
    @Test func hostileFramesAreRefused() {
        var reader = FrameReader()
        reader.append([0xFF, 0xFF, 0xFF, 0xFF, UInt8(ascii: "T")])
        #expect(throws: FrameError.lengthOutOfRange(UInt32.max)) { try reader.next() }
        var machine = ChannelMachine.responder(local: siteB.local)
        #expect(machine.receive(Frame(.I, [UInt8](repeating: 0, count: 96))).count == 1)
        #expect(machine.isClosed)
    }

    private func frame(_ input: [UInt8], _ name: String) {
        guard let control = input.first else { return }
        let limits = [FrameLimits.maxLength, FrameLimits.minLength, 100, 1024]
        let sizeCount = min(Int(control >> 2 & 7), input.count - 1)
        let chunkSizes = sizeCount == 0 ? [4096] : input[1...sizeCount].map { Int($0) + 1 }
        let stream = Array(input[(1 + sizeCount)...])
        func read(_ sizes: [Int]) -> ([Frame], FrameError?) {
            var reader = FrameReader(maxLength: limits[Int(control & 3)])
            var frames: [Frame] = [], offset = 0, n = 0
            while offset < stream.count {
                let chunk = sizes[n % sizes.count]
                n += 1
                reader.append(stream[offset..<min(offset + chunk, stream.count)])
                offset += chunk
                do { while let f = try reader.next() { frames.append(f) } } catch { return (frames, error) }
            }
            return (frames, nil)
        }
        let chunked = read(chunkSizes), whole = read([max(stream.count, 1)])
        #expect(chunked.0 == whole.0 && chunked.1 == whole.1, "\(name): chunking changed the result")
        let consumed = chunked.0.flatMap(\.encoded)
        #expect(consumed[...] == stream.prefix(consumed.count), "\(name): frames do not re-encode to their bytes")
    }

    private func handshake(_ input: [UInt8]) {
        guard let selector = input.first else { return }
        let local = siteB.local.staticKey
        do throws(NoiseError) {
            let hs: Handshake
            switch selector % 3 {
            case 0: hs = try Handshake(pattern: .IK, initiator: false, localStatic: local)
            case 1: hs = try Handshake(pattern: .N, initiator: false, localStatic: local)
            default: hs = try Handshake(pattern: .KK, initiator: false, localStatic: local, remoteStatic: siteA.local.staticKey.publicKey)
            }
            _ = try hs.readMessage(Array(input.dropFirst()))
            if !hs.isComplete { _ = try hs.writeMessage([]) }
            _ = try hs.finish()
        } catch {
            // A clean refusal.
        }
    }

    private func channel(_ input: [UInt8], _ name: String) {
        guard let answers = input.first else { return }
        var reader = FrameReader()
        reader.append(input.dropFirst())
        var machine = ChannelMachine.responder(local: siteB.local)
        var asked = 0
        while !machine.isClosed, let frame = try? reader.next() {
            var pending = machine.receive(frame)
            while !pending.isEmpty {
                switch pending.removeFirst() {
                case .ask:
                    pending += machine.answer(answers >> (asked % 8) & 1 == 1)
                    asked += 1
                case .opened: pending += (try? machine.send(["target": "tally", "action": "ping"])) ?? []
                case .close: #expect(machine.isClosed, "\(name): close action on an open machine")
                default: break
                }
            }
        }
    }

    private func transport(_ input: [UInt8], _ name: String) throws {
        guard let op = input.first else { return }
        let a = siteA.local.staticKey, b = siteB.local.staticKey
        let i = try Handshake(pattern: .KK, initiator: true, localStatic: a, remoteStatic: b.publicKey)
        let r = try Handshake(pattern: .KK, initiator: false, localStatic: b, remoteStatic: a.publicKey)
        _ = try r.readMessage(try i.writeMessage([]))
        _ = try i.readMessage(try r.writeMessage([]))
        let (sender, receiver) = (try i.finish(), try r.finish())
        if op & 1 == 1 { try sender.rekeySend(); try receiver.rekeyReceive() }
        var plaintext = Array(input.dropFirst())
        guard op & 2 == 2 else {
            #expect(throws: NoiseError.self) { try receiver.decrypt(plaintext) }
            return
        }
        if op & 4 == 4 {
            let target = 65500 + Int(plaintext.first ?? 0) % 40
            while plaintext.count < target { plaintext.append(UInt8(truncatingIfNeeded: plaintext.count)) }
        }
        guard plaintext.count <= NoiseSpec.MAX_PLAINTEXT_LEN else {
            #expect(throws: NoiseError.messageTooLong) { try sender.encrypt(plaintext) }
            return
        }
        var ciphertext = try sender.encrypt(plaintext)
        ciphertext[ciphertext.count - 1] ^= 1
        #expect(throws: NoiseError.self) { try receiver.decrypt(ciphertext) }
        ciphertext[ciphertext.count - 1] ^= 1
        #expect(try receiver.decrypt(ciphertext) == plaintext, "\(name): round trip")
    }

    private func envelope(_ input: [UInt8], _ name: String) {
        let limits = JSONLimits(maxDepth: 32, maxBytes: ChannelMachine.maxMessageBytes)
        guard let message = try? JSONValue(parsing: input, limits: limits) else { return }
        if case .success = Envelope.check(message, local: siteB.agent, peer: siteA.agent) {
            #expect(message["from"].flatMap { try? CHAD(json: $0) }?.agent == siteA.agent, "\(name): from")
            #expect(message["to"].flatMap { try? CHAD(json: $0) }?.agent == siteB.agent, "\(name): to")
        }
    }

    private func ticketMessage(_ input: [UInt8], _ name: String) {
        let rs = siteA.local.staticKey.publicKey
        guard let ticket = ChannelMachine.ticketPresentation(input, local: siteB.agent, remoteStatic: rs) else { return }
        #expect(ticket.from.agent == siteA.agent && ticket.to.agent == siteB.agent, "\(name): agents")
        #expect((try? TallyTicket.validate(token: ticket.token)) != nil, "\(name): token")
    }
}
