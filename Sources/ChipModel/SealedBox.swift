import CSodium

/// libsodium's sealed box (`crypto_box_seal`) to a site's agent: sealed to
/// the X25519 conversion of its Ed25519 key (section 1), opened only with
/// that site's key. A linear lift's `find.seal` (9.4) is one.
public enum SealedBox {
    /// Ephemeral public key (32) + tag (16) added to the message.
    public static let overhead = Int(crypto_box_sealbytes())

    /// Seals `message` to `agent`; base64url.
    public static func seal(_ message: [UInt8], to agent: AgentID) throws(ModelError) -> String {
        Crypto.ready()
        guard let x25519 = agent.noiseStaticKey else { throw .invalid("the agent key has no X25519 form") }
        var out = [UInt8](repeating: 0, count: message.count + overhead)
        guard crypto_box_seal(&out, message, UInt64(message.count), x25519) == 0 else { throw .invalid("cannot seal to this agent") }
        return Base64URL.encode(out)
    }

    /// Opens `text` with `key` (the agent's own): nil when it is not
    /// base64url, longer than `maxBytes`, not for this key, or changed.
    public static func open(_ text: String, with key: SigningKey, maxBytes: Int) -> [UInt8]? {
        Crypto.ready()
        guard let sealed = Base64URL.decode(text), sealed.count > overhead, sealed.count <= maxBytes,
            let x25519Public = Ed25519.curve25519PublicKey(key.publicKey)
        else { return nil }
        var secret = key.curve25519SecretKey()
        defer { Crypto.wipe(&secret) }
        var out = [UInt8](repeating: 0, count: sealed.count - overhead)
        guard crypto_box_seal_open(&out, sealed, UInt64(sealed.count), x25519Public, secret) == 0 else { return nil }
        return out
    }
}
