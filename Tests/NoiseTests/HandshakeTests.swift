import Testing
@_spi(Testing) import Noise

/// Runs a whole handshake in memory and returns both transports.
func handshake(
    _ pattern: HandshakePattern, hash: NoiseHash = .blake2b,
    initiatorStatic: KeyPair? = nil, responderStatic: KeyPair? = nil,
    payloads: [[UInt8]] = []
) throws -> (Handshake, Handshake, Transport, Transport) {
    let iRemote = pattern.responderPreMessage.contains(.s) ? responderStatic?.publicKey : nil
    let rRemote = pattern.initiatorPreMessage.contains(.s) ? initiatorStatic?.publicKey : nil
    let i = try Handshake(
        pattern: pattern, hash: hash, initiator: true,
        localStatic: initiatorStatic, remoteStatic: iRemote)
    let r = try Handshake(
        pattern: pattern, hash: hash, initiator: false,
        localStatic: responderStatic, remoteStatic: rRemote)
    var index = 0
    while !i.isComplete {
        let (w, rd) = i.isWriteTurn ? (i, r) : (r, i)
        let payload = index < payloads.count ? payloads[index] : []
        let got = try rd.readMessage(try w.writeMessage(payload))
        #expect(got == payload)
        index += 1
    }
    #expect(r.isComplete)
    return (i, r, try i.finish(), try r.finish())
}

@Suite struct HandshakeTests {
    let alice = KeyPair.generate(), bob = KeyPair.generate()

    @Test(arguments: HandshakePattern.all)
    func everyPatternRoundTrips(_ pattern: HandshakePattern) throws {
        let (i, r, it, rt) = try handshake(
            pattern, initiatorStatic: alice, responderStatic: bob,
            payloads: [[1, 2, 3], [4, 5], [6]])
        #expect(i.handshakeHash == r.handshakeHash)
        #expect(it.handshakeHash == i.handshakeHash && i.handshakeHash.count == 64)
        let msg = try it.encrypt([9, 9, 9])
        #expect(try rt.decrypt(msg) == [9, 9, 9])
        if pattern.isOneWay {
            #expect(throws: NoiseError.oneWay) { try rt.encrypt([1]) }
            #expect(throws: NoiseError.oneWay) { try it.decrypt(msg) }
        } else {
            #expect(try it.decrypt(try rt.encrypt([7])) == [7])
        }
    }

    @Test func remoteStaticIsLearnedOrGiven() throws {
        let (_, r, it, rt) = try handshake(.IK, initiatorStatic: alice, responderStatic: bob)
        #expect(r.remoteStaticKey == alice.publicKey)
        #expect(rt.remoteStaticKey == alice.publicKey)
        #expect(it.remoteStaticKey == bob.publicKey)
        let (_, _, xi, xr) = try handshake(.XX, initiatorStatic: alice, responderStatic: bob)
        #expect(xi.remoteStaticKey == bob.publicKey && xr.remoteStaticKey == alice.publicKey)
    }

    @Test func siteProtocolsByName() throws {
        for name in [
            "Noise_IK_25519_ChaChaPoly_BLAKE2b", "Noise_N_25519_ChaChaPoly_BLAKE2b",
            "Noise_KK_25519_ChaChaPoly_BLAKE2b"
        ] {
            let p = try NoiseProtocol(name: name)
            let i = try Handshake(
                protocolName: name, initiator: true,
                localStatic: p.pattern.name == "N" ? nil : alice, remoteStatic: bob.publicKey)
            #expect(i.noiseProtocol.name == name)
        }
    }

    @Test func emptyPayloadsCarryATagOnceKeyed() throws {
        let (_, _, it, rt) = try handshake(.NN)
        let m = try it.encrypt([])
        #expect(m.count == NoiseSpec.TAGLEN)
        #expect(try rt.decrypt(m) == [])
        let i = try Handshake(pattern: .NN, initiator: true)
        #expect(try i.writeMessage([]).count == 32)  // `-> e`: not keyed yet, no tag
        let n = try Handshake(pattern: .N, initiator: true, remoteStatic: bob.publicKey)
        #expect(try n.writeMessage([]).count == 32 + 16)  // `-> e, es`: keyed, tagged
    }

    @Test func prologueMustMatch() throws {
        let i = try Handshake(pattern: .NN, initiator: true, prologue: [1])
        let r = try Handshake(pattern: .NN, initiator: false, prologue: [2])
        _ = try r.readMessage(try i.writeMessage())
        #expect(throws: NoiseError.decryptFailed) { try i.readMessage(try r.writeMessage()) }
    }

    @Test func maximumSizes() throws {
        // Largest handshake payload: IK message 1 has 32 + 48 + 16 bytes of overhead.
        let i = try Handshake(pattern: .IK, initiator: true, localStatic: alice, remoteStatic: bob.publicKey)
        let r = try Handshake(pattern: .IK, initiator: false, localStatic: bob)
        let big = [UInt8](repeating: 7, count: NoiseSpec.MAX_MESSAGE_LEN - 96)
        let m1 = try i.writeMessage(big)
        #expect(m1.count == NoiseSpec.MAX_MESSAGE_LEN)
        #expect(try r.readMessage(m1) == big)
        _ = try i.readMessage(try r.writeMessage())
        let (it, rt) = (try i.finish(), try r.finish())
        let maxPlain = [UInt8](repeating: 1, count: NoiseSpec.MAX_PLAINTEXT_LEN)
        let m = try it.encrypt(maxPlain)
        #expect(m.count == 65535)
        #expect(try rt.decrypt(m) == maxPlain)
    }

    @Test func rekeyBothSidesKeepsWorking() throws {
        let (_, _, it, rt) = try handshake(.KK, initiatorStatic: alice, responderStatic: bob)
        try it.rekeySend()
        try rt.rekeyReceive()
        #expect(try rt.decrypt(try it.encrypt([1, 2])) == [1, 2])
        try it.rekeySend()  // only one side: the next message must fail
        #expect(throws: NoiseError.decryptFailed) { try rt.decrypt(try it.encrypt([3])) }
    }

    @Test func cipherStateRekeyMatchesSpecDefinition() throws {
        // Rekey() = first 32 bytes of ENCRYPT(k, 2^64-1, empty, zeros(32)).
        let key = (0..<32).map { UInt8($0) }
        let c = try CipherState(key: key)
        c.rekey()
        #expect(c.nonce == 0)
        let expectedKey = Array(try rawEncryptMaxNonce(key: key).prefix(32))
        let d = try CipherState(key: expectedKey)
        #expect(try c.encrypt(plaintext: [5]) == (try d.encrypt(plaintext: [5])))
    }

    @Test func finishHandsOverOnce() throws {
        let i = try Handshake(pattern: .NN, initiator: true)
        #expect(throws: NoiseError.handshakeIncomplete) { try i.finish() }
        let (hi, _, _, _) = try handshake(.NN)
        #expect(throws: NoiseError.transportTaken) { try hi.finish() }
        #expect(throws: NoiseError.handshakeComplete) { try hi.writeMessage() }
    }

    @Test func keyPairs() throws {
        #expect(throws: NoiseError.invalidKeyLength) { try KeyPair(privateKey: [1, 2, 3]) }
        let k = KeyPair.generate()
        let again = try KeyPair(privateKey: k.privateKey)
        #expect(again.publicKey == k.publicKey && k.publicKey.count == 32)
        #expect(KeyPair.generate().publicKey != k.publicKey)
    }

    @Test func missingOrUnexpectedKeys() {
        #expect(throws: NoiseError.missingRemoteStatic) { try Handshake(pattern: .IK, initiator: true, localStatic: alice) }
        #expect(throws: NoiseError.missingLocalStatic) { try Handshake(pattern: .IK, initiator: true, remoteStatic: bob.publicKey) }
        #expect(throws: NoiseError.missingLocalStatic) { try Handshake(pattern: .N, initiator: false) }
        #expect(throws: NoiseError.unexpectedRemoteStatic) {
            try Handshake(pattern: .XX, initiator: true, localStatic: alice, remoteStatic: bob.publicKey)
        }
        #expect(throws: NoiseError.invalidKeyLength) {
            try Handshake(pattern: .IK, initiator: true, localStatic: alice, remoteStatic: [1])
        }
    }
}

import CSodium

/// ChaCha20-Poly1305 IETF of 32 zero bytes under nonce 2^64-1, straight from libsodium.
func rawEncryptMaxNonce(key: [UInt8]) throws -> [UInt8] {
    var nonce = [UInt8](repeating: 0, count: 4) + [UInt8](repeating: 0xff, count: 8)
    var out = [UInt8](repeating: 0, count: 48)
    let zeros = [UInt8](repeating: 0, count: 32)
    _ = crypto_aead_chacha20poly1305_ietf_encrypt(&out, nil, zeros, 32, nil, 0, nil, &nonce, key)
    return out
}
