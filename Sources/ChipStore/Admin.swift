import ChipModel
import ChipProtocol
import Foundation
import GRDB

/// One setting as `chipsite config list` shows it.
public struct ConfigEntry: Sendable, Equatable {
    public var key: ConfigKey
    /// The value stored in the site file, nil when the key has its default.
    public var stored: String?

    public init(key: ConfigKey, stored: String?) {
        self.key = key
        self.stored = stored
    }
    /// What the site uses: the stored value, else the default.
    public var effective: String? { stored ?? key.defaultValue }
    /// Whether the stored value passes the key's validator (a file edited by
    /// hand, or by an older chipsite, may hold one that does not).
    public var isValid: Bool {
        guard let stored else { return true }
        do { try key.validate(stored) } catch { return false }
        return true
    }
    /// The entry as plain values, for the views (ChipViews).
    public var setting: ConfigSetting {
        ConfigSetting(
            name: key.name, value: effective, defaultValue: key.defaultValue, isSet: stored != nil, isValid: isValid,
            range: key.range, summary: key.summary)
    }
}

extension SiteStore {
    // MARK: Config

    /// Every registered setting with its stored value, in registry order.
    public func configEntries() throws -> [ConfigEntry] {
        try adminRead { db in
            try ConfigKey.all.map { key in
                var key = key
                if key == .userPort, let port = try Self.config(db, .sitePort).flatMap(Int.init), port < SiteAddress.portRange.upperBound {
                    key = key.withDefault(String(port + UserPortDefaults.portOffset))
                }
                return ConfigEntry(key: key, stored: try Self.config(db, key))
            }
        }
    }

    /// Validates and stores `value` for `key`. Changing `site.host` or
    /// `site.port` changes every user's CHAD, so their certificates are
    /// re-issued in the same transaction. Returns whether they were.
    @discardableResult
    public func setSetting(_ key: ConfigKey, _ value: String) throws -> Bool {
        try key.validate(value)
        let addressKey = key == .siteHost || key == .sitePort
        return try adminWrite { db in
            let before = try Self.config(db, key)
            try Self.setConfig(db, key, value)
            guard addressKey, before != value else { return false }
            try Self.reissueCertificates(db)
            return true
        }
    }

    /// Removes the stored value of `key` so its default applies. Keys
    /// without a default (site.host) cannot be unset; site.port, part of
    /// every CHAD, gets its default stored.
    /// Returns whether users' certificates were re-issued (as `setSetting`).
    @discardableResult
    public func unsetConfigValue(_ key: ConfigKey) throws -> Bool {
        guard let value = key.defaultValue else { throw ModelError.invalid("\(key.name) has no default and cannot be unset") }
        if key == .sitePort {
            // Part of every CHAD, so it is always stored: unset stores the default.
            return try setSetting(key, value)
        }
        try adminWrite { db in try db.execute(cached: "DELETE FROM config WHERE key = ?", arguments: [key.name]) }
        return false
    }

    // MARK: Lockdown and locked users

    /// Whether the whole site is locked down (`site.lockdown` is `on`): the
    /// engine refuses new peer handshakes and every action that moves value.
    /// A value that is not `off` counts as on: a damaged setting fails closed.
    public func isLockedDown() throws -> Bool {
        try adminRead { db in try Self.isLockedDown(db) }
    }

    static func isLockedDown(_ db: Database) throws -> Bool {
        guard let value = try config(db, .siteLockdown) else { return false }
        return value != "off"
    }

    /// Turns lockdown on or off.
    public func setLockdown(_ on: Bool) throws {
        try setConfigValue(.siteLockdown, on ? "on" : "off")
    }

    /// Whether `cuid` is locked: its tallies accept no new chits or offers.
    /// `unknownUser` when there is no such user.
    public func isUserLocked(_ cuid: CUID) throws -> Bool {
        try adminRead { db in try Self.isUserLocked(db, cuid) }
    }

    static func isUserLocked(_ db: Database, _ cuid: CUID) throws -> Bool {
        guard let locked = try Bool.fetchOne(cached: db, sql: "SELECT locked FROM users WHERE cuid = ?", arguments: [cuid.value]) else {
            throw StoreError.unknownUser(cuid.value)
        }
        return locked
    }

    /// Locks or unlocks `cuid`; returns whether anything changed.
    @discardableResult
    public func setUserLocked(_ cuid: CUID, _ locked: Bool) throws -> Bool {
        try adminWrite { db in
            let was = try Self.isUserLocked(db, cuid)
            guard was != locked else { return false }
            try db.execute(cached: "UPDATE users SET locked = ? WHERE cuid = ?", arguments: [locked, cuid.value])
            return true
        }
    }

    /// The CUIDs of locked users, ordered.
    public func lockedUsers() throws -> [String] {
        try adminRead { db in try String.fetchAll(cached: db, sql: "SELECT cuid FROM users WHERE locked = 1 ORDER BY cuid") }
    }

    // MARK: Editing users

    /// Changes a user's certificate fields and re-issues the certificate
    /// (new date, same key). `email: .some(nil)` removes the email.
    @discardableResult
    public func editUser(_ cuid: CUID, name: String? = nil, email: String?? = nil, type: EntityType? = nil) throws -> UserInfo {
        if let name { try Certificate.validate(name: name) }
        if let email, let address = email { try Certificate.validate(email: address) }
        try adminWrite { db in
            guard let row = try Row.fetchOne(cached: db, sql: "SELECT cert FROM users WHERE cuid = ?", arguments: [cuid.value]) else {
                throw StoreError.unknownUser(cuid.value)
            }
            let old = try Self.certificate(row, cuid: cuid)
            let cert = try Certificate(
                chad: CHAD(cuid: cuid, agent: try Self.agent(db), address: try Self.address(db)),
                type: type ?? old.type, name: name ?? old.name, email: email ?? old.email,
                publicKey: old.publicKey, date: Self.now())
            try db.execute(
                cached: "UPDATE users SET type = ?, name = ?, email = ?, cert = ? WHERE cuid = ?",
                arguments: [cert.type.rawValue, cert.name, cert.email, cert.json.canonicalString, cuid.value])
        }
        return try user(cuid)
    }

    static func certificate(_ row: Row, cuid: CUID) throws -> Certificate {
        let text: String = row["cert"]
        do { return try Certificate(json: try JSONValue(parsing: text)) } catch {
            throw StoreError.damaged("certificate of \(cuid.value): \(error)")
        }
    }

    /// Re-issues every user's certificate for the site's current agent and
    /// address, inside an open transaction.
    static func reissueCertificates(_ db: Database) throws {
        let chadAgent = try agent(db), chadAddress = try address(db), now = now()
        for row in try Row.fetchAll(cached: db, sql: "SELECT cuid, cert FROM users") {
            let text: String = row["cuid"]
            let cuid = try CUID(text)
            let old = try certificate(row, cuid: cuid)
            let cert = try Certificate(
                chad: CHAD(cuid: cuid, agent: chadAgent, address: chadAddress), type: old.type,
                name: old.name, email: old.email, publicKey: old.publicKey, date: now)
            try db.execute(cached: "UPDATE users SET cert = ? WHERE cuid = ?", arguments: [cert.json.canonicalString, cuid.value])
        }
    }

    // MARK: Store access for admin commands

    /// The schema version this build writes (number of migrations).
    public static var currentSchemaVersion: Int { Schema.currentVersion }

    /// Opens every user's stored key with `sealingKey` (nil on a plain site)
    /// and checks it against the user's public key. Returns the CUIDs whose
    /// key does not open or does not match.
    public func unopenableUserKeys(sealingKey: SealingKey?) throws -> [String] {
        try adminRead { db in
            var bad = [String]()
            for row in try Row.fetchAll(cached: db, sql: "SELECT cuid, public, secret FROM users ORDER BY cuid") {
                let cuidText: String = row["cuid"], pk: Data = row["public"], secret: Data = row["secret"]
                // A key a device holds (10.7): the site keeps no seed to open.
                if Self.isErased(Array(secret)) { continue }
                guard let cuid = try? CUID(cuidText),
                    let key = try? Self.signingKey(from: Array(secret), sealingKey: sealingKey, label: Self.userKeyLabel(cuid)),
                    Crypto.constantTimeEqual(key.publicKey, Array(pk))
                else { bad.append(Printable.clip(cuidText)); continue }
            }
            return bad
        }
    }

    /// A write transaction whose body may capture non-Sendable values (keys).
    func adminWrite<T>(_ body: (Database) throws -> T) throws -> T {
        do { return try database.write(body) } catch { throw StoreError.from(error, path: path) }
    }

    func adminRead<T>(_ body: (Database) throws -> T) throws -> T {
        do { return try database.read(body) } catch { throw StoreError.from(error, path: path) }
    }

    /// Closes the file (used before a restored file is moved into place).
    func closeFile() throws {
        try database.close()
    }

    /// Moves every committed change from the `-wal` file into the site file
    /// and closes it, so that a stopped site is one file that can simply be
    /// copied (`serve` calls this when it stops).
    public func checkpointAndClose() throws {
        do {
            try database.writeWithoutTransaction { db in try db.execute(cached: "PRAGMA wal_checkpoint(TRUNCATE)") }
            try database.close()
        } catch {
            throw StoreError.from(error, path: path)
        }
    }
}
