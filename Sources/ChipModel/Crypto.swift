import CSodium

/// The libsodium primitives the MyCHIPs model needs: Ed25519, SHA-256,
/// random bytes and the conversions to X25519. Every entry point makes sure
/// libsodium is initialised first.
public enum Crypto {
    /// `sodium_init` is idempotent and thread safe; caching its result keeps
    /// it off hot paths.
    private static let initialised: Bool = sodium_init() >= 0

    /// Traps only if libsodium cannot start at all (no usable RNG): nothing
    /// in the site can run safely then.
    @inline(__always) static func ready() {
        precondition(initialised, "libsodium failed to initialise")
    }

    /// `count` bytes from libsodium's CSPRNG.
    public static func randomBytes(_ count: Int) -> [UInt8] {
        ready()
        var out = [UInt8](repeating: 0, count: count)
        if count > 0 { randombytes_buf(&out, count) }
        return out
    }

    /// SHA-256 of `bytes`.
    public static func sha256(_ bytes: [UInt8]) -> [UInt8] {
        ready()
        var out = [UInt8](repeating: 0, count: Int(crypto_hash_sha256_BYTES))
        _ = bytes.withUnsafeBufferPointer { input in
            crypto_hash_sha256(&out, input.baseAddress, UInt64(input.count))
        }
        return out
    }

    /// Overwrites `bytes` with zeros in a way the optimiser cannot drop.
    public static func wipe(_ bytes: inout [UInt8]) {
        let count = bytes.count
        if count > 0 { sodium_memzero(&bytes, count) }
    }

    /// Compares in constant time (for equal lengths).
    public static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        if a.isEmpty { return true }
        return a.withUnsafeBytes { pa in
            b.withUnsafeBytes { pb in sodium_memcmp(pa.baseAddress, pb.baseAddress, a.count) == 0 }
        }
    }
}

/// An Ed25519 signing key, kept as its 32-byte seed. Used for the site
/// (agent) key and for users' signing keys.
///
/// Sendable: the key bytes never change after init (only `deinit` wipes
/// them, when no other reference exists), so sharing across tasks is safe.
public final class SigningKey: @unchecked Sendable {
    public static let seedLength = Int(crypto_sign_SEEDBYTES)
    public static let signatureLength = Int(crypto_sign_BYTES)

    private var seed: [UInt8]
    private var secret: [UInt8]
    /// The 32-byte Ed25519 public key.
    public let publicKey: [UInt8]

    /// A fresh key from the CSPRNG.
    public static func generate() -> SigningKey {
        SigningKey(validSeed: Crypto.randomBytes(seedLength))
    }

    /// Rebuilds a key from its seed; throws when the seed has the wrong size.
    public convenience init(seed: [UInt8]) throws(ModelError) {
        guard seed.count == Self.seedLength else { throw .malformed("signing key seed must be 32 bytes") }
        self.init(validSeed: seed)
    }

    private init(validSeed seed: [UInt8]) {
        Crypto.ready()
        var pk = [UInt8](repeating: 0, count: Int(crypto_sign_PUBLICKEYBYTES))
        var sk = [UInt8](repeating: 0, count: Int(crypto_sign_SECRETKEYBYTES))
        crypto_sign_seed_keypair(&pk, &sk, seed)
        self.seed = seed
        self.secret = sk
        self.publicKey = pk
    }

    deinit {
        Crypto.wipe(&seed)
        Crypto.wipe(&secret)
    }

    /// The seed, for sealing into the site file. The caller wipes its copy.
    public func exportSeed() -> [UInt8] { seed }

    /// Detached Ed25519 signature of `message`.
    public func sign(_ message: [UInt8]) -> [UInt8] {
        var sig = [UInt8](repeating: 0, count: Self.signatureLength)
        _ = message.withUnsafeBufferPointer { m in
            crypto_sign_detached(&sig, nil, m.baseAddress, UInt64(m.count), secret)
        }
        return sig
    }

    /// The X25519 private key converted from this Ed25519 key (the site's
    /// Noise static key, protocol section 1). The caller wipes it.
    public func curve25519SecretKey() -> [UInt8] {
        var out = [UInt8](repeating: 0, count: Int(crypto_scalarmult_curve25519_BYTES))
        crypto_sign_ed25519_sk_to_curve25519(&out, secret)
        return out
    }
}

/// Checks Ed25519 signatures and converts public keys.
public enum Ed25519 {
    public static let publicKeyLength = Int(crypto_sign_PUBLICKEYBYTES)

    /// Whether `signature` is a valid Ed25519 signature of `message` by `publicKey`.
    /// Wrong sizes are simply invalid.
    public static func verify(signature: [UInt8], message: [UInt8], publicKey: [UInt8]) -> Bool {
        guard signature.count == SigningKey.signatureLength, publicKey.count == publicKeyLength else { return false }
        Crypto.ready()
        return message.withUnsafeBufferPointer { m in
            crypto_sign_verify_detached(signature, m.baseAddress, UInt64(m.count), publicKey) == 0
        }
    }

    /// The X25519 public key for an Ed25519 public key, or nil when the point is invalid.
    public static func curve25519PublicKey(_ publicKey: [UInt8]) -> [UInt8]? {
        guard publicKey.count == publicKeyLength else { return nil }
        Crypto.ready()
        var out = [UInt8](repeating: 0, count: Int(crypto_scalarmult_curve25519_BYTES))
        guard crypto_sign_ed25519_pk_to_curve25519(&out, publicKey) == 0 else { return nil }
        return out
    }
}
