import ChipModel

// The site's own records as plain values (beside the dialogs' records in
// Records.swift): what the store reports about the site, its users and its
// key, and what the views print. No I/O here.

/// What `status` reports about a site.
public struct SiteStatus: Sendable, Equatable {
    public var path: String
    public var agent: AgentID
    public var address: SiteAddress
    public var schemaVersion: Int
    public var sealed: Bool
    public var users: Int
    public var tickets: Int
    public var tallies: Int

    public init(
        path: String, agent: AgentID, address: SiteAddress, schemaVersion: Int, sealed: Bool, users: Int, tickets: Int,
        tallies: Int
    ) {
        self.path = path; self.agent = agent; self.address = address; self.schemaVersion = schemaVersion
        self.sealed = sealed; self.users = users; self.tickets = tickets; self.tallies = tallies
    }
}

/// A user as the site file holds it (without the secret key).
public struct UserInfo: Sendable, Equatable {
    public var cuid: CUID
    public var certificate: Certificate
    public var sealed: Bool
    public var created: String

    public init(cuid: CUID, certificate: Certificate, sealed: Bool, created: String) {
        self.cuid = cuid; self.certificate = certificate; self.sealed = sealed; self.created = created
    }
}

/// What `chipsite key show` reports about the site key.
public struct SiteKeyInfo: Sendable, Equatable {
    public var agent: AgentID
    /// First 16 hex digits of SHA-256 of the public key, grouped by 4.
    public var fingerprint: String
    public var sealed: Bool
    public var created: String

    public init(agent: AgentID, fingerprint: String, sealed: Bool, created: String) {
        self.agent = agent; self.fingerprint = fingerprint; self.sealed = sealed; self.created = created
    }

    /// The fingerprint of a public key: `abcd ef01 2345 6789`.
    public static func fingerprint(of publicKey: [UInt8]) -> String {
        let hex = Array(Hex.encode(Crypto.sha256(publicKey)).prefix(fingerprintDigits))
        return stride(from: 0, to: hex.count, by: fingerprintGroup)
            .map { String(hex[$0..<min($0 + fingerprintGroup, hex.count)]) }
            .joined(separator: " ")
    }

    static let fingerprintDigits = 16
    static let fingerprintGroup = 4
}

/// One setting as `chipsite config list` shows it, as plain values (the
/// store's `ConfigEntry` also holds the key's validator).
public struct ConfigSetting: Sendable, Equatable {
    public var name: String
    /// What the site uses: the stored value, else the default (nil: neither).
    public var value: String?
    public var defaultValue: String?
    /// Whether a value is stored in the site file.
    public var isSet: Bool
    /// Whether the stored value passes the key's validator.
    public var isValid: Bool
    public var range: String
    public var summary: String

    public init(name: String, value: String?, defaultValue: String?, isSet: Bool, isValid: Bool, range: String, summary: String) {
        self.name = name; self.value = value; self.defaultValue = defaultValue; self.isSet = isSet
        self.isValid = isValid; self.range = range; self.summary = summary
    }
}
