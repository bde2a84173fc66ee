import ChipModel
import ChipProtocol
import ChipViews
import Testing

/// The field names of every view, pinned on constructed records: doc/cli.md
/// promises scripts (and the user port's clients) that none is renamed or
/// removed. A new field is added here and in doc/cli.md together.
@Suite struct ViewTests {
    static let date = "2026-11-24T10:00:00.000Z"
    static let tallyID = "0b6c3a8e-6f1e-4c53-9a52-3f0c1d2e4b5a"
    static let chitID = "7f2d4a10-93b1-4e0c-8a6b-5c4d3e2f1a09"

    let aliceKey = SigningKey.generate(), bobKey = SigningKey.generate()
    let siteA = SigningKey.generate(), siteB = SigningKey.generate()

    func chad(_ cuid: String, site: SigningKey, port: Int) throws -> CHAD {
        CHAD(cuid: try CUID(cuid), agent: try AgentID(publicKey: site.publicKey), address: try SiteAddress(host: "127.0.0.1", port: port))
    }

    func certificate(_ cuid: String, key: SigningKey, site: SigningKey, port: Int, email: String? = nil) throws -> Certificate {
        try Certificate(
            chad: try chad(cuid, site: site, port: port), type: .person, name: cuid == "alice" ? "Alice" : "Bob", email: email,
            publicKey: key.publicKey, date: Self.date)
    }

    /// An open tally between alice (stock, site A) and bob (foil, site B), both signatures valid.
    func openTally(note: String? = nil) throws -> TallyRecord {
        let stock = try certificate("alice", key: aliceKey, site: siteA, port: 47001)
        let foil = try certificate("bob", key: bobKey, site: siteB, port: 47002)
        let core = try TallyCore(
            uuid: Self.tallyID, date: Self.date, memo: "groceries",
            stock: (cert: stock.json, terms: ["limit": 25_500]), foil: (cert: foil.json, terms: ["limit": 0]))
        let sign = TallySignatures(stock: core.sign(with: aliceKey), foil: core.sign(with: bobKey), hash: core.hash)
        return TallyRecord(
            uuid: Self.tallyID, cuid: try CUID("alice"), side: .stock, partner: foil.chad, state: .open, revision: 1,
            core: core, sign: sign, token: "tok", balance: -12_500, created: Self.date, updated: Self.date,
            note: note, chainLength: 1, chainHead: "head")
    }

    static func keys(_ v: JSONValue) -> [String] { (v.objectValue ?? [:]).keys.sorted() }

    @Test func tallyFieldNames() throws {
        let t = try openTally()
        let v = TallyView.json(t)
        #expect(
            Self.keys(v) == [
                "balance", "chain_head", "chain_length", "created", "hash", "id", "memo", "note", "partner",
                "partner_chad", "revision", "side", "signatures", "signatures_valid", "state", "terms", "updated", "user"
            ])
        #expect(v["id"] == .string(Self.tallyID))
        #expect(v["user"] == "alice")
        #expect(v["side"] == "stock")
        #expect(v["state"] == .string(TallyState.open.rawValue))
        #expect(v["partner"] == .string(t.partner.description))
        #expect(v["partner_chad"] == t.partner.json)
        #expect(v["balance"] == .integer(-12_500))
        #expect(v["signatures"] == ["stock": true, "foil": true])
        #expect(v["signatures_valid"] == true)
        #expect(v["terms"] == ["stock": ["limit": 25_500], "foil": ["limit": 0]])
        #expect(v["memo"] == "groceries")
        #expect(v["hash"] == .string(t.core?.hash ?? ""))
        #expect(v["chain_length"] == 1)
        #expect(v["chain_head"] == "head")
        #expect(v["note"] == .null)
    }

    @Test func aRequestWithoutACoreHasNullsAndNoTerms() throws {
        var t = try openTally(note: "refused")
        t.core = nil
        t.sign = nil
        t.state = .draft
        let v = TallyView.json(t)
        #expect(
            Self.keys(v) == [
                "balance", "chain_head", "chain_length", "created", "hash", "id", "note", "partner",
                "partner_chad", "revision", "side", "signatures", "signatures_valid", "state", "updated", "user"
            ])
        #expect(v["hash"] == .null)
        #expect(v["chain_head"] == .null)
        #expect(v["signatures"] == ["stock": false, "foil": false])
        #expect(v["signatures_valid"] == false)
        #expect(v["note"] == "refused")
    }

    @Test func chitFieldNames() throws {
        let chit = try Chit(
            tally: Self.tallyID, by: .stock, uuid: Self.chitID, date: Self.date, units: 12_500, memo: "lunch",
            ref: ["invoice": 7], key: aliceKey)
        let r = ChitRecord(chit: chit, state: .chained, index: 0, chainHash: "ch", local: true, note: nil, created: Self.date)
        let v = ChitView.json(r)
        #expect(
            Self.keys(v) == [
                "by", "chain_hash", "created", "hash", "id", "index", "local", "memo", "note", "ref", "state",
                "tally", "units"
            ])
        #expect(v["id"] == .string(Self.chitID))
        #expect(v["tally"] == .string(Self.tallyID))
        #expect(v["by"] == "stock")
        #expect(v["units"] == 12_500)
        #expect(v["memo"] == "lunch")
        #expect(v["ref"] == ["invoice": 7])
        #expect(v["state"] == "chained")
        #expect(v["index"] == 0)
        #expect(v["hash"] == .string(chit.hash))
        #expect(v["chain_hash"] == "ch")
        #expect(v["local"] == true)
        #expect(v["note"] == .null)
        #expect(v["created"] == .string(Self.date))

        let pending = ChitRecord(chit: chit, state: .pending, index: nil, chainHash: nil, local: false, note: "why", created: Self.date)
        let p = ChitView.json(pending)
        #expect(Self.keys(p) == Self.keys(v), "a pending chit has the same fields, some null")
        #expect(p["index"] == .null)
        #expect(p["chain_hash"] == .null)
        #expect(p["note"] == "why")
    }

    @Test func invoiceFieldNames() {
        let i = InvoiceRecord(
            uuid: Self.chitID, tally: Self.tallyID, direction: .in, units: 20_000, memo: nil, state: .paid,
            chit: "c1", note: nil, created: Self.date)
        let v = InvoiceView.json(i)
        #expect(Self.keys(v) == ["chit", "created", "direction", "id", "memo", "note", "state", "tally", "units"])
        #expect(v["id"] == .string(Self.chitID))
        #expect(v["tally"] == .string(Self.tallyID))
        #expect(v["direction"] == "in")
        #expect(v["units"] == 20_000)
        #expect(v["memo"] == .null)
        #expect(v["state"] == "paid")
        #expect(v["chit"] == "c1")
        #expect(v["note"] == .null)
    }

    @Test func statusFieldNames() throws {
        let s = SiteStatus(
            path: "/tmp/site.db", agent: try AgentID(publicKey: siteA.publicKey),
            address: try SiteAddress(host: "chips.example.org", port: 65430), schemaVersion: 9, sealed: true,
            users: 2, tickets: 3, tallies: 4)
        let base = ["agent", "db", "host", "port", "schema_version", "sealed", "tallies", "tickets", "users"]
        #expect(Self.keys(StatusView.json(s)) == base, "lockdown only when known")
        let v = StatusView.json(s, lockdown: false)
        #expect(Self.keys(v) == (base + ["lockdown"]).sorted())
        #expect(v["db"] == "/tmp/site.db")
        #expect(v["agent"] == .string(s.agent.description))
        #expect(v["host"] == "chips.example.org")
        #expect(v["port"] == 65430)
        #expect(v["schema_version"] == 9)
        #expect(v["sealed"] == true)
        #expect(v["lockdown"] == false)
        #expect(v["users"] == 2 && v["tickets"] == 3 && v["tallies"] == 4)
    }

    @Test func userFieldNames() throws {
        let cert = try certificate("alice", key: aliceKey, site: siteA, port: 47001, email: "alice@example.org")
        let u = UserInfo(cuid: try CUID("alice"), certificate: cert, sealed: false, created: Self.date)
        let base = ["certificate", "chad", "created", "cuid", "email", "name", "public", "sealed", "type"]
        #expect(Self.keys(UserView.json(u)) == base, "locked only when known")
        let v = UserView.json(u, locked: true)
        #expect(Self.keys(v) == (base + ["locked"]).sorted())
        #expect(v["cuid"] == "alice")
        #expect(v["name"] == "Alice")
        #expect(v["type"] == .string(EntityType.person.rawValue))
        #expect(v["email"] == "alice@example.org")
        #expect(v["chad"] == .string(cert.chad.description))
        #expect(v["public"] == .string(Base64URL.encode(aliceKey.publicKey)))
        #expect(v["sealed"] == false)
        #expect(v["locked"] == true)
        #expect(v["certificate"] == cert.json)
        let c = UserView.json(u, locked: false, custody: .device)
        #expect(Self.keys(c) == (base + ["custody", "locked"]).sorted())
        #expect(c["custody"] == "device")
    }

    @Test func keyFieldNames() throws {
        let k = SiteKeyInfo(
            agent: try AgentID(publicKey: siteA.publicKey), fingerprint: SiteKeyInfo.fingerprint(of: siteA.publicKey),
            sealed: true, created: Self.date)
        let v = KeyView.json(k)
        #expect(Self.keys(v) == ["agent", "created", "fingerprint", "sealed"])
        #expect(v["agent"] == .string(k.agent.description))
        #expect(v["fingerprint"] == .string(k.fingerprint))
        #expect(k.fingerprint.count == 19, "16 hex digits in groups of 4")
        #expect(v["sealed"] == true)
    }

    @Test func configFieldNames() {
        let s = ConfigSetting(
            name: "site.port", value: "65430", defaultValue: "65430", isSet: false, isValid: true,
            range: "1-65535", summary: "TCP port")
        let v = ConfigView.json(s)
        #expect(Self.keys(v) == ["default", "key", "range", "set", "summary", "valid", "value"])
        #expect(v["key"] == "site.port")
        #expect(v["value"] == "65430")
        #expect(v["default"] == "65430")
        #expect(v["set"] == false)
        #expect(v["valid"] == true)
        #expect(v["range"] == "1-65535")
        #expect(v["summary"] == "TCP port")
        let host = ConfigSetting(name: "site.host", value: nil, defaultValue: nil, isSet: false, isValid: true, range: "a name", summary: "")
        #expect(ConfigView.json(host)["value"] == .null)
        #expect(ConfigView.json(host)["default"] == .null)
    }
}
