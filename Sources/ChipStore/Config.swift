import ChipModel
import ChipProtocol

/// A setting kept in the site file's `config` table. Every key has a
/// documented default and a validator, so a bad value never reaches the file.
public struct ConfigKey: Sendable, Hashable {
    public let name: String
    public let summary: String
    /// The value used while the key is not set; nil when the key has no
    /// default (it is set when the site is created, like `site.host`).
    public let defaultValue: String?
    /// The accepted values in words, for `config list` and doc/configuration.md.
    public let range: String
    public let validate: @Sendable (String) throws(ModelError) -> Void

    public init(
        name: String, summary: String, defaultValue: String? = nil, range: String,
        validate: @escaping @Sendable (String) throws(ModelError) -> Void
    ) {
        self.name = name
        self.summary = summary
        self.defaultValue = defaultValue
        self.range = range
        self.validate = validate
    }

    public static func == (a: ConfigKey, b: ConfigKey) -> Bool { a.name == b.name }
    public func hash(into h: inout Hasher) { h.combine(name) }

    /// The host name partners use to reach this site (part of every CHAD).
    public static let siteHost = ConfigKey(
        name: "site.host", summary: "host name partners dial to reach this site",
        range: "a DNS name or IP address, at most 253 characters (set by init)"
    ) { v throws(ModelError) in
        try SiteAddress.validate(host: v)
    }

    /// The TCP port of the peer server (default 65430).
    public static let sitePort = ConfigKey(
        name: "site.port", summary: "TCP port of the peer server (default 65430)",
        defaultValue: String(SiteAddress.defaultPort), range: "1-65535"
    ) { v throws(ModelError) in
        guard let p = Int(v), SiteAddress.portRange.contains(p) else { throw .invalid("site.port must be 1-65535") }
    }

    /// The user port (protocol 10.1); unset, it is the peer port + 1.
    public static let userPort = ConfigKey(
        name: "user.port", summary: "TCP port where users' devices connect (default site.port + 1)",
        defaultValue: "site.port + 1", range: "1-65535"
    ) { v throws(ModelError) in
        guard let p = Int(v), SiteAddress.portRange.contains(p) else { throw .invalid("user.port must be 1-65535") }
    }

    /// A numeric setting; its summary ends with the default, as every summary does.
    static func number(_ name: String, _ summary: String, _ range: ClosedRange<Double>, default value: some Numeric & LosslessStringConvertible)
        -> ConfigKey
    {
        let text = Self.plain(Double(String(value)) ?? 0)
        return ConfigKey(
            name: name, summary: "\(summary) (default \(text))", defaultValue: text,
            range: "\(Self.plain(range.lowerBound)) to \(Self.plain(range.upperBound))"
        ) { v throws(ModelError) in
            guard let d = Double(v), d.isFinite, range.contains(d) else {
                throw .invalid("\(name) must be a number from \(range.lowerBound) to \(range.upperBound)")
            }
        }
    }

    public static let peerMaxFrame = number(
        "peer.max_frame", "largest frame accepted, bytes", 17...65536,
        default: PeerDefaults.maxFrame)
    public static let peerHandshakeTimeout = number(
        "peer.handshake_timeout", "seconds a handshake may take", 0.1...300,
        default: PeerDefaults.handshakeTimeout)
    public static let peerIdleTimeout = number(
        "peer.idle_timeout", "seconds without a frame before a responder closes", 1...86400,
        default: PeerDefaults.idleTimeout)
    public static let peerMaxConnections = number(
        "peer.max_connections", "connections open at once", 1...1_000_000,
        default: PeerDefaults.maxConnections)
    public static let peerHandshakeRate = number(
        "peer.handshake_rate", "handshakes per second per source address", 0.01...100_000,
        default: PeerDefaults.handshakeRate)
    public static let peerHandshakeBurst = number(
        "peer.handshake_burst", "handshake burst per source address", 1...100_000,
        default: PeerDefaults.handshakeBurst)
    public static let peerMaxQueuedBytes = number(
        "peer.max_queued_bytes", "bytes queued to one peer", 65536...1_073_741_824,
        default: PeerDefaults.maxQueuedBytes)

    /// `site.lockdown`: `on` refuses new peer handshakes and CLI actions that move value.
    public static let siteLockdown = ConfigKey(
        name: "site.lockdown", summary: "on: refuse new peer handshakes and actions that move value",
        defaultValue: "off", range: "on or off"
    ) { v throws(ModelError) in
        guard v == "on" || v == "off" else { throw .invalid("site.lockdown must be on or off") }
    }

    /// `ticket.expires`: how long a tally ticket is valid when `ticket tally`
    /// is given no `--expires`.
    public static let ticketExpires = ConfigKey(
        name: "ticket.expires", summary: "default validity of a tally ticket (default 48h)",
        defaultValue: "48h", range: "a duration: 90s, 30m, 48h, 7d (at most 365d)"
    ) { v throws(ModelError) in
        try TallyTicket.validate(lifetime: DurationText.seconds(v), what: "ticket.expires")
    }

    /// A whole number of seconds; its summary ends with the default.
    static func seconds(_ name: String, _ summary: String, _ range: ClosedRange<Int64>, default value: Int64) -> ConfigKey {
        ConfigKey(
            name: name, summary: "\(summary) (default \(value))", defaultValue: String(value),
            range: "\(range.lowerBound) to \(range.upperBound), whole seconds"
        ) { v throws(ModelError) in
            guard v.utf8.count <= 12, v.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }), let n = Int64(v), range.contains(n) else {
                throw .invalid("\(name) must be a whole number from \(range.lowerBound) to \(range.upperBound)")
            }
        }
    }

    // MARK: Lifts (protocol section 9)

    /// `lift.interval`: seconds between looks for circular lifts; 0: none are started automatically.
    public static let liftInterval = seconds(
        "lift.interval", "seconds between looks for circular lifts, 0: none", 0...LiftSettings.maxInterval,
        default: LiftSettings.defaultInterval)

    /// `lift.referee`: whether this site acts as a referee (9.8).
    public static let liftReferee = ConfigKey(
        name: "lift.referee", summary: "on: act as a referee for lifts (default on)", defaultValue: "on", range: "on or off"
    ) { v throws(ModelError) in
        guard v == "on" || v == "off" else { throw .invalid("lift.referee must be on or off") }
    }

    /// `lift.referees`: the referees this site accepts (9.8).
    public static let liftReferees = ConfigKey(
        name: "lift.referees", summary: "referees accepted in lifts (default any)", defaultValue: "any",
        range: "partners, any, none, or a comma-separated list of AGENT@HOST:PORT (at most \(RefereePolicy.maxListed))"
    ) { v throws(ModelError) in
        _ = try RefereePolicy(text: v)
    }

    /// `lift.life`: seconds from a lift's date to its deadline when this site starts it.
    public static let liftLife = seconds(
        "lift.life", "seconds a lift this site starts may take (date to deadline)", LiftSettings.lifeRange,
        default: LiftSettings.defaultLife)

    /// `lift.min`: the smallest lift this site starts, in CHIPs.
    public static let liftMin = ConfigKey(
        name: "lift.min", summary: "smallest lift this site starts, CHIPs (default \(Amount.format(LiftSettings.defaultMin)))",
        defaultValue: Amount.format(LiftSettings.defaultMin), range: "0.001 to 10^12 CHIPs, up to 3 decimals"
    ) { v throws(ModelError) in
        guard (try? Amount.parse(v)).map({ $0 > 0 }) == true else {
            throw .invalid("lift.min must be an amount of CHIPs more than 0 with up to 3 decimals, e.g. 1 or 0.5")
        }
    }

    /// A number without a needless ".0".
    static func plain(_ d: Double) -> String {
        d == d.rounded() && abs(d) < 1e15 ? String(Int64(d)) : String(d)
    }

    public static let all: [ConfigKey] = [
        .siteHost, .sitePort, .siteLockdown, .peerMaxFrame, .peerHandshakeTimeout, .peerIdleTimeout, .peerMaxConnections,
        .peerHandshakeRate, .peerHandshakeBurst, .peerMaxQueuedBytes, .ticketExpires, .liftInterval, .liftReferee, .liftReferees,
        .liftLife, .liftMin, .userPort
    ]

    public static func named(_ name: String) -> ConfigKey? { all.first { $0.name == name } }
}
