/// A site's agent id: base64url (no padding) of its 32-byte Ed25519 public
/// key, 43 characters (protocol section 1). An agent id *is* its key.
public struct AgentID: Sendable, Hashable, CustomStringConvertible {
    public static let textLength = 43

    /// The Ed25519 public key.
    public let publicKey: [UInt8]

    public init(publicKey: [UInt8]) throws(ModelError) {
        guard publicKey.count == Ed25519.publicKeyLength else { throw .invalid("an agent key must be 32 bytes") }
        self.publicKey = publicKey
    }

    /// Parses the text form; cheap length check first.
    public init(_ text: String) throws(ModelError) {
        guard text.utf8.count == Self.textLength, let key = Base64URL.decode(text), key.count == 32 else {
            throw .invalid("not an agent id (43 base64url characters): \(Printable.clip(text))")
        }
        self.publicKey = key
    }

    public var description: String { Base64URL.encode(publicKey) }

    /// The X25519 key the site uses as its Noise static key, or nil when the
    /// key is not a valid curve point (such an agent can never be talked to).
    public var noiseStaticKey: [UInt8]? { Ed25519.curve25519PublicKey(publicKey) }
}

/// A user's name on its site: `[A-Za-z0-9][A-Za-z0-9._-]{0,63}`.
public struct CUID: Sendable, Hashable, Comparable, CustomStringConvertible {
    public static let maxLength = 64
    public let value: String

    public init(_ text: String) throws(ModelError) {
        let bytes = Array(text.utf8)
        guard (1...Self.maxLength).contains(bytes.count), Self.isAlnum(bytes[0]),
            bytes.allSatisfy({ Self.isAlnum($0) || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: "-") })
        else {
            throw .invalid("invalid CUID \(Printable.quote(text)): use 1-64 of A-Z a-z 0-9 . _ - starting with a letter or digit")
        }
        self.value = text
    }

    private static func isAlnum(_ c: UInt8) -> Bool {
        (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A)
    }

    public var description: String { value }
    public static func < (a: CUID, b: CUID) -> Bool { a.value < b.value }
}

/// A site's network address as partners see it: host name or address, and port.
public struct SiteAddress: Sendable, Hashable, CustomStringConvertible {
    public static let defaultPort = 65430
    /// TCP ports a site may use.
    public static let portRange = 1...65535
    public static let maxHostLength = 253

    public let host: String
    public let port: Int

    public init(host: String, port: Int) throws(ModelError) {
        try Self.validate(host: host)
        guard Self.portRange.contains(port) else { throw .invalid("port must be 1-65535, not \(port)") }
        self.host = host
        self.port = port
    }

    /// Longest DNS label.
    static let maxLabelLength = 63

    /// A DNS name (labels of 1-63 letters, digits, `-` not at either end, or
    /// `_`), an IPv4 address, or an IPv6 literal (any host with a `:` must be
    /// one), so that nothing can break the CHAD text or link forms.
    public static func validate(host: String) throws(ModelError) {
        let bytes = Array(host.utf8)
        let invalid = ModelError.invalid("invalid host \(Printable.quote(host)): use a DNS name or an IP address")
        guard (1...maxHostLength).contains(bytes.count) else { throw invalid }
        if bytes.contains(UInt8(ascii: ":")) {
            guard isIPv6(bytes) else { throw invalid }
            return
        }
        for label in bytes.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false) {
            guard (1...maxLabelLength).contains(label.count), label.first != UInt8(ascii: "-"), label.last != UInt8(ascii: "-"),
                label.allSatisfy({ c in
                    (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A)
                        || c == UInt8(ascii: "-") || c == UInt8(ascii: "_")
                })
            else { throw invalid }
        }
    }

    /// An IPv6 literal (RFC 4291 text form, no zone): up to 8 groups of 1-4
    /// hex digits, at most one `::`, optionally ending in a dotted IPv4.
    static func isIPv6(_ bytes: [UInt8]) -> Bool {
        let text = String(decoding: bytes, as: UTF8.self)
        let halves = text.split(separator: "::", omittingEmptySubsequences: false)
        guard halves.count <= 2 else { return false }
        var groups = 0
        for (n, half) in halves.enumerated() where !half.isEmpty {
            let parts = half.split(separator: ":", omittingEmptySubsequences: false)
            for (i, part) in parts.enumerated() {
                if i == parts.count - 1, n == halves.count - 1, part.contains(".") {
                    let octets = part.split(separator: ".", omittingEmptySubsequences: false)
                    guard octets.count == 4, octets.allSatisfy({ $0.count <= 3 && UInt8($0) != nil }) else { return false }
                    groups += 2
                } else {
                    guard (1...4).contains(part.count), part.allSatisfy(\.isHexDigit) else { return false }
                    groups += 1
                }
            }
        }
        return halves.count == 2 ? groups <= 7 : groups == 8
    }

    /// `host:port`, with IPv6 literals in brackets.
    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

/// A CHIP address (protocol section 1): which user, at which agent, reached where.
public struct CHAD: Sendable, Hashable, CustomStringConvertible {
    public let cuid: CUID
    public let agent: AgentID
    public let address: SiteAddress

    public init(cuid: CUID, agent: AgentID, address: SiteAddress) {
        self.cuid = cuid
        self.agent = agent
        self.address = address
    }

    /// `{"cuid":…,"agent":…,"host":…,"port":…}`
    public var json: JSONValue {
        [
            "cuid": .string(cuid.value), "agent": .string(agent.description),
            "host": .string(address.host), "port": .integer(Int64(address.port))
        ]
    }

    /// Reads the JSON form; every field is checked, unknown fields are refused.
    public init(json: JSONValue) throws(ModelError) {
        guard let o = json.objectValue else { throw .malformed("a CHAD must be a JSON object") }
        guard Set(o.keys).isSubset(of: ["cuid", "agent", "host", "port"]) else { throw .malformed("unknown field in CHAD") }
        guard let cuid = o["cuid"]?.stringValue, let agent = o["agent"]?.stringValue,
            let host = o["host"]?.stringValue
        else { throw .malformed("a CHAD needs cuid, agent and host strings") }
        let port = o["port"].map { $0.integerValue } ?? Int64(SiteAddress.defaultPort)
        guard let port, let p = Int(exactly: port) else { throw .malformed("CHAD port must be an integer") }
        self.init(cuid: try CUID(cuid), agent: try AgentID(agent), address: try SiteAddress(host: host, port: p))
    }

    /// Text form `cuid:agent@host:port`.
    public var description: String { "\(cuid):\(agent)@\(address)" }

    /// Parses the text form; the port may be left out (default 65430).
    public init(text: String) throws(ModelError) {
        guard text.utf8.count <= 400, let colon = text.firstIndex(of: ":"), let at = text.firstIndex(of: "@"), colon < at
        else { throw .malformed("not a CHAD (cuid:agent@host:port): \(Printable.clip(text))") }
        let cuid = try CUID(String(text[..<colon]))
        let agent = try AgentID(String(text[text.index(after: colon)..<at]))
        var rest = Substring(text[text.index(after: at)...])
        var host: Substring
        var port = SiteAddress.defaultPort
        if rest.hasPrefix("[") {
            guard let close = rest.firstIndex(of: "]") else { throw .malformed("unclosed [ in CHAD host") }
            host = rest[rest.index(after: rest.startIndex)..<close]
            rest = rest[rest.index(after: close)...]
            if !rest.isEmpty {
                let digits = rest.dropFirst()
                guard rest.hasPrefix(":"), !digits.isEmpty, digits.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }), let p = Int(digits)
                else { throw .malformed("bad port in CHAD") }
                port = p
            }
        } else if let c = rest.lastIndex(of: ":") {
            // An IPv6 host needs brackets: "::1" must not read as host ":", port 1.
            guard rest.firstIndex(of: ":") == c else { throw .malformed("an IPv6 host in a CHAD needs brackets: [::1]:65430") }
            host = rest[..<c]
            let digits = rest[rest.index(after: c)...]
            guard !digits.isEmpty, digits.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }), let p = Int(digits) else {
                throw .malformed("bad port in CHAD")
            }
            port = p
        } else {
            host = rest
        }
        self.init(cuid: cuid, agent: agent, address: try SiteAddress(host: String(host), port: port))
    }
}

/// Helpers to put untrusted text into one-line messages safely.
public enum Printable {
    /// At most 60 characters, control characters replaced, so a hostile value
    /// cannot forge log lines or flood a terminal.
    public static func clip(_ text: String) -> String {
        var out = ""
        for scalar in text.unicodeScalars.prefix(60) {
            out.unicodeScalars.append(scalar.properties.generalCategory == .control ? "?" : scalar)
        }
        if text.unicodeScalars.count > 60 { out += "…" }
        return out
    }

    public static func quote(_ text: String) -> String { "\"\(clip(text))\"" }

    /// The whole text on one line: control characters (newlines, escape
    /// sequences) replaced, for a partner's memo or reason shown in full.
    public static func line(_ text: String) -> String {
        String(String.UnicodeScalarView(text.unicodeScalars.map { $0.properties.generalCategory == .control ? "?" : $0 }))
    }
}
