/// A chit (protocol section 8): a payment on a tally, signed by the paying
/// user. Kept as the JSON it was made or received as, like `TallyCore`.
///
/// Balance convention (one place, used everywhere): a positive tally balance
/// means the foil owes the stock. A `tran` chit by the foil (the foil pays)
/// adds its units; one by the stock subtracts them. So the foil may owe at
/// most the stock's `limit` (balance <= stock limit) and the stock at most the
/// foil's (balance >= -foil limit).
public struct Chit: Sendable, Equatable {
    public static let coreFields: Set<String> = ["tally", "by", "type", "uuid", "date", "units", "ref", "memo"]
    /// Longest memo: characters, and bytes (a character may hold many
    /// combining marks, so the character count alone bounds nothing).
    public static let maxMemo = 1000
    public static let maxMemoBytes = 4000

    /// Whether `memo` fits both memo limits.
    public static func memoFits(_ memo: String) -> Bool { memo.count <= maxMemo && memo.utf8.count <= maxMemoBytes }
    /// Longest reason kept from a refusal (characters).
    public static let maxReason = 200
    /// Deepest `ref` accepted from the command line.
    public static let maxRefDepth = 8
    /// The largest `ref` (canonical bytes).
    public static let maxRefBytes = 2000

    /// The signed core (nulls left out).
    public let core: JSONValue
    public let tally: String
    public let uuid: String
    public let by: TallySide
    public let units: Int64
    /// base64url signature of the canonical core by the paying user.
    public let sign: String

    /// Makes and signs a payment by `by` on `tally`.
    public init(
        tally: String, by: TallySide, uuid: String, date: String, units: Int64, memo: String?, ref: JSONValue?,
        key: SigningKey
    ) throws(ModelError) {
        var o: [String: JSONValue] = [
            "tally": .string(tally), "by": .string(by.rawValue), "type": "tran",
            "uuid": .string(uuid), "date": .string(date), "units": .integer(units)
        ]
        if let memo { o["memo"] = .string(memo) }
        if let ref { o["ref"] = ref }
        let core = JSONValue.object(o)
        try self.init(core: core, sign: Base64URL.encode(key.sign(core.canonicalBytes)))
    }

    /// Checks a chit from outside: fields, amounts and sizes (not the signature).
    public init(core: JSONValue, sign: String) throws(ModelError) {
        guard let o = core.objectValue, Set(o.keys).isSubset(of: Self.coreFields) else { throw .malformed("unknown field in chit") }
        guard let tally = o["tally"]?.stringValue, TallyCore.isUUID(tally), let uuid = o["uuid"]?.stringValue, TallyCore.isUUID(uuid)
        else { throw .malformed("chit tally and uuid must be UUIDs") }
        guard let byText = o["by"]?.stringValue, let by = TallySide(rawValue: byText) else { throw .malformed("chit by must be stock or foil") }
        guard o["type"] == "tran" else { throw .malformed("only tran chits are supported") }
        guard let date = o["date"]?.stringValue, Timestamp.parse(date) != nil else { throw .malformed("chit date is not a timestamp") }
        guard let units = o["units"]?.integerValue, units > 0, units <= Amount.maxMilli else { throw .malformed("chit units must be 1 to 10^15") }
        if let memo = o["memo"] { guard let m = memo.stringValue, Self.memoFits(m) else { throw .malformed("chit memo too long") } }
        if let ref = o["ref"] { guard ref.canonicalBytes.count <= Self.maxRefBytes else { throw .malformed("chit ref too large") } }
        guard sign.utf8.count <= 100 else { throw .malformed("chit signature too long") }
        self.core = core
        self.tally = tally
        self.uuid = uuid
        self.by = by
        self.units = units
        self.sign = sign
    }

    /// base64url SHA-256 of the canonical core.
    public var hash: String { Base64URL.encode(Crypto.sha256(core.canonicalBytes)) }

    /// Whether the signature is the paying side's user's, per the tally's certificates.
    public func verify(in tally: TallyCore) -> Bool {
        guard let sig = Base64URL.decode(sign) else { return false }
        return Ed25519.verify(signature: sig, message: core.canonicalBytes, publicKey: tally.cert(by).publicKey)
    }

    /// What the chit does to the balance (positive: the foil owes the stock more).
    public var balanceEffect: Int64 { by == .foil ? units : -units }

    public var memo: String? { core["memo"]?.stringValue }

    /// The chit as it travels: core plus `sign` and `hash`.
    public var json: JSONValue {
        var o = core.objectValue ?? [:]
        o["sign"] = .string(sign)
        o["hash"] = .string(hash)
        return .object(o)
    }

    /// Reads the travelling form; the hash must match the core.
    public init(json: JSONValue) throws(ModelError) {
        guard var o = json.objectValue, case .string(let sign)? = o.removeValue(forKey: "sign"),
            case .string(let hash)? = o.removeValue(forKey: "hash")
        else { throw .malformed("chit without sign and hash") }
        try self.init(core: .object(o), sign: sign)
        guard Base64URL.isDigest(hash), self.hash == hash else { throw .invalid("chit hash does not match its core") }
    }

    /// Whether a balance stays within the limits the tally's terms allow.
    public static func withinLimits(_ balance: Int64, stockLimit: Int64, foilLimit: Int64) -> Bool {
        balance <= stockLimit && balance >= -foilLimit
    }
}

/// The hash chain of a tally's chits (protocol section 8). Entry 0 is the
/// tally hash; entry `i` (from 1) links chit `i` to entry `i-1`:
/// `hash_i = base64url(SHA-256(canonical {"index":i,"prior":hash_(i-1),"chit":chit hash}))`.
public enum Chain {
    public static func entryHash(index: Int64, prior: String, chitHash: String) -> String {
        let entry: JSONValue = ["index": .integer(index), "prior": .string(prior), "chit": .string(chitHash)]
        return Base64URL.encode(Crypto.sha256(entry.canonicalBytes))
    }
}
