import CSodium

/// The spec's HandshakeState (§5.3), and the API a network layer drives:
///
/// ```swift
/// let hs = try Handshake(pattern: .IK, initiator: true, localStatic: me, remoteStatic: server)
/// let m1 = try hs.writeMessage(hello)          // send m1
/// let reply = try hs.readMessage(m2)           // receive m2
/// let transport = try hs.finish()              // hs.isComplete == true
/// let frame = try transport.encrypt(data)
/// ```
///
/// The pattern is interpreted from its token lists (``HandshakePattern``).
/// Any error from `writeMessage`/`readMessage` is fatal: the handshake state
/// (ck, h, k, ephemeral private key, DH outputs) is wiped and every later
/// call throws ``NoiseError/handshakeFailed``. On completion the state is
/// split into a ``Transport`` and wiped likewise.
///
/// Not `Sendable`: one handshake belongs to one connection task.
public final class Handshake {
    /// The protocol (pattern and hash) being run.
    public let noiseProtocol: NoiseProtocol
    /// Whether this side is the initiator.
    public let isInitiator: Bool

    private let symmetric: SymmetricState
    private let localStatic: KeyPair?
    // Secret/working memory: e.priv, e.pub, re, rs, DH output, s.pub.
    private let storage: UnsafeMutableRawPointer
    private static let storageBytes = 192
    private var ePriv: UnsafeMutablePointer<UInt8> { (storage + 0).assumingMemoryBound(to: UInt8.self) }
    private var ePub: UnsafeMutablePointer<UInt8> { (storage + 32).assumingMemoryBound(to: UInt8.self) }
    private var re: UnsafeMutablePointer<UInt8> { (storage + 64).assumingMemoryBound(to: UInt8.self) }
    private var rs: UnsafeMutablePointer<UInt8> { (storage + 96).assumingMemoryBound(to: UInt8.self) }
    private var dh: UnsafeMutablePointer<UInt8> { (storage + 128).assumingMemoryBound(to: UInt8.self) }
    private var sPub: UnsafeMutablePointer<UInt8> { (storage + 160).assumingMemoryBound(to: UInt8.self) }

    private var hasE = false, hasRE = false, hasRS = false
    private let ephemeralInjected: Bool
    private var messageIndex = 0
    private enum Phase { case running, complete, failed }
    private var phase = Phase.running
    private var transport: Transport?
    private var finalHash: [UInt8] = []
    private var remoteStatic: [UInt8]?

    /// Starts a handshake (`Initialize()`).
    ///
    /// - Parameters:
    ///   - pattern: the handshake pattern, e.g. `.IK`.
    ///   - hash: the hash function; the site uses `.blake2b`.
    ///   - initiator: whether this side sends the first message.
    ///   - prologue: data both sides must agree on; always mixed in (may be empty).
    ///   - localStatic: this side's static key pair, if the pattern uses one.
    ///   - remoteStatic: the peer's static public key, if the pattern has it as a pre-message.
    public convenience init(
        pattern: HandshakePattern, hash: NoiseHash = .blake2b, initiator: Bool,
        prologue: [UInt8] = [], localStatic: KeyPair? = nil,
        remoteStatic: [UInt8]? = nil
    ) throws(NoiseError) {
        try self.init(
            protocol: NoiseProtocol(pattern: pattern, hash: hash), initiator: initiator,
            prologue: prologue, localStatic: localStatic, remoteStatic: remoteStatic, ephemeral: nil)
    }

    /// Starts a handshake from a protocol name such as `"Noise_IK_25519_ChaChaPoly_BLAKE2b"`.
    public convenience init(
        protocolName: String, initiator: Bool, prologue: [UInt8] = [],
        localStatic: KeyPair? = nil, remoteStatic: [UInt8]? = nil
    ) throws(NoiseError) {
        try self.init(
            protocol: NoiseProtocol(name: protocolName), initiator: initiator,
            prologue: prologue, localStatic: localStatic, remoteStatic: remoteStatic, ephemeral: nil)
    }

    /// Test-only: as the public initializers, with a fixed ephemeral key pair
    /// (test vectors). Never use a fixed ephemeral in production.
    @_spi(Testing)
    public init(
        protocol proto: NoiseProtocol, initiator: Bool, prologue: [UInt8] = [],
        localStatic: KeyPair? = nil, remoteStatic: [UInt8]? = nil,
        ephemeral: KeyPair?
    ) throws(NoiseError) {
        let pattern = proto.pattern
        let myPre = initiator ? pattern.initiatorPreMessage : pattern.responderPreMessage
        let theirPre = initiator ? pattern.responderPreMessage : pattern.initiatorPreMessage
        guard (myPre + theirPre).allSatisfy({ $0 == .s }) else {
            throw .unsupportedProtocol("pre-message other than s in \(pattern.name)")
        }
        if Self.usesLocalStatic(pattern, initiator: initiator), localStatic == nil { throw .missingLocalStatic }
        if theirPre.contains(.s) {
            guard let remoteStatic else { throw .missingRemoteStatic }
            guard remoteStatic.count == NoiseSpec.DHLEN else { throw .invalidKeyLength }
        } else if remoteStatic != nil {
            throw .unexpectedRemoteStatic
        }

        noiseProtocol = proto
        isInitiator = initiator
        self.localStatic = localStatic
        symmetric = SymmetricState(protocolName: proto.name, hash: proto.hash)
        storage = SecretMemory.allocate(Self.storageBytes)
        ephemeralInjected = ephemeral != nil

        if let ephemeral { UnsafeMutableRawPointer(ePriv).copyMemory(from: ephemeral.privateKeyPointer, byteCount: 32) }
        if let localStatic { Self.copy(localStatic.publicKey, to: sPub) }
        if let remoteStatic {
            Self.copy(remoteStatic, to: rs)
            hasRS = true
            self.remoteStatic = remoteStatic
        }

        // MixHash(prologue), then the pre-messages: initiator's keys first.
        symmetric.mixHash(prologue)
        for _ in pattern.initiatorPreMessage { symmetric.mixHash(initiator ? sPub : rs, 32) }
        for _ in pattern.responderPreMessage { symmetric.mixHash(initiator ? rs : sPub, 32) }
    }

    deinit { SecretMemory.free(storage, Self.storageBytes) }

    private static func copy(_ bytes: [UInt8], to p: UnsafeMutablePointer<UInt8>) {
        bytes.withUnsafeBytes { b in
            if let base = b.baseAddress { UnsafeMutableRawPointer(p).copyMemory(from: base, byteCount: min(b.count, 32)) }
        }
    }

    private static func usesLocalStatic(_ p: HandshakePattern, initiator: Bool) -> Bool {
        if (initiator ? p.initiatorPreMessage : p.responderPreMessage).contains(.s) { return true }
        for (i, tokens) in p.messages.enumerated() {
            let mine = (i % 2 == 0) == initiator
            if mine && tokens.contains(.s) { return true }
            if tokens.contains(.ss) || tokens.contains(initiator ? .se : .es) { return true }
        }
        return false
    }
}

/// The spec's name for ``Handshake``.
public typealias HandshakeState = Handshake

// MARK: - Messages

extension Handshake {
    /// Whether the handshake has finished (the transport is ready).
    public var isComplete: Bool { phase == .complete }

    /// Whether the next call must be `writeMessage` (false: `readMessage`).
    public var isWriteTurn: Bool { (messageIndex % 2 == 0) == isInitiator }

    /// The largest payload the next handshake message can carry
    /// (`MAX_MESSAGE_LEN` less that message's keys and tags); 0 once complete.
    public var maxPayloadCount: Int {
        guard phase == .running else { return 0 }
        return NoiseSpec.MAX_MESSAGE_LEN - Self.overhead(noiseProtocol.pattern, messageIndex)
    }

    /// The peer's static public key, once known (pre-message or received).
    public var remoteStaticKey: [UInt8]? { remoteStatic }

    /// `GetHandshakeHash()`: `h` now; after completion, the final value for channel binding.
    public var handshakeHash: [UInt8] { phase == .complete ? finalHash : symmetric.handshakeHash }

    /// `WriteMessage(payload)`: the next handshake message carrying `payload`.
    public func writeMessage(_ payload: [UInt8] = []) throws(NoiseError) -> [UInt8] {
        try checkTurn(write: true)
        let tokens = noiseProtocol.pattern.messages[messageIndex]
        let length = Self.overhead(noiseProtocol.pattern, messageIndex) + payload.count
        guard length <= NoiseSpec.MAX_MESSAGE_LEN else { fail(); throw .messageTooLong }
        var failure: NoiseError?
        let message = [UInt8](unsafeUninitializedCapacity: length) { buf, n in
            n = 0
            guard let out = buf.baseAddress else { return }
            payload.withUnsafeBytes { p in
                do throws(NoiseError) { n = try write(tokens, payload: p, into: UnsafeMutableRawPointer(out)) } catch { failure = error }
            }
        }
        if let failure { fail(); throw failure }
        finishMessage()
        return message
    }

    /// `ReadMessage(message)`: processes the peer's handshake message and returns its payload.
    public func readMessage(_ message: [UInt8]) throws(NoiseError) -> [UInt8] {
        try checkTurn(write: false)
        let tokens = noiseProtocol.pattern.messages[messageIndex]
        let overhead = Self.overhead(noiseProtocol.pattern, messageIndex)
        // Cheap length checks before any crypto.
        guard message.count <= NoiseSpec.MAX_MESSAGE_LEN else { fail(); throw .messageTooLong }
        guard message.count >= overhead else { fail(); throw .messageTooShort }
        var failure: NoiseError?
        let payload = [UInt8](unsafeUninitializedCapacity: max(message.count - overhead, 1)) { buf, n in
            n = 0
            guard let out = buf.baseAddress else { return }
            message.withUnsafeBytes { m in
                do throws(NoiseError) { n = try read(tokens, message: m, into: UnsafeMutableRawPointer(out)) } catch { failure = error }
            }
        }
        if let failure { fail(); throw failure }
        finishMessage()
        return payload
    }

    /// Hands over the transport once the handshake is complete; callable once.
    public func finish() throws(NoiseError) -> Transport {
        guard phase == .complete else { throw phase == .failed ? .handshakeFailed : .handshakeIncomplete }
        guard let transport else { throw .transportTaken }
        self.transport = nil
        return transport
    }

    /// Abandons the handshake and wipes its state.
    public func abort() { fail() }

    // MARK: Internals

    private func checkTurn(write: Bool) throws(NoiseError) {
        switch phase {
        case .failed: throw .handshakeFailed
        case .complete: throw .handshakeComplete
        case .running: break
        }
        guard isWriteTurn == write else { fail(); throw .outOfTurn }
    }

    /// Bytes a message adds to its payload: 32 per `e`, 32 (+16 once keyed) per
    /// `s`, and a 16-byte tag on the payload once keyed. No PSK, so the
    /// handshake is keyed from the first DH token on.
    static func overhead(_ pattern: HandshakePattern, _ index: Int) -> Int {
        var keyed = false
        for i in 0..<index where !keyed {
            keyed = pattern.messages[i].contains { $0 != .e && $0 != .s }
        }
        var n = 0
        for t in pattern.messages[index] {
            switch t {
            case .e: n += NoiseSpec.DHLEN
            case .s: n += NoiseSpec.DHLEN + (keyed ? NoiseSpec.TAGLEN : 0)
            case .ee, .es, .se, .ss: keyed = true
            }
        }
        return n + (keyed ? NoiseSpec.TAGLEN : 0)
    }

    private func write(
        _ tokens: [Token], payload: UnsafeRawBufferPointer,
        into out: UnsafeMutableRawPointer
    ) throws(NoiseError) -> Int {
        var off = 0
        for token in tokens {
            switch token {
            case .e:
                if !ephemeralInjected { randombytes_buf(ePriv, 32) }
                _ = crypto_scalarmult_curve25519_base(ePub, ePriv)
                hasE = true
                (out + off).copyMemory(from: ePub, byteCount: 32)
                symmetric.mixHash(ePub, 32)
                off += 32
            case .s:
                off += try symmetric.encryptAndHash(UnsafeRawBufferPointer(start: sPub, count: 32), into: out + off)
            case .ee, .es, .se, .ss:
                try mixDH(token)
            }
        }
        return off + (try symmetric.encryptAndHash(payload, into: out + off))
    }

    private func read(
        _ tokens: [Token], message: UnsafeRawBufferPointer,
        into out: UnsafeMutableRawPointer
    ) throws(NoiseError) -> Int {
        guard let base = message.baseAddress else { throw .messageTooShort }
        var off = 0
        for token in tokens {
            switch token {
            case .e:
                UnsafeMutableRawPointer(re).copyMemory(from: base + off, byteCount: 32)
                hasRE = true
                symmetric.mixHash(re, 32)
                off += 32
            case .s:
                let len = 32 + (symmetric.hasKey ? NoiseSpec.TAGLEN : 0)
                _ = try symmetric.decryptAndHash(UnsafeRawBufferPointer(start: base + off, count: len), into: rs)
                hasRS = true
                remoteStatic = [UInt8](UnsafeRawBufferPointer(start: rs, count: 32))
                off += len
            case .ee, .es, .se, .ss:
                try mixDH(token)
            }
        }
        return try symmetric.decryptAndHash(
            UnsafeRawBufferPointer(start: base + off, count: message.count - off), into: out)
    }

    /// `MixKey(DH(...))` for a DH token, choosing keys by role as in spec §5.3.
    private func mixDH(_ token: Token) throws(NoiseError) {
        let local: UnsafePointer<UInt8>?, remote: UnsafePointer<UInt8>?
        let s = localStatic?.privateKeyPointer
        let e: UnsafePointer<UInt8>? = hasE ? UnsafePointer(ePriv) : nil
        let reKey: UnsafePointer<UInt8>? = hasRE ? UnsafePointer(re) : nil
        let rsKey: UnsafePointer<UInt8>? = hasRS ? UnsafePointer(rs) : nil
        switch token {
        case .ee: (local, remote) = (e, reKey)
        case .es: (local, remote) = isInitiator ? (e, rsKey) : (s, reKey)
        case .se: (local, remote) = isInitiator ? (s, reKey) : (e, rsKey)
        case .ss: (local, remote) = (s, rsKey)
        case .e, .s: return
        }
        guard let local, let remote else { throw .unsupportedProtocol("pattern uses a key before it is known") }
        // libsodium returns -1 when the result is all zeros (low-order point).
        guard crypto_scalarmult_curve25519(dh, local, remote) == 0 else {
            sodium_memzero(dh, 32)
            throw .invalidDHOutput
        }
        symmetric.mixKey(dh, 32)
        sodium_memzero(dh, 32)
    }

    private func finishMessage() {
        messageIndex += 1
        guard messageIndex == noiseProtocol.pattern.messages.count else { return }
        let (c1, c2) = symmetric.split()
        finalHash = symmetric.handshakeHash
        let oneWay = noiseProtocol.pattern.isOneWay
        let send: CipherState?, receive: CipherState?
        if isInitiator {
            (send, receive) = (c1, oneWay ? nil : c2)
        } else {
            (send, receive) = (oneWay ? nil : c2, c1)
        }
        transport = Transport(send: send, receive: receive, handshakeHash: finalHash, remoteStaticKey: remoteStatic)
        wipeState()
        phase = .complete
    }

    private func fail() {
        wipeState()
        // A static key read from a message that then failed is only a claim:
        // it must not be readable through `remoteStaticKey`.
        remoteStatic = nil
        hasRS = false
        transport = nil
        phase = .failed
    }

    private func wipeState() {
        symmetric.wipe()
        SecretMemory.wipe(storage, Self.storageBytes)
        hasE = false; hasRE = false
    }
}
