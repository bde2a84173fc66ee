import ChipModel
import ChipProtocol
import Foundation
import GRDB

extension SiteStore {
    // MARK: Partners

    /// Whether one of our users shares a tally, in negotiation or open, with
    /// `agent` (protocol section 4: who may open a channel with N+K).
    public func isPartner(_ agent: AgentID) throws -> Bool {
        let text = agent.description
        return try guardedRead { db in
            try Bool.fetchOne(
                cached: db,
                sql: """
                    SELECT 1 FROM tallies WHERE partner_agent = ? AND state NOT IN (?, ?) LIMIT 1
                    """, arguments: [text, TallyState.void.rawValue, TallyState.close.rawValue]) ?? false
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
            guard try Bool.fetchOne(cached: db, sql: "SELECT 1 FROM users WHERE cuid = ?", arguments: [cuid.value]) != nil else {
                throw StoreError.unknownUser(cuid.value)
            }
            try Self.checkNotLocked(db, cuid)
            try db.execute(
                cached: """
                    INSERT INTO tickets (token, cuid, expires, reuse, bound, terms, created) VALUES (?, ?, ?, ?, ?, ?, ?)
                    """, arguments: [token, cuid.value, expires, reuse, boundText, termsText, now])
            return TicketInfo(
                token: token, cuid: cuid, expires: expires, reuse: reuse, bound: boundText,
                terms: terms, used: nil, created: now)
        }
    }

    /// Deletes a ticket that was never handed out (its presentation failed).
    public func withdrawTicket(_ token: String) throws {
        try guardedWrite { db in try db.execute(cached: "DELETE FROM tickets WHERE token = ? AND used IS NULL", arguments: [token]) }
    }

    /// The ticket with `token`, if any.
    public func ticket(_ token: String) throws -> TicketInfo? {
        try guardedRead { db in
            guard let row = try Row.fetchOne(cached: db, sql: "SELECT * FROM tickets WHERE token = ?", arguments: [token]) else { return nil }
            return try Self.ticketInfo(row)
        }
    }

    static func ticketInfo(_ row: Row) throws -> TicketInfo {
        let cuid: String = row["cuid"]
        let terms: String = row["terms"]
        return TicketInfo(
            token: row["token"], cuid: try CUID(cuid), expires: row["expires"], reuse: row["reuse"],
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
            // Only while our offer waits for an answer, or for our `device`
            // user's signature (`P.draft`): that is when a repeat comes (the
            // requester did not see the offer, or a channel idled out before
            // the user signed); a refused, voided or opened tally gives its
            // requester no standing IK channel.
            try Bool.fetchOne(
                cached: db,
                sql: """
                    SELECT 1 FROM tallies WHERE token = ? AND partner_agent = ? AND partner_cuid = ? AND state IN (?, ?) LIMIT 1
                    """, arguments: [token, agent, cuid, TallyState.heldOffer.rawValue, TallyState.peerDraft.rawValue]) ?? false
        }
    }

    static func ticketProblem(_ t: TicketInfo, requester: CHAD, now: String) -> String? {
        TallyDialog.ticketProblem(t, requester: requester, now: now)
    }
}
