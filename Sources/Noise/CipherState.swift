import CSodium

/// The spec's CipherState (§5.1): a ChaChaPoly key `k` and a 64-bit nonce `n`.
///
/// ChaChaPoly here is the IETF AEAD (RFC 8439) with the 96-bit nonce made of
/// 4 zero bytes followed by `n` in little-endian (spec §12.3). The nonce
/// 2^64-1 is reserved: reaching it is ``NoiseError/nonceExhausted``; it never
/// wraps. A failed decryption leaves `n` unchanged. The key is wiped with
/// `sodium_memzero` when the object is released.
///
/// Not `Sendable`: it holds a secret and mutable state; own it from one task.
public final class CipherState {
    // Secret memory: k (32 bytes) then the 12-byte AEAD nonce block.
    private let storage: UnsafeMutableRawPointer
    private static let storageBytes = 64
    private static let nonceOffset = 32

    /// Whether a key has been set (spec `HasKey()`).
    public private(set) var hasKey = false
    /// The next nonce `n`.
    public private(set) var nonce: UInt64 = 0

    /// An empty CipherState (`InitializeKey(empty)`).
    public init() {
        Sodium.ensure()
        storage = SecretMemory.allocate(Self.storageBytes)
    }

    /// A CipherState with key `k` (`InitializeKey(key)`), nonce 0.
    public convenience init(key: [UInt8]) throws(NoiseError) {
        guard key.count == NoiseSpec.KEYLEN else { throw .invalidKeyLength }
        self.init()
        key.withUnsafeBytes { initializeKey($0.baseAddress) }
    }

    deinit { SecretMemory.free(storage, Self.storageBytes) }

    /// `InitializeKey(key)`: copies 32 bytes (nil: empty), sets `n = 0`.
    func initializeKey(_ key: UnsafeRawPointer?) {
        if let key {
            storage.copyMemory(from: key, byteCount: NoiseSpec.KEYLEN)
            hasKey = true
        } else {
            SecretMemory.wipe(storage, NoiseSpec.KEYLEN)
            hasKey = false
        }
        nonce = 0
    }

    /// Wipes the key; the CipherState becomes empty.
    public func wipe() {
        SecretMemory.wipe(storage, Self.storageBytes)
        hasKey = false
    }

    /// `SetNonce(n)`. Test-only: production code never moves a nonce by hand.
    @_spi(Testing) public func setNonce(_ n: UInt64) { nonce = n }

    @inline(__always)
    private func nonceBlock(_ n: UInt64) -> UnsafePointer<UInt8> {
        let p = storage + Self.nonceOffset
        p.storeBytes(of: 0, as: UInt32.self)
        p.storeBytes(of: n.littleEndian, toByteOffset: 4, as: UInt64.self)
        return UnsafePointer(p.assumingMemoryBound(to: UInt8.self))
    }

    /// Output length of `encrypt` for a plaintext of `count` bytes.
    @inline(__always)
    public func ciphertextLength(forPlaintext count: Int) -> Int {
        hasKey ? count + NoiseSpec.TAGLEN : count
    }

    /// `EncryptWithAd(ad, plaintext)` into `out`, which must hold
    /// `ciphertextLength(forPlaintext:)` bytes and may alias the plaintext.
    /// Returns the number of bytes written. Without a key, copies the plaintext.
    @inline(__always)
    public func encrypt(
        ad: UnsafeRawBufferPointer, plaintext: UnsafeRawBufferPointer,
        into out: UnsafeMutableRawPointer
    ) throws(NoiseError) -> Int {
        guard hasKey else {
            if plaintext.count > 0, let src = plaintext.baseAddress, src != UnsafeRawPointer(out) {
                out.copyMemory(from: src, byteCount: plaintext.count)
            }
            return plaintext.count
        }
        guard nonce != NoiseSpec.MAX_NONCE else { throw .nonceExhausted }
        var clen: UInt64 = 0
        _ = crypto_aead_chacha20poly1305_ietf_encrypt(
            out.assumingMemoryBound(to: UInt8.self), &clen,
            plaintext.baseAddress?.assumingMemoryBound(to: UInt8.self), UInt64(plaintext.count),
            ad.baseAddress?.assumingMemoryBound(to: UInt8.self), UInt64(ad.count),
            nil, nonceBlock(nonce), UnsafePointer(storage.assumingMemoryBound(to: UInt8.self)))
        nonce += 1
        return Int(clen)
    }

    /// `DecryptWithAd(ad, ciphertext)` into `out` (at least `ciphertext.count - 16`
    /// bytes with a key, `ciphertext.count` without). Returns the plaintext length.
    /// On failure throws ``NoiseError/decryptFailed`` and leaves `n` unchanged.
    @inline(__always)
    public func decrypt(
        ad: UnsafeRawBufferPointer, ciphertext: UnsafeRawBufferPointer,
        into out: UnsafeMutableRawPointer
    ) throws(NoiseError) -> Int {
        guard hasKey else {
            if ciphertext.count > 0, let src = ciphertext.baseAddress, src != UnsafeRawPointer(out) {
                out.copyMemory(from: src, byteCount: ciphertext.count)
            }
            return ciphertext.count
        }
        guard nonce != NoiseSpec.MAX_NONCE else { throw .nonceExhausted }
        guard ciphertext.count >= NoiseSpec.TAGLEN, let cbase = ciphertext.baseAddress else { throw .decryptFailed }
        var mlen: UInt64 = 0
        let rc = crypto_aead_chacha20poly1305_ietf_decrypt(
            out.assumingMemoryBound(to: UInt8.self), &mlen, nil,
            cbase.assumingMemoryBound(to: UInt8.self), UInt64(ciphertext.count),
            ad.baseAddress?.assumingMemoryBound(to: UInt8.self), UInt64(ad.count),
            nonceBlock(nonce), UnsafePointer(storage.assumingMemoryBound(to: UInt8.self)))
        guard rc == 0 else { throw .decryptFailed }
        nonce += 1
        return Int(mlen)
    }

    /// `EncryptWithAd(ad, plaintext)` returning a new array.
    public func encrypt(ad: [UInt8] = [], plaintext: [UInt8]) throws(NoiseError) -> [UInt8] {
        let outCount = ciphertextLength(forPlaintext: plaintext.count)
        var failure: NoiseError?
        let result = [UInt8](unsafeUninitializedCapacity: max(outCount, 1)) { buf, n in
            n = 0
            guard let out = buf.baseAddress else { return }
            ad.withUnsafeBytes { a in
                plaintext.withUnsafeBytes { p in
                    do throws(NoiseError) { n = try encrypt(ad: a, plaintext: p, into: UnsafeMutableRawPointer(out)) } catch { failure = error }
                }
            }
        }
        if let failure { throw failure }
        return result
    }

    /// `DecryptWithAd(ad, ciphertext)` returning a new array.
    public func decrypt(ad: [UInt8] = [], ciphertext: [UInt8]) throws(NoiseError) -> [UInt8] {
        var failure: NoiseError?
        let result = [UInt8](unsafeUninitializedCapacity: max(ciphertext.count, 1)) { buf, n in
            n = 0
            guard let out = buf.baseAddress else { return }
            ad.withUnsafeBytes { a in
                ciphertext.withUnsafeBytes { c in
                    do throws(NoiseError) { n = try decrypt(ad: a, ciphertext: c, into: UnsafeMutableRawPointer(out)) } catch { failure = error }
                }
            }
        }
        if let failure { throw failure }
        return result
    }

    /// `Rekey()` (spec §4.2, §11.3): `k = ENCRYPT(k, 2^64-1, empty, zeros(32))`
    /// truncated to 32 bytes. The nonce is not reset.
    public func rekey() {
        guard hasKey else { return }
        withUnsafeTemporaryAllocation(byteCount: NoiseSpec.KEYLEN + NoiseSpec.TAGLEN, alignment: 16) { tmp in
            guard let t = tmp.baseAddress else { return }
            t.initializeMemory(as: UInt8.self, repeating: 0, count: tmp.count)
            let tb = t.assumingMemoryBound(to: UInt8.self)
            _ = crypto_aead_chacha20poly1305_ietf_encrypt(
                tb, nil, UnsafePointer(tb), UInt64(NoiseSpec.KEYLEN), nil, 0, nil,
                nonceBlock(NoiseSpec.MAX_NONCE), UnsafePointer(storage.assumingMemoryBound(to: UInt8.self)))
            storage.copyMemory(from: t, byteCount: NoiseSpec.KEYLEN)
            sodium_memzero(t, tmp.count)
        }
    }
}
