import ChipModel

// Lifts (protocol section 9): the signed objects, their exact bytes and
// their validators. Everything here is pure: keys are passed in, clocks are
// milliseconds passed in, nothing is stored.

/// Why a lift object from outside was not taken.
public enum LiftError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Wrong keys, types or formats (section 9.3's exact bytes).
    case malformed(String)
    /// A value outside section 9.9's limits.
    case outOfRange(String)
    /// A hash or signature that does not verify, or objects that do not belong together.
    case invalid(String)

    public var description: String {
        switch self {
        case .malformed(let why): "malformed: \(why)"
        case .outOfRange(let why): "out of range: \(why)"
        case .invalid(let why): "invalid: \(why)"
        }
    }
}

/// Section 9.9's limits and section 9's timings, by the names the text uses.
public enum LiftLimits {
    /// Entries of a lift's `path` (≤ 6 foreign hops and ≤ 2 padding nonces).
    public static let maxPath = 8
    public static let maxForeignHops = 6
    public static let maxPadding = 2
    /// Internal hops in one site's segment.
    public static let maxInternalHops = 4
    /// `units`, as chits.
    public static let units: ClosedRange<Int64> = 1...Amount.maxMilli
    /// `deadline − date`: more than 0, at most 120 s (MyCHIPs' lift life).
    public static let maxLifeMs: Int64 = 120_000
    /// What chipsite's originator sets.
    public static let originLifeMs: Int64 = 60_000

    // Discovery (9.4)
    public static let maxWaitMs: Int64 = 5000
    /// `ttl` after the first hop: linear, circular.
    public static let maxTTLLine: Int64 = 5
    public static let maxTTLCirc: Int64 = 4
    public static let fanOut = 4
    public static let maxRoutes = 3
    public static let queriesPerSecondPerPartner = 10
    public static let maxOpenQids = 64
    /// Each relay takes this off `wait` before forwarding; a forwarded `wait` under it is `time`.
    public static let forwardCostMs: Int64 = 250
    /// A site answers at `wait` − this, whatever is still outstanding.
    public static let answerMarginMs: Int64 = 100
    /// How long a site keeps a qid's routes in memory.
    public static let routeCacheMs: Int64 = 300_000

    // In progress (9.9)
    public static let maxLiftChitsPerTally = 16
    public static let maxLiftsPerTallyPerReferee = 4
    public static let maxLiftsPerPartner = 64

    // The promise's time checks (9.6 step 2)
    /// `date` − this ≤ the payee site's clock.
    public static let dateAheadMs: Int64 = 60_000
    /// `deadline` ≤ the payee site's clock + this.
    public static let deadlineAheadMs: Int64 = 180_000
    /// A relay needs `deadline` − its clock ≥ this × (entries after its hop) + `relayReserveMs`.
    public static let relayPerHopMs: Int64 = 2000
    public static let relayReserveMs: Int64 = 5000
    /// The originator commits only while `deadline` − its clock ≥ this.
    public static let commitMarginMs: Int64 = 1000

    // The referee and timeout queries (9.7)
    /// A `pending` answer asks again until `deadline` + this.
    public static let pendingAfterDeadlineMs: Int64 = 1000
    /// Decisions kept, and headers answered, this long past their deadline.
    public static let keepMs: Int64 = 400 * 86_400_000
    /// Timeout queries start at `deadline` + this (plus 0 to `queryJitterMs`), back off doubling to `queryBackoffMaxMs`.
    public static let queryStartMs: Int64 = 2000
    public static let queryJitterMs: Int64 = 2000
    public static let queryBackoffMaxMs: Int64 = 300_000
    public static let alertAfterMs: Int64 = 3_600_000
    /// The longest `retry` a `pending` carries (a referee whose clock is
    /// behind would otherwise name more than the lift's life).
    public static let maxRetryMs: Int64 = queryBackoffMaxMs

    /// Largest decoded `seal` accepted: a sealed box of canonical
    /// `{"qid","cuid","units","memo"?,"ref"?,"payor"?}` with section 8's memo and ref limits.
    public static let maxSealBytes = 8192
}

/// A lift's kind: circular (clears a circle of debt) or linear (pays a payee).
public enum LiftKind: String, Sendable, CaseIterable {
    case circ, line
}

/// A site address (9.3): a CHAD without `cuid`, `{"agent","host","port"}`.
/// Sites compare site addresses, referees included, by `agent` only.
public struct LiftSite: Sendable, Hashable, CustomStringConvertible {
    public let agent: AgentID
    public let address: SiteAddress

    public init(agent: AgentID, address: SiteAddress) {
        self.agent = agent
        self.address = address
    }

    public static func == (a: LiftSite, b: LiftSite) -> Bool { a.agent == b.agent }
    public func hash(into hasher: inout Hasher) { hasher.combine(agent) }

    public var json: JSONValue {
        ["agent": .string(agent.description), "host": .string(address.host), "port": .integer(Int64(address.port))]
    }

    /// Exactly `agent`, `host`, `port`, none null.
    public init(json: JSONValue) throws(LiftError) {
        guard let o = json.objectValue, Set(o.keys) == ["agent", "host", "port"] else {
            throw .malformed("a site address has exactly agent, host and port")
        }
        guard let a = o["agent"]?.stringValue, let agent = try? AgentID(a) else { throw .malformed("site address agent") }
        guard let host = o["host"]?.stringValue, let port = o["port"]?.integerValue, let p = Int(exactly: port),
            let address = try? SiteAddress(host: host, port: p)
        else { throw .malformed("site address host or port") }
        self.init(agent: agent, address: address)
    }

    public var description: String { "\(agent)@\(address)" }
}

/// `to` or `from` of a lift or route message (sections 5, 9.6, 9.8): a
/// user's CHAD between neighbours; a site address to and from a referee,
/// where `from` may be `{"agent"}` alone.
public enum LiftParty: Sendable, Hashable {
    case user(CHAD)
    case site(LiftSite)
    case agent(AgentID)

    public var agent: AgentID {
        switch self {
        case .user(let c): c.agent
        case .site(let s): s.agent
        case .agent(let a): a
        }
    }

    public var isUser: Bool { if case .user = self { return true }; return false }

    public var json: JSONValue {
        switch self {
        case .user(let c): c.json
        case .site(let s): s.json
        case .agent(let a): ["agent": .string(a.description)]
        }
    }

    public init(json: JSONValue) throws(LiftError) {
        guard let o = json.objectValue else { throw .malformed("to/from must be an object") }
        if o["cuid"] != nil {
            guard Set(o.keys) == ["cuid", "agent", "host", "port"], let chad = try? CHAD(json: json) else {
                throw .malformed("a user's CHAD has exactly cuid, agent, host and port")
            }
            self = .user(chad)
        } else if Set(o.keys) == ["agent"] {
            guard let a = o["agent"]?.stringValue, let agent = try? AgentID(a) else { throw .malformed("agent") }
            self = .agent(agent)
        } else {
            self = .site(try LiftSite(json: json))
        }
    }
}

/// The strict readers every lift object shares.
enum LiftField {
    /// The members of an object with exactly `keys` (plus `optional` ones), none null.
    static func object(_ json: JSONValue?, _ what: String, keys: Set<String>, optional: Set<String> = [])
        throws(LiftError) -> [String: JSONValue]
    {
        guard let o = json?.objectValue else { throw .malformed("\(what) must be an object") }
        let have = Set(o.keys)
        guard keys.isSubset(of: have), have.isSubset(of: keys.union(optional)) else {
            throw .malformed(
                "\(what) has exactly the keys \(JSONValue.canonicalOrder(keys).joined(separator: ","))"
                    + (optional.isEmpty ? "" : " (and maybe \(JSONValue.canonicalOrder(optional).joined(separator: ",")))"))
        }
        if o.values.contains(where: \.isNull) { throw .malformed("\(what) holds a null") }
        return o
    }

    static func string(_ o: [String: JSONValue], _ key: String) throws(LiftError) -> String {
        guard let s = o[key]?.stringValue else { throw .malformed("\(key) must be a string") }
        return s
    }

    static func integer(_ o: [String: JSONValue], _ key: String) throws(LiftError) -> Int64 {
        guard let i = o[key]?.integerValue else { throw .malformed("\(key) must be an integer") }
        return i
    }

    /// A canonical base64url string of exactly `count` bytes.
    static func base64(_ o: [String: JSONValue], _ key: String, bytes count: Int) throws(LiftError) -> String {
        let s = try string(o, key)
        guard s.utf8.count == (count * 4 + 2) / 3, Base64URL.decode(s)?.count == count else {
            throw .malformed("\(key) must be base64url of \(count) bytes")
        }
        return s
    }

    static func timestamp(_ o: [String: JSONValue], _ key: String) throws(LiftError) -> (String, Int64) {
        let s = try string(o, key)
        guard let ms = Timestamp.parse(s) else { throw .malformed("\(key) must be a YYYY-MM-DDTHH:MM:SS.sssZ timestamp") }
        return (s, ms)
    }

    static func uuid(_ o: [String: JSONValue], _ key: String) throws(LiftError) -> String {
        let s = try string(o, key)
        guard TallyCore.isUUID(s) else { throw .malformed("\(key) must be a lowercase UUID") }
        return s
    }

    static func units(_ o: [String: JSONValue], _ key: String = "units") throws(LiftError) -> Int64 {
        let u = try integer(o, key)
        guard LiftLimits.units.contains(u) else { throw .outOfRange("\(key) must be 1 to 10^15") }
        return u
    }

    static func nonce(_ json: JSONValue?, _ what: String) throws(LiftError) -> String {
        guard let s = json?.stringValue, Base64URL.isDigest(s) else { throw .malformed("\(what) must be a 32-byte base64url nonce") }
        return s
    }

    /// A `path`: 1 to `LiftLimits.maxPath` nonces.
    static func path(_ o: [String: JSONValue], _ key: String = "path", max: Int = LiftLimits.maxPath) throws(LiftError) -> [String] {
        guard let list = o[key]?.arrayValue else { throw .malformed("\(key) must be an array") }
        guard (1...max).contains(list.count) else { throw .outOfRange("\(key) holds 1 to \(max) entries") }
        var out = [String]()
        for item in list { out.append(try nonce(item, "a \(key) entry")) }
        return out
    }

    /// A signature: base64url of 64 bytes.
    static func signature(_ o: [String: JSONValue], _ key: String = "sign") throws(LiftError) -> String {
        try base64(o, key, bytes: SigningKey.signatureLength)
    }

    static func hop(_ o: [String: JSONValue]) throws(LiftError) -> Int {
        let h = try integer(o, "hop")
        guard h >= 0, h < Int64(LiftLimits.maxPath) else { throw .outOfRange("hop must be 0 to \(LiftLimits.maxPath - 1)") }
        return Int(h)
    }

    static func digest(_ o: [String: JSONValue], _ key: String) throws(LiftError) -> String {
        let s = try string(o, key)
        guard Base64URL.isDigest(s) else { throw .malformed("\(key) must be a base64url SHA-256 hash") }
        return s
    }
}

/// base64url SHA-256 of canonical bytes.
func digest(_ bytes: [UInt8]) -> String { Base64URL.encode(Crypto.sha256(bytes)) }

/// Section 9.3's identifiers: the qid and the hop nonce.
public enum HopNonce {
    public static let qidBytes = 16

    /// The 16 bytes of a qid, or nil when it is not base64url of 16 bytes.
    public static func qidBytes(_ qid: String) -> [UInt8]? {
        guard qid.utf8.count == 22, let b = Base64URL.decode(qid), b.count == qidBytes else { return nil }
        return b
    }

    /// A fresh qid from `random` 16 bytes (the caller draws them).
    public static func qid(random: [UInt8]) -> String? { random.count == qidBytes ? Base64URL.encode(random) : nil }

    /// `nonce(t)` = base64url(SHA-256(16 qid bytes ‖ the 36 ASCII bytes of `t`'s uuid, lowercase)).
    public static func nonce(qid: String, tally: String) -> String? {
        guard let q = qidBytes(qid), TallyCore.isUUID(tally) else { return nil }
        return digest(q + Array(tally.utf8))
    }
}

/// A linear lift's payee (9.4, 9.5): its site's agent and the sealed
/// `{"qid","cuid","units","memo"?,"ref"?,"payor"?}`.
public struct LiftFind: Sendable, Equatable {
    public var agent: AgentID
    public var seal: String

    public init(agent: AgentID, seal: String) {
        self.agent = agent
        self.seal = seal
    }

    public var json: JSONValue { ["agent": .string(agent.description), "seal": .string(seal)] }

    public init(json: JSONValue?) throws(LiftError) {
        let o = try LiftField.object(json, "find", keys: ["agent", "seal"])
        guard let agent = try? AgentID(try LiftField.string(o, "agent")) else { throw .malformed("find.agent must be an agent id") }
        let seal = try LiftField.string(o, "seal")
        guard let bytes = Base64URL.decode(seal), !bytes.isEmpty, bytes.count <= LiftLimits.maxSealBytes else {
            throw .malformed("find.seal must be base64url of 1 to \(LiftLimits.maxSealBytes) bytes")
        }
        self.init(agent: agent, seal: seal)
    }
}

/// What a linear lift's seal holds, once the payee's site has opened it
/// (the engine opens it with the site key; this reads the plaintext).
public struct SealContents: Sendable, Equatable {
    public var qid: String
    public var cuid: CUID
    public var units: Int64
    public var memo: String?
    public var ref: JSONValue?
    public var payor: CHAD?

    public init(qid: String, cuid: CUID, units: Int64, memo: String? = nil, ref: JSONValue? = nil, payor: CHAD? = nil) {
        self.qid = qid
        self.cuid = cuid
        self.units = units
        self.memo = memo
        self.ref = ref
        self.payor = payor
    }

    /// The canonical bytes that are sealed.
    public var json: JSONValue {
        var o: [String: JSONValue] = ["qid": .string(qid), "cuid": .string(cuid.value), "units": .integer(units)]
        if let memo { o["memo"] = .string(memo) }
        if let ref { o["ref"] = ref }
        if let payor { o["payor"] = payor.json }
        return .object(o)
    }

    public init(json: JSONValue) throws(LiftError) {
        let o = try LiftField.object(json, "seal", keys: ["qid", "cuid", "units"], optional: ["memo", "ref", "payor"])
        let qid = try LiftField.string(o, "qid")
        guard HopNonce.qidBytes(qid) != nil else { throw .malformed("seal qid") }
        guard let cuid = try? CUID(try LiftField.string(o, "cuid")) else { throw .malformed("seal cuid") }
        let units = try LiftField.units(o)
        var memo: String?
        if o["memo"] != nil {
            memo = try LiftField.string(o, "memo")
            guard let m = memo, Chit.memoFits(m) else { throw .outOfRange("seal memo too long") }
        }
        if let ref = o["ref"], ref.canonicalBytes.count > Chit.maxRefBytes { throw .outOfRange("seal ref too large") }
        var payor: CHAD?
        if let p = o["payor"] {
            guard let c = try? CHAD(json: p) else { throw .malformed("seal payor must be a CHAD") }
            payor = c
        }
        self.init(qid: qid, cuid: cuid, units: units, memo: memo, ref: o["ref"], payor: payor)
    }
}

// MARK: - The header (9.5)

/// A lift header: the route, the units, the deadline and the referee, signed
/// by the lift's origin key. Its `hash` H names the lift.
public struct LiftHeader: Sendable, Equatable {
    public static let version: Int64 = 1
    /// The signed keys (9.3): `find` exactly when `kind` is `line`.
    public static let signedKeys: Set<String> = [
        "date", "deadline", "kind", "origin", "path", "qid", "referee", "units",
        "uuid", "version"
    ]

    public let uuid: String
    public let kind: LiftKind
    public let qid: String
    public let date: String
    public let deadline: String
    public let units: Int64
    public let path: [String]
    /// base64url of the origin's Ed25519 public key.
    public let origin: String
    public let referee: LiftSite
    public let find: LiftFind?
    public let sign: String
    /// H.
    public let hash: String

    /// `date` and `deadline` in milliseconds since 1970.
    public let dateMs: Int64
    public let deadlineMs: Int64

    /// Makes and signs a header with the origin key. Throws when a value is
    /// outside 9.3's and 9.9's rules, as a receiver would.
    public static func make(
        uuid: String, kind: LiftKind, qid: String, date: String, deadline: String, units: Int64,
        path: [String], referee: LiftSite, find: LiftFind?, originKey: SigningKey
    ) throws(LiftError) -> LiftHeader {
        var core: [String: JSONValue] = [
            "version": .integer(version), "uuid": .string(uuid), "kind": .string(kind.rawValue), "qid": .string(qid),
            "date": .string(date), "deadline": .string(deadline), "units": .integer(units), "path": .array(path.map(JSONValue.string)),
            "origin": .string(Base64URL.encode(originKey.publicKey)), "referee": referee.json
        ]
        if let find { core["find"] = find.json }
        let bytes = JSONValue.object(core).canonicalBytes
        core["sign"] = .string(Base64URL.encode(originKey.sign(bytes)))
        core["hash"] = .string(digest(bytes))
        return try LiftHeader(json: .object(core))
    }

    /// Reads a header from outside: exactly 9.3's keys, none null, every
    /// format and 9.9 range, `hash` the SHA-256 of the rebuilt bytes and
    /// `sign` the origin key's signature of them.
    public init(json: JSONValue) throws(LiftError) {
        let o = try LiftField.object(json, "lift header", keys: Self.signedKeys.union(["sign", "hash"]), optional: ["find"])
        guard o["version"] == .integer(Self.version) else { throw .malformed("lift header version must be 1") }
        uuid = try LiftField.uuid(o, "uuid")
        guard let k = o["kind"]?.stringValue, let kind = LiftKind(rawValue: k) else { throw .malformed("kind must be circ or line") }
        self.kind = kind
        qid = try LiftField.base64(o, "qid", bytes: HopNonce.qidBytes)
        (date, dateMs) = try LiftField.timestamp(o, "date")
        (deadline, deadlineMs) = try LiftField.timestamp(o, "deadline")
        guard deadlineMs > dateMs, deadlineMs - dateMs <= LiftLimits.maxLifeMs else {
            throw .outOfRange("deadline − date must be more than 0 and at most 120 s")
        }
        units = try LiftField.units(o)
        path = try LiftField.path(o)
        origin = try LiftField.base64(o, "origin", bytes: Ed25519.publicKeyLength)
        do { referee = try LiftSite(json: o["referee"] ?? .null) } catch { throw .malformed("referee: \(error)") }
        switch (kind, o["find"]) {
        case (.line, let f?): find = try LiftFind(json: f)
        case (.circ, nil): find = nil
        default: throw .malformed("find is present exactly when kind is line")
        }
        sign = try LiftField.signature(o)
        hash = try LiftField.digest(o, "hash")
        let bytes = core.canonicalBytes
        guard digest(bytes) == hash else { throw .invalid("the header does not hash to its hash") }
        guard let sig = Base64URL.decode(sign), let key = Base64URL.decode(origin),
            Ed25519.verify(signature: sig, message: bytes, publicKey: key)
        else { throw .invalid("the header's signature does not verify with its origin") }
    }

    /// The signed object, rebuilt from the fields (the bytes every site rebuilds).
    public var core: JSONValue {
        var o: [String: JSONValue] = [
            "version": .integer(Self.version), "uuid": .string(uuid), "kind": .string(kind.rawValue), "qid": .string(qid),
            "date": .string(date), "deadline": .string(deadline), "units": .integer(units), "path": .array(path.map(JSONValue.string)),
            "origin": .string(origin), "referee": referee.json
        ]
        if let find { o["find"] = find.json }
        return .object(o)
    }

    /// The header as it travels: the core with `sign` and `hash`.
    public var json: JSONValue {
        var o = core.objectValue ?? [:]
        o["sign"] = .string(sign)
        o["hash"] = .string(hash)
        return .object(o)
    }

    /// The origin's public key bytes.
    public var originKey: [UInt8] { Base64URL.decode(origin) ?? [] }

    /// Whether `sign` is the origin key's signature of `act` for this lift.
    public func verify(_ act: LiftAct, sign: String) -> Bool { act.verify(sign, lift: hash, publicKey: originKey) }
}

// MARK: - Acts (9.3)

/// What an act says: `commit` and `abort` (by the origin key), `arrive` (by the payee's site).
public enum LiftAct: String, Sendable, CaseIterable {
    case commit, abort, arrive

    /// The signed bytes: canonical `{"act":…,"lift":H}`.
    public func bytes(lift: String) -> [UInt8] { (["act": .string(rawValue), "lift": .string(lift)] as JSONValue).canonicalBytes }

    public func sign(lift: String, key: SigningKey) -> String { Base64URL.encode(key.sign(bytes(lift: lift))) }

    public func verify(_ sign: String, lift: String, publicKey: [UInt8]) -> Bool {
        guard let sig = Base64URL.decode(sign) else { return false }
        return Ed25519.verify(signature: sig, message: bytes(lift: lift), publicKey: publicKey)
    }
}

// MARK: - Lift chits (9.5)

/// A lift chit: section 8's chit with `type` `lift` and `lift`: H, which
/// follows from the header and the hop, signed by the payer half's agent.
public struct LiftChit: Sendable, Equatable {
    public static let keys: Set<String> = ["by", "date", "lift", "tally", "type", "units", "uuid"]

    public let tally: String
    /// The payer's side.
    public let by: TallySide
    public let uuid: String
    public let date: String
    public let units: Int64
    /// H.
    public let lift: String
    public let sign: String

    /// The chit's uuid: UUID v5 of the tally uuid's text in namespace `header.uuid`.
    public static func uuid(header: String, tally: String) -> String? { UUIDv5.make(namespace: header, name: Array(tally.utf8)) }

    /// The chit 9.5 makes for `tally` with `by` paying, signed with that
    /// half's agent key. The same inputs give the same bytes and signature.
    public static func make(header: LiftHeader, tally: String, by: TallySide, agentKey: SigningKey) throws(LiftError) -> LiftChit {
        guard TallyCore.isUUID(tally), let uuid = uuid(header: header.uuid, tally: tally) else { throw .malformed("tally uuid") }
        let unsigned = core(tally: tally, by: by, uuid: uuid, date: header.date, units: header.units, lift: header.hash)
        return LiftChit(
            tally: tally, by: by, uuid: uuid, date: header.date, units: header.units, lift: header.hash,
            sign: Base64URL.encode(agentKey.sign(unsigned.canonicalBytes)))
    }

    init(tally: String, by: TallySide, uuid: String, date: String, units: Int64, lift: String, sign: String) {
        self.tally = tally
        self.by = by
        self.uuid = uuid
        self.date = date
        self.units = units
        self.lift = lift
        self.sign = sign
    }

    static func core(tally: String, by: TallySide, uuid: String, date: String, units: Int64, lift: String) -> JSONValue {
        [
            "tally": .string(tally), "by": .string(by.rawValue), "type": "lift", "uuid": .string(uuid), "date": .string(date),
            "units": .integer(units), "lift": .string(lift)
        ]
    }

    /// The signed core.
    public var core: JSONValue { Self.core(tally: tally, by: by, uuid: uuid, date: date, units: units, lift: lift) }
    /// base64url SHA-256 of the core: the chit hash a chain entry links.
    public var hash: String { digest(core.canonicalBytes) }
    /// As it travels: core, `sign`, `hash`.
    public var json: JSONValue {
        var o = core.objectValue ?? [:]
        o["sign"] = .string(sign)
        o["hash"] = .string(hash)
        return .object(o)
    }

    /// What it does to the tally balance, as a `tran` chit by the same side (section 8).
    public var balanceEffect: Int64 { by == .foil ? units : -units }

    /// Reads a lift chit from outside: exactly 9.3's keys and `hash` matching
    /// (not the signature, which needs the tally).
    public init(json: JSONValue) throws(LiftError) {
        let o = try LiftField.object(json, "lift chit", keys: Self.keys.union(["sign", "hash"]))
        guard o["type"] == "lift" else { throw .malformed("a lift chit's type is lift") }
        tally = try LiftField.uuid(o, "tally")
        guard let b = o["by"]?.stringValue, let by = TallySide(rawValue: b) else { throw .malformed("by must be stock or foil") }
        self.by = by
        uuid = try LiftField.uuid(o, "uuid")
        (date, _) = try LiftField.timestamp(o, "date")
        units = try LiftField.units(o)
        lift = try LiftField.digest(o, "lift")
        sign = try LiftField.signature(o)
        guard try LiftField.digest(o, "hash") == hash else { throw .invalid("the lift chit does not hash to its hash") }
    }

    /// Why this is not the chit 9.5 makes from `header` for its tally, or nil.
    public func mismatch(_ header: LiftHeader) -> String? {
        if lift != header.hash { return "the chit names another lift" }
        if !date.utf8.elementsEqual(header.date.utf8) { return "the chit's date is not the header's" }
        if units != header.units { return "the chit's units are not the header's" }
        if uuid != Self.uuid(header: header.uuid, tally: tally) { return "the chit's uuid is not UUID v5 of its tally in the header's" }
        return nil
    }

    /// Whether `sign` is the signature of the payer half's agent (the agent
    /// of that half's certificate CHAD in `tally`), and `tally` is its tally.
    public func verify(in tally: TallyCore) -> Bool {
        guard tally.uuid == self.tally, let sig = Base64URL.decode(sign) else { return false }
        return Ed25519.verify(signature: sig, message: core.canonicalBytes, publicKey: tally.cert(by).chad.agent.publicKey)
    }
}

// MARK: - The referee's decision (9.7)

/// `good` or `void`.
public enum LiftResult: String, Sendable, CaseIterable {
    case good, void
}

/// The referee's signed decision: `{"decision":{commit?,date,lift,referee,result},"sign":<R>}`.
public struct SignedDecision: Sendable, Equatable {
    /// H.
    public let lift: String
    public let result: LiftResult
    /// R's clock when it decided.
    public let date: String
    /// R's agent (`header.referee.agent`).
    public let referee: AgentID
    /// O's commit `sign`, exactly when `result` is `good`.
    public let commit: String?
    public let sign: String

    /// Decides and signs, as R, with its agent key.
    public static func make(lift: String, result: LiftResult, date: String, commit: String?, key: SigningKey) throws(LiftError) -> SignedDecision {
        guard let referee = try? AgentID(publicKey: key.publicKey) else { throw .malformed("referee key") }
        guard (result == .good) == (commit != nil) else { throw .malformed("commit is present exactly when the result is good") }
        let bytes = decisionObject(lift: lift, result: result, date: date, referee: referee, commit: commit).canonicalBytes
        return try SignedDecision(json: [
            "decision": decisionObject(lift: lift, result: result, date: date, referee: referee, commit: commit),
            "sign": .string(Base64URL.encode(key.sign(bytes)))
        ])
    }

    static func decisionObject(lift: String, result: LiftResult, date: String, referee: AgentID, commit: String?) -> JSONValue {
        var o: [String: JSONValue] = [
            "lift": .string(lift), "result": .string(result.rawValue), "date": .string(date),
            "referee": .string(referee.description)
        ]
        if let commit { o["commit"] = .string(commit) }
        return .object(o)
    }

    /// The signed object.
    public var decision: JSONValue { Self.decisionObject(lift: lift, result: result, date: date, referee: referee, commit: commit) }
    /// `{"decision","sign"}`, as it is stored and travels.
    public var json: JSONValue { ["decision": decision, "sign": .string(sign)] }

    /// Reads `{"decision","sign"}`: exact keys, `commit` exactly when good (not the signature).
    public init(json: JSONValue) throws(LiftError) {
        let outer = try LiftField.object(json, "decision message", keys: ["decision", "sign"])
        try self.init(decision: outer["decision"], sign: try LiftField.signature(outer))
    }

    /// Reads the decision object and R's signature of it.
    public init(decision: JSONValue?, sign: String) throws(LiftError) {
        let o = try LiftField.object(decision, "decision", keys: ["date", "lift", "referee", "result"], optional: ["commit"])
        lift = try LiftField.digest(o, "lift")
        guard let r = o["result"]?.stringValue, let result = LiftResult(rawValue: r) else { throw .malformed("result must be good or void") }
        self.result = result
        (date, _) = try LiftField.timestamp(o, "date")
        guard let referee = try? AgentID(try LiftField.string(o, "referee")) else { throw .malformed("decision referee must be an agent id") }
        self.referee = referee
        if o["commit"] != nil { commit = try LiftField.signature(o, "commit") } else { commit = nil }
        guard (result == .good) == (commit != nil) else { throw .malformed("commit is present exactly when the result is good") }
        guard Base64URL.decode(sign)?.count == SigningKey.signatureLength else { throw .malformed("decision sign") }
        self.sign = sign
    }

    /// Why this is not a valid decision for `header`, or nil (9.7): `sign`
    /// verifies with `header.referee.agent`, `lift` is H, `referee` is R and,
    /// for `good`, `commit` verifies with `origin` over the commit act.
    public func problem(for header: LiftHeader) -> String? {
        if lift != header.hash { return "the decision is for another lift" }
        if referee != header.referee.agent { return "the decision is not by the lift's referee" }
        guard let sig = Base64URL.decode(sign),
            Ed25519.verify(signature: sig, message: decision.canonicalBytes, publicKey: header.referee.agent.publicKey)
        else { return "the referee's signature does not verify" }
        if result == .good {
            guard let commit, header.verify(.commit, sign: commit) else { return "the good decision's commit does not verify with the origin" }
        }
        return nil
    }
}
