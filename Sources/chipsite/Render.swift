import ChipModel
import ChipProtocol
import ChipStore

/// The `--json` shapes. Field names are a contract with scripts (doc/cli.md):
/// add fields freely, never rename or remove one.
enum Render {
    /// `lockdown` is added when known (status and init always know it).
    static func status(_ s: SiteStatus, lockdown: Bool? = nil) -> JSONValue {
        var o: [String: JSONValue] = [
            "db": .string(s.path),
            "agent": .string(s.agent.description),
            "host": .string(s.address.host),
            "port": .integer(Int64(s.address.port)),
            "schema_version": .integer(Int64(s.schemaVersion)),
            "sealed": .bool(s.sealed),
            "users": .integer(Int64(s.users)),
            "tickets": .integer(Int64(s.tickets)),
            "tallies": .integer(Int64(s.tallies)),
        ]
        if let lockdown { o["lockdown"] = .bool(lockdown) }
        return .object(o)
    }

    /// `locked` is added when known (`user show`, `user list`, `user add`).
    static func user(_ u: UserInfo, locked: Bool? = nil) -> JSONValue {
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
            "certificate": c.json,
        ]
        if let locked { o["locked"] = .bool(locked) }
        return .object(o)
    }
}
