/// A tally ticket as it is handed over out of band (protocol section 6):
/// JSON `{"invite":{"token":…,"expires":…,"chad":CHAD}}` or the link
/// `https://mychips.org/invite?token=…&chad=<percent-encoded JSON CHAD>`.
public struct TallyTicket: Sendable, Equatable {
    public static let linkPrefix = "https://mychips.org/invite?"
    /// Longest ticket text accepted (JSON or link).
    public static let maxTextBytes = 4096
    public static let tokenLength = 32
    /// The longest a ticket may stay valid (`--expires`, `ticket.expires`).
    public static let maxLifetimeSeconds: Int64 = 365 * 86400

    /// Checks a ticket lifetime in seconds against `maxLifetimeSeconds`.
    public static func validate(lifetime seconds: Int64, what: String) throws(ModelError) {
        guard seconds <= maxLifetimeSeconds else { throw .invalid("\(what) must be at most 365d") }
    }

    public let token: String
    public let expires: String
    public let chad: CHAD

    public init(token: String, expires: String, chad: CHAD) throws(ModelError) {
        try Self.validate(token: token)
        guard Timestamp.parse(expires) != nil else { throw .malformed("ticket expiry is not a timestamp") }
        self.token = token
        self.expires = expires
        self.chad = chad
    }

    /// 32 lowercase hex digits (128 bits).
    public static func validate(token: String) throws(ModelError) {
        guard Hex.isLowercase(token, count: tokenLength) else { throw .malformed("a ticket token is 32 lowercase hex digits") }
    }

    public var json: JSONValue {
        ["invite": ["token": .string(token), "expires": .string(expires), "chad": chad.json]]
    }

    public var link: String {
        "\(Self.linkPrefix)token=\(token)&chad=\(PercentEncoding.encode(chad.json.canonicalString))"
    }

    /// Reads a ticket from its JSON or link form (surrounding whitespace allowed).
    public init(parsing text: String) throws(ModelError) {
        guard text.utf8.count <= Self.maxTextBytes else { throw .malformed("ticket text is too long") }
        var s = Substring(text)
        while let f = s.first, f.isWhitespace { s.removeFirst() }
        while let l = s.last, l.isWhitespace { s.removeLast() }
        if s.hasPrefix("{") {
            let value = try JSONValue(parsing: String(s), limits: JSONLimits(maxDepth: 8, maxBytes: Self.maxTextBytes))
            guard let invite = value["invite"], value.objectValue?.count == 1 else { throw .malformed("ticket JSON must be {\"invite\":{…}}") }
            guard let token = invite["token"]?.stringValue, let expires = invite["expires"]?.stringValue, let chad = invite["chad"] else {
                throw .malformed("ticket needs token, expires and chad")
            }
            try self.init(token: token, expires: expires, chad: try CHAD(json: chad))
        } else if s.hasPrefix(Self.linkPrefix) {
            var token: String?, chadText: String?
            // A #fragment is not part of the query; empty pairs ("&&", a
            // trailing "&") are skipped; names are percent-decoded like values.
            let query = s.dropFirst(Self.linkPrefix.count).prefix { $0 != "#" }
            for pair in query.split(separator: "&", omittingEmptySubsequences: true) {
                let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                guard parts.count == 2 else { throw .malformed("bad query in ticket link") }
                guard let name = PercentEncoding.decode(String(parts[0])), let value = PercentEncoding.decode(String(parts[1])) else {
                    throw .malformed("bad percent-encoding in ticket link")
                }
                switch name {
                case "token": guard token == nil else { throw .malformed("token twice in ticket link") }; token = value
                case "chad": guard chadText == nil else { throw .malformed("chad twice in ticket link") }; chadText = value
                default: continue
                }
            }
            guard let token, let chadText else { throw .malformed("ticket link needs token and chad") }
            let chad = try CHAD(json: try JSONValue(parsing: chadText, limits: JSONLimits(maxDepth: 4, maxBytes: 1024)))
            // The link form carries no expiry; the issuing site checks it.
            try self.init(token: token, expires: "9999-12-31T23:59:59.999Z", chad: chad)
        } else {
            throw .malformed("not a ticket: give its JSON, its link, or @FILE")
        }
    }
}

/// RFC 3986 percent-encoding: everything but unreserved characters is encoded.
public enum PercentEncoding {
    public static func encode(_ text: String) -> String {
        var out = ""
        for byte in text.utf8 {
            switch byte {
            case 0x30...0x39, 0x41...0x5A, 0x61...0x7A, UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
                out.unicodeScalars.append(Unicode.Scalar(byte))
            default:
                out += "%" + Hex.encode([byte]).uppercased()
            }
        }
        return out
    }

    /// Nil for a broken escape or bytes that are not UTF-8.
    public static func decode(_ text: String) -> String? {
        var bytes = [UInt8]()
        var it = Array(text.utf8)[...]
        while let c = it.first {
            it = it.dropFirst()
            if c == UInt8(ascii: "%") {
                guard it.count >= 2, let b = Hex.decode(String(decoding: it.prefix(2), as: UTF8.self)) else { return nil }
                bytes += b
                it = it.dropFirst(2)
            } else {
                bytes.append(c)
            }
        }
        return String(validating: bytes, as: UTF8.self)
    }
}
