import ChipModel

/// A setting kept in the site file's `config` table. Every key has a
/// documented default and a validator, so a bad value never reaches the file.
public struct ConfigKey: Sendable, Hashable {
    public let name: String
    public let summary: String
    public let validate: @Sendable (String) throws(ModelError) -> Void

    public static func == (a: ConfigKey, b: ConfigKey) -> Bool { a.name == b.name }
    public func hash(into h: inout Hasher) { h.combine(name) }

    /// The host name partners use to reach this site (part of every CHAD).
    public static let siteHost = ConfigKey(name: "site.host", summary: "host name partners dial to reach this site") { v throws(ModelError) in
        try SiteAddress.validate(host: v)
    }

    /// The TCP port of the peer server (default 65430).
    public static let sitePort = ConfigKey(name: "site.port", summary: "TCP port of the peer server (default 65430)") { v throws(ModelError) in
        guard let p = Int(v), (1...65535).contains(p) else { throw .invalid("site.port must be 1-65535") }
    }

    static func number(_ name: String, _ summary: String, _ range: ClosedRange<Double>) -> ConfigKey {
        ConfigKey(name: name, summary: summary) { v throws(ModelError) in
            guard let d = Double(v), d.isFinite, range.contains(d) else {
                throw .invalid("\(name) must be a number from \(range.lowerBound) to \(range.upperBound)")
            }
        }
    }

    public static let peerMaxFrame = number("peer.max_frame", "largest frame accepted, bytes (default 65536)", 17...65536)
    public static let peerHandshakeTimeout = number("peer.handshake_timeout", "seconds a handshake may take (default 10)", 0.1...300)
    public static let peerIdleTimeout = number("peer.idle_timeout", "seconds without a frame before a responder closes (default 60)", 1...86400)
    public static let peerMaxConnections = number("peer.max_connections", "connections open at once (default 1024)", 1...1_000_000)
    public static let peerHandshakeRate = number("peer.handshake_rate", "handshakes per second per source address (default 20)", 0.01...100_000)
    public static let peerHandshakeBurst = number("peer.handshake_burst", "handshake burst per source address (default 5)", 1...100_000)
    public static let peerMaxQueuedBytes = number("peer.max_queued_bytes", "bytes queued to one peer (default 1048576)", 65536...1_073_741_824)

    public static let all: [ConfigKey] = [
        .siteHost, .sitePort, .peerMaxFrame, .peerHandshakeTimeout, .peerIdleTimeout, .peerMaxConnections,
        .peerHandshakeRate, .peerHandshakeBurst, .peerMaxQueuedBytes,
    ]

    public static func named(_ name: String) -> ConfigKey? { all.first { $0.name == name } }
}
