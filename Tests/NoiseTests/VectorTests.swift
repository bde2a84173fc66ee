import Foundation
import Testing
@_spi(Testing) import Noise

/// One vector of /work/shared/vectors/noise/*.json (see README.md there).
struct NoiseVector: Decodable {
    struct Message: Decodable { let payload: String; let ciphertext: String }
    let protocol_name: String
    let init_prologue: String
    let init_static: String?
    let init_ephemeral: String
    let init_remote_static: String?
    let init_psks: [String]?
    let resp_prologue: String
    let resp_static: String?
    let resp_ephemeral: String?
    let resp_remote_static: String?
    let resp_psks: [String]?
    let handshake_hash: String?
    let messages: [Message]
}

struct VectorFile: Decodable { let vectors: [NoiseVector] }

func loadVectors() throws -> [(file: String, vector: NoiseVector)] {
    let files = try FileManager.default.contentsOfDirectory(atPath: vectorsDirectory.path)
        .filter { $0.hasSuffix(".json") }.sorted()
    var all: [(String, NoiseVector)] = []
    for f in files {
        let data = try Data(contentsOf: vectorsDirectory.appendingPathComponent(f))
        for v in try JSONDecoder().decode(VectorFile.self, from: data).vectors { all.append((f, v)) }
    }
    return all
}

@Suite struct VectorTests {
    @Test func vectorsArePresent() throws {
        // Fail, never skip, when the shared vectors are missing.
        let vectors = try loadVectors()
        #expect(vectors.count >= 30, "expected the cacophony and snow vectors in \(vectorsDirectory.path)")
    }

    @Test func everyVectorPasses() throws {
        let vectors = try loadVectors()
        #expect(!vectors.isEmpty)
        var checked = 0
        for (file, v) in vectors {
            do { try run(v, label: "\(file) \(v.protocol_name)") } catch {
                Issue.record("\(file) \(v.protocol_name): \(error)")
            }
            checked += 1
        }
        #expect(checked == vectors.count)
    }

    func run(_ v: NoiseVector, label: String) throws {
        #expect((v.init_psks ?? []).isEmpty && (v.resp_psks ?? []).isEmpty, "\(label): PSK vectors unsupported")
        let proto = try NoiseProtocol(name: v.protocol_name)
        let pattern = proto.pattern
        let initStatic = try v.init_static.map { try KeyPair(privateKey: hex($0)) }
        let respStatic = try v.resp_static.map { try KeyPair(privateKey: hex($0)) }
        // Remote statics are passed only where the pattern has them as pre-messages.
        let initRemote = pattern.responderPreMessage.contains(.s) ? try v.init_remote_static.map(hex) : nil
        let respRemote = pattern.initiatorPreMessage.contains(.s) ? try v.resp_remote_static.map(hex) : nil
        if let initRemote, let respStatic { #expect(initRemote == respStatic.publicKey, "\(label)") }

        let initiator = try Handshake(
            protocol: proto, initiator: true, prologue: hex(v.init_prologue),
            localStatic: initStatic, remoteStatic: initRemote,
            ephemeral: KeyPair(privateKey: hex(v.init_ephemeral)))
        let responder = try Handshake(
            protocol: proto, initiator: false, prologue: hex(v.resp_prologue),
            localStatic: respStatic, remoteStatic: respRemote,
            ephemeral: v.resp_ephemeral.map { try KeyPair(privateKey: hex($0)) })

        var initT: Transport?, respT: Transport?
        for (i, m) in v.messages.enumerated() {
            let payload = try hex(m.payload), expected = try hex(m.ciphertext)
            if !initiator.isComplete {
                let fromInitiator = i % 2 == 0
                let (w, r) = fromInitiator ? (initiator, responder) : (responder, initiator)
                let ct = try w.writeMessage(payload)
                #expect(hex(ct) == m.ciphertext, "\(label) handshake message \(i)")
                #expect(try r.readMessage(expected) == payload, "\(label) handshake message \(i)")
                if initiator.isComplete {
                    #expect(responder.isComplete)
                    #expect(initiator.handshakeHash == responder.handshakeHash)
                    if let hh = v.handshake_hash { #expect(hex(initiator.handshakeHash) == hh, "\(label) handshake hash") }
                    initT = try initiator.finish()
                    respT = try responder.finish()
                    #expect(initT?.handshakeHash == initiator.handshakeHash)
                }
            } else {
                guard let it = initT, let rt = respT else { Issue.record("\(label): no transport"); return }
                let fromInitiator = pattern.isOneWay || i % 2 == 0
                let (w, r) = fromInitiator ? (it, rt) : (rt, it)
                let ct = try w.encrypt(payload)
                #expect(hex(ct) == m.ciphertext, "\(label) transport message \(i)")
                #expect(try r.decrypt(expected) == payload, "\(label) transport message \(i)")
            }
        }
        #expect(initiator.isComplete && responder.isComplete, "\(label)")
        if pattern.responderPreMessage.contains(.s) || pattern.messages.contains(where: { $0.contains(.s) }),
            let respStatic, let rs = initT?.remoteStaticKey
        {
            #expect(rs == respStatic.publicKey)
        }
    }
}
