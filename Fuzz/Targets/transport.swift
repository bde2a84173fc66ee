import Noise

/// Fuzz target `transport`: the transport decrypt path after a real KK
/// handshake between sites A and B, done once at start.
///
/// Byte 0 picks the operation:
/// - bit 0: both sides rekey first (as the channel does every 2^32 messages);
/// - bit 1: round trip: A encrypts the rest, B must refuse a copy with one
///   bit flipped (at the position byte 1 picks) and then decrypt the original
///   to the same bytes;
/// - bit 2 (round trip only): the plaintext is padded to 65500 + (byte 1 % 40)
///   bytes, around the 65519-byte limit, which must be enforced;
/// - otherwise the rest is decrypted by B as it came off the wire.
/// A refused message leaves the nonce unchanged, so both sides stay in step.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let input = bytes(data, size)
    guard let op = input.first else { return 0 }
    let rest = Array(input.dropFirst())
    if op & 1 == 1 {
        do throws(NoiseError) {
            try pair.initiator.rekeySend()
            try pair.responder.rekeyReceive()
        } catch {
            violated("rekey failed: \(error)")
        }
    }
    guard op & 2 == 2 else {
        _ = try? pair.responder.decrypt(rest)
        return 0
    }
    var plaintext = rest
    let knob = Int(rest.first ?? 0)
    if op & 4 == 4 {
        let target = 65500 + knob % 40
        plaintext.reserveCapacity(target)
        while plaintext.count < target { plaintext.append(UInt8(truncatingIfNeeded: plaintext.count)) }
    }
    let ciphertext: [UInt8]
    do throws(NoiseError) {
        ciphertext = try pair.initiator.encrypt(plaintext)
    } catch {
        guard error == .messageTooLong, plaintext.count > NoiseSpec.MAX_PLAINTEXT_LEN else { violated("encrypt failed: \(error)") }
        return 0
    }
    guard plaintext.count <= NoiseSpec.MAX_PLAINTEXT_LEN else { violated("encrypted \(plaintext.count) bytes") }
    var tampered = ciphertext
    let bit = (knob * 131 + plaintext.count) % (tampered.count * 8)
    tampered[bit / 8] ^= UInt8(1) << (bit % 8)
    if (try? pair.responder.decrypt(tampered)) != nil { violated("a tampered message decrypted") }
    do throws(NoiseError) {
        guard try pair.responder.decrypt(ciphertext) == plaintext else { violated("round trip changed the message") }
    } catch {
        violated("a genuine message was refused: \(error)")
    }
    return 0
}

/// The two ends of a completed Noise_KK handshake (A initiator, B responder).
/// libFuzzer runs one input at a time on one thread.
nonisolated(unsafe) private let pair: (initiator: Transport, responder: Transport) = {
    let a = Fixed.siteA.local.staticKey, b = Fixed.siteB.local.staticKey
    do throws(NoiseError) {
        let i = try Handshake(pattern: .KK, initiator: true, localStatic: a, remoteStatic: b.publicKey)
        let r = try Handshake(pattern: .KK, initiator: false, localStatic: b, remoteStatic: a.publicKey)
        _ = try r.readMessage(try i.writeMessage([]))
        _ = try i.readMessage(try r.writeMessage([]))
        return (try i.finish(), try r.finish())
    } catch {
        fatalError("the in-process handshake failed: \(error)")
    }
}()
