/// The transport phase after a completed handshake: the two CipherStates of
/// `Split()`, the handshake hash and the peer's static key.
///
/// The initiator sends with the first CipherState and the responder receives
/// with it (spec §5.2). For a one-way pattern (N, K, X) only the initiator
/// sends; the other direction throws ``NoiseError/oneWay``.
///
/// Each message is at most `MAX_MESSAGE_LEN` (65535) bytes, so a plaintext is at
/// most ``NoiseSpec/MAX_PLAINTEXT_LEN`` (65519). Even an empty plaintext gives a
/// 16-byte message. Keys are wiped when the Transport is released.
/// Not `Sendable`: own it from one task (or an actor).
public final class Transport {
    /// The CipherState for messages this side sends (nil on a one-way responder).
    public let sendCipher: CipherState?
    /// The CipherState for messages this side receives (nil on a one-way initiator).
    public let receiveCipher: CipherState?
    /// The final handshake hash `h`, for channel binding.
    public let handshakeHash: [UInt8]
    /// The peer's static public key, if the pattern has one.
    public let remoteStaticKey: [UInt8]?

    init(send: CipherState?, receive: CipherState?, handshakeHash: [UInt8], remoteStaticKey: [UInt8]?) {
        self.sendCipher = send
        self.receiveCipher = receive
        self.handshakeHash = handshakeHash
        self.remoteStaticKey = remoteStaticKey
    }

    private static var empty: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: nil, count: 0) }

    /// Encrypts one transport message (plaintext ≤ 65519 bytes).
    public func encrypt(_ plaintext: [UInt8]) throws(NoiseError) -> [UInt8] {
        guard let c = sendCipher else { throw .oneWay }
        guard plaintext.count <= NoiseSpec.MAX_PLAINTEXT_LEN else { throw .messageTooLong }
        var failure: NoiseError?
        let out = [UInt8](unsafeUninitializedCapacity: plaintext.count + NoiseSpec.TAGLEN) { buf, n in
            n = 0
            guard let o = buf.baseAddress else { return }
            plaintext.withUnsafeBytes { p in
                do throws(NoiseError) { n = try c.encrypt(ad: Self.empty, plaintext: p, into: UnsafeMutableRawPointer(o)) } catch { failure = error }
            }
        }
        if let failure { throw failure }
        return out
    }

    /// Decrypts one transport message. A failure leaves the nonce unchanged.
    public func decrypt(_ message: [UInt8]) throws(NoiseError) -> [UInt8] {
        guard let c = receiveCipher else { throw .oneWay }
        guard message.count <= NoiseSpec.MAX_MESSAGE_LEN else { throw .messageTooLong }
        guard message.count >= NoiseSpec.TAGLEN else { throw .messageTooShort }
        var failure: NoiseError?
        let out = [UInt8](unsafeUninitializedCapacity: max(message.count - NoiseSpec.TAGLEN, 1)) { buf, n in
            n = 0
            guard let o = buf.baseAddress else { return }
            message.withUnsafeBytes { m in
                do throws(NoiseError) { n = try c.decrypt(ad: Self.empty, ciphertext: m, into: UnsafeMutableRawPointer(o)) } catch { failure = error }
            }
        }
        if let failure { throw failure }
        return out
    }

    /// Zero-allocation encrypt: writes `plaintext.count + 16` bytes to `out`
    /// (which may be the same memory) and returns that count.
    @inline(__always)
    public func encrypt(_ plaintext: UnsafeRawBufferPointer, into out: UnsafeMutableRawBufferPointer) throws(NoiseError) -> Int {
        guard let c = sendCipher else { throw .oneWay }
        guard plaintext.count <= NoiseSpec.MAX_PLAINTEXT_LEN else { throw .messageTooLong }
        guard let o = out.baseAddress, out.count >= plaintext.count + NoiseSpec.TAGLEN else { throw .messageTooShort }
        return try c.encrypt(ad: Self.empty, plaintext: plaintext, into: o)
    }

    /// Zero-allocation decrypt: writes `message.count - 16` bytes to `out`
    /// and returns that count. A failure leaves the nonce unchanged.
    @inline(__always)
    public func decrypt(_ message: UnsafeRawBufferPointer, into out: UnsafeMutableRawBufferPointer) throws(NoiseError) -> Int {
        guard let c = receiveCipher else { throw .oneWay }
        guard message.count <= NoiseSpec.MAX_MESSAGE_LEN else { throw .messageTooLong }
        guard message.count >= NoiseSpec.TAGLEN else { throw .messageTooShort }
        guard let o = out.baseAddress, out.count >= message.count - NoiseSpec.TAGLEN else { throw .messageTooShort }
        return try c.decrypt(ad: Self.empty, ciphertext: message, into: o)
    }

    /// `Rekey()` of the sending CipherState (both sides must agree when).
    public func rekeySend() throws(NoiseError) {
        guard let c = sendCipher else { throw .oneWay }
        c.rekey()
    }

    /// `Rekey()` of the receiving CipherState.
    public func rekeyReceive() throws(NoiseError) {
        guard let c = receiveCipher else { throw .oneWay }
        c.rekey()
    }
}
