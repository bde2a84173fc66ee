/// The two sides of a tally (protocol section 7): `stock` is the
/// vendor/creditor side, `foil` the client side. A positive balance means
/// the foil owes the stock.
public enum TallySide: String, Sendable, CaseIterable {
    case stock, foil

    public var other: TallySide { self == .stock ? .foil : .stock }
}

/// The states a tally goes through, with their MyCHIPs names.
public enum TallyState: String, Sendable, CaseIterable {
    case draft
    case peerDraft = "P.draft"
    case heldOffer = "H.offer"
    case peerOffer = "P.offer"
    case open
    case void
    case closing = "C.open"
    case close
}

/// The signed core of a tally (protocol section 7), kept as the JSON it was
/// built or received as, so that its canonical bytes (what is signed and
/// hashed) never change by a round trip through Swift types.
public struct TallyCore: Sendable, Equatable {
    public static let agreement: JSONValue = ["domain": "mychips.org", "name": "standard", "version": 1]
    /// Longest tally memo (characters) and the revision counter's bound.
    public static let maxMemo = 1000
    public static let maxRevision: Int64 = 1_000_000
    public static let coreFields: Set<String> = ["version", "revision", "uuid", "date", "memo", "agree", "stock", "foil"]

    public let json: JSONValue
    public let uuid: String
    public let revision: Int64
    public let stockCert: Certificate
    public let foilCert: Certificate

    /// Builds a new core (revision 1) from both certificates and terms.
    public init(
        uuid: String, date: String, memo: String?, stock: (cert: JSONValue, terms: JSONValue),
        foil: (cert: JSONValue, terms: JSONValue)
    ) throws(ModelError) {
        try self.init(json: [
            "version": 1, "revision": 1, "uuid": .string(uuid), "date": .string(date),
            "memo": memo.map(JSONValue.string) ?? .null, "agree": Self.agreement,
            "stock": ["cert": stock.cert, "terms": stock.terms],
            "foil": ["cert": foil.cert, "terms": foil.terms]
        ])
    }

    /// Reads and checks a core from outside. Unknown fields are refused.
    public init(json: JSONValue) throws(ModelError) {
        guard let o = json.objectValue, Set(o.keys) == Self.coreFields else {
            throw .malformed("a tally core has exactly the fields \(Self.coreFields.sorted().joined(separator: ", "))")
        }
        guard o["version"] == .integer(1) else { throw .malformed("unknown tally version") }
        guard let revision = o["revision"]?.integerValue, revision >= 1, revision < Self.maxRevision else {
            throw .malformed("tally revision must be a positive integer")
        }
        guard let uuid = o["uuid"]?.stringValue, Self.isUUID(uuid) else { throw .malformed("tally uuid is not a UUID") }
        guard let date = o["date"]?.stringValue, Timestamp.parse(date) != nil else { throw .malformed("tally date is not a timestamp") }
        switch o["memo"] {
        case .null?: break
        case .string(let m)? where m.count <= Self.maxMemo && m.utf8.count <= Self.maxMemo * 4: break
        default: throw .malformed("tally memo must be null or a short string")
        }
        guard o["agree"]?.objectValue != nil else { throw .malformed("tally agreement must be an object") }
        func side(_ name: String) throws(ModelError) -> Certificate {
            guard let s = o[name]?.objectValue, Set(s.keys) == ["cert", "terms"], let cert = s["cert"], let terms = s["terms"]?.objectValue
            else { throw .malformed("tally \(name) must be {cert, terms}") }
            for (key, value) in terms {
                guard ["limit", "call"].contains(key) || key.hasPrefix("x-") else { throw .malformed("unknown term \(Printable.quote(key))") }
                if key == "limit" {
                    guard let l = value.integerValue, (0...Amount.maxMilli).contains(l) else {
                        throw .malformed("limit must be 0 or more milliCHIPs")
                    }
                }
            }
            return try Certificate(json: cert)
        }
        let stock = try side("stock"), foil = try side("foil")
        self.json = json
        self.uuid = uuid
        self.revision = revision
        self.stockCert = stock
        self.foilCert = foil
    }

    public func cert(_ side: TallySide) -> Certificate { side == .stock ? stockCert : foilCert }
    public func certJSON(_ side: TallySide) -> JSONValue? { json[side.rawValue]?["cert"] }

    /// The credit limit a side's terms grant (0 when none is given).
    public func limit(_ side: TallySide) -> Int64 { json[side.rawValue]?["terms"]?["limit"]?.integerValue ?? 0 }

    public var canonicalBytes: [UInt8] { json.canonicalBytes }

    /// base64url SHA-256 of the canonical core.
    public var hash: String { Base64URL.encode(Crypto.sha256(canonicalBytes)) }

    /// The signature of this core by a user's key, base64url.
    public func sign(with key: SigningKey) -> String { Base64URL.encode(key.sign(canonicalBytes)) }

    /// Whether `signature` is the signature of this core by the user of `side`.
    public func verify(_ signature: String?, by side: TallySide) -> Bool {
        guard let signature, let sig = Base64URL.decode(signature) else { return false }
        return Ed25519.verify(signature: sig, message: canonicalBytes, publicKey: cert(side).publicKey)
    }

    public static func isUUID(_ s: String) -> Bool {
        let b = Array(s.utf8)
        guard b.count == 36 else { return false }
        for (i, c) in b.enumerated() {
            if [8, 13, 18, 23].contains(i) {
                if c != UInt8(ascii: "-") { return false }
            } else if !((0x30...0x39).contains(c) || (0x61...0x66).contains(c)) {
                return false
            }
        }
        return true
    }

    /// A random (version 4) UUID in lowercase.
    public static func newUUID() -> String {
        var b = Crypto.randomBytes(16)
        b[6] = b[6] & 0x0F | 0x40
        b[8] = b[8] & 0x3F | 0x80
        let h = Hex.encode(b)
        let c = Array(h)
        return String(c[0..<8]) + "-" + String(c[8..<12]) + "-" + String(c[12..<16]) + "-" + String(c[16..<20]) + "-" + String(c[20..<32])
    }
}

/// The `sign` member of tally messages.
public struct TallySignatures: Sendable, Equatable {
    public var stock: String?
    public var foil: String?
    public var hash: String

    public init(stock: String?, foil: String?, hash: String) {
        self.stock = stock
        self.foil = foil
        self.hash = hash
    }

    public subscript(side: TallySide) -> String? {
        get { side == .stock ? stock : foil }
        set { if side == .stock { stock = newValue } else { foil = newValue } }
    }

    public var json: JSONValue {
        var o: [String: JSONValue] = ["hash": .string(hash)]
        if let stock { o["stock"] = .string(stock) }
        if let foil { o["foil"] = .string(foil) }
        return .object(o)
    }

    public init(json: JSONValue) throws(ModelError) {
        guard let o = json.objectValue, Set(o.keys).isSubset(of: ["stock", "foil", "hash"]), let hash = o["hash"]?.stringValue,
            Base64URL.isDigest(hash)
        else {
            throw .malformed("tally sign must be {stock?, foil?, hash}")
        }
        func text(_ k: String) throws(ModelError) -> String? {
            guard let v = o[k] else { return nil }
            guard let s = v.stringValue, s.utf8.count <= 100 else { throw .malformed("tally signature must be a string") }
            return s
        }
        self.init(stock: try text("stock"), foil: try text("foil"), hash: hash)
    }
}

/// A tally message object: the core plus `sign`.
public enum TallyObject {
    public static func make(_ core: TallyCore, _ sign: TallySignatures) -> JSONValue {
        var o = core.json.objectValue ?? [:]
        o["sign"] = sign.json
        return .object(o)
    }

    /// Splits an object into its core and signatures; the hash must match.
    public static func parse(_ object: JSONValue) throws(ModelError) -> (TallyCore, TallySignatures) {
        guard var o = object.objectValue, let signJSON = o.removeValue(forKey: "sign") else {
            throw .malformed("tally object without sign")
        }
        let core = try TallyCore(json: .object(o))
        let sign = try TallySignatures(json: signJSON)
        guard sign.hash == core.hash else { throw .invalid("tally hash does not match its core") }
        return (core, sign)
    }
}
