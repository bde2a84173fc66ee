import Testing
@_spi(Testing) import Noise

@Suite struct BLAKE2sTests {
    @Test func rfc7693AbcVector() throws {
        // RFC 7693 Appendix B: BLAKE2s-256("abc").
        #expect(
            hex(BLAKE2s.hash(Array("abc".utf8)))
                == "508c5e8c327c14e2e1a72ba34eeb452f37458b209ed63a294d999b4c86675982")
    }

    @Test(arguments: [
        (-1, "69217a3079908094e11121d042354a7c1f55b6482ca1a51e1b250dfd1ed0eef9"),  // ""
        (-2, "606beeec743ccbeff6cbcdf5d5302aa855c256c29b88c8ed331ea1a6bf3c8812"),  // quick brown fox
        (63, "e57cb79487dd57902432b250733813bd96a84efce59f650fac26e6696aefafc3"),
        (64, "56f34e8b96557e90c1f24b52d0c89d51086acf1b00f634cf1dde9233b8eaaa3e"),
        (65, "1b53ee94aaf34e4b159d48de352c7f0661d0a40edff95a0b1639b4090e974472"),
        (128, "1fa877de67259d19863a2a34bcc6962a2b25fcbf5cbecd7ede8f1fa36688a796"),
        (1000, "b5f9d7799111edafc9326fbf667be98140b5e20ce5e151793c59125bf654ac18")
    ])
    func knownDigests(length: Int, digest: String) {
        let input: [UInt8] =
            switch length {
            case -1: []
            case -2: Array("The quick brown fox jumps over the lazy dog".utf8)
            default: (0..<length).map { UInt8($0 % 256) }
            }
        #expect(hex(BLAKE2s.hash(input)) == digest)
        #expect(hex(NoiseHash.blake2s.hash(input)) == digest)
    }
}

@Suite struct HMACTests {
    @Test func hmacSHA256RFC4231Case2() {
        let mac = NoiseHash.sha256.hmac(key: Array("Jefe".utf8), data: Array("what do ya want for nothing?".utf8))
        #expect(hex(mac) == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
    }

    // Reference values from Python's hmac module with hashlib.blake2b/blake2s
    // (block sizes 128 and 64), i.e. HMAC over the unkeyed hash, not keyed BLAKE2.
    @Test func hmacBLAKE2b() {
        let m = Array("Noise HMAC test".utf8)
        #expect(
            hex(NoiseHash.blake2b.hmac(key: (0..<64).map { UInt8($0) }, data: m))
                == "56677a87cb324b8e768037e17394aaf88707959ecb846b53157683fe19d16f377753d216bc839a4c05a88531cc3b4bb6c5326d7f0ca52bbfd85ae1bea9335b37")
        #expect(
            hex(NoiseHash.blake2b.hmac(key: (0..<200).map { UInt8($0) }, data: m))
                == "c3c287cd6b03ca2e734a1c023a3c85c8959561545f20a7043c0e2c342cf071949f92229b4ddb6a5012ba8da74b126e186e587f21ef71920f327de7a88a086f18")
    }

    @Test func hmacBLAKE2s() {
        let m = Array("Noise HMAC test".utf8)
        #expect(
            hex(NoiseHash.blake2s.hmac(key: (0..<32).map { UInt8($0) }, data: m))
                == "34f6f1e3145584768721b2d0111dc5d151f555726e3fa3a8f097ab3e18005fad")
        #expect(
            hex(NoiseHash.blake2s.hmac(key: (0..<100).map { UInt8($0) }, data: m))
                == "3ec86851e069594b1d3cd67cfa18e9d362f3fd0f682a309b921d7f2663255b81")
    }
}

@Suite struct ProtocolNameTests {
    @Test func parsesSiteProtocols() throws {
        for name in [
            "Noise_IK_25519_ChaChaPoly_BLAKE2b", "Noise_N_25519_ChaChaPoly_BLAKE2b",
            "Noise_KK_25519_ChaChaPoly_BLAKE2b", "Noise_XX_25519_ChaChaPoly_SHA256"
        ] {
            #expect(try NoiseProtocol(name: name).name == name)
        }
        #expect(try NoiseProtocol(name: "Noise_IK_25519_ChaChaPoly_BLAKE2b").pattern == .IK)
    }

    @Test func rejectsUnsupported() {
        for name in [
            "Noise_IK_448_ChaChaPoly_BLAKE2b", "Noise_IK_25519_AESGCM_SHA256",
            "Noise_ZZ_25519_ChaChaPoly_BLAKE2b", "Noise_IK_25519_ChaChaPoly_SHA512", "", "Noise_IK"
        ] {
            #expect(throws: NoiseError.unsupportedProtocol(name)) { try NoiseProtocol(name: name) }
        }
    }
}
