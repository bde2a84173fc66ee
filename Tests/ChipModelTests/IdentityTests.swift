import Testing
@testable import ChipModel

@Suite struct IdentityTests {
    @Test func agentIdIsBase64urlOfThePublicKey() throws {
        let key = SigningKey.generate()
        let agent = try AgentID(publicKey: key.publicKey)
        #expect(agent.description.count == 43)
        #expect(try AgentID(agent.description) == agent)
        #expect(agent.noiseStaticKey?.count == 32)
        for bad in ["", "abc", String(repeating: "A", count: 44), String(repeating: "A", count: 42) + "=", String(repeating: "A", count: 42) + "B"] {
            #expect(throws: ModelError.self, "\(bad)") { try AgentID(bad) }
        }
    }

    @Test func cuidRules() throws {
        for good in ["a", "Z9", "alice.smith_2-x", String(repeating: "a", count: 64)] { _ = try CUID(good) }
        for bad in ["", ".a", "-a", "_a", "a b", "a/b", "é", String(repeating: "a", count: 65), "a\n"] {
            #expect(throws: ModelError.self, "\(bad)") { try CUID(bad) }
        }
    }

    @Test func chadTextAndJSONForms() throws {
        let agent = try AgentID(publicKey: SigningKey.generate().publicKey)
        let chad = CHAD(cuid: try CUID("alice"), agent: agent, address: try SiteAddress(host: "chips.example.org", port: 65430))
        #expect(chad.description == "alice:\(agent)@chips.example.org:65430")
        #expect(try CHAD(text: chad.description) == chad)
        #expect(try CHAD(json: chad.json) == chad)
        #expect(try CHAD(text: "alice:\(agent)@chips.example.org") == chad)
        let v6 = CHAD(cuid: try CUID("b"), agent: agent, address: try SiteAddress(host: "::1", port: 7))
        #expect(v6.description == "b:\(agent)@[::1]:7")
        #expect(try CHAD(text: v6.description) == v6)
        for bad in [
            "alice", "alice:\(agent)", "alice@x:1", "alice:\(agent)@x:99999", "alice:\(agent)@x:y", "alice:\(agent)@a b",
            // IPv6 without brackets must not read as host ":" port 1; a port is digits only.
            "alice:\(agent)@::1", "alice:\(agent)@fe80::1", "alice:\(agent)@x:+80", "alice:\(agent)@[::1]:+80",
            "alice:\(agent)@x:"
        ] {
            #expect(throws: ModelError.self, "\(bad)") { try CHAD(text: bad) }
        }
        var extra = chad.json.objectValue ?? [:]
        extra["evil"] = 1
        #expect(throws: ModelError.self) { try CHAD(json: .object(extra)) }
        #expect(throws: ModelError.self) { try CHAD(json: ["cuid": "a", "agent": .string(agent.description), "host": "h", "port": "1"]) }
    }

    @Test func hostsAreDNSNamesOrIPAddresses() throws {
        for good in [
            "chips.example.org", "h.example", "localhost", "127.0.0.1", "::1", "fe80::1", "2001:db8::8:800:200c:417a",
            "::ffff:192.0.2.1", "1:2:3:4:5:6:7:8", "_dmarc.example", "a-b.c"
        ] {
            #expect(throws: Never.self, "\(good)") { try SiteAddress.validate(host: good) }
        }
        for bad in [
            "", "....", ":", "example.org:80", "-a.example", "a-.example", "a..b", "example.org.", "1:2:3:4:5:6:7:8:9",
            "1::2::3", "12345::1", "::ffff:999.0.0.1", "g::1", "a b", String(repeating: "a", count: 64) + ".example"
        ] {
            #expect(throws: ModelError.self, "\(bad)") { try SiteAddress.validate(host: bad) }
        }
    }

    @Test func ticketLinksToleranceAndLimits() throws {
        let agent = try AgentID(publicKey: SigningKey.generate().publicKey)
        let chad = CHAD(cuid: try CUID("bob"), agent: agent, address: try SiteAddress(host: "b.example", port: 1))
        let ticket = try TallyTicket(token: String(repeating: "a", count: 32), expires: "2026-11-26T21:00:00.000Z", chad: chad)
        for variant in [
            ticket.link + "#qr", ticket.link + "&", ticket.link.replacingFirst("token=", with: "%74oken="),
            ticket.link.replacingFirst("?", with: "?&")
        ] {
            #expect(try TallyTicket(parsing: variant).token == ticket.token, "\(variant)")
        }
        #expect(throws: ModelError.self) { try TallyTicket(parsing: ticket.link + "&token=" + String(repeating: "b", count: 32)) }
    }

    @Test func lookAlikeTextIsNotTheSameBytes() throws {
        let key = SigningKey.generate()
        let jwk = UserKeyJWK.json(publicKey: key.publicKey)
        #expect(try UserKeyJWK.publicKey(from: jwk) == key.publicKey)
        guard case .object(var o) = jwk else { return }
        o["kty"] = .string("O\u{212A}P")  // a Kelvin sign for the K
        #expect(throws: ModelError.self) { try UserKeyJWK.publicKey(from: .object(o)) }
        let hash = String(repeating: "K", count: 42) + "A"
        #expect(Base64URL.isDigest(hash) && !Base64URL.isDigest("\u{212A}" + String(repeating: "K", count: 41) + "A"))
        #expect(!Base64URL.isDigest(String(repeating: "A", count: 42) + "B"), "non-zero trailing bits")
    }

    @Test func certificateRoundTripsThroughJSON() throws {
        let key = SigningKey.generate()
        let chad = CHAD(
            cuid: try CUID("alice"), agent: try AgentID(publicKey: SigningKey.generate().publicKey),
            address: try SiteAddress(host: "h.example", port: 1))
        let cert = try Certificate(
            chad: chad, type: .person, name: "Alice Ä", email: "a@example.org",
            publicKey: key.publicKey, date: "2026-11-24T21:00:00.000Z")
        #expect(try Certificate(json: try JSONValue(parsing: cert.json.canonicalString)) == cert)
        var named = cert.json.objectValue ?? [:]
        named["name"] = ["first": "Ann", "surname": "Lee"]
        #expect(try Certificate(json: .object(named)).name == "Ann Lee")
        named["public"] = ["kty": "EC", "crv": "P-256", "x": "AA"]
        #expect(throws: ModelError.self) { try Certificate(json: .object(named)) }
        #expect(throws: ModelError.self) { try Certificate.validate(email: "no-at-sign") }
        #expect(throws: ModelError.self) { try Certificate.validate(name: " ") }
    }

    @Test func signaturesVerifyAndTamperingFails() throws {
        let key = SigningKey.generate()
        let message = Array("canonical bytes".utf8)
        let sig = key.sign(message)
        #expect(Ed25519.verify(signature: sig, message: message, publicKey: key.publicKey))
        var bad = sig
        bad[5] ^= 1
        #expect(!Ed25519.verify(signature: bad, message: message, publicKey: key.publicKey))
        #expect(!Ed25519.verify(signature: sig, message: message + [0], publicKey: key.publicKey))
        #expect(!Ed25519.verify(signature: [1, 2], message: message, publicKey: key.publicKey))
        let again = try SigningKey(seed: key.exportSeed())
        #expect(again.publicKey == key.publicKey)
        #expect(Crypto.sha256(Array("abc".utf8)) == Hex.decode("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"))
    }

    @Test func timestamps() {
        #expect(Timestamp.format(millisecondsSince1970: 0) == "1970-01-01T00:00:00.000Z")
        #expect(Timestamp.format(millisecondsSince1970: 1_795_726_800_123) == "2026-11-26T21:00:00.123Z")
        #expect(Timestamp.format(millisecondsSince1970: 951_782_400_000) == "2000-02-29T00:00:00.000Z")
        #expect(Timestamp.format(millisecondsSince1970: -1) == "1969-12-31T23:59:59.999Z")
        for ms: Int64 in [0, 1_795_726_800_123, 951_782_400_000, 4_102_444_799_999] {
            #expect(Timestamp.parse(Timestamp.format(millisecondsSince1970: ms)) == ms)
        }
        for bad in ["2026-02-30T00:00:00.000Z", "2026-11-26T21:00:00Z", "2026-11-26 21:00:00.000Z", "2026-13-01T00:00:00.000Z"] {
            #expect(Timestamp.parse(bad) == nil, "\(bad)")
        }
    }
}

@Suite struct SealingTests {
    @Test func sealedSecretOpensOnlyWithTheRightPassphraseAndLabel() throws {
        let salt = Crypto.randomBytes(SealingKey.saltLength)
        let key = try SealingKey(passphrase: Array("correct horse".utf8), salt: salt, cost: .interactive)
        let secret = Crypto.randomBytes(32)
        let sealed = StoredSecret.seal(secret, with: key, label: "site")
        #expect(sealed.count == 73)
        #expect(StoredSecret.isSealed(sealed))
        #expect(try StoredSecret.open(sealed, with: key, label: "site") == secret)
        let wrong = try SealingKey(passphrase: Array("wrong horse".utf8), salt: salt, cost: .interactive)
        #expect(throws: ModelError.self) { try StoredSecret.open(sealed, with: wrong, label: "site") }
        #expect(throws: ModelError.self) { try StoredSecret.open(sealed, with: key, label: "user") }
        #expect(throws: ModelError.self) { try StoredSecret.open(sealed, with: nil, label: "site") }
        #expect(throws: ModelError.self) { try StoredSecret.open(Array(sealed.prefix(40)), with: key, label: "site") }
        #expect(try StoredSecret.open(StoredSecret.plain(secret), with: nil, label: "site") == secret)
        #expect(throws: ModelError.self) { try SealingKey(passphrase: [], salt: salt, cost: .interactive) }
        #expect(throws: ModelError.self) { try SealingKey(passphrase: [1], salt: [1], cost: .interactive) }
    }
}

@Suite struct PrintableTests {
    @Test func partnerTextCannotBreakALineOrDriveTheTerminal() {
        let hostile = "paid\n\u{1B}[2Jchipsite: error: forged\r\u{7}"
        #expect(Printable.line(hostile) == "paid??[2Jchipsite: error: forged??")
        #expect(!Printable.line(hostile).contains("\n") && !Printable.clip(hostile).contains("\u{1B}"))
        let long = String(repeating: "é", count: 100)
        #expect(Printable.clip(long) == String(repeating: "é", count: 60) + "…")
        #expect(Printable.line(long) == long)
    }
}

extension String {
    /// This string with the first `target` replaced (no Foundation in this target).
    func replacingFirst(_ target: String, with replacement: String) -> String {
        guard let range = firstRange(of: target) else { return self }
        return String(self[..<range.lowerBound]) + replacement + String(self[range.upperBound...])
    }
}
