import ChipModel
import ChipProtocol
import Foundation
import GRDB

/// A user as `chipsite user export` writes it and `user import` reads it
/// (doc/cli.md): the certificate, the public key and the secret exactly as
/// stored, sealed or not, with the salt and cost of the seal when sealed so
/// the same passphrase opens it on the importing site.
public struct UserExport: Sendable, Equatable {
    public static let format = "chipsite-user"
    public static let version: Int64 = 1
    /// Largest export file read: an export is a few hundred bytes.
    public static let maxBytes = 64 * 1024
    /// The most expensive seal an imported file may ask us to derive
    /// (libsodium's SENSITIVE preset): a hostile file cannot pin the CPU or memory.
    static let maxOpsLimit: UInt64 = 4
    static let maxMemLimit: UInt64 = 1 << 30
    /// A stored 32-byte seed: tag and seed in the clear, or tag, 24-byte
    /// nonce, ciphertext and 16-byte MAC when sealed (the schema's lengths).
    static let plainSecretLength = 33
    static let sealedSecretLength = 73

    public var cuid: CUID
    public var certificate: Certificate
    public var secret: [UInt8]
    public var seal: (salt: [UInt8], cost: PassphraseCost)?
    public var locked: Bool
    public var created: String

    public var publicKey: [UInt8] { certificate.publicKey }
    public var sealed: Bool { StoredSecret.isSealed(secret) }

    public static func == (a: UserExport, b: UserExport) -> Bool {
        a.cuid == b.cuid && a.certificate == b.certificate && a.secret == b.secret && a.locked == b.locked
            && a.created == b.created && a.seal?.salt == b.seal?.salt && a.seal?.cost == b.seal?.cost
    }

    public init(
        cuid: CUID, certificate: Certificate, secret: [UInt8], seal: (salt: [UInt8], cost: PassphraseCost)?,
        locked: Bool, created: String
    ) {
        self.cuid = cuid
        self.certificate = certificate
        self.secret = secret
        self.seal = seal
        self.locked = locked
        self.created = created
    }

    public var json: JSONValue {
        var o: [String: JSONValue] = [
            "format": .string(Self.format),
            "version": .integer(Self.version),
            "cuid": .string(cuid.value),
            "certificate": certificate.json,
            "public": .string(Base64URL.encode(publicKey)),
            "secret": .string(Base64URL.encode(secret)),
            "sealed": .bool(sealed),
            "locked": .bool(locked),
            "created": .string(created)
        ]
        if let seal {
            o["seal"] = [
                "salt": .string(Base64URL.encode(seal.salt)),
                "opslimit": .integer(Int64(seal.cost.opsLimit)),
                "memlimit": .integer(Int64(seal.cost.memLimit))
            ]
        }
        return .object(o)
    }

    /// Reads an export, checking every field; anything odd is `malformed`.
    public init(json: JSONValue) throws(ModelError) {
        guard let o = json.objectValue else { throw .malformed("not a chipsite user export (not a JSON object)") }
        guard o["format"]?.stringValue == Self.format else { throw .malformed("not a chipsite user export (format is not \"\(Self.format)\")") }
        guard o["version"]?.integerValue == Self.version else {
            throw .malformed("unsupported user export version (this chipsite reads version \(Self.version))")
        }
        let known: Set<String> = ["format", "version", "cuid", "certificate", "public", "secret", "sealed", "seal", "locked", "created"]
        if let extra = o.keys.first(where: { !known.contains($0) }) { throw .malformed("unknown field \(Printable.quote(extra)) in user export") }
        guard let cuidText = o["cuid"]?.stringValue else { throw .malformed("user export without cuid") }
        let cuid = try CUID(cuidText)
        guard let certJSON = o["certificate"] else { throw .malformed("user export without certificate") }
        let cert = try Certificate(json: certJSON)
        guard cert.chad.cuid == cuid else { throw .malformed("the certificate names another user than the export's cuid") }
        guard let pub = o["public"]?.stringValue, Base64URL.decode(pub) == cert.publicKey else {
            throw .malformed("the export's public key does not match its certificate")
        }
        guard let secretText = o["secret"]?.stringValue, let secret = Base64URL.decode(secretText),
            secret.count == Self.plainSecretLength || secret.count == Self.sealedSecretLength
        else { throw .malformed("the export's secret key is not a chipsite stored key") }
        guard let sealed = o["sealed"]?.boolValue, sealed == StoredSecret.isSealed(secret),
            secret.first == (sealed ? StoredSecret.sealedTag : StoredSecret.plainTag)
        else { throw .malformed("the export's sealed flag does not match its secret key") }
        var seal: (salt: [UInt8], cost: PassphraseCost)?
        if sealed {
            guard let s = o["seal"], let saltText = s["salt"]?.stringValue, let salt = Base64URL.decode(saltText),
                salt.count == SealingKey.saltLength,
                let ops = s["opslimit"]?.integerValue, let mem = s["memlimit"]?.integerValue, ops > 0, mem > 0
            else { throw .malformed("a sealed export needs seal.salt (16 bytes), seal.opslimit and seal.memlimit") }
            let cost = PassphraseCost(opsLimit: UInt64(ops), memLimit: UInt64(mem))
            guard cost.isValid, cost.opsLimit <= Self.maxOpsLimit, cost.memLimit <= Self.maxMemLimit else {
                throw .malformed("the export's seal cost is out of range")
            }
            seal = (salt, cost)
        } else if o["seal"] != nil {
            throw .malformed("a plain export must not have a seal")
        }
        // A locked user must not come back unlocked through a mangled file.
        guard let locked = o["locked"]?.boolValue else { throw .malformed("user export without locked (true or false)") }
        guard let created = o["created"]?.stringValue, Timestamp.parse(created) != nil else {
            throw .malformed("user export without a valid created time")
        }
        self.init(cuid: cuid, certificate: cert, secret: secret, seal: seal, locked: locked, created: created)
    }
}

extension SiteStore {
    /// The seal's salt and cost, nil when the site is not sealed.
    public func sealParameters() throws -> (salt: [UInt8], cost: PassphraseCost)? {
        try adminRead { db in try Self.sealCost(db) }
    }

    /// A user with its stored secret, for `chipsite user export`.
    public func exportUser(_ cuid: CUID) throws -> UserExport {
        try adminRead { db in
            guard
                let row = try Row.fetchOne(
                    cached: db, sql: "SELECT cert, secret, locked, created, custody FROM users WHERE cuid = ?",
                    arguments: [cuid.value])
            else { throw StoreError.unknownUser(cuid.value) }
            // A device-custody user's key is its device's: the site-made one is
            // no key of the user's, and an import would make it site custody (10.7).
            guard (row["custody"] as String) == UserCustody.site.rawValue else { throw StoreError.deviceCustody(cuid.value) }
            let secret: Data = row["secret"], locked: Bool = row["locked"], created: String = row["created"]
            let stored = Array(secret)
            return UserExport(
                cuid: cuid, certificate: try Self.certificate(row, cuid: cuid), secret: stored,
                seal: StoredSecret.isSealed(stored) ? try Self.sealCost(db) : nil,
                locked: locked, created: created)
        }
    }

    /// Adds an exported user to this site with a certificate re-issued for
    /// this site. A sealed export is opened with `exportKey` (derived from
    /// the passphrase with the export's salt and cost) and re-sealed under
    /// `siteKey`; it is refused by a site that is not sealed. A plain export
    /// is sealed on import when this site is sealed. The key must match the
    /// certificate. Duplicates (CUID or key) are refused; nothing is written then.
    @discardableResult
    public func importUser(_ e: UserExport, exportKey: SealingKey?, siteKey: SealingKey?) throws -> UserInfo {
        let label = Self.userKeyLabel(e.cuid)
        try adminWrite { db in
            let siteSealed = try Self.sealCost(db) != nil
            if try Bool.fetchOne(cached: db, sql: "SELECT 1 FROM users WHERE cuid = ?", arguments: [e.cuid.value]) != nil {
                throw StoreError.userExists(e.cuid.value)
            }
            if let other = try String.fetchOne(cached: db, sql: "SELECT cuid FROM users WHERE public = ?", arguments: [Data(e.publicKey)]) {
                throw ModelError.invalid("this site already has the key of \(e.cuid.value), as user \(other)")
            }
            if e.sealed, !siteSealed {
                throw ModelError.invalid("the exported key is sealed: import it into a site sealed with the same passphrase")
            }
            if siteSealed, siteKey == nil { throw StoreError.passphraseNeeded }
            var seed: [UInt8]
            do {
                if e.sealed, exportKey == nil { throw StoreError.passphraseNeeded }
                seed = try StoredSecret.open(e.secret, with: exportKey, label: label)
            } catch let error as StoreError {
                throw error
            } catch {
                throw ModelError.invalid("the passphrase does not open the exported key (it was sealed with another passphrase)")
            }
            defer { Crypto.wipe(&seed) }
            let key = try SigningKey(seed: seed)
            guard Crypto.constantTimeEqual(key.publicKey, e.publicKey) else {
                throw ModelError.malformed("the exported secret key does not match its certificate")
            }
            let stored = Self.storedSeed(of: key, sealingKey: siteSealed ? siteKey : nil, label: label)
            let old = e.certificate
            let cert = try Certificate(
                chad: CHAD(cuid: e.cuid, agent: try Self.agent(db), address: try Self.address(db)),
                type: old.type, name: old.name, email: old.email, publicKey: old.publicKey, date: Self.now())
            try db.execute(
                cached: """
                    INSERT INTO users (cuid, type, name, email, public, secret, cert, created, locked)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """,
                arguments: [
                    e.cuid.value, cert.type.rawValue, cert.name, cert.email, Data(e.publicKey), Data(stored),
                    cert.json.canonicalString, e.created, e.locked
                ])
        }
        return try user(e.cuid)
    }
}
