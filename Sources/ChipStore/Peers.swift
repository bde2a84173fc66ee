import ChipModel
import ChipProtocol
import Foundation
import GRDB

/// A message waiting in the outbox for another site.
public struct OutboxEntry: Sendable, Equatable {
    public var id: Int64
    public var agent: AgentID
    public var address: SiteAddress
    public var firstContact: Bool
    public var topic: String
    public var message: JSONValue
    public var attempts: Int
}

extension SiteStore {
    func guardedRead<T: Sendable>(_ body: @Sendable (Database) throws -> T) throws -> T {
        do { return try dbQueue.read(body) } catch { throw StoreError.from(error, path: path) }
    }

    func guardedWrite<T: Sendable>(_ body: @Sendable (Database) throws -> T) throws -> T {
        do { return try dbQueue.write(body) } catch { throw StoreError.from(error, path: path) }
    }

    // MARK: Config

    /// The stored value of `key` (nil when unset). A value that fails the
    /// key's validator (written around chipsite, or restored from an old
    /// file) is an error here, so no consumer ever acts on it.
    public func configValue(_ key: ConfigKey) throws -> String? {
        guard let value = try guardedRead({ db in try Self.config(db, key) }) else { return nil }
        do { try key.validate(value) } catch { throw StoreError.badSetting(key: key.name, reason: error.description) }
        return value
    }

    /// Validates and stores `value` for `key`.
    public func setConfigValue(_ key: ConfigKey, _ value: String) throws {
        try guardedWrite { db in try Self.setConfig(db, key, value) }
    }

    // MARK: Partners

    /// Whether one of our users shares a tally, in negotiation or open, with
    /// `agent` (protocol section 4: who may open a channel with N+K).
    public func isPartner(_ agent: AgentID) throws -> Bool {
        let text = agent.description
        return try guardedRead { db in
            try Bool.fetchOne(db, sql: """
                SELECT 1 FROM tallies WHERE partner_agent = ? AND state NOT IN ('void', 'close') LIMIT 1
                """, arguments: [text]) ?? false
        }
    }

    // MARK: Tickets

    /// Stores a new ticket for `cuid` with a fresh 128-bit token.
    public func issueTicket(cuid: CUID, expiresAt: Int64, reuse: Bool, bound: CHAD?, terms: JSONValue) throws -> TicketInfo {
        let token = Hex.encode(Crypto.randomBytes(16))
        let expires = Timestamp.format(millisecondsSince1970: expiresAt)
        let now = Self.now()
        let termsText = terms.canonicalString
        let boundText = bound?.description
        return try guardedWrite { db in
            guard try Bool.fetchOne(db, sql: "SELECT 1 FROM users WHERE cuid = ?", arguments: [cuid.value]) != nil else {
                throw StoreError.unknownUser(cuid.value)
            }
            try Self.checkNotLocked(db, cuid)
            try db.execute(sql: """
                INSERT INTO tickets (token, cuid, expires, reuse, bound, terms, created) VALUES (?, ?, ?, ?, ?, ?, ?)
                """, arguments: [token, cuid.value, expires, reuse, boundText, termsText, now])
            return TicketInfo(token: token, cuid: cuid, expires: expires, reuse: reuse, bound: boundText,
                              terms: terms, used: nil, created: now)
        }
    }

    /// Deletes a ticket that was never handed out (its presentation failed).
    public func withdrawTicket(_ token: String) throws {
        try guardedWrite { db in try db.execute(sql: "DELETE FROM tickets WHERE token = ? AND used IS NULL", arguments: [token]) }
    }

    /// The ticket with `token`, if any.
    public func ticket(_ token: String) throws -> TicketInfo? {
        try guardedRead { db in
            guard let row = try Row.fetchOne(db, sql: "SELECT * FROM tickets WHERE token = ?", arguments: [token]) else { return nil }
            return try Self.ticketInfo(row)
        }
    }

    static func ticketInfo(_ row: Row) throws -> TicketInfo {
        let cuid: String = row["cuid"]
        let terms: String = row["terms"]
        return TicketInfo(token: row["token"], cuid: try CUID(cuid), expires: row["expires"], reuse: row["reuse"],
                          bound: row["bound"], terms: try JSONValue(parsing: terms), used: row["used"], created: row["created"])
    }

    /// Why a ticket cannot be used by `requester` now, or nil when it can
    /// (protocol section 6). Reads only; consuming is part of the tally step.
    public func ticketProblem(token: String, requester: CHAD, now: String) throws -> String? {
        guard let t = try ticket(token) else { return "unknown ticket" }
        return Self.ticketProblem(t, requester: requester, now: now)
    }

    /// Whether `requester` has a tally from this ticket whose offer waits for its answer.
    public func ticketRedeemed(token: String, by requester: CHAD) throws -> Bool {
        let agent = requester.agent.description, cuid = requester.cuid.value
        return try guardedRead { db in
            // Only while our offer waits for an answer: that is when a repeat
            // comes (the requester did not see the offer); a refused, voided or
            // opened tally gives its requester no standing IK channel.
            try Bool.fetchOne(db, sql: """
                SELECT 1 FROM tallies WHERE token = ? AND partner_agent = ? AND partner_cuid = ? AND state = ? LIMIT 1
                """, arguments: [token, agent, cuid, TallyState.heldOffer.rawValue]) ?? false
        }
    }

    static func ticketProblem(_ t: TicketInfo, requester: CHAD, now: String) -> String? {
        TallyDialog.ticketProblem(t, requester: requester, now: now)
    }

    // MARK: Outbox

    /// Agents with messages waiting, with where to reach them.
    public func outboxAgents() throws -> [(agent: AgentID, address: SiteAddress, firstContact: Bool)] {
        try guardedRead { db in
            try Row.fetchAll(db, sql: """
                SELECT agent, host, port, max(first_contact) AS fc FROM outbox GROUP BY agent ORDER BY min(id)
                """).compactMap { row in
                let agent: String = row["agent"], host: String = row["host"], port: Int = row["port"], fc: Bool = row["fc"]
                guard let a = try? AgentID(agent), let addr = try? SiteAddress(host: host, port: port) else { return nil }
                return (a, addr, fc)
            }
        }
    }

    /// The waiting messages for `agent`, oldest first.
    public func outbox(for agent: AgentID) throws -> [OutboxEntry] {
        let text = agent.description
        return try guardedRead { db in
            try Row.fetchAll(db, sql: "SELECT * FROM outbox WHERE agent = ? ORDER BY id", arguments: [text]).compactMap(Self.outboxEntry)
        }
    }

    static func outboxEntry(_ row: Row) -> OutboxEntry? {
        let agent: String = row["agent"], host: String = row["host"], port: Int = row["port"], message: String = row["message"]
        guard let a = try? AgentID(agent), let addr = try? SiteAddress(host: host, port: port),
              let m = try? JSONValue(parsing: message) else { return nil }
        return OutboxEntry(id: row["id"], agent: a, address: addr, firstContact: row["first_contact"], topic: row["topic"],
                           message: m, attempts: row["attempts"])
    }

    /// Adds a message to the outbox inside an open transaction.
    static func enqueue(_ db: Database, to chad: CHAD, topic: String, message: JSONValue, firstContact: Bool = false) throws {
        try db.execute(sql: """
            INSERT INTO outbox (agent, host, port, first_contact, topic, message, created) VALUES (?, ?, ?, ?, ?, ?, ?)
            """, arguments: [chad.agent.description, chad.address.host, chad.address.port, firstContact, topic,
                             message.canonicalString, now()])
    }

    /// Adds a message to the outbox in its own transaction.
    public func enqueue(to chad: CHAD, topic: String, message: JSONValue, firstContact: Bool = false) throws {
        try guardedWrite { db in try Self.enqueue(db, to: chad, topic: topic, message: message, firstContact: firstContact) }
    }

    /// Counts a delivery attempt for every message waiting for `agent`.
    public func noteAttempt(_ agent: AgentID) throws {
        let text = agent.description
        try guardedWrite { db in try db.execute(sql: "UPDATE outbox SET attempts = attempts + 1 WHERE agent = ?", arguments: [text]) }
    }

    /// Every waiting message about `topic` leaves the outbox (answered or superseded).
    static func dropOutbox(_ db: Database, topic: String) throws {
        try db.execute(sql: "DELETE FROM outbox WHERE topic = ?", arguments: [topic])
    }

    /// Removes one message (it was applied or superseded).
    public func removeOutbox(id: Int64) throws {
        try guardedWrite { db in try db.execute(sql: "DELETE FROM outbox WHERE id = ?", arguments: [id]) }
    }
}
