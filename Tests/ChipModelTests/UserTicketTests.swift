import Testing
@testable import ChipModel

/// User tickets (protocol 10.2): JSON and link forms, tokens, expiry.
@Suite struct UserTicketTests {
    let agent: AgentID
    let token = "0123456789abcdef0123456789abcdef"

    init() throws {
        agent = try AgentID(publicKey: SigningKey.generate().publicKey)
    }

    func sample(user: String? = "alice", expires: String? = "2026-11-25T21:00:00.000Z") throws -> UserTicket {
        var cuid: CUID?
        if let user { cuid = try CUID(user) }
        return try UserTicket(
            address: try SiteAddress(host: "chips.example.org", port: 65431), agent: agent, user: cuid,
            token: token, expires: expires)
    }

    @Test func jsonFormRoundTripsAndIsTheSpecsShape() throws {
        let t = try sample()
        let json = t.json
        #expect(json["ticket"]?.objectValue.map { Set($0.keys) } == ["host", "port", "agent", "user", "token", "expires"])
        #expect(json["ticket"]?["port"] == 65431)
        #expect(try UserTicket(parsing: json.canonicalString) == t)
        #expect(try UserTicket(parsing: "\n  " + json.prettyString + "\n") == t)
        let anonymous = try sample(user: nil)
        #expect(anonymous.json["ticket"]?["user"] == nil)
        #expect(try UserTicket(parsing: anonymous.json.canonicalString) == anonymous)
    }

    @Test func linkFormRoundTripsWithoutExpiry() throws {
        let t = try sample()
        #expect(t.link == "https://mychips.org/ticket?host=chips.example.org&port=65431&agent=\(agent)&user=alice&token=\(token)")
        let back = try UserTicket(parsing: t.link)
        #expect(back.expires == nil && back.token == t.token && back.agent == agent && back.user == t.user && back.address == t.address)
        #expect(try UserTicket(parsing: try sample(user: nil).link).user == nil)
    }

    @Test func linksAreReadTolerantly() throws {
        let base = "https://mychips.org/ticket?host=chips.example.org&port=65431&agent=\(agent)&token=\(token)"
        for text in [
            base + "#frag", base + "&", base + "&&utm_source=mail", "  " + base + "\n",
            base.replacing("host=chips.example.org", with: "host=chips%2Eexample%2Eorg"),
            base.replacing("&token=", with: "&%74oken=")
        ] {
            let t = try UserTicket(parsing: text)
            #expect(t.address.host == "chips.example.org" && t.token == token, "\(text)")
        }
        // IPv6 host, percent-encoded as the formatter writes it.
        let v6 = try UserTicket(address: try SiteAddress(host: "::1", port: 1), agent: agent, user: nil, token: token, expires: nil)
        #expect(try UserTicket(parsing: v6.link).address.host == "::1")
    }

    @Test func badTicketsAreRefused() throws {
        let base = "https://mychips.org/ticket?host=h.example&port=65431&agent=\(agent)&token=\(token)"
        let bad = [
            "", "hello", "https://mychips.org/invite?token=\(token)",
            base.replacing(token, with: token.uppercased()),
            base.replacing(token, with: String(token.dropLast())),
            base + "&token=\(token)",  // twice
            base.replacing("port=65431", with: "port=0"),
            base.replacing("port=65431", with: "port=+1"),
            base.replacing("port=65431", with: "port=99999999"),
            base.replacing("&port=65431", with: ""),
            base.replacing("agent=", with: "agent=x"),
            base + "&user=bad%20user",
            base + "&user=%ZZ",
            base.replacing("host=", with: "host"),
            String(repeating: "x", count: 5000)
        ]
        for text in bad { #expect(throws: ModelError.self, "\(text.prefix(80))") { _ = try UserTicket(parsing: text) } }
        let t = try sample()
        var o = t.json["ticket"]?.objectValue ?? [:]
        o["scopes"] = ["read"]
        let json: [JSONValue] = [
            ["ticket": .object(o)],  // unknown field
            ["ticket": t.json["ticket"] ?? .null, "more": 1],
            ["invite": t.json["ticket"] ?? .null],
            ["ticket": .object((t.json["ticket"]?.objectValue ?? [:]).filter { $0.key != "expires" })],
            ["ticket": .object((t.json["ticket"]?.objectValue ?? [:]).merging(["port": "65431"]) { $1 })],
            ["ticket": .object((t.json["ticket"]?.objectValue ?? [:]).merging(["expires": "tomorrow"]) { $1 })],
            ["ticket": .object((t.json["ticket"]?.objectValue ?? [:]).merging(["user": 7]) { $1 })]
        ]
        for j in json { #expect(throws: ModelError.self, "\(j.canonicalString)") { _ = try UserTicket(parsing: j.canonicalString) } }
    }

    @Test func tokensAndTheirStoredForm() throws {
        let a = UserTicket.newToken(), b = UserTicket.newToken()
        #expect(a != b)
        try UserTicket.validate(token: a)
        let hash = UserTicket.tokenHash(a)
        #expect(hash.utf8.count == 64 && hash != a && hash == UserTicket.tokenHash(a) && hash != UserTicket.tokenHash(b))
        // SHA-256 of the ASCII token (known answer: sha256("0123456789abcdef0123456789abcdef")).
        #expect(UserTicket.tokenHash(token) == Hex.encode(Crypto.sha256(Array(token.utf8))))
        #expect(UserTicket.tokenHash("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    }

    @Test func expiryDefaultsTo24HoursAndIsAtMost7Days() throws {
        let now = try #require(Timestamp.parse("2026-11-24T21:00:00.000Z"))
        #expect(try UserTicket.expiry(now: now) == "2026-11-25T21:00:00.000Z")
        #expect(try UserTicket.expiry(now: now, lifetime: 7 * 86400) == "2026-12-01T21:00:00.000Z")
        #expect(throws: ModelError.self) { _ = try UserTicket.expiry(now: now, lifetime: 7 * 86400 + 1) }
        #expect(throws: ModelError.self) { _ = try UserTicket.expiry(now: now, lifetime: 0) }
        let t = try sample(expires: "2026-11-25T21:00:00.000Z")
        #expect(!t.isExpired(now: now))
        #expect(t.isExpired(now: now + 86_400_000))
    }
}

/// `me.key.take`'s sealed seed (10.7): only the device's key opens it.
@Suite struct KeyTransferTests {
    @Test func onlyTheDeviceOpensTheSealedSeed() throws {
        let user = SigningKey.generate()
        // An X25519 pair for the device, made from another Ed25519 key.
        let deviceKey = SigningKey.generate()
        var secret = deviceKey.curve25519SecretKey()
        defer { Crypto.wipe(&secret) }
        let pub = try #require(Ed25519.curve25519PublicKey(deviceKey.publicKey))
        let sealed = try KeyTransfer.seal(seed: user.exportSeed(), to: pub)
        #expect(Base64URL.decode(sealed)?.count == KeyTransfer.sealedLength)
        #expect(sealed != (try KeyTransfer.seal(seed: user.exportSeed(), to: pub)))  // fresh ephemeral each time
        let seed = try KeyTransfer.open(sealed, publicKey: pub, secretKey: secret)
        #expect(try SigningKey(seed: seed).publicKey == user.publicKey)
        // Another device, a changed byte, garbage: refused.
        let other = SigningKey.generate()
        var otherSecret = other.curve25519SecretKey()
        defer { Crypto.wipe(&otherSecret) }
        let otherPub = try #require(Ed25519.curve25519PublicKey(other.publicKey))
        #expect(throws: ModelError.self) { _ = try KeyTransfer.open(sealed, publicKey: otherPub, secretKey: otherSecret) }
        var bytes = try #require(Base64URL.decode(sealed))
        bytes[40] ^= 1
        #expect(throws: ModelError.self) { _ = try KeyTransfer.open(Base64URL.encode(bytes), publicKey: pub, secretKey: secret) }
        #expect(throws: ModelError.self) { _ = try KeyTransfer.open("garbage", publicKey: pub, secretKey: secret) }
        #expect(throws: ModelError.self) { _ = try KeyTransfer.seal(seed: [1, 2], to: pub) }
    }
}
