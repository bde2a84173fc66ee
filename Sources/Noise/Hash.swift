import CSodium

/// The Noise hash functions (spec §12.3-12.5). BLAKE2b and SHA256 come from
/// libsodium; BLAKE2s is this module's own (``BLAKE2s``).
public enum NoiseHash: String, Sendable, CaseIterable {
    case blake2b = "BLAKE2b"
    case blake2s = "BLAKE2s"
    case sha256 = "SHA256"

    /// The spec's name for this hash in a protocol name.
    public var name: String { rawValue }

    /// Digest length in bytes.
    public var HASHLEN: Int {
        switch self {
        case .blake2b: 64
        case .blake2s, .sha256: 32
        }
    }

    /// Block length in bytes, used by HMAC.
    public var BLOCKLEN: Int {
        switch self {
        case .blake2b: 128
        case .blake2s, .sha256: 64
        }
    }

    /// `HASH(data)`.
    public func hash(_ data: [UInt8]) -> [UInt8] {
        let ws = HashWorkspace(self)
        defer { ws.free() }
        return [UInt8](unsafeUninitializedCapacity: HASHLEN) { buf, n in
            data.withUnsafeBytes { d in
                ws.begin()
                ws.update(d.baseAddress, d.count)
                if let out = buf.baseAddress { ws.finish(UnsafeMutableRawPointer(out)) }
            }
            n = HASHLEN
        }
    }

    /// `HMAC-HASH(key, data)` as in RFC 2104, with this hash's `BLOCKLEN`.
    public func hmac(key: [UInt8], data: [UInt8]) -> [UInt8] {
        let ws = HashWorkspace(self)
        defer { ws.free() }
        return [UInt8](unsafeUninitializedCapacity: HASHLEN) { buf, n in
            key.withUnsafeBytes { k in
                data.withUnsafeBytes { d in
                    if let out = buf.baseAddress {
                        ws.hmac(
                            key: k.baseAddress, keyCount: k.count, d.baseAddress, d.count, nil, 0,
                            out: UnsafeMutableRawPointer(out))
                    }
                }
            }
            n = HASHLEN
        }
    }

    /// `HKDF(chaining_key, input_key_material, num_outputs)` (spec §4.3),
    /// returning 2 or 3 outputs of `HASHLEN` bytes.
    public func hkdf(chainingKey: [UInt8], inputKeyMaterial: [UInt8], outputs: Int) -> [[UInt8]] {
        let count = outputs == 3 ? 3 : 2
        let ws = HashWorkspace(self)
        defer { ws.free() }
        let out = SecretMemory.allocate(3 * HASHLEN + HASHLEN)
        defer { SecretMemory.free(out, 4 * HASHLEN) }
        chainingKey.withUnsafeBytes { ck in
            inputKeyMaterial.withUnsafeBytes { ikm in
                ws.hkdf(
                    chainingKey: ck.baseAddress, chainingKeyCount: ck.count,
                    ikm: ikm.baseAddress, ikmCount: ikm.count,
                    temp: out + 3 * HASHLEN,
                    out1: out, out2: out + HASHLEN, out3: count == 3 ? out + 2 * HASHLEN : nil)
            }
        }
        return (0..<count).map { i in
            [UInt8](UnsafeRawBufferPointer(start: out + i * HASHLEN, count: HASHLEN))
        }
    }
}

/// Preallocated memory for streaming hash, HMAC and HKDF computations: a hash
/// state (aligned 64 for libsodium's BLAKE2b), an HMAC key block and an inner
/// digest. Owned by a SymmetricState (or a one-shot helper), wiped on free.
struct HashWorkspace {
    static let stateOffset = 0, blockOffset = 384, innerOffset = 512
    static let bytes = 576

    let kind: NoiseHash
    let base: UnsafeMutableRawPointer

    init(_ kind: NoiseHash) {
        Sodium.ensure()
        self.kind = kind
        self.base = SecretMemory.allocate(Self.bytes)
    }

    /// Use memory owned by someone else (must be `bytes` long, 64-aligned).
    init(_ kind: NoiseHash, at base: UnsafeMutableRawPointer) {
        self.kind = kind
        self.base = base
    }

    func free() { SecretMemory.free(base, Self.bytes) }
    func wipe() { SecretMemory.wipe(base, Self.bytes) }

    @inline(__always)
    func begin() {
        switch kind {
        case .blake2b:
            _ = crypto_generichash_init(OpaquePointer(base), nil, 0, 64)
        case .sha256:
            _ = crypto_hash_sha256_init(base.assumingMemoryBound(to: crypto_hash_sha256_state.self))
        case .blake2s:
            BLAKE2s.initialize(base)
        }
    }

    @inline(__always)
    func update(_ p: UnsafeRawPointer?, _ n: Int) {
        guard n > 0, let p else { return }
        switch kind {
        case .blake2b:
            _ = crypto_generichash_update(OpaquePointer(base), p.assumingMemoryBound(to: UInt8.self), UInt64(n))
        case .sha256:
            _ = crypto_hash_sha256_update(
                base.assumingMemoryBound(to: crypto_hash_sha256_state.self),
                p.assumingMemoryBound(to: UInt8.self), UInt64(n))
        case .blake2s:
            BLAKE2s.update(base, p, n)
        }
    }

    /// Writes HASHLEN bytes to `out`; `out` may alias data already passed to `update`.
    @inline(__always)
    func finish(_ out: UnsafeMutableRawPointer) {
        switch kind {
        case .blake2b:
            _ = crypto_generichash_final(OpaquePointer(base), out.assumingMemoryBound(to: UInt8.self), 64)
        case .sha256:
            _ = crypto_hash_sha256_final(
                base.assumingMemoryBound(to: crypto_hash_sha256_state.self),
                out.assumingMemoryBound(to: UInt8.self))
        case .blake2s:
            BLAKE2s.finalize(base, out)
        }
    }

    /// HMAC-HASH(key, data1 || data2) into `out` (HASHLEN bytes). `out` may
    /// alias the key or the data. RFC 2104: keys longer than BLOCKLEN are hashed.
    func hmac(
        key: UnsafeRawPointer?, keyCount: Int,
        _ d1: UnsafeRawPointer?, _ n1: Int, _ d2: UnsafeRawPointer?, _ n2: Int,
        out: UnsafeMutableRawPointer
    ) {
        let blockLen = kind.BLOCKLEN, hashLen = kind.HASHLEN
        let block = base + Self.blockOffset
        let inner = base + Self.innerOffset
        block.initializeMemory(as: UInt8.self, repeating: 0, count: blockLen)
        if keyCount > blockLen {
            begin(); update(key, keyCount); finish(block)
        } else if keyCount > 0, let key {
            block.copyMemory(from: key, byteCount: keyCount)
        }
        let b = block.assumingMemoryBound(to: UInt8.self)
        for i in 0..<blockLen { b[i] ^= 0x36 }
        begin(); update(block, blockLen); update(d1, n1); update(d2, n2); finish(inner)
        for i in 0..<blockLen { b[i] ^= 0x36 ^ 0x5c }
        begin(); update(block, blockLen); update(inner, hashLen); finish(out)
        SecretMemory.wipe(block, blockLen)
        SecretMemory.wipe(inner, hashLen)
    }

    /// HKDF of spec §4.3. `temp` is HASHLEN bytes of scratch. Outputs may alias
    /// the chaining key (MixKey writes the new ck over the old one).
    func hkdf(
        chainingKey: UnsafeRawPointer?, chainingKeyCount: Int,
        ikm: UnsafeRawPointer?, ikmCount: Int,
        temp: UnsafeMutableRawPointer,
        out1: UnsafeMutableRawPointer, out2: UnsafeMutableRawPointer, out3: UnsafeMutableRawPointer?
    ) {
        let hashLen = kind.HASHLEN
        var one: UInt8 = 0x01, two: UInt8 = 0x02, three: UInt8 = 0x03
        hmac(key: chainingKey, keyCount: chainingKeyCount, ikm, ikmCount, nil, 0, out: temp)
        hmac(key: temp, keyCount: hashLen, &one, 1, nil, 0, out: out1)
        hmac(key: temp, keyCount: hashLen, out1, hashLen, &two, 1, out: out2)
        if let out3 {
            hmac(key: temp, keyCount: hashLen, out2, hashLen, &three, 1, out: out3)
        }
        SecretMemory.wipe(temp, hashLen)
    }
}
