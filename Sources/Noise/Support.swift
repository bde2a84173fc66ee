import CSodium

/// Numeric constants of the Noise Protocol Framework, revision 34, named as in the spec.
///
/// Hash-dependent constants (`HASHLEN`, `BLOCKLEN`) live on ``NoiseHash``.
public enum NoiseSpec {
    /// The revision of the specification this module implements.
    public static let revision = 34
    /// Length of a Curve25519 public key and DH output (spec §12.1).
    public static let DHLEN = 32
    /// Length of a cipher key (spec §5.1).
    public static let KEYLEN = 32
    /// Length of the ChaChaPoly authentication tag.
    public static let TAGLEN = 16
    /// Maximum length of any Noise message, handshake or transport (spec §3).
    public static let MAX_MESSAGE_LEN = 65535
    /// Maximum transport plaintext: `MAX_MESSAGE_LEN - TAGLEN`.
    public static let MAX_PLAINTEXT_LEN = 65535 - 16
    /// The reserved nonce, 2^64-1: never used to encrypt a message (spec §5.1).
    public static let MAX_NONCE = UInt64.max
}

/// libsodium must be initialised once before use; a `static let` is initialised
/// exactly once, thread-safely, on first access.
enum Sodium {
    static let initialised: Bool = sodium_init() >= 0

    @inline(__always)
    static func ensure() {
        // sodium_init() only fails when the system has no entropy source at all.
        precondition(initialised, "libsodium could not be initialised")
    }
}

/// Heap memory for secrets: one allocation per owning object, wiped with
/// `sodium_memzero` before it is freed.
enum SecretMemory {
    static func allocate(_ byteCount: Int) -> UnsafeMutableRawPointer {
        let p = UnsafeMutableRawPointer.allocate(byteCount: byteCount, alignment: 64)
        p.initializeMemory(as: UInt8.self, repeating: 0, count: byteCount)
        return p
    }

    @inline(__always)
    static func wipe(_ p: UnsafeMutableRawPointer, _ byteCount: Int) {
        sodium_memzero(p, byteCount)
    }

    static func free(_ p: UnsafeMutableRawPointer, _ byteCount: Int) {
        sodium_memzero(p, byteCount)
        p.deallocate()
    }
}

/// Every way a Noise operation can fail. Each is a clean error: no operation
/// traps on bad input.
public enum NoiseError: Error, Equatable, Sendable {
    /// A message (or the message a payload would produce) exceeds `MAX_MESSAGE_LEN`.
    case messageTooLong
    /// A message is shorter than its pattern requires (truncated).
    case messageTooShort
    /// Authenticated decryption failed: tampered data, wrong key, or wrong peer.
    case decryptFailed
    /// The nonce reached 2^64-1; the CipherState can encrypt or decrypt no more.
    case nonceExhausted
    /// A DH produced the all-zero output (a low-order public key was supplied).
    case invalidDHOutput
    /// A key had the wrong length.
    case invalidKeyLength
    /// `writeMessage` was called when a message must be read, or the reverse.
    case outOfTurn
    /// The handshake has already completed.
    case handshakeComplete
    /// The handshake has not completed yet.
    case handshakeIncomplete
    /// The handshake failed earlier and was wiped; it cannot be used again.
    case handshakeFailed
    /// The pattern needs a local static key pair and none was given.
    case missingLocalStatic
    /// The pattern needs the remote static public key in advance and none was given.
    case missingRemoteStatic
    /// A remote static key was given but the pattern transmits it during the handshake.
    case unexpectedRemoteStatic
    /// The transport was already taken from this handshake.
    case transportTaken
    /// One-way pattern: this side has no CipherState for that direction.
    case oneWay
    /// The protocol name or pattern is not supported by this implementation.
    case unsupportedProtocol(String)
}
