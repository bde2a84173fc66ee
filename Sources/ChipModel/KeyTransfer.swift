import CSodium

/// `me.key.take`'s fetch (protocol 10.7): the user's 32-byte Ed25519 seed,
/// sealed with `crypto_box_seal` to the device's X25519 key (its Noise
/// static key), in base64url. Only that device can open it; the site keeps
/// no copy of the sealed form.
public enum KeyTransfer {
    /// Seed (32) + ephemeral public key (32) + tag (16).
    public static let sealedLength = SigningKey.seedLength + Int(crypto_box_sealbytes())

    /// Seals `seed` to `devicePublicKey` (32-byte X25519).
    public static func seal(seed: [UInt8], to devicePublicKey: [UInt8]) throws(ModelError) -> String {
        Crypto.ready()
        guard seed.count == SigningKey.seedLength else { throw .invalid("a signing key seed is 32 bytes") }
        guard devicePublicKey.count == Int(crypto_box_publickeybytes()) else { throw .invalid("a device key is 32 bytes") }
        var out = [UInt8](repeating: 0, count: sealedLength)
        let rc = crypto_box_seal(&out, seed, UInt64(seed.count), devicePublicKey)
        guard rc == 0 else { throw .invalid("the key cannot be sealed to this device key") }
        return Base64URL.encode(out)
    }

    /// Opens a sealed seed with the device's X25519 key pair. The caller
    /// wipes the seed once it has made the signing key.
    public static func open(_ text: String, publicKey: [UInt8], secretKey: [UInt8]) throws(ModelError) -> [UInt8] {
        Crypto.ready()
        guard let sealed = Base64URL.decode(text), sealed.count == sealedLength else { throw .malformed("not a sealed signing key") }
        guard publicKey.count == Int(crypto_box_publickeybytes()), secretKey.count == Int(crypto_box_secretkeybytes()) else {
            throw .invalid("a device key pair is 32 + 32 bytes")
        }
        var seed = [UInt8](repeating: 0, count: SigningKey.seedLength)
        guard crypto_box_seal_open(&seed, sealed, UInt64(sealed.count), publicKey, secretKey) == 0 else {
            Crypto.wipe(&seed)
            throw .invalid("the sealed key is not for this device, or was changed")
        }
        return seed
    }
}
