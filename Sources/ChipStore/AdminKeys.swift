import ChipModel
import ChipProtocol
import Foundation
import GRDB

/// A key-encryption key with the salt and cost it was derived with: what a
/// site needs to seal its secrets and record how to derive the key again.
public struct NewSeal {
    public let key: SealingKey
    public let salt: [UInt8]
    public let cost: PassphraseCost

    /// Derives a key from `passphrase` with a fresh random salt.
    public init(passphrase: [UInt8], cost: PassphraseCost = .moderate) throws {
        let salt = Crypto.randomBytes(SealingKey.saltLength)
        self.key = try SealingKey(passphrase: passphrase, salt: salt, cost: cost)
        self.salt = salt
        self.cost = cost
    }
}

/// What `replaceSiteKey` did.
public struct SiteKeyChange: Sendable, Equatable {
    public var old: AgentID
    public var new: AgentID
    public var certificatesReissued: Int
    public var tallies: Int
}

extension SiteStore {
    /// The site key's agent id, fingerprint and whether it is sealed.
    public func siteKeyInfo() throws -> SiteKeyInfo {
        try adminRead { db in
            guard let row = try Row.fetchOne(cached: db, sql: "SELECT public, secret, created FROM site_key WHERE id = 1") else {
                throw StoreError.damaged("no site key")
            }
            let pk: Data = row["public"], secret: Data = row["secret"], created: String = row["created"]
            let publicKey = Array(pk)
            return SiteKeyInfo(
                agent: try AgentID(publicKey: publicKey), fingerprint: SiteKeyInfo.fingerprint(of: publicKey),
                sealed: StoredSecret.isSealed(Array(secret)), created: created)
        }
    }

    /// Re-seals the site key, every user key and the origin keys of lifts
    /// in progress in one transaction: from
    /// `current` (nil when the site is not sealed) to `new` (nil to store
    /// them in the clear). Every secret is opened first; if any fails to open
    /// nothing changes. A crash leaves the old state or the new, never a mix.
    /// Returns the number of secrets re-sealed.
    @discardableResult
    public func reseal(current: SealingKey?, new: NewSeal?) throws -> Int {
        try adminWrite { db in
            let sealed = try Self.sealCost(db) != nil
            if sealed, current == nil { throw StoreError.passphraseNeeded }
            var count = 0
            func convert(_ stored: [UInt8], label: String) throws -> [UInt8] {
                var seed: [UInt8]
                do { seed = try StoredSecret.open(stored, with: sealed ? current : nil, label: label) } catch {
                    throw StoredSecret.isSealed(stored) ? StoreError.wrongPassphrase : StoreError.damaged("\(label): \(error)")
                }
                defer { Crypto.wipe(&seed) }
                guard seed.count == SigningKey.seedLength else { throw StoreError.damaged("\(label): bad seed length") }
                count += 1
                guard let new else { return StoredSecret.plain(seed) }
                return StoredSecret.seal(seed, with: new.key, label: label)
            }
            guard let siteSecret = try Data.fetchOne(cached: db, sql: "SELECT secret FROM site_key WHERE id = 1") else {
                throw StoreError.damaged("no site key")
            }
            let siteStored = try convert(Array(siteSecret), label: Self.siteKeyLabel)
            try db.execute(cached: "UPDATE site_key SET secret = ? WHERE id = 1", arguments: [Data(siteStored)])
            for row in try Row.fetchAll(cached: db, sql: "SELECT cuid, secret FROM users") {
                let cuidText: String = row["cuid"], secret: Data = row["secret"]
                let cuid = try CUID(cuidText)
                // A key a device took (10.7) left no seed here to re-seal.
                if Self.isErased(Array(secret)) { continue }
                let stored = try convert(Array(secret), label: Self.userKeyLabel(cuid))
                try db.execute(cached: "UPDATE users SET secret = ? WHERE cuid = ?", arguments: [Data(stored), cuidText])
            }
            // The origin keys of lifts this site started and that are not final (9.3).
            for row in try Row.fetchAll(cached: db, sql: "SELECT lift, origin_secret FROM lifts WHERE origin_secret IS NOT NULL") {
                let lift: String = row["lift"], secret: Data = row["origin_secret"]
                let stored = try convert(Array(secret), label: Self.originKeyLabel(lift))
                try db.execute(cached: "UPDATE lifts SET origin_secret = ? WHERE lift = ?", arguments: [Data(stored), lift])
            }
            try db.execute(cached: "DELETE FROM seal")
            if let new {
                try db.execute(
                    cached: "INSERT INTO seal (id, salt, opslimit, memlimit) VALUES (1, ?, ?, ?)",
                    arguments: [Data(new.salt), Int64(new.cost.opsLimit), Int64(new.cost.memLimit)])
            }
            return count
        }
    }

    /// Replaces the site key with a fresh one (sealed like the old one) and
    /// re-issues every user's certificate with the new agent id. Refused
    /// while any tally exists unless `force`: partners know the old agent id.
    public func replaceSiteKey(sealingKey: SealingKey?, force: Bool) throws -> SiteKeyChange {
        let key = SigningKey.generate()
        let publicKey = key.publicKey
        return try adminWrite { db in
            let sealed = try Self.sealCost(db) != nil
            if sealed, sealingKey == nil { throw StoreError.passphraseNeeded }
            let old = try Self.agent(db)
            if sealed {
                // Prove the key before sealing the new one under it.
                guard let secret = try Data.fetchOne(cached: db, sql: "SELECT secret FROM site_key WHERE id = 1") else {
                    throw StoreError.damaged("no site key")
                }
                _ = try Self.signingKey(from: Array(secret), sealingKey: sealingKey, label: Self.siteKeyLabel)
            }
            let tallies = try Self.count(db, "tallies")
            if tallies > 0, !force {
                throw ModelError.invalid(
                    "the site has \(tallies) tallies: partners know the old agent id and could no longer reach this site; "
                        + "give --force to replace the key anyway")
            }
            let stored = Self.storedSeed(of: key, sealingKey: sealed ? sealingKey : nil, label: Self.siteKeyLabel)
            try db.execute(
                cached: "UPDATE site_key SET public = ?, secret = ?, created = ? WHERE id = 1",
                arguments: [Data(publicKey), Data(stored), Self.now()])
            try Self.reissueCertificates(db)
            return SiteKeyChange(
                old: old, new: try AgentID(publicKey: publicKey),
                certificatesReissued: try Self.count(db, "users"), tallies: tallies)
        }
    }
}
