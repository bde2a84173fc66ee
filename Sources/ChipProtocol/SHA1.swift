import ChipModel

/// SHA-1 (FIPS 180-4, section 6.1), written from the standard for one use
/// only: the name-based UUIDs of lift chits (RFC 9562 version 5, protocol
/// section 9.5). libsodium has no SHA-1, and nothing here relies on SHA-1
/// resisting collisions: the UUID only has to be the same on every site.
public enum SHA1 {
    public static let digestLength = 20

    /// The initial hash value H(0) (FIPS 180-4, 5.3.1).
    static let initial: [UInt32] = [0x6745_2301, 0xEFCD_AB89, 0x98BA_DCFE, 0x1032_5476, 0xC3D2_E1F0]
    /// The constants K(t) of the four rounds of 20 steps (FIPS 180-4, 4.2.1).
    static let roundConstants: [UInt32] = [0x5A82_7999, 0x6ED9_EBA1, 0x8F1B_BCDC, 0xCA62_C1D6]
    static let blockBytes = 64

    /// The 20-byte digest of `message`.
    public static func hash(_ message: [UInt8]) -> [UInt8] {
        // Padding (5.1.1): a 1 bit, zeros to 448 mod 512 bits, the length in bits (64-bit big-endian).
        var m = message
        let bitLength = UInt64(message.count) &* 8
        m.append(0x80)
        while m.count % blockBytes != blockBytes - 8 { m.append(0) }
        for shift in stride(from: 56, through: 0, by: -8) { m.append(UInt8(truncatingIfNeeded: bitLength >> UInt64(shift))) }

        var h = initial
        var w = [UInt32](repeating: 0, count: 80)
        for block in stride(from: 0, to: m.count, by: blockBytes) {
            // The message schedule (6.1.2 step 1).
            for t in 0..<16 {
                let i = block + 4 * t
                w[t] = UInt32(m[i]) << 24 | UInt32(m[i + 1]) << 16 | UInt32(m[i + 2]) << 8 | UInt32(m[i + 3])
            }
            for t in 16..<80 { w[t] = rotl(w[t - 3] ^ w[t - 8] ^ w[t - 14] ^ w[t - 16], 1) }
            var a = h[0], b = h[1], c = h[2], d = h[3], e = h[4]
            for t in 0..<80 {
                let f: UInt32
                switch t / 20 {
                case 0: f = (b & c) ^ (~b & d)  // Ch
                case 2: f = (b & c) ^ (b & d) ^ (c & d)  // Maj
                default: f = b ^ c ^ d  // Parity
                }
                let temp = rotl(a, 5) &+ f &+ e &+ roundConstants[t / 20] &+ w[t]
                e = d
                d = c
                c = rotl(b, 30)
                b = a
                a = temp
            }
            h[0] &+= a
            h[1] &+= b
            h[2] &+= c
            h[3] &+= d
            h[4] &+= e
        }
        var out = [UInt8]()
        out.reserveCapacity(digestLength)
        for word in h {
            out.append(UInt8(truncatingIfNeeded: word >> 24))
            out.append(UInt8(truncatingIfNeeded: word >> 16))
            out.append(UInt8(truncatingIfNeeded: word >> 8))
            out.append(UInt8(truncatingIfNeeded: word))
        }
        return out
    }

    @inline(__always) static func rotl(_ x: UInt32, _ n: UInt32) -> UInt32 { x << n | x >> (32 - n) }
}

/// Name-based UUIDs, version 5 (RFC 9562, section 5.5).
public enum UUIDv5 {
    /// The 16 bytes of a UUID in its 36-character text form (either case), or nil.
    public static func bytes(_ text: String) -> [UInt8]? {
        let b = Array(text.utf8)
        guard b.count == 36, b[8] == UInt8(ascii: "-"), b[13] == UInt8(ascii: "-"), b[18] == UInt8(ascii: "-"),
            b[23] == UInt8(ascii: "-")
        else { return nil }
        return Hex.decode(String(decoding: b.filter { $0 != UInt8(ascii: "-") }, as: UTF8.self)).flatMap { $0.count == 16 ? $0 : nil }
    }

    /// The lowercase text form of 16 bytes.
    public static func text(_ bytes: [UInt8]) -> String {
        let h = Array(Hex.encode(bytes).utf8)
        var out = [UInt8]()
        for (i, c) in h.enumerated() {
            if [8, 12, 16, 20].contains(i) { out.append(UInt8(ascii: "-")) }
            out.append(c)
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// The version 5 UUID of `name` in `namespace`: SHA-1 of the namespace's 16
    /// bytes then the name's, its first 16 bytes with the version (5) and the
    /// variant (10) set. Nil when `namespace` is not a UUID.
    public static func make(namespace: String, name: [UInt8]) -> String? {
        guard let ns = bytes(namespace) else { return nil }
        var d = Array(SHA1.hash(ns + name).prefix(16))
        d[6] = d[6] & 0x0F | 0x50
        d[8] = d[8] & 0x3F | 0x80
        return text(d)
    }
}
