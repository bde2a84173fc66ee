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

    public static let all: [ConfigKey] = [.siteHost, .sitePort]

    public static func named(_ name: String) -> ConfigKey? { all.first { $0.name == name } }
}
