import CSodium

/// The spec's SymmetricState (§5.2): a CipherState plus the chaining key `ck`
/// and the handshake hash `h`.
///
/// All of it (ck, h, HKDF scratch, hash state) lives in one secret buffer,
/// wiped by ``wipe()`` and on release. Not `Sendable`.
public final class SymmetricState {
    /// The hash function chosen by the protocol name.
    public let hash: NoiseHash
    /// The CipherState holding `k` and `n`.
    public let cipherState = CipherState()

    private let storage: UnsafeMutableRawPointer
    private let hashLen: Int
    private let workspace: HashWorkspace
    private var ck: UnsafeMutableRawPointer { storage + HashWorkspace.bytes }
    private var h: UnsafeMutableRawPointer { storage + HashWorkspace.bytes + 64 }
    private var temp: UnsafeMutableRawPointer { storage + HashWorkspace.bytes + 128 }
    private var out1: UnsafeMutableRawPointer { storage + HashWorkspace.bytes + 192 }
    private var out2: UnsafeMutableRawPointer { storage + HashWorkspace.bytes + 256 }
    private static let storageBytes = HashWorkspace.bytes + 5 * 64

    /// `InitializeSymmetric(protocol_name)`: `h` is the name zero-padded to
    /// HASHLEN, or HASH(name) if longer; `ck = h`; the cipher has no key.
    public init(protocolName: String, hash: NoiseHash) {
        self.hash = hash
        self.hashLen = hash.HASHLEN
        storage = SecretMemory.allocate(Self.storageBytes)
        workspace = HashWorkspace(hash, at: storage)
        var name = protocolName
        name.withUTF8 { u in
            let hp = storage + HashWorkspace.bytes + 64
            if u.count <= hashLen {
                if let b = u.baseAddress { hp.copyMemory(from: b, byteCount: u.count) }
            } else {
                workspace.begin(); workspace.update(u.baseAddress, u.count); workspace.finish(hp)
            }
            (storage + HashWorkspace.bytes).copyMemory(from: hp, byteCount: hashLen)
        }
    }

    deinit { SecretMemory.free(storage, Self.storageBytes) }

    /// Wipes ck, h, all scratch and the cipher key.
    public func wipe() {
        SecretMemory.wipe(storage, Self.storageBytes)
        cipherState.wipe()
    }

    /// Whether the CipherState has a key.
    @inline(__always) public var hasKey: Bool { cipherState.hasKey }

    /// `MixKey(input_key_material)`: `ck, temp_k = HKDF(ck, ikm, 2)`;
    /// `InitializeKey(temp_k[0..<32])`.
    func mixKey(_ ikm: UnsafeRawPointer?, _ count: Int) {
        workspace.hkdf(
            chainingKey: ck, chainingKeyCount: hashLen, ikm: ikm, ikmCount: count,
            temp: temp, out1: out1, out2: out2, out3: nil)
        ck.copyMemory(from: out1, byteCount: hashLen)
        cipherState.initializeKey(out2)
        SecretMemory.wipe(out1, 128)
    }

    /// `MixHash(data)`: `h = HASH(h || data)`.
    @inline(__always)
    func mixHash(_ data: UnsafeRawPointer?, _ count: Int) {
        workspace.begin()
        workspace.update(h, hashLen)
        workspace.update(data, count)
        workspace.finish(h)
    }

    /// `MixKeyAndHash(input_key_material)` (used by PSK modes):
    /// `ck, temp_h, temp_k = HKDF(ck, ikm, 3)`; `MixHash(temp_h)`; `InitializeKey(temp_k)`.
    func mixKeyAndHash(_ ikm: UnsafeRawPointer?, _ count: Int) {
        withUnsafeTemporaryAllocation(byteCount: 64, alignment: 16) { t3 in
            guard let o3 = t3.baseAddress else { return }
            workspace.hkdf(
                chainingKey: ck, chainingKeyCount: hashLen, ikm: ikm, ikmCount: count,
                temp: temp, out1: out1, out2: out2, out3: o3)
            ck.copyMemory(from: out1, byteCount: hashLen)
            mixHash(out2, hashLen)
            cipherState.initializeKey(o3)
            sodium_memzero(o3, 64)
        }
        SecretMemory.wipe(out1, 128)
    }

    /// Output length of `encryptAndHash` for `count` plaintext bytes.
    @inline(__always)
    func ciphertextLength(forPlaintext count: Int) -> Int {
        cipherState.ciphertextLength(forPlaintext: count)
    }

    /// `EncryptAndHash(plaintext)`: encrypt with `ad = h`, then `MixHash(ciphertext)`.
    func encryptAndHash(_ plaintext: UnsafeRawBufferPointer, into out: UnsafeMutableRawPointer) throws(NoiseError) -> Int {
        let n = try cipherState.encrypt(
            ad: UnsafeRawBufferPointer(start: h, count: hashLen),
            plaintext: plaintext, into: out)
        mixHash(out, n)
        return n
    }

    /// `DecryptAndHash(ciphertext)`: decrypt with `ad = h`, then `MixHash(ciphertext)`.
    /// `out` must not alias the ciphertext.
    func decryptAndHash(_ ciphertext: UnsafeRawBufferPointer, into out: UnsafeMutableRawPointer) throws(NoiseError) -> Int {
        let n = try cipherState.decrypt(
            ad: UnsafeRawBufferPointer(start: h, count: hashLen),
            ciphertext: ciphertext, into: out)
        mixHash(ciphertext.baseAddress, ciphertext.count)
        return n
    }

    /// `Split()`: `temp_k1, temp_k2 = HKDF(ck, empty, 2)`; two CipherStates keyed
    /// with their first 32 bytes. The initiator sends with the first.
    public func split() -> (CipherState, CipherState) {
        workspace.hkdf(
            chainingKey: ck, chainingKeyCount: hashLen, ikm: nil, ikmCount: 0,
            temp: temp, out1: out1, out2: out2, out3: nil)
        let c1 = CipherState(), c2 = CipherState()
        c1.initializeKey(out1)
        c2.initializeKey(out2)
        SecretMemory.wipe(out1, 128)
        return (c1, c2)
    }

    /// `GetHandshakeHash()`: the current `h`, for channel binding.
    public var handshakeHash: [UInt8] {
        [UInt8](UnsafeRawBufferPointer(start: h, count: hashLen))
    }

    // MARK: Array conveniences (spec-level use, tests)

    /// `MixHash(data)`.
    public func mixHash(_ data: [UInt8]) {
        data.withUnsafeBytes { mixHash($0.baseAddress, $0.count) }
    }

    /// `MixKey(input_key_material)`.
    public func mixKey(_ ikm: [UInt8]) {
        ikm.withUnsafeBytes { mixKey($0.baseAddress, $0.count) }
    }

    /// `MixKeyAndHash(input_key_material)`.
    public func mixKeyAndHash(_ ikm: [UInt8]) {
        ikm.withUnsafeBytes { mixKeyAndHash($0.baseAddress, $0.count) }
    }

    /// `EncryptAndHash(plaintext)`.
    public func encryptAndHash(_ plaintext: [UInt8]) throws(NoiseError) -> [UInt8] {
        var failure: NoiseError?
        let out = [UInt8](unsafeUninitializedCapacity: plaintext.count + NoiseSpec.TAGLEN) { buf, n in
            n = 0
            guard let o = buf.baseAddress else { return }
            plaintext.withUnsafeBytes { p in
                do throws(NoiseError) { n = try encryptAndHash(p, into: UnsafeMutableRawPointer(o)) } catch { failure = error }
            }
        }
        if let failure { throw failure }
        return out
    }

    /// `DecryptAndHash(ciphertext)`.
    public func decryptAndHash(_ ciphertext: [UInt8]) throws(NoiseError) -> [UInt8] {
        var failure: NoiseError?
        let out = [UInt8](unsafeUninitializedCapacity: max(ciphertext.count, 1)) { buf, n in
            n = 0
            guard let o = buf.baseAddress else { return }
            ciphertext.withUnsafeBytes { c in
                do throws(NoiseError) { n = try decryptAndHash(c, into: UnsafeMutableRawPointer(o)) } catch { failure = error }
            }
        }
        if let failure { throw failure }
        return out
    }
}
