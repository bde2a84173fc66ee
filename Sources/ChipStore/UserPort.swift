import ChipChannel
import ChipModel
import ChipProtocol
import Foundation
import GRDB

// The user port's part of the site file (protocol section 10): user tickets,
// devices, per-user events and the idempotency cache. Every write is one
// transaction; time comes in as `now` (ms since 1970), never from a clock here.

/// What a registration came to (10.3). The reason of a refusal is for the
/// log only: the device gets a silent close.
public enum DeviceRegistrationOutcome: Sendable, Equatable {
    case registered(user: CUID, device: DeviceID)
    case refused(String)
}

/// What a known device's session may do (10.4).
public struct DeviceSessionInfo: Sendable, Equatable {
    public var user: CUID
    public var custody: UserCustody
    public var scopes: Set<UserScope>
    /// The user is locked or the site locked down: reads and `device.revoke`
    /// work, commands that sign, move value or change a tally answer `locked`.
    public var locked: Bool
}

/// One registered device, as `user device list` and `device.list` show it.
public struct DeviceInfo: Sendable, Equatable {
    public var device: DeviceID
    public var user: CUID
    public var name: String
    public var scopes: Set<UserScope>
    /// ms since 1970.
    public var created: Int64
    public var lastSeen: Int64?
    public var revoked: Int64?

    /// `{"device","name","scopes","created","last_seen","revoked"?}`, times as timestamps
    /// (10.6's `device.list` items; `revoked` only when it is).
    public var json: JSONValue {
        var o: [String: JSONValue] = [
            "device": .string(device.description), "name": .string(name), "scopes": UserScope.json(scopes),
            "created": .string(Timestamp.format(millisecondsSince1970: created)),
            "last_seen": lastSeen.map { .string(Timestamp.format(millisecondsSince1970: $0)) } ?? .null
        ]
        if let revoked { o["revoked"] = .string(Timestamp.format(millisecondsSince1970: revoked)) }
        return .object(o)
    }
}

/// What the idempotency cache holds for a key (10.5).
public enum StoredReply: Sendable, Equatable {
    /// Nothing: run the command.
    case none
    /// The same request succeeded before: send this reply's data again, replayed.
    case replay(JSONValue)
    /// Another request under the key: `conflict`.
    case conflict
}

/// What `pruneUserData` removed.
public struct UserPrune: Sendable, Equatable {
    public var events = 0
    public var replies = 0
    public var tickets = 0
}

extension SiteStore {
    // MARK: User tickets (10.2)

    /// Issues a user ticket for `cuid` with `scopes` (nil: all) lasting
    /// `lifetime` seconds (nil: 24 h; at most 7 days). Its address is the
    /// site's user port (`user.port`, else the peer port + 1), its agent the
    /// site's. In the same transaction the user's older open tickets are
    /// revoked. Refuses an unknown user and one with 16 devices. Only the
    /// token's hash is stored; the token is in the returned ticket alone.
    ///
    /// `present`, when given, runs inside the transaction before it commits
    /// (the CLI writes its QR file there): if it throws, nothing is stored
    /// and the older tickets stay open, so no ticket is live that nobody saw.
    public func issueUserTicket(
        cuid: CUID, scopes: Set<UserScope>?, lifetime: Int64?, now: Int64, present: ((UserTicket) throws -> Void)? = nil
    ) throws -> UserTicket {
        let scopes = scopes ?? Set(UserScope.allCases)
        guard !scopes.isEmpty else { throw ModelError.invalid("give at least one scope") }
        let expires = try UserTicket.expiry(now: now, lifetime: lifetime)
        let expiresAt = now + (lifetime ?? UserTicket.defaultLifetimeSeconds) * 1000
        let token = UserTicket.newToken()
        let hash = UserTicket.tokenHash(token)
        let scopesText = UserScope.json(scopes).canonicalString
        // What the user port commits with it (the key of `device.ticket`, 10.5).
        let rider = Self.rider
        return try adminWrite { db in
            guard try Bool.fetchOne(cached: db, sql: "SELECT 1 FROM users WHERE cuid = ?", arguments: [cuid.value]) != nil else {
                throw StoreError.unknownUser(cuid.value)
            }
            let devices = try Self.liveDeviceCount(db, cuid.value)
            guard devices < UserPortDefaults.maxDevicesPerUser else {
                throw StoreError.deviceLimit(cuid.value)
            }
            let ticket = try UserTicket(
                address: try Self.userPortAddress(db), agent: try Self.agent(db), user: cuid, token: token, expires: expires)
            try db.execute(
                cached: "UPDATE user_tickets SET state = 'revoked' WHERE cuid = ? AND state = 'open'", arguments: [cuid.value])
            try db.execute(
                cached: "INSERT INTO user_tickets (token_hash, cuid, scopes, created, expires, state) VALUES (?, ?, ?, ?, ?, 'open')",
                arguments: [hash, cuid.value, scopesText, now, expiresAt])
            try present?(ticket)
            try rider?.ride(db, ticket)
            return ticket
        }
    }

    /// Where the site's user port listens (10.1): the site's host, and
    /// `user.port` when set, else the peer port + 1.
    static func userPortAddress(_ db: Database) throws -> SiteAddress {
        let site = try address(db)
        var port = site.port + UserPortDefaults.portOffset
        if let text = try String.fetchOne(cached: db, sql: "SELECT value FROM config WHERE key = ?", arguments: [userPortKey]) {
            guard let p = Int(text), (1...65535).contains(p) else {
                throw StoreError.badSetting(key: userPortKey, reason: "not a port number")
            }
            port = p
        }
        return try SiteAddress(host: site.host, port: port)
    }

    /// The config key of the user port (10.1).
    static let userPortKey = "user.port"

    static func liveDeviceCount(_ db: Database, _ cuid: String) throws -> Int {
        try Int.fetchOne(cached: db, sql: "SELECT count(*) FROM devices WHERE cuid = ? AND revoked IS NULL", arguments: [cuid]) ?? 0
    }

    // MARK: Registration (10.3)

    /// Judges a registration as 10.2-10.3 say, in one transaction that
    /// commits whatever the outcome: a ticket found open is burned (marked
    /// used) before any check, then it must be unexpired, its user existing
    /// with fewer than 16 devices and the device key registered nowhere;
    /// then the device is inserted with the ticket's scopes and a `device`
    /// event appended. A refusal is returned, not thrown, so the burn stays.
    public func registerDevice(_ r: UserRegistration, now: Int64) throws -> DeviceRegistrationOutcome {
        try registerDevice(token: r.token, name: r.deviceName, device: r.device, now: now)
    }

    /// `registerDevice(_:now:)` with the registration's parts.
    public func registerDevice(token: String, name: String, device: DeviceID, now: Int64) throws -> DeviceRegistrationOutcome {
        guard (try? UserTicket.validate(token: token)) != nil else { return .refused("malformed token") }
        let hash = UserTicket.tokenHash(token)
        let id = device.description
        let key = Data(device.publicKey)
        return try guardedWrite { db in
            guard
                let row = try Row.fetchOne(
                    cached: db, sql: "SELECT cuid, scopes, expires, state FROM user_tickets WHERE token_hash = ?", arguments: [hash])
            else { return .refused("no such ticket") }
            let state: String = row["state"]
            guard state == "open" else { return .refused("ticket already \(state)") }
            // The burn: of two racing registrations only one changes the row.
            try db.execute(cached: "UPDATE user_tickets SET state = 'used' WHERE token_hash = ? AND state = 'open'", arguments: [hash])
            guard db.changesCount == 1 else { return .refused("ticket used meanwhile") }
            let cuidText: String = row["cuid"], scopesText: String = row["scopes"], expires: Int64 = row["expires"]
            guard expires > now else { return .refused("ticket expired") }
            guard try Bool.fetchOne(cached: db, sql: "SELECT 1 FROM users WHERE cuid = ?", arguments: [cuidText]) != nil,
                let cuid = try? CUID(cuidText)
            else { return .refused("the ticket's user is gone") }
            guard try Self.liveDeviceCount(db, cuidText) < UserPortDefaults.maxDevicesPerUser else {
                return .refused("user \(cuidText) has \(UserPortDefaults.maxDevicesPerUser) devices")
            }
            guard try Bool.fetchOne(cached: db, sql: "SELECT 1 FROM devices WHERE id = ? OR public = ?", arguments: [id, key]) == nil else {
                return .refused("the device key is registered already")
            }
            // The schema counts characters as SQLite does (code points).
            guard (1...UserChannelMachine.maxDeviceName).contains(name.unicodeScalars.count) else {
                return .refused("bad device name")
            }
            let scopes = try Self.scopes(scopesText)
            try db.execute(
                cached: "INSERT INTO devices (id, cuid, public, name, scopes, created) VALUES (?, ?, ?, ?, ?, ?)",
                arguments: [id, cuidText, key, name, UserScope.json(scopes).canonicalString, now])
            _ = try Self.appendUserEvent(
                db, cuid: cuidText, topic: .device, data: ["device": .string(id), "name": .string(name), "state": "added"], now: now)
            return .registered(user: cuid, device: device)
        }
    }

    static func scopes(_ text: String) throws -> Set<UserScope> {
        do {
            guard let names = try JSONValue(parsing: text).arrayValue?.map({ $0.stringValue ?? "" }) else {
                throw ModelError.malformed("not an array")
            }
            return try UserScope.parse(names)
        } catch {
            throw StoreError.damaged("stored scopes \(Printable.clip(text)): \(error)")
        }
    }

    // MARK: Devices and sessions (10.4)

    /// Who a device's session is for, or nil for an unknown or revoked device.
    public func deviceSession(device: DeviceID) throws -> DeviceSessionInfo? {
        let id = device.description
        return try guardedRead { db in
            guard
                let row = try Row.fetchOne(
                    cached: db,
                    sql: """
                        SELECT d.cuid, d.scopes, u.custody, u.locked FROM devices d JOIN users u ON u.cuid = d.cuid
                        WHERE d.id = ? AND d.revoked IS NULL
                        """, arguments: [id])
            else { return nil }
            let cuid: String = row["cuid"], scopes: String = row["scopes"], custody: String = row["custody"]
            let userLocked: Bool = row["locked"]
            guard let c = UserCustody(rawValue: custody) else { throw StoreError.damaged("custody of \(Printable.clip(cuid))") }
            return DeviceSessionInfo(
                user: try CUID(cuid), custody: c, scopes: try Self.scopes(scopes), locked: try userLocked || Self.isLockedDown(db))
        }
    }

    /// Records that the device opened a session at `now`.
    public func touchDevice(device: DeviceID, now: Int64) throws {
        let id = device.description
        try guardedWrite { db in
            try db.execute(cached: "UPDATE devices SET last_seen = ? WHERE id = ? AND revoked IS NULL", arguments: [now, id])
        }
    }

    /// The devices of `cuid`, revoked ones included, oldest first.
    public func devices(of cuid: CUID) throws -> [DeviceInfo] {
        try guardedRead { db in
            guard try Bool.fetchOne(cached: db, sql: "SELECT 1 FROM users WHERE cuid = ?", arguments: [cuid.value]) != nil else {
                throw StoreError.unknownUser(cuid.value)
            }
            return try Row.fetchAll(
                cached: db, sql: "SELECT * FROM devices WHERE cuid = ? ORDER BY created, id", arguments: [cuid.value]
            ).map { row in
                let id: String = row["id"], scopes: String = row["scopes"]
                let device: DeviceID
                do { device = try DeviceID(id) } catch { throw StoreError.damaged("device \(Printable.clip(id))") }
                return DeviceInfo(
                    device: device, user: cuid, name: row["name"], scopes: try Self.scopes(scopes), created: row["created"],
                    lastSeen: row["last_seen"], revoked: row["revoked"])
            }
        }
    }

    /// Revokes a device of `cuid` at `now` and appends a `device` event;
    /// `unknownDevice` when the user has no such device or it is revoked.
    /// The caller closes the device's live sessions.
    public func revokeDevice(cuid: CUID, device: DeviceID, now: Int64) throws {
        let id = device.description
        try guardedWrite { db in
            try db.execute(
                cached: "UPDATE devices SET revoked = ? WHERE id = ? AND cuid = ? AND revoked IS NULL", arguments: [now, id, cuid.value])
            guard db.changesCount == 1 else { throw StoreError.unknownDevice(user: cuid.value, device: id) }
            _ = try Self.appendUserEvent(db, cuid: cuid.value, topic: .device, data: ["device": .string(id), "state": "revoked"], now: now)
        }
    }

    // MARK: Events (10.5)

    /// Appends an event for `cuid` with the user's next seq (1 for the
    /// first), inside the open transaction of the change it reports.
    @discardableResult
    public static func appendUserEvent(_ db: Database, cuid: String, topic: UserTopic, data: JSONValue, now: Int64) throws -> UserEvent {
        let seq = (try Int64.fetchOne(cached: db, sql: "SELECT max(seq) FROM user_events WHERE cuid = ?", arguments: [cuid]) ?? 0) + 1
        try db.execute(
            cached: "INSERT INTO user_events (cuid, seq, topic, data, created) VALUES (?, ?, ?, ?, ?)",
            arguments: [cuid, seq, topic.rawValue, data.canonicalString, now])
        return UserEvent(topic: topic, seq: seq, data: data)
    }

    /// `appendUserEvent` for the user who holds tally `tally` (none when there is no such tally).
    static func appendTallyUserEvent(_ db: Database, tally: String, topic: UserTopic, data: JSONValue, now: String) throws {
        guard let cuid = try String.fetchOne(cached: db, sql: "SELECT cuid FROM tallies WHERE uuid = ?", arguments: [tally]) else { return }
        try appendUserEvent(db, cuid: cuid, topic: topic, data: data, now: Timestamp.parse(now) ?? 0)
    }

    /// The events of `cuid` after seq `after`, in seq order, at most `limit`.
    public func userEvents(cuid: CUID, after: Int64, limit: Int) throws -> [UserEvent] {
        try guardedRead { db in
            try Row.fetchAll(
                cached: db, sql: "SELECT seq, topic, data FROM user_events WHERE cuid = ? AND seq > ? ORDER BY seq LIMIT ?",
                arguments: [cuid.value, after, max(0, limit)]
            ).map { row in
                let seq: Int64 = row["seq"], topic: String = row["topic"], data: String = row["data"]
                guard let t = UserTopic(rawValue: topic), let value = try? JSONValue(parsing: data) else {
                    throw StoreError.damaged("event \(seq) of \(cuid.value)")
                }
                return UserEvent(topic: t, seq: seq, data: value)
            }
        }
    }

    /// The seq of the user's latest event, 0 when there is none.
    /// What serve's open sessions need after a commit, in one read: each
    /// user's latest `seq`, and for each device still registered its user's
    /// custody and lock (a device missing here was revoked).
    public struct SessionStates: Sendable {
        public var seqs: [CUID: Int64] = [:]
        public var live: [DeviceID: (custody: UserCustody, locked: Bool)] = [:]
    }

    public func sessionStates(users: Set<CUID>, devices: Set<DeviceID>) throws -> SessionStates {
        try guardedRead { db in
            var out = SessionStates()
            let cuids = Array(users), ids = Array(devices)
            if !cuids.isEmpty {
                let marks = Array(repeating: "?", count: cuids.count).joined(separator: ",")
                for row in try Row.fetchAll(
                    db, sql: "SELECT cuid, max(seq) AS seq FROM user_events WHERE cuid IN (\(marks)) GROUP BY cuid",
                    arguments: StatementArguments(cuids.map(\.value)))
                {
                    out.seqs[try CUID(row["cuid"] as String)] = row["seq"]
                }
            }
            if !ids.isEmpty {
                let lockdown = try Self.isLockedDown(db)
                let marks = Array(repeating: "?", count: ids.count).joined(separator: ",")
                for row in try Row.fetchAll(
                    db,
                    sql: """
                        SELECT d.id, u.custody, u.locked FROM devices d JOIN users u ON u.cuid = d.cuid
                        WHERE d.revoked IS NULL AND d.id IN (\(marks))
                        """, arguments: StatementArguments(ids.map(\.description)))
                {
                    let custody: String = row["custody"], locked: Bool = row["locked"]
                    guard let c = UserCustody(rawValue: custody) else { continue }
                    out.live[try DeviceID(row["id"] as String)] = (c, locked || lockdown)
                }
            }
            return out
        }
    }

    public func latestUserSeq(cuid: CUID) throws -> Int64 {
        try guardedRead { db in
            try Int64.fetchOne(cached: db, sql: "SELECT max(seq) FROM user_events WHERE cuid = ?", arguments: [cuid.value]) ?? 0
        }
    }

    /// The seq of the user's oldest kept event, nil when there is none. A
    /// `since` below this minus 1 is older than the kept window: `resync`.
    public func oldestKeptUserSeq(cuid: CUID) throws -> Int64? {
        try guardedRead { db in
            try Int64.fetchOne(cached: db, sql: "SELECT min(seq) FROM user_events WHERE cuid = ?", arguments: [cuid.value])
        }
    }

    /// Whether a device that has processed up to `since` missed events no
    /// longer kept (it must get `resync`).
    public func userEventsMissed(cuid: CUID, since: Int64) throws -> Bool {
        guard let oldest = try oldestKeptUserSeq(cuid: cuid) else { return false }
        return since < oldest - 1
    }

    /// Removes what the user port keeps only for a while: events older than
    /// 30 days (each user's latest is kept, so seq never restarts), replies
    /// older than 24 h, and expired tickets.
    @discardableResult
    public func pruneUserData(now: Int64) throws -> UserPrune {
        let eventCut = now - Int64(UserPortDefaults.eventRetentionDays) * 86_400_000
        let replyCut = now - Int64(UserPortDefaults.idemRetentionHours) * 3_600_000
        return try guardedWrite { db in
            var p = UserPrune()
            try db.execute(
                cached: """
                    DELETE FROM user_events WHERE created < ?
                    AND seq < (SELECT max(e.seq) FROM user_events e WHERE e.cuid = user_events.cuid)
                    """, arguments: [eventCut])
            p.events = db.changesCount
            try db.execute(cached: "DELETE FROM user_replies WHERE created < ?", arguments: [replyCut])
            p.replies = db.changesCount
            try db.execute(cached: "DELETE FROM user_tickets WHERE expires <= ?", arguments: [now])
            p.tickets = db.changesCount
            return p
        }
    }

    // MARK: Idempotency (10.5)

    /// The text an idempotency key is stored under.
    static func replyKey(_ key: IdempotencyKey) -> String {
        let text: String
        switch key {
        case .signed(let cmd, let uuid, let revision): text = "s:\(cmd):\(uuid)" + (revision.map { ":\($0)" } ?? "")
        case .idem(let uuid): text = "i:\(uuid)"
        }
        // Keys are short (a command name and a uuid); a longer one is stored by its hash.
        return text.utf8.count <= 128 ? text : "h:" + Hex.encode(Crypto.sha256(Array(text.utf8)))
    }

    /// What the cache holds for `key` of `cuid` now (the check before a command runs).
    public func storedReply(cuid: CUID, key: IdempotencyKey, requestHash: String) throws -> StoredReply {
        try guardedRead { db in try Self.storedReply(db, cuid: cuid.value, key: key, requestHash: requestHash) }
    }

    /// What the cache holds for `key` of `cuid`, inside the command's transaction.
    public static func storedReply(_ db: Database, cuid: String, key: IdempotencyKey, requestHash: String) throws -> StoredReply {
        guard
            let row = try Row.fetchOne(
                cached: db, sql: "SELECT request_hash, reply FROM user_replies WHERE cuid = ? AND key = ?", arguments: [cuid, replyKey(key)])
        else { return .none }
        let stored: String = row["request_hash"], reply: String = row["reply"]
        guard stored == requestHash else { return .conflict }
        let data: JSONValue
        do { data = try JSONValue(parsing: reply) } catch { throw StoreError.damaged("stored reply of \(Printable.clip(cuid))") }
        // A success whose reply carried a secret: its repeat is `conflict`, never run again.
        return data == withheldReply ? .conflict : .replay(data)
    }

    /// What stands for a reply that is not kept because it carries a secret
    /// (`device.ticket`, the `me.key.take` fetch, 10.5): every reply's data
    /// is an object, so `null` is none of them.
    static let withheldReply: JSONValue = .null

    /// Remembers that a command under `key` succeeded without keeping its
    /// reply (it carries a secret), inside the command's transaction: a
    /// repeat gets `conflict` (10.5) instead of running the command again.
    public static func rememberWithheldReply(_ db: Database, cuid: String, key: IdempotencyKey, requestHash: String, now: Int64) throws {
        try rememberReply(db, cuid: cuid, key: key, requestHash: requestHash, reply: withheldReply, now: now)
    }

    /// Remembers a success's reply under `key`, inside the command's transaction.
    public static func rememberReply(_ db: Database, cuid: String, key: IdempotencyKey, requestHash: String, reply: JSONValue, now: Int64) throws {
        try db.execute(
            cached: """
                INSERT INTO user_replies (cuid, key, request_hash, reply, created) VALUES (?, ?, ?, ?, ?)
                ON CONFLICT (cuid, key) DO UPDATE SET request_hash = excluded.request_hash, reply = excluded.reply, created = excluded.created
                """, arguments: [cuid, replyKey(key), requestHash, reply.canonicalString, now])
    }

    // MARK: Custody (10.7)

    /// Who holds `cuid`'s signing key.
    public func custody(of cuid: CUID) throws -> UserCustody {
        try guardedRead { db in try Self.custody(db, cuid.value) }
    }

    static func custody(_ db: Database, _ cuid: String) throws -> UserCustody {
        guard let text = try String.fetchOne(cached: db, sql: "SELECT custody FROM users WHERE cuid = ?", arguments: [cuid]) else {
            throw StoreError.unknownUser(cuid)
        }
        guard let c = UserCustody(rawValue: text) else { throw StoreError.damaged("custody of \(Printable.clip(cuid))") }
        return c
    }
}
