/// A pay link (issue 13, after MyCHIPs' pay request): whom to pay by a
/// linear lift, and optionally how much and why:
/// `https://mychips.org/pay?chad=<cuid>:<agent>&units=<milliCHIPs>&ref=<JSON>&memo=<text>`.
/// The payee's site is named by its agent only: a lift finds it through
/// tallies (9.4) and never dials it. The bare `<cuid>:<agent>` is a link too.
public struct PayLink: Sendable, Equatable {
    public static let base = "https://mychips.org/pay"
    /// Longest link accepted.
    public static let maxLength = 4096

    public var cuid: CUID
    public var agent: AgentID
    public var units: Int64?
    public var memo: String?
    public var ref: JSONValue?

    public init(cuid: CUID, agent: AgentID, units: Int64? = nil, memo: String? = nil, ref: JSONValue? = nil) throws(ModelError) {
        if let units, !(1...Amount.maxMilli).contains(units) { throw .invalid("a pay link's units must be 1 to \(Amount.maxMilli)") }
        if let memo, !Chit.memoFits(memo) { throw .invalid("the memo is too long") }
        if let ref, ref.canonicalBytes.count > Chit.maxRefBytes { throw .invalid("the ref is too large") }
        self.cuid = cuid
        self.agent = agent
        self.units = units
        self.memo = memo
        self.ref = ref
    }

    /// Reads a link or a bare `cuid:agent`.
    public init(text: String) throws(ModelError) {
        guard text.utf8.count <= Self.maxLength else { throw .invalid("the pay link is too long") }
        let prefix = Self.base + "?"
        guard text.hasPrefix(prefix) else {
            let (cuid, agent) = try Self.chad(text)
            try self.init(cuid: cuid, agent: agent)
            return
        }
        var fields = [String: String]()
        for pair in text.dropFirst(prefix.count).split(separator: "&", omittingEmptySubsequences: false) {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard parts.count == 2, let key = Self.decode(parts[0]), let value = Self.decode(parts[1]), fields[key] == nil else {
                throw .invalid("the pay link's query is not key=value pairs, each once")
            }
            fields[key] = value
        }
        guard Set(fields.keys).isSubset(of: ["chad", "units", "ref", "memo"]), let chad = fields["chad"] else {
            throw .invalid("a pay link has chad and optionally units, ref, memo")
        }
        let (cuid, agent) = try Self.chad(chad)
        var units: Int64?
        if let u = fields["units"] {
            guard let n = Int64(u), String(n) == u else { throw .invalid("the pay link's units are not a whole number") }
            units = n
        }
        var ref: JSONValue?
        if let r = fields["ref"] {
            do { ref = try JSONValue(parsing: Array(r.utf8)) } catch { throw .invalid("the pay link's ref is not JSON") }
        }
        try self.init(cuid: cuid, agent: agent, units: units, memo: fields["memo"], ref: ref)
    }

    static func chad(_ text: String) throws(ModelError) -> (CUID, AgentID) {
        guard let colon = text.lastIndex(of: ":") else { throw .invalid("expected CUID:AGENT or a pay link") }
        let cuid: CUID, agent: AgentID
        do {
            cuid = try CUID(String(text[..<colon]))
            agent = try AgentID(String(text[text.index(after: colon)...]))
        } catch { throw .invalid("expected CUID:AGENT or a pay link (\(error))") }
        return (cuid, agent)
    }

    /// The link's text, fields percent-encoded.
    public var text: String {
        var q = ["chad=" + Self.encode("\(cuid.value):\(agent)")]
        if let units { q.append("units=\(units)") }
        if let ref { q.append("ref=" + Self.encode(ref.canonicalString)) }
        if let memo { q.append("memo=" + Self.encode(memo)) }
        return Self.base + "?" + q.joined(separator: "&")
    }

    static func isUnreserved(_ b: UInt8) -> Bool {
        (0x30...0x39).contains(b) || (0x41...0x5a).contains(b) || (0x61...0x7a).contains(b) || b == 0x2d || b == 0x2e || b == 0x5f
            || b == 0x7e
    }

    static func encode(_ s: String) -> String {
        let hex = Array("0123456789ABCDEF".utf8)
        var out = [UInt8]()
        for b in s.utf8 {
            if isUnreserved(b) || b == 0x3a {
                out.append(b)
            } else {
                out += [0x25, hex[Int(b >> 4)], hex[Int(b & 15)]]
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    static func decode<S: StringProtocol>(_ s: S) -> String? {
        var out = [UInt8]()
        var bytes = Array(s.utf8)[...]
        while let b = bytes.popFirst() {
            if b == 0x25 {
                guard bytes.count >= 2, let v = UInt8(String(decoding: bytes.prefix(2), as: UTF8.self), radix: 16) else { return nil }
                out.append(v)
                bytes = bytes.dropFirst(2)
            } else if b == 0x2b {
                out.append(0x20)
            } else {
                out.append(b)
            }
        }
        return String(validating: out, as: UTF8.self)
    }
}
