/// A user ticket (protocol section 10.2) as it is handed to a device: JSON
/// `{"ticket":{"host","port","agent","user"?,"token","expires"}}` or the link
/// `https://mychips.org/ticket?host=H&port=P&agent=A&user=U&token=T`.
///
/// The token is a one-time secret: the site keeps only `tokenHash(token)`.
/// The link form carries no expiry (`expires` is nil); the site checks it.
public struct UserTicket: Sendable, Equatable {
    public static let linkPrefix = "https://mychips.org/ticket?"
    /// Longest ticket text accepted (JSON or link).
    public static let maxTextBytes = 2048
    public static let tokenLength = 32
    /// Lifetime of a ticket: 24 h unless asked, at most 7 days (10.2).
    public static let defaultLifetimeSeconds: Int64 = 24 * 3600
    public static let maxLifetimeSeconds: Int64 = 7 * 86400
    static let fields: Set<String> = ["host", "port", "agent", "user", "token", "expires"]

    /// Where the site's user port listens.
    public let address: SiteAddress
    /// The site's agent id: the device checks the site's Noise static key against it.
    public let agent: AgentID
    /// Informative only: the token names the user (10.2).
    public let user: CUID?
    public let token: String
    /// Nil when read from a link.
    public let expires: String?

    public init(address: SiteAddress, agent: AgentID, user: CUID?, token: String, expires: String?) throws(ModelError) {
        try Self.validate(token: token)
        if let expires { guard Timestamp.parse(expires) != nil else { throw .malformed("ticket expiry is not a timestamp") } }
        self.address = address
        self.agent = agent
        self.user = user
        self.token = token
        self.expires = expires
    }

    /// 32 lowercase hex digits (128 bits).
    public static func validate(token: String) throws(ModelError) {
        guard Hex.isLowercase(token, count: tokenLength) else { throw .malformed("a user ticket token is 32 lowercase hex digits") }
    }

    /// A fresh token: 128 random bits in lowercase hex.
    public static func newToken() -> String { Hex.encode(Crypto.randomBytes(16)) }

    /// The form the site stores (10.2): lowercase hex SHA-256 of the
    /// token's 32 ASCII characters. Compare stored hashes, never tokens.
    public static func tokenHash(_ token: String) -> String { Hex.encode(Crypto.sha256(Array(token.utf8))) }

    /// Checks a lifetime in seconds: more than 0, at most 7 days.
    public static func validate(lifetime seconds: Int64) throws(ModelError) {
        guard seconds > 0, seconds <= maxLifetimeSeconds else { throw .invalid("a user ticket lasts at most 7d") }
    }

    /// The expiry of a ticket issued at `now` (ms since 1970) for `lifetime`
    /// seconds (default 24 h).
    public static func expiry(now: Int64, lifetime: Int64? = nil) throws(ModelError) -> String {
        let seconds = lifetime ?? defaultLifetimeSeconds
        try validate(lifetime: seconds)
        return Timestamp.format(millisecondsSince1970: now + seconds * 1000)
    }

    /// Whether the ticket has expired at `now` (ms since 1970); a link's ticket never says.
    public func isExpired(now: Int64) -> Bool {
        guard let expires, let at = Timestamp.parse(expires) else { return false }
        return at <= now
    }

    public var json: JSONValue {
        var o: [String: JSONValue] = [
            "host": .string(address.host), "port": .integer(Int64(address.port)),
            "agent": .string(agent.description), "token": .string(token)
        ]
        if let user { o["user"] = .string(user.value) }
        if let expires { o["expires"] = .string(expires) }
        return ["ticket": .object(o)]
    }

    /// The link form; parameters in the order of 10.2, each percent-encoded.
    public var link: String {
        var pairs = [("host", address.host), ("port", String(address.port)), ("agent", agent.description)]
        if let user { pairs.append(("user", user.value)) }
        pairs.append(("token", token))
        return Self.linkPrefix + pairs.map { "\($0.0)=\(PercentEncoding.encode($0.1))" }.joined(separator: "&")
    }

    /// Reads a ticket from its JSON or link form (surrounding whitespace
    /// allowed). JSON is strict (no unknown field); a link, like a tally
    /// ticket's, may carry a #fragment, empty pairs and unknown parameters.
    public init(parsing text: String) throws(ModelError) {
        guard text.utf8.count <= Self.maxTextBytes else { throw .malformed("ticket text is too long") }
        var s = Substring(text)
        while let f = s.first, f.isWhitespace { s.removeFirst() }
        while let l = s.last, l.isWhitespace { s.removeLast() }
        if s.hasPrefix("{") {
            let value = try JSONValue(parsing: String(s), limits: JSONLimits(maxDepth: 4, maxBytes: Self.maxTextBytes))
            try self.init(json: value)
        } else if s.hasPrefix(Self.linkPrefix) {
            var found: [String: String] = [:]
            let query = s.dropFirst(Self.linkPrefix.count).prefix { $0 != "#" }
            for pair in query.split(separator: "&", omittingEmptySubsequences: true) {
                let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                guard parts.count == 2 else { throw .malformed("bad query in ticket link") }
                guard let name = PercentEncoding.decode(String(parts[0])), let value = PercentEncoding.decode(String(parts[1])) else {
                    throw .malformed("bad percent-encoding in ticket link")
                }
                guard ["host", "port", "agent", "user", "token"].contains(name) else { continue }
                guard found.updateValue(value, forKey: name) == nil else { throw .malformed("\(name) twice in ticket link") }
            }
            guard let host = found["host"], let portText = found["port"], let agent = found["agent"], let token = found["token"] else {
                throw .malformed("ticket link needs host, port, agent and token")
            }
            guard !portText.isEmpty, portText.utf8.count <= 5, portText.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
                let port = Int(portText)
            else { throw .malformed("bad port in ticket link") }
            var user: CUID?
            if let u = found["user"] { user = try CUID(u) }
            try self.init(address: try SiteAddress(host: host, port: port), agent: try AgentID(agent), user: user, token: token, expires: nil)
        } else {
            throw .malformed("not a user ticket: give its JSON, its link, or @FILE")
        }
    }

    /// Reads the JSON form `{"ticket":{…}}`: every field checked, none unknown.
    public init(json value: JSONValue) throws(ModelError) {
        guard let o = value.objectValue, o.count == 1, let t = o["ticket"]?.objectValue else {
            throw .malformed("user ticket JSON must be {\"ticket\":{…}}")
        }
        guard Set(t.keys).isSubset(of: Self.fields) else { throw .malformed("unknown field in user ticket") }
        guard let host = t["host"]?.stringValue, let port = t["port"]?.integerValue, let agent = t["agent"]?.stringValue,
            let token = t["token"]?.stringValue, let expires = t["expires"]?.stringValue
        else { throw .malformed("user ticket needs host, port, agent, token and expires") }
        var user: CUID?
        if let u = t["user"] {
            guard let text = u.stringValue else { throw .malformed("user ticket user must be a string") }
            user = try CUID(text)
        }
        guard let p = Int(exactly: port) else { throw .malformed("bad port in user ticket") }
        try self.init(address: try SiteAddress(host: host, port: p), agent: try AgentID(agent), user: user, token: token, expires: expires)
    }
}
