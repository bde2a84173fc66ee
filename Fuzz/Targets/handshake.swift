import ChipModel
import Noise

/// Fuzz target `handshake`: the Noise handshake reader in responder role.
///
/// Byte 0 picks the pattern (0: IK message 1 as in an `I` frame, 1: N message
/// 1 as in `N`, 2: KK message 1 as in `K`); the rest is the message. The
/// responder is site B with its fixed static key; for KK it knows site A's.
/// A message that reads (a real one from the seeds) is answered and the
/// handshake finished, so those paths run too.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let input = bytes(data, size)
    guard let selector = input.first else { return 0 }
    let message = Array(input.dropFirst())
    let local = Fixed.siteB.local.staticKey
    do throws(NoiseError) {
        let hs: Handshake
        switch selector % 3 {
        case 0: hs = try Handshake(pattern: .IK, initiator: false, localStatic: local)
        case 1: hs = try Handshake(pattern: .N, initiator: false, localStatic: local)
        default: hs = try Handshake(pattern: .KK, initiator: false, localStatic: local, remoteStatic: siteAStatic)
        }
        _ = try hs.readMessage(message)
        if !hs.isComplete { _ = try hs.writeMessage([]) }
        let transport = try hs.finish()
        _ = try? transport.decrypt(message)
    } catch {
        // A clean refusal is the expected outcome for almost every input.
    }
    return 0
}

/// Site A's X25519 static public key (the KK pre-message).
private let siteAStatic = Fixed.siteA.local.staticKey.publicKey
