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
    // MARK: Outbox

    /// Agents with messages waiting, with where to reach them.
    public func outboxAgents() throws -> [(agent: AgentID, address: SiteAddress, firstContact: Bool)] {
        try guardedRead { db in
            try Row.fetchAll(
                cached: db,
                sql: """
                    SELECT agent, host, port, max(first_contact) AS fc FROM outbox GROUP BY agent ORDER BY min(id)
                    """
            ).compactMap { row in
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
            try Row.fetchAll(cached: db, sql: "SELECT * FROM outbox WHERE agent = ? ORDER BY id", arguments: [text]).compactMap(Self.outboxEntry)
        }
    }

    static func outboxEntry(_ row: Row) -> OutboxEntry? {
        let agent: String = row["agent"], host: String = row["host"], port: Int = row["port"], message: String = row["message"]
        guard let a = try? AgentID(agent), let addr = try? SiteAddress(host: host, port: port),
            let m = try? JSONValue(parsing: message)
        else { return nil }
        return OutboxEntry(
            id: row["id"], agent: a, address: addr, firstContact: row["first_contact"], topic: row["topic"],
            message: m, attempts: row["attempts"])
    }

    /// Adds a message to the outbox inside an open transaction.
    static func enqueue(_ db: Database, to chad: CHAD, topic: String, message: JSONValue, firstContact: Bool = false) throws {
        try db.execute(
            cached: """
                INSERT INTO outbox (agent, host, port, first_contact, topic, message, created) VALUES (?, ?, ?, ?, ?, ?, ?)
                """,
            arguments: [
                chad.agent.description, chad.address.host, chad.address.port, firstContact, topic,
                message.canonicalString, now()
            ])
    }

    /// Adds a message to the outbox in its own transaction.
    public func enqueue(to chad: CHAD, topic: String, message: JSONValue, firstContact: Bool = false) throws {
        try guardedWrite { db in try Self.enqueue(db, to: chad, topic: topic, message: message, firstContact: firstContact) }
    }

    /// Counts a delivery attempt for every message waiting for `agent`.
    public func noteAttempt(_ agent: AgentID) throws {
        let text = agent.description
        try guardedWrite { db in try db.execute(cached: "UPDATE outbox SET attempts = attempts + 1 WHERE agent = ?", arguments: [text]) }
    }

    /// Every waiting message about `topic` leaves the outbox (answered or superseded).
    static func dropOutbox(_ db: Database, topic: String) throws {
        try db.execute(cached: "DELETE FROM outbox WHERE topic = ?", arguments: [topic])
    }

    /// Removes one message (it was applied or superseded).
    public func removeOutbox(id: Int64) throws {
        try guardedWrite { db in try db.execute(cached: "DELETE FROM outbox WHERE id = ?", arguments: [id]) }
    }
}
