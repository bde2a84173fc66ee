import Testing
@_spi(Testing) import Noise

@Suite struct NegativeTests {
    let alice = KeyPair.generate(), bob = KeyPair.generate()

    func ik() throws -> (Handshake, Handshake) {
        (
            try Handshake(pattern: .IK, initiator: true, localStatic: alice, remoteStatic: bob.publicKey),
            try Handshake(pattern: .IK, initiator: false, localStatic: bob)
        )
    }

    /// Flips one bit at every byte of IK message 1 (e | s+tag | payload | tag)
    /// and message 2 (e | payload | tag): every position must fail cleanly.
    @Test func tamperingAnyByteFails() throws {
        let payload: [UInt8] = Array("hello, responder".utf8)
        let (i0, _) = try ik()
        let m1 = try i0.writeMessage(payload)
        #expect(m1.count == 32 + 48 + payload.count + 16)
        for pos in 0..<m1.count {
            // Same initiator ephemeral is not needed: a fresh responder reads the tampered copy.
            let r = try Handshake(pattern: .IK, initiator: false, localStatic: bob)
            var bad = m1
            bad[pos] ^= 0x01
            #expect(throws: NoiseError.self, "byte \(pos)") { try r.readMessage(bad) }
            #expect(throws: NoiseError.handshakeFailed) { try r.writeMessage() }
        }
        // Message 2: one initiator per position, replaying the same message 1.
        for pos in 0..<(32 + 5 + 16) {
            let i = try Handshake(pattern: .IK, initiator: true, localStatic: alice, remoteStatic: bob.publicKey)
            let r = try Handshake(pattern: .IK, initiator: false, localStatic: bob)
            _ = try r.readMessage(try i.writeMessage())
            var m2 = try r.writeMessage([1, 2, 3, 4, 5])
            m2[pos] ^= 0x80
            #expect(throws: NoiseError.decryptFailed, "byte \(pos)") { try i.readMessage(m2) }
        }
    }

    @Test func tamperClassesGiveDecryptFailed() throws {
        // e (first byte), s (inside the encrypted static), payload, tag.
        for pos in [0, 40, 85, 80 + 16 + 15] {
            let (i, r) = try ik()
            var m = try i.writeMessage([UInt8](repeating: 0xaa, count: 16))
            m[pos] ^= 0x04
            #expect(throws: NoiseError.decryptFailed) { try r.readMessage(m) }
        }
    }

    @Test func tamperedTransportFailsAndKeepsNonce() throws {
        let (_, _, it, rt) = try handshake(.KK, initiatorStatic: alice, responderStatic: bob)
        let good = try it.encrypt([1, 2, 3])
        for pos in [0, 2, 3, good.count - 1] {
            var bad = good
            bad[pos] ^= 0x10
            #expect(throws: NoiseError.decryptFailed) { try rt.decrypt(bad) }
            #expect(rt.receiveCipher?.nonce == 0)
        }
        #expect(try rt.decrypt(good) == [1, 2, 3])
        #expect(rt.receiveCipher?.nonce == 1)
        #expect(throws: NoiseError.decryptFailed) { try rt.decrypt(good) }  // replay
    }

    @Test func truncatedMessages() throws {
        let (i, _) = try ik()
        let m1 = try i.writeMessage([])
        for cut in [0, 1, 31, 32, 79, 95] {
            let (_, r) = try ik()
            #expect(throws: NoiseError.messageTooShort) { try r.readMessage(Array(m1.prefix(cut))) }
        }
        let (i2, r2) = try ik()
        let m = try i2.writeMessage([1, 2, 3])
        #expect(throws: NoiseError.decryptFailed) { try r2.readMessage(Array(m.dropLast())) }
        let (_, _, it, rt) = try handshake(.NN)
        #expect(throws: NoiseError.messageTooShort) { try rt.decrypt(Array(try it.encrypt([]).prefix(15))) }
    }

    @Test func oversizedMessages() throws {
        let (i, r) = try ik()
        #expect(throws: NoiseError.messageTooLong) { try r.readMessage([UInt8](repeating: 0, count: 65536)) }
        #expect(throws: NoiseError.messageTooLong) { try i.writeMessage([UInt8](repeating: 0, count: 65535 - 95)) }
        let (_, _, it, rt) = try handshake(.NN)
        #expect(throws: NoiseError.messageTooLong) { try it.encrypt([UInt8](repeating: 0, count: 65520)) }
        #expect(throws: NoiseError.messageTooLong) { try rt.decrypt([UInt8](repeating: 0, count: 65536)) }
        #expect(it.sendCipher?.nonce == 0)
    }

    @Test func aClaimedStaticKeyIsForgottenWhenTheMessageFails() throws {
        // IK message 1 whose s decrypts (anyone who knows bob's public key can
        // make it) but whose payload tag is broken: the claimed key must not
        // stay readable.
        let (i, r) = try ik()
        var m1 = try i.writeMessage([1, 2, 3])
        m1[m1.count - 1] ^= 1
        #expect(throws: NoiseError.decryptFailed) { try r.readMessage(m1) }
        #expect(r.remoteStaticKey == nil)
        // After a good message it is there.
        let (i2, r2) = try ik()
        _ = try r2.readMessage(try i2.writeMessage([1]))
        #expect(r2.remoteStaticKey == alice.publicKey)
    }

    @Test func wrongRemoteStaticKey() throws {
        let mallory = KeyPair.generate()
        // IK: initiator believes the server key is mallory's.
        let i = try Handshake(pattern: .IK, initiator: true, localStatic: alice, remoteStatic: mallory.publicKey)
        let r = try Handshake(pattern: .IK, initiator: false, localStatic: bob)
        #expect(throws: NoiseError.decryptFailed) { try r.readMessage(try i.writeMessage([1])) }
        // KK: responder expects mallory as the initiator.
        let ki = try Handshake(pattern: .KK, initiator: true, localStatic: alice, remoteStatic: bob.publicKey)
        let kr = try Handshake(pattern: .KK, initiator: false, localStatic: bob, remoteStatic: mallory.publicKey)
        #expect(throws: NoiseError.decryptFailed) { try kr.readMessage(try ki.writeMessage()) }
        // N: sent to the wrong responder key.
        let ni = try Handshake(pattern: .N, initiator: true, remoteStatic: mallory.publicKey)
        let nr = try Handshake(pattern: .N, initiator: false, localStatic: bob)
        #expect(throws: NoiseError.decryptFailed) { try nr.readMessage(try ni.writeMessage()) }
    }

    @Test func outOfTurn() throws {
        let (i, r) = try ik()
        #expect(throws: NoiseError.outOfTurn) { try r.writeMessage() }
        #expect(throws: NoiseError.handshakeFailed) { try r.readMessage([]) }
        #expect(throws: NoiseError.outOfTurn) { try i.readMessage([UInt8](repeating: 0, count: 48)) }
        let (i2, r2) = try ik()
        _ = try r2.readMessage(try i2.writeMessage())
        #expect(throws: NoiseError.outOfTurn) { try r2.readMessage([UInt8](repeating: 0, count: 48)) }
    }

    @Test func failureWipesHandshakeState() throws {
        let (i, r) = try ik()
        let m = try i.writeMessage()
        #expect(r.handshakeHash.contains { $0 != 0 })
        var bad = m
        bad[50] ^= 1
        #expect(throws: NoiseError.decryptFailed) { try r.readMessage(bad) }
        #expect(r.handshakeHash.allSatisfy { $0 == 0 })
        #expect(throws: NoiseError.handshakeFailed) { try r.finish() }
    }

    @Test func nonceExhaustion() throws {
        let (_, _, it, rt) = try handshake(.IK, initiatorStatic: alice, responderStatic: bob)
        let send = try #require(it.sendCipher), recv = try #require(rt.receiveCipher)
        send.setNonce(NoiseSpec.MAX_NONCE - 1)
        recv.setNonce(NoiseSpec.MAX_NONCE - 1)
        let last = try it.encrypt([42])
        #expect(try rt.decrypt(last) == [42])
        #expect(send.nonce == NoiseSpec.MAX_NONCE)
        #expect(throws: NoiseError.nonceExhausted) { try it.encrypt([1]) }
        #expect(throws: NoiseError.nonceExhausted) { try it.encrypt([1]) }  // never wraps
        #expect(send.nonce == NoiseSpec.MAX_NONCE)
        #expect(throws: NoiseError.nonceExhausted) { try rt.decrypt(last) }
    }

    @Test func lowOrderKeysGiveInvalidDHOutput() throws {
        let zero = [UInt8](repeating: 0, count: 32)
        let i = try Handshake(pattern: .N, initiator: true, remoteStatic: zero)
        #expect(throws: NoiseError.invalidDHOutput) { try i.writeMessage() }
        // A responder receiving the all-zero point as the initiator's ephemeral.
        let r = try Handshake(pattern: .N, initiator: false, localStatic: bob)
        #expect(throws: NoiseError.invalidDHOutput) { try r.readMessage(zero + [UInt8](repeating: 0, count: 16)) }
    }
}
