/// The user port's limits and defaults (protocol section 10.1 unless noted),
/// written once: the channel machine, the command layer and the edge read
/// them here, as the peer port reads `PeerDefaults`.
public enum UserPortDefaults {
    /// The user port is the peer port + 1 unless `user.port` says otherwise (65431).
    public static let portOffset = 1
    public static let defaultPort = SiteAddress.defaultPort + portOffset
    /// Seconds a handshake may take from the first byte.
    public static let handshakeTimeout = 10.0
    /// Seconds without a received frame before the site closes a session.
    public static let idleTimeout = 300.0
    /// Failed registrations one source address may make per window.
    public static let failedRegistrationsPerWindow = 5
    public static let failedRegistrationWindow = 60.0
    /// Sessions open at once and devices registered, per user.
    public static let maxSessionsPerUser = 8
    public static let maxDevicesPerUser = 16
    /// Requests one session may have in flight; more are `rate_limited`.
    public static let maxRequestsInFlight = 32
    /// Events kept for replay (10.5), in days.
    public static let eventRetentionDays = 30
    /// How long an `idem` key is kept (10.5), in hours.
    public static let idemRetentionHours = 24
    /// A subscribed device pings at least this often (10.5), in seconds.
    public static let pingInterval = 240.0
    /// A signed object's `date` must be within this of the site's clock (10.7), in seconds.
    public static let clockSkew: Int64 = 300
    /// Deepest JSON in a request (section 7's parser, 10.5).
    public static let maxJSONDepth = 32
}

/// A device's id (10.1): base64url, no padding, of its 32-byte X25519
/// public key (the Noise static key it proves in every handshake).
public struct DeviceID: Sendable, Hashable, CustomStringConvertible {
    public static let textLength = 43
    public let publicKey: [UInt8]

    public init(publicKey: [UInt8]) throws(ModelError) {
        guard publicKey.count == 32 else { throw .invalid("a device key must be 32 bytes") }
        self.publicKey = publicKey
    }

    public init(_ text: String) throws(ModelError) {
        guard text.utf8.count == Self.textLength, let key = Base64URL.decode(text), key.count == 32,
            Base64URL.encode(key) == text
        else { throw .invalid("not a device id (43 base64url characters): \(Printable.clip(text))") }
        self.publicKey = key
    }

    public var description: String { Base64URL.encode(publicKey) }
}

/// What a device may do (10.5). A ticket names the scopes its device gets
/// (default all).
public enum UserScope: String, Sendable, CaseIterable, Comparable {
    case read, request, pay, tally, devices

    public static func < (a: UserScope, b: UserScope) -> Bool {
        allCases.firstIndex(of: a) ?? 0 < allCases.firstIndex(of: b) ?? 0
    }

    /// Reads a list of scope names (JSON strings or `--scopes a,b`): no
    /// unknown name, no repeat, at least one.
    public static func parse(_ names: [String]) throws(ModelError) -> Set<UserScope> {
        var out = Set<UserScope>()
        guard !names.isEmpty else { throw .invalid("give at least one scope") }
        for name in names {
            guard let s = UserScope(rawValue: name) else {
                throw .invalid("unknown scope \(Printable.quote(name)): use read, request, pay, tally, devices")
            }
            guard out.insert(s).inserted else { throw .invalid("scope \(name) given twice") }
        }
        return out
    }

    /// Scopes in their canonical order, as JSON strings.
    public static func json(_ scopes: Set<UserScope>) -> JSONValue {
        .array(scopes.sorted().map { .string($0.rawValue) })
    }
}

/// Who holds a user's signing key (10.7).
public enum UserCustody: String, Sendable, CaseIterable {
    case site, device
}

/// One JSON document from the user port, read with section 7's strict
/// parser (10.5): invalid JSON, a duplicate key, nesting beyond 32 or a
/// non-object throws (the session closes). A float or an integer beyond
/// ±(2^53 − 1) is valid JSON that the protocol refuses with `bad_request`
/// rather than a close, so such a number is read as 0 and flagged.
public struct UserMessage: Sendable, Equatable {
    public let json: JSONValue
    /// A float or an out-of-range integer was read (as 0): the request is `bad_request`.
    public let hasBadNumber: Bool

    public init(json: JSONValue, hasBadNumber: Bool = false) {
        self.json = json
        self.hasBadNumber = hasBadNumber
    }

    public init(parsing bytes: [UInt8], maxBytes: Int = 65519) throws(ModelError) {
        guard bytes.count <= maxBytes else { throw .malformed("message is larger than \(maxBytes) bytes") }
        let (scrubbed, bad) = Self.scrubNumbers(bytes)
        let value = try JSONValue(parsing: scrubbed, limits: JSONLimits(maxDepth: UserPortDefaults.maxJSONDepth, maxBytes: maxBytes * 2))
        guard value.objectValue != nil else { throw .malformed("a message must be a JSON object") }
        self.json = value
        self.hasBadNumber = bad
    }

    /// Replaces every well-formed JSON number outside strings that is not an
    /// integer within ±(2^53 − 1) by `0`. Anything else is copied, so the
    /// strict parser still sees (and refuses) what is malformed.
    static func scrubNumbers(_ bytes: [UInt8]) -> ([UInt8], Bool) {
        var out = [UInt8]()
        out.reserveCapacity(bytes.count)
        var bad = false
        var i = 0
        let n = bytes.count
        func digit(_ j: Int) -> Bool { j < n && bytes[j] >= 0x30 && bytes[j] <= 0x39 }
        while i < n {
            let c = bytes[i]
            if c == UInt8(ascii: "\"") {
                // Copy the string, escapes included, to its closing quote.
                out.append(c)
                i += 1
                while i < n {
                    let s = bytes[i]
                    out.append(s)
                    i += 1
                    if s == UInt8(ascii: "\\"), i < n { out.append(bytes[i]); i += 1 } else if s == UInt8(ascii: "\"") { break }
                }
                continue
            }
            guard c == UInt8(ascii: "-") || digit(i) else { out.append(c); i += 1; continue }
            // -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
            let start = i
            var j = i
            if bytes[j] == UInt8(ascii: "-") { j += 1 }
            var intDigits = 0
            while digit(j) { j += 1; intDigits += 1 }
            var wellFormed = intDigits > 0 && !(intDigits > 1 && bytes[j - intDigits] == UInt8(ascii: "0"))
            var isInteger = true
            if wellFormed, j < n, bytes[j] == UInt8(ascii: ".") {
                isInteger = false
                j += 1
                var f = 0
                while digit(j) { j += 1; f += 1 }
                if f == 0 { wellFormed = false }
            }
            if wellFormed, j < n, bytes[j] == UInt8(ascii: "e") || bytes[j] == UInt8(ascii: "E") {
                isInteger = false
                j += 1
                if j < n, bytes[j] == UInt8(ascii: "+") || bytes[j] == UInt8(ascii: "-") { j += 1 }
                var e = 0
                while digit(j) { j += 1; e += 1 }
                if e == 0 { wellFormed = false }
            }
            var outOfRange = false
            if wellFormed, isInteger {
                // More than 16 digits is always beyond 2^53 - 1 (16 digits).
                if intDigits > 16 {
                    outOfRange = true
                } else {
                    var v: Int64 = 0
                    for k in (j - intDigits)..<j { v = v * 10 + Int64(bytes[k] - 0x30) }
                    outOfRange = v > JSONLimits.maxSafeInteger
                }
            }
            if wellFormed, !isInteger || outOfRange {
                bad = true
                out.append(UInt8(ascii: "0"))
            } else {
                out.append(contentsOf: bytes[start..<j])
            }
            i = j
        }
        return (out, bad)
    }
}
