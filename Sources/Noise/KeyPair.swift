import CSodium

/// A Curve25519 (X25519) key pair (spec §12.1, DH 25519).
///
/// The private key sits in its own heap buffer, wiped with `sodium_memzero`
/// when the key pair is released. Immutable after creation, hence `Sendable`:
/// one static key pair can serve many concurrent handshakes.
public final class KeyPair: @unchecked Sendable {
    private let secret: UnsafeMutableRawPointer
    /// The 32-byte public key.
    public let publicKey: [UInt8]

    /// A key pair from a 32-byte X25519 private key (for example one converted
    /// from an Ed25519 key with `crypto_sign_ed25519_sk_to_curve25519`).
    public init(privateKey: [UInt8]) throws(NoiseError) {
        guard privateKey.count == NoiseSpec.DHLEN else { throw .invalidKeyLength }
        Sodium.ensure()
        let secret = SecretMemory.allocate(NoiseSpec.DHLEN)
        privateKey.withUnsafeBytes { p in
            if let b = p.baseAddress { secret.copyMemory(from: b, byteCount: NoiseSpec.DHLEN) }
        }
        self.secret = secret
        publicKey = Self.derivePublic(secret)
    }

    /// `GENERATE_KEYPAIR()`: a fresh random key pair.
    public static func generate() -> KeyPair {
        KeyPair(random: ())
    }

    private init(random: Void) {
        Sodium.ensure()
        secret = SecretMemory.allocate(NoiseSpec.DHLEN)
        randombytes_buf(secret, NoiseSpec.DHLEN)
        publicKey = Self.derivePublic(secret)
    }

    deinit { SecretMemory.free(secret, NoiseSpec.DHLEN) }

    private static func derivePublic(_ secret: UnsafeMutableRawPointer) -> [UInt8] {
        [UInt8](unsafeUninitializedCapacity: NoiseSpec.DHLEN) { buf, n in
            if let out = buf.baseAddress {
                _ = crypto_scalarmult_curve25519_base(out, secret.assumingMemoryBound(to: UInt8.self))
            }
            n = NoiseSpec.DHLEN
        }
    }

    /// The private key, for the handshake's DH only.
    var privateKeyPointer: UnsafePointer<UInt8> { UnsafePointer(secret.assumingMemoryBound(to: UInt8.self)) }

    /// A copy of the private key (tests, key export). The caller owns the copy.
    @_spi(Testing) public var privateKey: [UInt8] {
        [UInt8](UnsafeRawBufferPointer(start: secret, count: NoiseSpec.DHLEN))
    }
}
