import CSodium

// BLAKE2s-256, unkeyed, written from RFC 7693 (libsodium has no BLAKE2s).
//
// The streaming state lives in caller-owned raw memory so that it sits in the
// owner's wipeable secret buffer. Layout (BLAKE2s.stateBytes bytes):
//   0..<32   h[0..7]   chained state, UInt32
//   32..<40  t         byte counter, UInt64 (RFC 7693 uses a 64-bit t0||t1)
//   40..<48  buflen    bytes held in buf, Int
//   48..<112 buf       the not-yet-compressed block (BLOCKLEN = 64)

/// BLAKE2s (RFC 7693) with a 32-byte digest, implemented in Swift.
public enum BLAKE2s {
    /// Digest length in bytes.
    public static let outputLength = 32
    /// Block length in bytes.
    public static let blockLength = 64
    static let stateBytes = 112

    /// One-shot BLAKE2s-256 of `data`.
    public static func hash(_ data: [UInt8]) -> [UInt8] {
        let st = SecretMemory.allocate(stateBytes)
        defer { SecretMemory.free(st, stateBytes) }
        initialize(st)
        data.withUnsafeBytes { update(st, $0.baseAddress, $0.count) }
        return [UInt8](unsafeUninitializedCapacity: outputLength) { buf, n in
            if let base = buf.baseAddress { finalize(st, UnsafeMutableRawPointer(base)) }
            n = outputLength
        }
    }

    // RFC 7693 §2.6: the IV is the SHA-256 IV.
    static let IV: [UInt32] = [
        0x6A09_E667, 0xBB67_AE85, 0x3C6E_F372, 0xA54F_F53A,
        0x510E_527F, 0x9B05_688C, 0x1F83_D9AB, 0x5BE0_CD19
    ]

    // RFC 7693 §2.7: message word schedule permutations, rounds 0-9.
    static let SIGMA: [UInt8] = [
        0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15,
        14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3,
        11, 8, 12, 0, 5, 2, 15, 13, 10, 14, 3, 6, 7, 1, 9, 4,
        7, 9, 3, 1, 13, 12, 11, 14, 2, 6, 5, 10, 4, 0, 15, 8,
        9, 0, 5, 7, 2, 4, 10, 15, 14, 1, 11, 12, 6, 8, 3, 13,
        2, 12, 6, 10, 0, 11, 8, 3, 4, 13, 7, 5, 15, 14, 1, 9,
        12, 5, 1, 15, 14, 13, 4, 10, 0, 7, 6, 3, 9, 2, 8, 11,
        13, 11, 7, 14, 12, 1, 3, 9, 5, 0, 15, 4, 8, 6, 2, 10,
        6, 15, 14, 9, 11, 3, 0, 8, 12, 2, 13, 7, 1, 4, 10, 5,
        10, 2, 8, 4, 7, 6, 1, 5, 15, 11, 9, 14, 3, 12, 13, 0
    ]

    /// RFC 7693 §3.3 parameter block, unkeyed: h[0] ^= 0x0101kknn, kk = 0, nn = 32.
    static func initialize(_ st: UnsafeMutableRawPointer) {
        let h = st.assumingMemoryBound(to: UInt32.self)
        for i in 0..<8 { h[i] = IV[i] }
        h[0] ^= 0x0101_0000 ^ UInt32(outputLength)
        st.storeBytes(of: 0, toByteOffset: 32, as: UInt64.self)
        st.storeBytes(of: 0, toByteOffset: 40, as: Int.self)
    }

    static func update(_ st: UnsafeMutableRawPointer, _ data: UnsafeRawPointer?, _ count: Int) {
        guard count > 0, let data else { return }
        let h = st.assumingMemoryBound(to: UInt32.self)
        let buf = st + 48
        var t = st.load(fromByteOffset: 32, as: UInt64.self)
        var buflen = st.load(fromByteOffset: 40, as: Int.self)
        var offset = 0
        while offset < count {
            // Compress a full buffer only when more input follows: the last
            // block must be compressed by finalize() with the final flag.
            if buflen == blockLength {
                t &+= UInt64(blockLength)
                compress(h, UnsafeRawPointer(buf), t, last: false)
                buflen = 0
            }
            let take = min(blockLength - buflen, count - offset)
            (buf + buflen).copyMemory(from: data + offset, byteCount: take)
            buflen += take
            offset += take
        }
        st.storeBytes(of: t, toByteOffset: 32, as: UInt64.self)
        st.storeBytes(of: buflen, toByteOffset: 40, as: Int.self)
    }

    static func finalize(_ st: UnsafeMutableRawPointer, _ out: UnsafeMutableRawPointer) {
        let h = st.assumingMemoryBound(to: UInt32.self)
        let buf = st + 48
        let buflen = st.load(fromByteOffset: 40, as: Int.self)
        let t = st.load(fromByteOffset: 32, as: UInt64.self) &+ UInt64(buflen)
        (buf + buflen).initializeMemory(as: UInt8.self, repeating: 0, count: blockLength - buflen)
        compress(h, UnsafeRawPointer(buf), t, last: true)
        for i in 0..<8 {
            out.storeBytes(of: h[i].littleEndian, toByteOffset: 4 * i, as: UInt32.self)
        }
        SecretMemory.wipe(st, stateBytes)
    }

    /// RFC 7693 §3.2, function F, with the G mixing function of §3.1
    /// (rotations R1..R4 = 16, 12, 8, 7).
    static func compress(_ h: UnsafeMutablePointer<UInt32>, _ block: UnsafeRawPointer, _ t: UInt64, last: Bool) {
        withUnsafeTemporaryAllocation(of: UInt32.self, capacity: 32) { tmp in
            guard let v = tmp.baseAddress else { return }
            let m = v + 16
            for i in 0..<16 {
                m[i] = UInt32(littleEndian: block.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self))
            }
            for i in 0..<8 {
                v[i] = h[i]
                v[i + 8] = IV[i]
            }
            v[12] ^= UInt32(truncatingIfNeeded: t)
            v[13] ^= UInt32(truncatingIfNeeded: t >> 32)
            if last { v[14] = ~v[14] }

            @inline(__always)
            func G(_ a: Int, _ b: Int, _ c: Int, _ d: Int, _ x: UInt32, _ y: UInt32) {
                v[a] = v[a] &+ v[b] &+ x
                v[d] = rotr(v[d] ^ v[a], 16)
                v[c] = v[c] &+ v[d]
                v[b] = rotr(v[b] ^ v[c], 12)
                v[a] = v[a] &+ v[b] &+ y
                v[d] = rotr(v[d] ^ v[a], 8)
                v[c] = v[c] &+ v[d]
                v[b] = rotr(v[b] ^ v[c], 7)
            }

            SIGMA.withUnsafeBufferPointer { sigma in
                for round in 0..<10 {
                    let s = 16 * round
                    G(0, 4, 8, 12, m[Int(sigma[s + 0])], m[Int(sigma[s + 1])])
                    G(1, 5, 9, 13, m[Int(sigma[s + 2])], m[Int(sigma[s + 3])])
                    G(2, 6, 10, 14, m[Int(sigma[s + 4])], m[Int(sigma[s + 5])])
                    G(3, 7, 11, 15, m[Int(sigma[s + 6])], m[Int(sigma[s + 7])])
                    G(0, 5, 10, 15, m[Int(sigma[s + 8])], m[Int(sigma[s + 9])])
                    G(1, 6, 11, 12, m[Int(sigma[s + 10])], m[Int(sigma[s + 11])])
                    G(2, 7, 8, 13, m[Int(sigma[s + 12])], m[Int(sigma[s + 13])])
                    G(3, 4, 9, 14, m[Int(sigma[s + 14])], m[Int(sigma[s + 15])])
                }
            }
            for i in 0..<8 { h[i] ^= v[i] ^ v[i + 8] }
            sodium_memzero(v, 32 * MemoryLayout<UInt32>.size)
        }
    }

    @inline(__always)
    static func rotr(_ x: UInt32, _ n: UInt32) -> UInt32 { (x >> n) | (x << (32 - n)) }
}
