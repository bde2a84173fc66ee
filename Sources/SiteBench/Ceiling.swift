import CSodium
import Noise

/// The raw cost of a handshake done with the `Noise` module alone, both
/// sides in this process on one thread (as noise-bench does): no sockets,
/// no framing, no site.
struct HandshakeCeiling {
    /// Full handshakes (both sides) per second on one thread.
    let perSecond: Double
    /// Microseconds of that spent on the responder side (the server's share).
    let responderMicros: Double
}

/// Ceilings measured in the same run as the serve figures, best of 3 runs of 0.5 s each.
enum Ceiling {
    static let runs = 3
    static let runSeconds = 0.5

    /// Best of ``runs``: operations per second of `body`, and the responder
    /// microseconds per operation that `body` reports in that best run.
    private static func measure(_ body: () throws -> Duration) rethrows -> HandshakeCeiling {
        let clock = ContinuousClock()
        var best = HandshakeCeiling(perSecond: 0, responderMicros: 0)
        for _ in 0..<runs {
            var ops = 0
            var responder = Duration.zero
            let start = clock.now
            var elapsed = 0.0
            repeat {
                responder += try body()
                ops += 1
                elapsed = seconds(clock.now - start)
            } while elapsed < runSeconds
            let rate = Double(ops) / elapsed
            if rate > best.perSecond { best = HandshakeCeiling(perSecond: rate, responderMicros: seconds(responder) * 1e6 / Double(ops)) }
        }
        return best
    }

    /// Noise_IK_25519_ChaChaPoly_BLAKE2b with a first-message payload of
    /// `payloadBytes` (the ticket message's size) and an empty second one.
    static func ik(payloadBytes: Int) throws -> HandshakeCeiling {
        let server = KeyPair.generate(), client = KeyPair.generate()
        let payload = [UInt8](repeating: 0x61, count: payloadBytes)
        let clock = ContinuousClock()
        return try measure {
            let i = try Handshake(pattern: .IK, hash: .blake2b, initiator: true, localStatic: client, remoteStatic: server.publicKey)
            let m1 = try i.writeMessage(payload)
            let t0 = clock.now
            let r = try Handshake(pattern: .IK, hash: .blake2b, initiator: false, localStatic: server)
            _ = try r.readMessage(m1)
            let m2 = try r.writeMessage([])
            _ = try r.finish()
            let spent = clock.now - t0
            _ = try i.readMessage(m2)
            _ = try i.finish()
            return spent
        }
    }

    /// The later-contact pair: a throw-away Noise_N carrying the 45-byte
    /// agent id, then Noise_KK with empty payloads.
    static func nkk() throws -> HandshakeCeiling {
        let server = KeyPair.generate(), client = KeyPair.generate()
        let agentPayload = [UInt8](repeating: 0x61, count: 45)
        let clock = ContinuousClock()
        return try measure {
            let n = try Handshake(pattern: .N, hash: .blake2b, initiator: true, remoteStatic: server.publicKey)
            let nMessage = try n.writeMessage(agentPayload)
            n.abort()
            let kk = try Handshake(pattern: .KK, hash: .blake2b, initiator: true, localStatic: client, remoteStatic: server.publicKey)
            let kMessage = try kk.writeMessage([])
            let t0 = clock.now
            let rn = try Handshake(pattern: .N, hash: .blake2b, initiator: false, localStatic: server)
            _ = try rn.readMessage(nMessage)
            rn.abort()
            let rk = try Handshake(pattern: .KK, hash: .blake2b, initiator: false, localStatic: server, remoteStatic: client.publicKey)
            _ = try rk.readMessage(kMessage)
            let a = try rk.writeMessage([])
            _ = try rk.finish()
            let spent = clock.now - t0
            _ = try kk.readMessage(a)
            _ = try kk.finish()
            return spent
        }
    }

    /// Raw libsodium ChaCha20-Poly1305 (IETF): one encryption plus one
    /// decryption of `size` bytes, per second, preallocated buffers.
    static func aeadPairs(size: Int) -> Double {
        let plain = UnsafeMutablePointer<UInt8>.allocate(capacity: size)
        let wire = UnsafeMutablePointer<UInt8>.allocate(capacity: size + 16)
        let back = UnsafeMutablePointer<UInt8>.allocate(capacity: size + 16)
        let key = UnsafeMutablePointer<UInt8>.allocate(capacity: 32)
        let nonce = UnsafeMutablePointer<UInt8>.allocate(capacity: 12)
        defer { plain.deallocate(); wire.deallocate(); back.deallocate(); key.deallocate(); nonce.deallocate() }
        plain.initialize(repeating: 0x5a, count: size)
        randombytes_buf(key, 32)
        nonce.initialize(repeating: 0, count: 12)
        let batch = 256
        var counter: UInt64 = 0
        let clock = ContinuousClock()
        var best = 0.0
        for _ in 0..<runs {
            var ops = 0
            let start = clock.now
            var elapsed = 0.0
            repeat {
                for _ in 0..<batch {
                    counter &+= 1
                    UnsafeMutableRawPointer(nonce).storeBytes(of: counter.littleEndian, toByteOffset: 4, as: UInt64.self)
                    crypto_aead_chacha20poly1305_ietf_encrypt(wire, nil, plain, UInt64(size), nil, 0, nil, nonce, key)
                    _ = crypto_aead_chacha20poly1305_ietf_decrypt(back, nil, nil, wire, UInt64(size + 16), nil, 0, nonce, key)
                }
                ops += batch
                elapsed = seconds(clock.now - start)
            } while elapsed < runSeconds
            best = max(best, Double(ops) / elapsed)
        }
        return best
    }
}

extension Ceiling {
    /// Raw libsodium Ed25519 verifications per second of a `size`-byte message.
    static func verifications(size: Int) -> Double {
        var pk = [UInt8](repeating: 0, count: 32), sk = [UInt8](repeating: 0, count: 64)
        crypto_sign_keypair(&pk, &sk)
        let message = [UInt8](repeating: 0x61, count: size)
        var signature = [UInt8](repeating: 0, count: 64)
        crypto_sign_detached(&signature, nil, message, UInt64(size), sk)
        let clock = ContinuousClock()
        var best = 0.0
        var ok = true
        for _ in 0..<runs {
            var ops = 0
            let start = clock.now
            var elapsed = 0.0
            repeat {
                for _ in 0..<16 { ok = ok && crypto_sign_verify_detached(signature, message, UInt64(size), pk) == 0 }
                ops += 16
                elapsed = seconds(clock.now - start)
            } while elapsed < runSeconds
            best = max(best, Double(ops) / elapsed)
        }
        return ok ? best : 0
    }
}

/// A duration in seconds.
func seconds(_ d: Duration) -> Double {
    Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18
}
