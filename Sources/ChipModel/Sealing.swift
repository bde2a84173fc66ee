import CSodium

/// Cost of the Argon2id passphrase hash. `moderate` is libsodium's
/// MODERATE preset (about a second and 256 MiB): paid once per command that
/// needs a sealed key. Tests may use `interactive`.
public struct PassphraseCost: Sendable, Hashable {
    public let opsLimit: UInt64
    public let memLimit: UInt64

    public init(opsLimit: UInt64, memLimit: UInt64) {
        self.opsLimit = opsLimit
        self.memLimit = memLimit
    }

    public static var moderate: PassphraseCost {
        PassphraseCost(opsLimit: UInt64(crypto_pwhash_opslimit_moderate()), memLimit: UInt64(crypto_pwhash_memlimit_moderate()))
    }

    public static var interactive: PassphraseCost {
        PassphraseCost(opsLimit: UInt64(crypto_pwhash_opslimit_interactive()), memLimit: UInt64(crypto_pwhash_memlimit_interactive()))
    }

    /// Whether the values are inside what libsodium accepts (they come from the site file).
    public var isValid: Bool {
        opsLimit >= UInt64(crypto_pwhash_opslimit_min()) && opsLimit <= 64
            && memLimit >= UInt64(crypto_pwhash_memlimit_min()) && memLimit <= 4 << 30
    }
}

/// The key-encryption key derived from the site passphrase with Argon2id.
/// Every sealed secret in the site file (the site key, users' keys) is
/// encrypted under it, so the expensive hash runs once per process.
///
/// Sendable for the same reason as `SigningKey`: immutable after init,
/// wiped in `deinit` only.
public final class SealingKey: @unchecked Sendable {
    public static let saltLength = Int(crypto_pwhash_SALTBYTES)
    fileprivate var key: [UInt8]

    /// Derives the key; fails only when libsodium cannot get the memory.
    public init(passphrase: [UInt8], salt: [UInt8], cost: PassphraseCost) throws(ModelError) {
        guard salt.count == Self.saltLength else { throw .malformed("passphrase salt must be \(Self.saltLength) bytes") }
        guard cost.isValid else { throw .malformed("passphrase cost is out of range") }
        guard !passphrase.isEmpty else { throw .invalid("the passphrase is empty") }
        Crypto.ready()
        var key = [UInt8](repeating: 0, count: Int(crypto_aead_xchacha20poly1305_ietf_KEYBYTES))
        var chars = passphrase.map { CChar(bitPattern: $0) }
        defer { chars.withUnsafeMutableBytes { if let b = $0.baseAddress { sodium_memzero(b, $0.count) } } }
        let keyLength = UInt64(key.count)
        let rc = crypto_pwhash(
            &key, keyLength, chars, UInt64(chars.count), salt,
            cost.opsLimit, Int(cost.memLimit), crypto_pwhash_ALG_ARGON2ID13)
        guard rc == 0 else { throw .invalid("not enough memory for the passphrase hash") }
        self.key = key
    }

    deinit { Crypto.wipe(&key) }
}

/// How a secret (an Ed25519 seed) is stored in the site file:
/// `0x00 ‖ secret` in the clear, or `0x01 ‖ nonce(24) ‖ XChaCha20-Poly1305(secret)`
/// sealed under the `SealingKey`, with a label naming the key's purpose as
/// associated data so a sealed user key cannot be passed off as the site key.
public enum StoredSecret {
    public static let plainTag: UInt8 = 0x00
    public static let sealedTag: UInt8 = 0x01
    static let nonceLength = Int(crypto_aead_xchacha20poly1305_ietf_NPUBBYTES)
    static let tagLength = Int(crypto_aead_xchacha20poly1305_ietf_ABYTES)

    public static func plain(_ secret: [UInt8]) -> [UInt8] { [plainTag] + secret }

    public static func seal(_ secret: [UInt8], with key: SealingKey, label: String) -> [UInt8] {
        let nonce = Crypto.randomBytes(nonceLength)
        let ad = Array(label.utf8)
        var cipher = [UInt8](repeating: 0, count: secret.count + tagLength)
        var written: UInt64 = 0
        _ = crypto_aead_xchacha20poly1305_ietf_encrypt(
            &cipher, &written, secret, UInt64(secret.count), ad, UInt64(ad.count), nil, nonce, key.key)
        return [sealedTag] + nonce + cipher
    }

    public static func isSealed(_ stored: [UInt8]) -> Bool { stored.first == sealedTag }

    /// The secret inside `stored`. A sealed one needs `key`; a failed
    /// authentication means a wrong passphrase (or a damaged file).
    public static func open(_ stored: [UInt8], with key: SealingKey?, label: String) throws(ModelError) -> [UInt8] {
        guard let tag = stored.first else { throw .malformed("stored key is empty") }
        switch tag {
        case plainTag:
            return Array(stored.dropFirst())
        case sealedTag:
            guard let key else { throw .invalid("the key is sealed: a passphrase is needed") }
            guard stored.count > 1 + nonceLength + tagLength else { throw .malformed("sealed key is truncated") }
            let nonce = Array(stored[1..<(1 + nonceLength)])
            let cipher = Array(stored[(1 + nonceLength)...])
            var out = [UInt8](repeating: 0, count: cipher.count - tagLength)
            var written: UInt64 = 0
            let ad = Array(label.utf8)
            let rc = crypto_aead_xchacha20poly1305_ietf_decrypt(
                &out, &written, nil, cipher, UInt64(cipher.count), ad, UInt64(ad.count), nonce, key.key)
            guard rc == 0 else { throw .invalid("wrong passphrase") }
            return out
        default:
            throw .malformed("stored key has an unknown format")
        }
    }
}
