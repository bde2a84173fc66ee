/// The JWK a certificate carries for a user's Ed25519 key (protocol section 1).
public enum UserKeyJWK {
    public static func json(publicKey: [UInt8]) -> JSONValue {
        ["kty": "OKP", "crv": "Ed25519", "x": .string(Base64URL.encode(publicKey))]
    }

    /// The 32-byte public key of a JWK, or an error for any other key type.
    public static func publicKey(from jwk: JSONValue) throws(ModelError) -> [UInt8] {
        // JSONValue == compares bytes (a String == would take "O\u{212A}P" for "OKP").
        guard jwk["kty"] == "OKP", jwk["crv"] == "Ed25519",
            let x = jwk["x"]?.stringValue, let key = Base64URL.decode(x), key.count == Ed25519.publicKeyLength
        else { throw .malformed("certificate key must be an Ed25519 JWK") }
        return key
    }
}

/// Whether a certificate names a person or an organisation.
public enum EntityType: String, Sendable, CaseIterable {
    case person = "p"
    case organization = "o"
}

/// A user's certificate (protocol section 5):
/// `{"chad":CHAD,"type":"p"|"o","name":…,"public":JWK,"date":…}` plus optional
/// `connect` (contact media). It is what a partner learns about a user.
public struct Certificate: Sendable, Hashable {
    public static let maxNameLength = 200
    public static let maxEmailLength = 254

    public var chad: CHAD
    public var type: EntityType
    public var name: String
    public var email: String?
    public var publicKey: [UInt8]
    public var date: String

    public init(chad: CHAD, type: EntityType, name: String, email: String?, publicKey: [UInt8], date: String) throws(ModelError) {
        try Self.validate(name: name)
        if let email { try Self.validate(email: email) }
        guard publicKey.count == Ed25519.publicKeyLength else { throw .invalid("a user key must be 32 bytes") }
        self.chad = chad
        self.type = type
        self.name = name
        self.email = email
        self.publicKey = publicKey
        self.date = date
    }

    public static func validate(name: String) throws(ModelError) {
        let trimmed = name.trimmingSpaces
        guard !trimmed.isEmpty, name.count <= maxNameLength,
            !name.unicodeScalars.contains(where: { $0.properties.generalCategory == .control })
        else { throw .invalid("a name must be 1-\(maxNameLength) characters without control characters") }
    }

    public static func validate(email: String) throws(ModelError) {
        let parts = email.split(separator: "@", omittingEmptySubsequences: false)
        guard email.utf8.count <= maxEmailLength, parts.count == 2, !parts[0].isEmpty, parts[1].contains("."),
            !email.unicodeScalars.contains(where: { $0.properties.isWhitespace || $0.properties.generalCategory == .control })
        else { throw .invalid("invalid email address \(Printable.quote(email))") }
    }

    public var json: JSONValue {
        var o: [String: JSONValue] = [
            "chad": chad.json, "type": .string(type.rawValue), "name": .string(name),
            "public": UserKeyJWK.json(publicKey: publicKey), "date": .string(date)
        ]
        if let email { o["connect"] = [["media": "email", "address": .string(email)]] }
        return .object(o)
    }

    /// The largest certificate accepted from outside (canonical bytes). A
    /// tally offer carries two certificates and must fit one `T` message.
    public static let maxCanonicalBytes = 8192

    /// Reads a certificate from JSON. `name` may be a string or
    /// `{"first":…,"surname":…}` (kept as "first surname").
    public init(json: JSONValue) throws(ModelError) {
        guard json.objectValue != nil else { throw .malformed("a certificate must be a JSON object") }
        guard json.canonicalBytes.count <= Self.maxCanonicalBytes else { throw .malformed("certificate too large") }
        guard let chadJSON = json["chad"] else { throw .malformed("certificate without chad") }
        let chad = try CHAD(json: chadJSON)
        guard let t = json["type"]?.stringValue, let type = EntityType(rawValue: t) else {
            throw .malformed("certificate type must be \"p\" or \"o\"")
        }
        let name: String
        switch json["name"] {
        case .string(let s)?: name = s
        case .object(let parts)?:
            name = [parts["first"]?.stringValue, parts["surname"]?.stringValue].compactMap { $0 }.joined(separator: " ")
        default: throw .malformed("certificate name must be a string or {first, surname}")
        }
        guard let jwk = json["public"] else { throw .malformed("certificate without public key") }
        guard let date = json["date"]?.stringValue else { throw .malformed("certificate without date") }
        let email = json["connect"]?.arrayValue?.first(where: { $0["media"]?.stringValue == "email" })?["address"]?.stringValue
        try self.init(chad: chad, type: type, name: name, email: email, publicKey: try UserKeyJWK.publicKey(from: jwk), date: date)
    }
}

extension String {
    var trimmingSpaces: Substring {
        var s = Substring(self)
        while let f = s.first, f.isWhitespace { s.removeFirst() }
        while let l = s.last, l.isWhitespace { s.removeLast() }
        return s
    }
}
