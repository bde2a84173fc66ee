import ChipModel
import ChipProtocol

// The `--json` shapes of the site's own records: its status, a user, the
// site key, a setting. Field names are a contract with scripts and with the
// user port (doc/cli.md): add fields freely, never rename or remove one.

/// The JSON view of a site's status (`status`, `init`, `restore`).
public enum StatusView {
    /// `lockdown` is added when known (status and init always know it).
    public static func json(_ s: SiteStatus, lockdown: Bool? = nil) -> JSONValue {
        var o: [String: JSONValue] = [
            "db": .string(s.path),
            "agent": .string(s.agent.description),
            "host": .string(s.address.host),
            "port": .integer(Int64(s.address.port)),
            "schema_version": .integer(Int64(s.schemaVersion)),
            "sealed": .bool(s.sealed),
            "users": .integer(Int64(s.users)),
            "tickets": .integer(Int64(s.tickets)),
            "tallies": .integer(Int64(s.tallies))
        ]
        if let lockdown { o["lockdown"] = .bool(lockdown) }
        return .object(o)
    }
}

/// The JSON view of a user and its certificate.
public enum UserView {
    /// `locked` and `custody` are added when known (`user show`, `user list`, `user add`).
    public static func json(_ u: UserInfo, locked: Bool? = nil, custody: UserCustody? = nil) -> JSONValue {
        let c = u.certificate
        var o: [String: JSONValue] = [
            "cuid": .string(u.cuid.value),
            "name": .string(c.name),
            "type": .string(c.type.rawValue),
            "email": c.email.map(JSONValue.string) ?? .null,
            "chad": .string(c.chad.description),
            "public": .string(Base64URL.encode(c.publicKey)),
            "sealed": .bool(u.sealed),
            "created": .string(u.created),
            "certificate": c.json
        ]
        if let locked { o["locked"] = .bool(locked) }
        if let custody { o["custody"] = .string(custody.rawValue) }
        return .object(o)
    }
}

/// The JSON view of the site key (`key show`).
public enum KeyView {
    public static func json(_ k: SiteKeyInfo) -> JSONValue {
        [
            "agent": .string(k.agent.description), "fingerprint": .string(k.fingerprint), "sealed": .bool(k.sealed),
            "created": .string(k.created)
        ]
    }
}

/// The JSON view of one setting (`config list`, `config get`, `config set`).
public enum ConfigView {
    public static func json(_ s: ConfigSetting) -> JSONValue {
        [
            "key": .string(s.name),
            "value": s.value.map(JSONValue.string) ?? .null,
            "default": s.defaultValue.map(JSONValue.string) ?? .null,
            "set": .bool(s.isSet),
            "valid": .bool(s.isValid),
            "range": .string(s.range),
            "summary": .string(s.summary)
        ]
    }
}
