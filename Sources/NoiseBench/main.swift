// noise-bench: chipsite's Noise against the raw libsodium primitives it is built on.
//
//   swift run -c release --scratch-path .build-noise noise-bench [--seconds S]
//
// Every figure is printed beside the same work done with raw libsodium calls
// (preallocated buffers, no framework), as a ratio noise/raw. One thread.
import CSodium
import Noise

// MARK: Timing

let secondsPerRun: Double = {
    let args = CommandLine.arguments
    if let i = args.firstIndex(of: "--seconds"), i + 1 < args.count, let s = Double(args[i + 1]) { return s }
    return 0.5
}()

/// Best of 3 runs: operations per second of `body`, which performs `batch` operations per call.
func measure(batch: Int = 1, _ body: () throws -> Void) rethrows -> Double {
    let clock = ContinuousClock()
    var best = 0.0
    for _ in 0..<3 {
        var ops = 0
        let start = clock.now
        var elapsed = 0.0
        repeat {
            try body()
            ops += batch
            let d = clock.now - start
            elapsed = Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18
        } while elapsed < secondsPerRun
        best = max(best, Double(ops) / elapsed)
    }
    return best
}

func fmt(_ x: Double, _ width: Int = 11, decimals: Int = 0) -> String {
    var s: String
    if decimals == 0 {
        s = String(Int(x + 0.5))
        var out = ""
        for (i, ch) in s.reversed().enumerated() {
            if i > 0 && i % 3 == 0 { out.append(",") }
            out.append(ch)
        }
        s = String(out.reversed())
    } else {
        let scale = Double(decimals == 2 ? 100 : 10)
        let v = Double(Int(x * scale + 0.5)) / scale
        s = String(v)
        if let dot = s.firstIndex(of: ".") {
            let frac = s[s.index(after: dot)...].count
            if frac < decimals { s += String(repeating: "0", count: decimals - frac) }
        }
    }
    return String(repeating: " ", count: max(0, width - s.count)) + s
}

func pad(_ s: String, _ width: Int) -> String { s + String(repeating: " ", count: max(0, width - s.count)) }

// MARK: Raw libsodium ceilings

/// Raw scratch memory for the ceilings.
final class Raw {
    let a = UnsafeMutablePointer<UInt8>.allocate(capacity: 256)
    let b = UnsafeMutablePointer<UInt8>.allocate(capacity: 256)
    let c = UnsafeMutablePointer<UInt8>.allocate(capacity: 256)
    let key = UnsafeMutablePointer<UInt8>.allocate(capacity: 32)
    let nonce = UnsafeMutablePointer<UInt8>.allocate(capacity: 12)
    let state = UnsafeMutableRawPointer.allocate(byteCount: 512, alignment: 64)
    let peerPublic = UnsafeMutablePointer<UInt8>.allocate(capacity: 32)
    init() {
        randombytes_buf(a, 256); randombytes_buf(b, 256); randombytes_buf(key, 32)
        nonce.initialize(repeating: 0, count: 12)
        randombytes_buf(c, 32)
        crypto_scalarmult_curve25519_base(peerPublic, c)
    }
    func keygen() { randombytes_buf(a, 32); crypto_scalarmult_curve25519_base(b, a) }
    func dh() { _ = crypto_scalarmult_curve25519(c, a, peerPublic) }
    /// HASH(h || 32..64 bytes), as MixHash does.
    func mixHash() {
        crypto_generichash_init(OpaquePointer(state), nil, 0, 64)
        crypto_generichash_update(OpaquePointer(state), a, 64)
        crypto_generichash_update(OpaquePointer(state), b, 48)
        crypto_generichash_final(OpaquePointer(state), c, 64)
    }
    /// HMAC-BLAKE2b over crypto_generichash with a 64-byte key and ≤ 65-byte message.
    func hmac() {
        for i in 0..<128 { a[i] ^= 0x36 }
        crypto_generichash_init(OpaquePointer(state), nil, 0, 64)
        crypto_generichash_update(OpaquePointer(state), a, 128)
        crypto_generichash_update(OpaquePointer(state), b, 65)
        crypto_generichash_final(OpaquePointer(state), c, 64)
        for i in 0..<128 { a[i] ^= 0x36 ^ 0x5c }
        crypto_generichash_init(OpaquePointer(state), nil, 0, 64)
        crypto_generichash_update(OpaquePointer(state), a, 128)
        crypto_generichash_update(OpaquePointer(state), c, 64)
        crypto_generichash_final(OpaquePointer(state), c, 64)
    }
    /// A handshake-sized AEAD call (≤ 32-byte plaintext, 64-byte ad).
    func aead() {
        crypto_aead_chacha20poly1305_ietf_encrypt(c, nil, a, 32, b, 64, nil, nonce, key)
    }
}

/// The primitive operations a full handshake performs, both sides together,
/// counted from the pattern's tokens (BLAKE2b, no PSK).
struct HandshakeCost {
    var keygens = 0, dhs = 0, mixHashes = 0, hmacs = 0, aeads = 0

    init(_ p: HandshakePattern) {
        // Each side: MixHash(prologue) and one MixHash per pre-message key.
        mixHashes = 2 * (1 + p.initiatorPreMessage.count + p.responderPreMessage.count)
        var keyed = false
        for tokens in p.messages {
            for t in tokens {
                switch t {
                case .e: keygens += 1; mixHashes += 2
                case .s: mixHashes += 2; if keyed { aeads += 2 }
                case .ee, .es, .se, .ss: dhs += 2; hmacs += 2 * 3; keyed = true
                }
            }
            mixHashes += 2  // EncryptAndHash / DecryptAndHash of the payload
            if keyed { aeads += 2 }
        }
        hmacs += 2 * 3  // Split() on each side
    }

    func run(_ raw: Raw) {
        for _ in 0..<keygens { raw.keygen() }
        for _ in 0..<dhs { raw.dh() }
        for _ in 0..<mixHashes { raw.mixHash() }
        for _ in 0..<hmacs { raw.hmac() }
        for _ in 0..<aeads { raw.aead() }
    }
}

// MARK: Handshakes

guard sodium_init() >= 0 else { print("libsodium init failed"); exit(1) }
let raw = Raw()
let initiatorStatic = KeyPair.generate()
let responderStatic = KeyPair.generate()

func fullHandshake(_ pattern: HandshakePattern) throws -> (Transport, Transport) {
    let iStatic: KeyPair? = pattern.name == "N" ? nil : initiatorStatic
    let rRemote: [UInt8]? = pattern.initiatorPreMessage.contains(.s) ? initiatorStatic.publicKey : nil
    let i = try Handshake(pattern: pattern, initiator: true, localStatic: iStatic, remoteStatic: responderStatic.publicKey)
    let r = try Handshake(pattern: pattern, initiator: false, localStatic: responderStatic, remoteStatic: rRemote)
    while !i.isComplete {
        if i.isWriteTurn { _ = try r.readMessage(try i.writeMessage()) } else { _ = try i.readMessage(try r.writeMessage()) }
    }
    return (try i.finish(), try r.finish())
}

print("noise-bench: Noise_*_25519_ChaChaPoly_BLAKE2b, one thread, best of 3 × \(secondsPerRun) s")
print("")
print(pad("full handshake (both sides)", 30) + "      noise/s        raw/s   ratio   raw = keygen, X25519, hash, HMAC, AEAD counts")
var ratios: [String: Double] = [:]
for pattern in [HandshakePattern.IK, .N, .KK] {
    let cost = HandshakeCost(pattern)
    let rawRate = measure { cost.run(raw) }
    let noiseRate = try measure { _ = try fullHandshake(pattern) }
    ratios[pattern.name] = noiseRate / rawRate
    print(
        pad("  \(pattern.name)", 30) + fmt(noiseRate, 13) + fmt(rawRate, 13) + fmt(noiseRate / rawRate, 8, decimals: 2)
            + "   \(cost.keygens) kg, \(cost.dhs) dh, \(cost.mixHashes) h, \(cost.hmacs) hmac, \(cost.aeads) aead")
}

// MARK: Transport

print("")
print(pad("transport (one direction)", 30) + "      noise/s        raw/s   ratio    noise MB/s   raw MB/s")
let (sender, _) = try fullHandshake(.IK)
for (label, size) in [("64 B", 64), ("1 KiB", 1024), ("64 KiB (65519 B max)", NoiseSpec.MAX_PLAINTEXT_LEN)] {
    let plain = UnsafeMutableRawBufferPointer.allocate(byteCount: size, alignment: 16)
    let wire = UnsafeMutableRawBufferPointer.allocate(byteCount: size + 16, alignment: 16)
    let back = UnsafeMutableRawBufferPointer.allocate(byteCount: size + 16, alignment: 16)
    plain.initializeMemory(as: UInt8.self, repeating: 0x5a)
    let plainArray = [UInt8](repeating: 0x5a, count: size)
    guard let pb = plain.baseAddress, let wb = wire.baseAddress, let bb = back.baseAddress else { exit(1) }
    let p = pb.assumingMemoryBound(to: UInt8.self)
    let w = wb.assumingMemoryBound(to: UInt8.self)
    let bk = bb.assumingMemoryBound(to: UInt8.self)
    var n: UInt64 = 0
    let batch = size > 4096 ? 16 : 256

    let rawEnc = measure(batch: batch) {
        for _ in 0..<batch {
            n &+= 1
            UnsafeMutableRawPointer(raw.nonce).storeBytes(of: n.littleEndian, toByteOffset: 4, as: UInt64.self)
            crypto_aead_chacha20poly1305_ietf_encrypt(w, nil, p, UInt64(size), nil, 0, nil, raw.nonce, raw.key)
        }
    }
    let noiseEnc = try measure(batch: batch) {
        for _ in 0..<batch { _ = try sender.encrypt(UnsafeRawBufferPointer(plain), into: wire) }
    }
    let noiseEncArray = try measure(batch: batch) {
        for _ in 0..<batch { _ = try sender.encrypt(plainArray) }
    }
    let rawRound = measure(batch: batch) {
        for _ in 0..<batch {
            n &+= 1
            UnsafeMutableRawPointer(raw.nonce).storeBytes(of: n.littleEndian, toByteOffset: 4, as: UInt64.self)
            crypto_aead_chacha20poly1305_ietf_encrypt(w, nil, p, UInt64(size), nil, 0, nil, raw.nonce, raw.key)
            _ = crypto_aead_chacha20poly1305_ietf_decrypt(bk, nil, nil, w, UInt64(size + 16), nil, 0, raw.nonce, raw.key)
        }
    }
    // Resynchronise the pair: the encrypt-only runs advanced only the sender.
    let (s2, r2) = try fullHandshake(.IK)
    let noiseRound = try measure(batch: batch) {
        for _ in 0..<batch {
            let c = try s2.encrypt(UnsafeRawBufferPointer(plain), into: wire)
            _ = try r2.decrypt(UnsafeRawBufferPointer(rebasing: wire[0..<c]), into: back)
        }
    }
    let (s3, r3) = try fullHandshake(.IK)
    let noiseRoundArray = try measure(batch: batch) {
        for _ in 0..<batch { _ = try r3.decrypt(try s3.encrypt(plainArray)) }
    }
    let mb = Double(size) / 1e6
    func row(_ name: String, _ noise: Double, _ rawRate: Double) {
        print(
            pad("  \(name)", 30) + fmt(noise, 13) + fmt(rawRate, 13) + fmt(noise / rawRate, 8, decimals: 2)
                + fmt(noise * mb, 14, decimals: 1) + fmt(rawRate * mb, 11, decimals: 1))
    }
    print("  \(label)")
    row("encrypt, buffer API", noiseEnc, rawEnc)
    row("encrypt, [UInt8] API", noiseEncArray, rawEnc)
    row("send+receive, buffer API", noiseRound, rawRound)
    row("send+receive, [UInt8] API", noiseRoundArray, rawRound)
    if size == 1024 { ratios["1KiB"] = noiseEnc / rawEnc; ratios["1KiB-array"] = noiseEncArray / rawEnc }
    plain.deallocate(); wire.deallocate(); back.deallocate()
}

print("")
let ik = ratios["IK"] ?? 0, t1 = ratios["1KiB"] ?? 0, t1a = ratios["1KiB-array"] ?? 0
print(
    "targets: IK handshake ≥ 0.85 of raw: \(fmt(ik, 0, decimals: 2)) \(ik >= 0.85 ? "met" : "NOT met");"
        + " 1 KiB transport ≥ 0.70 of raw: \(fmt(t1, 0, decimals: 2)) buffer API, \(fmt(t1a, 0, decimals: 2)) [UInt8] API"
        + " \(t1 >= 0.70 ? "met" : "NOT met")")
