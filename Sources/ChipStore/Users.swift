import ChipModel
import ChipProtocol
import Foundation
import GRDB

extension SiteStore {
    /// Adds a user with a fresh Ed25519 signing key and a certificate that
    /// names this site. The key is sealed when the site is (then
    /// `sealingKey` is required). Nothing is written if anything is wrong.
    ///
    /// `custody` is who signs for the user (10.7). A `device` user gets a
    /// key and certificate too (the users table requires them), but the
    /// site never opens that key (`userKey` refuses): the user's first
    /// device sets its own key with `me.signkey` (doc/protocol.md).
    @discardableResult
    public func addUser(
        cuid: CUID, name: String, email: String?, type: EntityType = .person, custody: UserCustody = .site,
        sealingKey: SealingKey?
    ) throws -> UserInfo {
        try Certificate.validate(name: name)
        if let email { try Certificate.validate(email: email) }
        let key = SigningKey.generate()
        let publicKey = key.publicKey
        do {
            return try database.write { db in
                let sealed = try Self.sealCost(db) != nil
                if sealed, sealingKey == nil { throw StoreError.passphraseNeeded }
                if try Bool.fetchOne(cached: db, sql: "SELECT 1 FROM users WHERE cuid = ?", arguments: [cuid.value]) != nil {
                    throw StoreError.userExists(cuid.value)
                }
                let chad = CHAD(cuid: cuid, agent: try Self.agent(db), address: try Self.address(db))
                let now = Self.now()
                let cert = try Certificate(chad: chad, type: type, name: name, email: email, publicKey: publicKey, date: now)
                let secret = Self.storedSeed(of: key, sealingKey: sealed ? sealingKey : nil, label: Self.userKeyLabel(cuid))
                try db.execute(
                    cached: """
                        INSERT INTO users (cuid, type, name, email, public, secret, cert, created, custody)
                        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                        """,
                    arguments: [
                        cuid.value, type.rawValue, name, email, Data(publicKey), Data(secret),
                        cert.json.canonicalString, now, custody.rawValue
                    ])
                return UserInfo(cuid: cuid, certificate: cert, sealed: sealed, created: now)
            }
        } catch {
            throw StoreError.from(error, path: path)
        }
    }

    static func storedSeed(of key: SigningKey, sealingKey: SealingKey?, label: String) -> [UInt8] {
        var seed = key.exportSeed()
        defer { Crypto.wipe(&seed) }
        guard let sealingKey else { return StoredSecret.plain(seed) }
        return StoredSecret.seal(seed, with: sealingKey, label: label)
    }

    /// All users, ordered by CUID.
    public func users() throws -> [UserInfo] {
        do {
            return try database.read { db in
                try Row.fetchAll(cached: db, sql: "SELECT cuid, cert, secret, created FROM users ORDER BY cuid").map(Self.userInfo)
            }
        } catch {
            throw StoreError.from(error, path: path)
        }
    }

    /// One user; `unknownUser` when there is none.
    public func user(_ cuid: CUID) throws -> UserInfo {
        do {
            return try database.read { db in
                guard
                    let row = try Row.fetchOne(
                        cached: db, sql: "SELECT cuid, cert, secret, created FROM users WHERE cuid = ?",
                        arguments: [cuid.value])
                else { throw StoreError.unknownUser(cuid.value) }
                return try Self.userInfo(row)
            }
        } catch {
            throw StoreError.from(error, path: path)
        }
    }

    private static func userInfo(_ row: Row) throws -> UserInfo {
        let cuidText: String = row["cuid"]
        let certText: String = row["cert"]
        let secret: Data = row["secret"]
        let created: String = row["created"]
        do {
            let cert = try Certificate(json: try JSONValue(parsing: certText))
            return UserInfo(cuid: try CUID(cuidText), certificate: cert, sealed: StoredSecret.isSealed(Array(secret)), created: created)
        } catch {
            throw StoreError.damaged("user \(Printable.clip(cuidText)): \(error)")
        }
    }
}
