import ChipModel
import ChipProtocol

/// Deterministic keys, sites, tallies and lifts for the lift tests.
enum Fx {
    static func key(_ n: UInt8) -> SigningKey {
        // A 32-byte seed is always accepted.
        (try? SigningKey(seed: [UInt8](repeating: n, count: 32))) ?? SigningKey.generate()
    }

    static func agent(_ k: SigningKey) -> AgentID {
        (try? AgentID(publicKey: k.publicKey)) ?? { fatalError("a 32-byte key is an agent id") }()
    }

    static func address(_ n: Int) -> SiteAddress {
        (try? SiteAddress(host: "site\(n).example.org", port: 65430 + n)) ?? { fatalError("valid address") }()
    }

    /// Site `n`: its agent key (seed 100 + n) and address.
    static func siteKey(_ n: Int) -> SigningKey { key(UInt8(100 + n)) }
    static func site(_ n: Int) -> LiftSite { LiftSite(agent: agent(siteKey(n)), address: address(n)) }

    static func cuid(_ s: String) -> CUID { (try? CUID(s)) ?? { fatalError("valid cuid") }() }
    static func chad(_ cuid: String, site n: Int) -> CHAD { CHAD(cuid: Fx.cuid(cuid), agent: site(n).agent, address: address(n)) }

    /// A user's key (seed from the name).
    static func userKey(_ cuid: String) -> SigningKey { key(UInt8(truncatingIfNeeded: cuid.utf8.reduce(7) { $0 &* 31 &+ Int($1) })) }

    static func cert(_ cuid: String, site n: Int) -> JSONValue {
        let c = try? Certificate(
            chad: chad(cuid, site: n), type: .person, name: cuid, email: nil, publicKey: userKey(cuid).publicKey,
            date: "2026-11-01T00:00:00.000Z")
        return c?.json ?? .null
    }

    static func tally(_ uuid: String, stock: (String, Int), foil: (String, Int), stockLimit: Int64 = 100_000, foilLimit: Int64 = 100_000) -> TallyCore
    {
        let core = try? TallyCore(
            uuid: uuid, date: "2026-11-02T00:00:00.000Z", memo: nil,
            stock: (cert(stock.0, site: stock.1), ["limit": .integer(stockLimit)]),
            foil: (cert(foil.0, site: foil.1), ["limit": .integer(foilLimit)]))
        guard let core else { fatalError("valid tally core") }
        return core
    }

    static let t0 = Timestamp.parse("2026-12-01T12:00:00.000Z") ?? 0
    static func ts(_ ms: Int64) -> String { Timestamp.format(millisecondsSince1970: ms) }

    static let headerUUID = "6f1c3a52-8d2e-4b7a-9c41-2e5d8f0a7b13"
    static let tallyUUID = "0b8a9f3e-1c2d-4e5f-8a6b-7c8d9e0f1a2b"
    static let otherTallyUUID = "1c9b0a4f-2d3e-4f60-9b7c-8d9e0f1a2b3c"
    static let qidBytes: [UInt8] = Array(0..<16)
    static var qid: String { Base64URL.encode(qidBytes) }
    static let originKey = key(42)
    static let refereeN = 9

    static func nonce(_ tally: String, qid: String = Fx.qid) -> String { HopNonce.nonce(qid: qid, tally: tally) ?? "" }

    /// A circular header over `path` (default: the two test tallies), R = site 9.
    static func header(
        uuid: String = headerUUID, kind: LiftKind = .circ, units: Int64 = 1000, life: Int64 = 60_000,
        path: [String]? = nil, find: LiftFind? = nil, origin: SigningKey = originKey
    ) -> LiftHeader {
        let h = try? LiftHeader.make(
            uuid: uuid, kind: kind, qid: qid, date: ts(t0), deadline: ts(t0 + life), units: units,
            path: path ?? [nonce(tallyUUID), nonce(otherTallyUUID)], referee: site(refereeN),
            find: kind == .line ? (find ?? LiftFind(agent: site(3).agent, seal: "c2VhbGVk")) : nil,
            originKey: origin)
        guard let h else { fatalError("valid header") }
        return h
    }

    static func decision(_ h: LiftHeader, _ result: LiftResult, at ms: Int64 = t0 + 1000, key: SigningKey? = nil) -> SignedDecision {
        let commit = result == .good ? LiftAct.commit.sign(lift: h.hash, key: originKey) : nil
        let d = try? SignedDecision.make(lift: h.hash, result: result, date: ts(ms), commit: commit, key: key ?? siteKey(refereeN))
        guard let d else { fatalError("valid decision") }
        return d
    }

    /// Parses JSON text in tests.
    static func json(_ text: String) -> JSONValue { (try? JSONValue(parsing: text)) ?? .null }
}

extension JSONValue {
    /// This object with `key` set (or removed with nil).
    func with(_ key: String, _ value: JSONValue?) -> JSONValue {
        var o = objectValue ?? [:]
        o[key] = value
        return .object(o)
    }
}
