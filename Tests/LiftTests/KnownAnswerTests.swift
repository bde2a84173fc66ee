import ChipModel
import Testing
@testable import ChipProtocol

@Suite struct SHA1Tests {
    @Test func fipsVectors() {
        // FIPS 180-2 appendix A and the NIST examples.
        #expect(Hex.encode(SHA1.hash(Array("abc".utf8))) == "a9993e364706816aba3e25717850c26c9cd0d89d")
        #expect(
            Hex.encode(SHA1.hash(Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8)))
                == "84983e441c3bd26ebaae4aa1f95129e5e54670f1")
        #expect(Hex.encode(SHA1.hash([])) == "da39a3ee5e6b4b0d3255bfef95601890afd80709")
        #expect(Hex.encode(SHA1.hash([UInt8](repeating: UInt8(ascii: "a"), count: 1_000_000))) == "34aa973cd4c4daa4f61eeb2bdbad27316534016f")
        let long = "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu"
        #expect(Hex.encode(SHA1.hash(Array(long.utf8))) == "a49b2446a02c645bf419f995b67091253a04a259")
    }

    @Test func paddingBoundaries() {
        // 55, 56 and 64 bytes straddle the one-block/two-block padding edge; values from Python's hashlib.
        #expect(Hex.encode(SHA1.hash([UInt8](repeating: 0x61, count: 55))) == "c1c8bbdc22796e28c0e15163d20899b65621d65a")
        #expect(Hex.encode(SHA1.hash([UInt8](repeating: 0x61, count: 56))) == "c2db330f6083854c99d4b5bfb6e8f29f201be699")
        #expect(Hex.encode(SHA1.hash([UInt8](repeating: 0x61, count: 64))) == "0098ba824b5c16427bd7a1122a5a442a25ec644d")
    }
}

@Suite struct UUIDv5Tests {
    @Test func rfc9562Example() {
        // RFC 9562 appendix A.4: the DNS namespace and "www.example.com".
        #expect(
            UUIDv5.make(namespace: "6ba7b810-9dad-11d1-80b4-00c04fd430c8", name: Array("www.example.com".utf8))
                == "2ed6657d-e927-568b-95e1-2665a8aea6a2")
    }

    @Test func liftChitUUID() {
        // Python: uuid.uuid5(uuid.UUID(header uuid), tally uuid).
        #expect(LiftChit.uuid(header: Fx.headerUUID, tally: Fx.tallyUUID) == "0f727647-7a34-5afc-83a6-98fb824e2a8c")
        #expect(UUIDv5.make(namespace: "not-a-uuid", name: []) == nil)
    }
}

@Suite struct HopNonceTests {
    @Test func knownAnswer() {
        // base64url(SHA-256(bytes 0..15 ‖ ASCII tally uuid)), from Python's hashlib.
        #expect(Fx.qid == "AAECAwQFBgcICQoLDA0ODw")
        #expect(HopNonce.nonce(qid: Fx.qid, tally: Fx.tallyUUID) == "kCe6HeQbnWoejOi2EYeR3Bxr8xkxU0-ktvAPPivcpI8")
    }

    @Test func refusesBadInputs() {
        #expect(HopNonce.nonce(qid: "AAECAwQFBgcICQoLDA0OD", tally: Fx.tallyUUID) == nil)  // 21 characters
        #expect(HopNonce.nonce(qid: "AAECAwQFBgcICQoLDA0ODx", tally: Fx.tallyUUID) == nil)  // non-canonical trailing bits
        #expect(HopNonce.nonce(qid: Fx.qid, tally: Fx.tallyUUID.uppercased()) == nil)
        #expect(HopNonce.qid(random: [1, 2, 3]) == nil)
        // Two qids give unrelated nonces for one tally.
        let other = Base64URL.encode([UInt8](repeating: 9, count: 16))
        #expect(Fx.nonce(Fx.tallyUUID, qid: other) != Fx.nonce(Fx.tallyUUID))
    }
}

@Suite struct HeaderBytesTests {
    @Test func signedBytesRebuiltByteForByte() throws {
        let h = Fx.header()
        let origin = Base64URL.encode(Fx.originKey.publicKey)
        let r = Fx.site(Fx.refereeN)
        let expected =
            #"{"date":"2026-12-01T12:00:00.000Z","deadline":"2026-12-01T12:01:00.000Z","kind":"circ","origin":""#
            + origin + #"","path":[""# + Fx.nonce(Fx.tallyUUID) + #"",""# + Fx.nonce(Fx.otherTallyUUID)
            + #""],"qid":"AAECAwQFBgcICQoLDA0ODw","referee":{"agent":""# + r.agent.description
            + #"","host":"site9.example.org","port":65439},"units":1000,"uuid":"6f1c3a52-8d2e-4b7a-9c41-2e5d8f0a7b13","version":1}"#
        #expect(h.core.canonicalString == expected)
        #expect(h.hash == Base64URL.encode(Crypto.sha256(Array(expected.utf8))))
        let sig = try #require(Base64URL.decode(h.sign))
        #expect(Ed25519.verify(signature: sig, message: Array(expected.utf8), publicKey: Fx.originKey.publicKey))

        // Read back from pretty JSON in another key order: the same bytes, hash and signature.
        let reread = try LiftHeader(json: try JSONValue(parsing: h.json.prettyString))
        #expect(reread == h)
        #expect(reread.core.canonicalBytes == Array(expected.utf8))
        // Ed25519 is deterministic: made again, the same header.
        #expect(Fx.header() == h)
    }

    @Test func linearHeaderCarriesFind() throws {
        let h = Fx.header(kind: .line)
        #expect(h.core["find"] == ["agent": .string(Fx.site(3).agent.description), "seal": "c2VhbGVk"])
        #expect(try LiftHeader(json: h.json) == h)
    }

    @Test func chitBytesAndSignature() throws {
        let h = Fx.header()
        let core = Fx.tally(Fx.tallyUUID, stock: ("alice", 1), foil: ("bob", 2))
        let chit = try LiftChit.make(header: h, tally: Fx.tallyUUID, by: .foil, agentKey: Fx.siteKey(2))
        let expected =
            #"{"by":"foil","date":"2026-12-01T12:00:00.000Z","lift":""# + h.hash + #"","tally":""# + Fx.tallyUUID
            + #"","type":"lift","units":1000,"uuid":"0f727647-7a34-5afc-83a6-98fb824e2a8c"}"#
        #expect(chit.core.canonicalString == expected)
        #expect(chit.hash == Base64URL.encode(Crypto.sha256(Array(expected.utf8))))
        #expect(chit.verify(in: core))
        #expect(chit.mismatch(h) == nil)
        #expect(chit.balanceEffect == 1000)
        // Rebuilt after a crash: the same bytes and signature.
        #expect(try LiftChit.make(header: h, tally: Fx.tallyUUID, by: .foil, agentKey: Fx.siteKey(2)) == chit)
        #expect(try LiftChit(json: chit.json) == chit)
    }

    @Test func actsAndDecision() throws {
        let h = Fx.header()
        #expect(LiftAct.commit.bytes(lift: h.hash) == Array((#"{"act":"commit","lift":""# + h.hash + #""}"#).utf8))
        let commit = LiftAct.commit.sign(lift: h.hash, key: Fx.originKey)
        #expect(h.verify(.commit, sign: commit))
        #expect(!h.verify(.abort, sign: commit))
        let d = Fx.decision(h, .good)
        #expect(
            d.decision.canonicalString == #"{"commit":""# + commit + #"","date":"2026-12-01T12:00:01.000Z","lift":""# + h.hash
                + #"","referee":""# + Fx.site(Fx.refereeN).agent.description + #"","result":"good"}"#)
        #expect(d.problem(for: h) == nil)
        #expect(try SignedDecision(json: d.json) == d)
        #expect(Fx.decision(h, .void).decision["commit"] == nil)
    }
}
