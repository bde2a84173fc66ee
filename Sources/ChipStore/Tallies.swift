import ChipModel
import ChipProtocol
import Foundation
import GRDB

/// What handling a ticket message came to.
public enum TicketOutcome: Sendable, Equatable {
    /// A tally was offered (or the earlier offer is repeated): send this.
    case offer(JSONValue)
    /// Refused, with the reason (for the log; the peer learns nothing).
    case refused(String)
}

/// What handling an incoming tally message came to.
public enum TallyOutcome: Sendable, Equatable {
    /// Applied; send these replies now (they are not kept in the outbox).
    case applied(replies: [JSONValue])
    /// Nothing to do: a repeat, or a message to ignore (reason for the log).
    case ignored(String)
}

extension SiteStore {
    static let requestNoteKey = "request"

    // MARK: Keys

    /// A user's signing key, opened with `sealingKey` when sealed.
    public func userKey(_ cuid: CUID, sealingKey: SealingKey?) throws -> SigningKey {
        let secret = try guardedRead { db in
            try Data.fetchOne(db, sql: "SELECT secret FROM users WHERE cuid = ?", arguments: [cuid.value])
        }
        guard let secret else { throw StoreError.unknownUser(cuid.value) }
        let stored = Array(secret)
        if StoredSecret.isSealed(stored), sealingKey == nil { throw StoreError.passphraseNeeded }
        return try Self.signingKey(from: stored, sealingKey: sealingKey, label: Self.userKeyLabel(cuid))
    }

    // MARK: Reading

    static func tallyRecord(_ row: Row) throws -> TallyRecord {
        let cuid: String = row["cuid"], side: String = row["side"], state: String = row["state"], coreText: String = row["core"]
        let agent: String = row["partner_agent"], pcuid: String = row["partner_cuid"], host: String = row["partner_host"]
        let port: Int = row["partner_port"]
        guard let s = TallySide(rawValue: side), let st = TallyState(rawValue: state) else { throw StoreError.damaged("tally state") }
        let coreJSON = try JSONValue(parsing: coreText)
        let core = coreJSON[Self.requestNoteKey] == nil ? try TallyCore(json: coreJSON) : nil
        let sign: TallySignatures? = (row["hash"] as String?).map { hash in
            TallySignatures(stock: row["sign_stock"], foil: row["sign_foil"], hash: hash)
        }
        return TallyRecord(
            uuid: row["uuid"], cuid: try CUID(cuid), side: s,
            partner: CHAD(cuid: try CUID(pcuid), agent: try AgentID(agent), address: try SiteAddress(host: host, port: port)),
            state: st, revision: row["revision"], core: core, sign: sign, token: row["token"], balance: row["balance"],
            created: row["created"], updated: row["updated"], note: coreJSON[Self.requestNoteKey]?["note"]?.stringValue,
            chainLength: row["chain_length"] ?? 0, chainHead: row["chain_head"])
    }

    /// Tallies, newest first, optionally of one user.
    public func tallies(user: CUID? = nil) throws -> [TallyRecord] {
        try guardedRead { db in
            let rows = user == nil
                ? try Row.fetchAll(db, sql: "SELECT * FROM tallies ORDER BY created DESC, uuid")
                : try Row.fetchAll(db, sql: "SELECT * FROM tallies WHERE cuid = ? ORDER BY created DESC, uuid", arguments: [user?.value])
            return try rows.map(Self.tallyRecord)
        }
    }

    /// The tally whose uuid is `id` or starts with it (at least 4 characters).
    public func tally(_ id: String) throws -> TallyRecord {
        let lowered = id.lowercased()
        guard lowered.utf8.count >= 4, lowered.utf8.count <= 36,
              lowered.utf8.allSatisfy({ (0x30...0x39).contains($0) || (0x61...0x66).contains($0) || $0 == UInt8(ascii: "-") })
        else { throw ModelError.invalid("a tally id is a uuid or at least its first 4 characters") }
        let rows = try guardedRead { db in
            try Row.fetchAll(db, sql: "SELECT * FROM tallies WHERE uuid LIKE ? || '%' LIMIT 2", arguments: [lowered]).map(Self.tallyRecord)
        }
        guard let first = rows.first else { throw ModelError.invalid("no tally \(lowered)") }
        guard rows.count == 1 else { throw ModelError.invalid("\(lowered) matches more than one tally; give more of its id") }
        return first
    }

    static func fetchTally(_ db: Database, uuid: String) throws -> TallyRecord? {
        try Row.fetchOne(db, sql: "SELECT * FROM tallies WHERE uuid = ?", arguments: [uuid]).map(tallyRecord)
    }

    private static func userCert(_ db: Database, _ cuid: CUID) throws -> JSONValue? {
        try String.fetchOne(db, sql: "SELECT cert FROM users WHERE cuid = ?", arguments: [cuid.value]).map { try JSONValue(parsing: $0) }
    }

    /// Refuses an action for `cuid` while the site is locked down or the user is locked.
    static func checkNotLocked(_ db: Database, _ cuid: CUID) throws {
        if try isLockedDown(db) { throw ModelError.invalid("the site is locked down (`chipsite lockdown off` to lift it)") }
        if try isUserLocked(db, cuid) { throw ModelError.invalid("user \(cuid) is locked (`chipsite user unlock \(cuid)` to lift it)") }
    }

    /// Whether messages of `cuid` must wait: the site is locked down or the user locked.
    public func isHeld(_ cuid: CUID) throws -> Bool {
        try guardedRead { db in try Self.isLockedDown(db) || (try? Self.isUserLocked(db, cuid)) ?? false }
    }

    // MARK: Requester: asking for a tally with a ticket

    /// Records a request for a tally with the ticket's issuer and queues the
    /// ticket message for the daemon (first contact over IK). Returns the
    /// request's provisional id, replaced by the issuer's tally uuid once the
    /// offer arrives.
    public func requestTally(cuid: CUID, ticket: TallyTicket, accept: Bool) throws -> String {
        let now = Self.now()
        if ticket.expires <= now { throw ModelError.invalid("the ticket expired at \(ticket.expires)") }
        let provisional = TallyCore.newUUID()
        return try guardedWrite { db in
            guard let cert = try Self.userCert(db, cuid) else { throw StoreError.unknownUser(cuid.value) }
            try Self.checkNotLocked(db, cuid)
            let me = try Certificate(json: cert).chad
            if ticket.chad.agent == (try Self.agent(db)) { throw ModelError.invalid("the ticket was issued by this site") }
            if try Bool.fetchOne(db, sql: "SELECT 1 FROM tallies WHERE token = ? AND cuid = ? AND state NOT IN ('void')",
                                 arguments: [ticket.token, cuid.value]) != nil {
                throw ModelError.invalid("\(cuid) has already used this ticket")
            }
            let request: JSONValue = [Self.requestNoteKey: ["accept": .bool(accept)]]
            try db.execute(sql: """
                INSERT INTO tallies (uuid, cuid, side, partner_agent, partner_cuid, partner_host, partner_port, state, core, token, created, updated)
                VALUES (?, ?, 'foil', ?, ?, ?, ?, 'draft', ?, ?, ?, ?)
                """, arguments: [provisional, cuid.value, ticket.chad.agent.description, ticket.chad.cuid.value, ticket.chad.address.host,
                                 ticket.chad.address.port, request.canonicalString, ticket.token, now, now])
            let message: JSONValue = ["target": "tally", "action": "ticket", "to": ticket.chad.json, "from": me.json,
                                      "ticket": ["token": .string(ticket.token), "cert": cert]]
            try Self.enqueue(db, to: ticket.chad, topic: provisional, message: message, firstContact: true)
            return provisional
        }
    }

    /// A first contact for request `topic` was refused by the issuer (it closed
    /// the channel): the request ends void and its message leaves the outbox.
    public func failRequest(topic: String, note: String) throws {
        let now = Self.now()
        try guardedWrite { db in
            let request: JSONValue = [Self.requestNoteKey: ["note": .string(note)]]
            try db.execute(sql: "UPDATE tallies SET state = 'void', core = ?, updated = ? WHERE uuid = ? AND state = 'draft'",
                           arguments: [request.canonicalString, now, topic])
            try db.execute(sql: "DELETE FROM outbox WHERE topic = ?", arguments: [topic])
        }
    }

    // MARK: Issuer: a ticket arrives

    /// Handles a ticket message (protocol section 6) in one transaction:
    /// checks the token, consumes it if one-time (of two racing redemptions
    /// exactly one wins), builds the tally with both certificates, signs it as
    /// the inviting user and queues the offer. A repeated ticket message from
    /// the same requester repeats the same offer.
    public func redeemTicket(_ message: JSONValue, userKey: (CUID) throws -> SigningKey) throws -> TicketOutcome {
        guard let token = message["ticket"]?["token"]?.stringValue, let certJSON = message["ticket"]?["cert"],
              let fromJSON = message["from"], let toJSON = message["to"] else { return .refused("malformed ticket message") }
        let from: CHAD, to: CHAD, requesterCert: Certificate
        do {
            from = try CHAD(json: fromJSON)
            to = try CHAD(json: toJSON)
            requesterCert = try Certificate(json: certJSON)
        } catch { return .refused("malformed ticket message: \(error)") }
        guard requesterCert.chad == from else { return .refused("certificate does not name the requester") }
        guard let ticket = try self.ticket(token), ticket.cuid == to.cuid else { return .refused("unknown ticket") }
        let key = try userKey(ticket.cuid)
        let now = Self.now()
        let uuid = TallyCore.newUUID()
        return try guardedWrite { db in
            if let existing = try Row.fetchOne(db, sql: """
                SELECT * FROM tallies WHERE token = ? AND partner_agent = ? AND partner_cuid = ?
                """, arguments: [token, from.agent.description, from.cuid.value]).map(Self.tallyRecord),
               let core = existing.core, let sign = existing.sign {
                return existing.state == .heldOffer ? .offer(Self.tallyMessage("offer", core, sign, existing)) : .refused("tally already answered")
            }
            guard let t = try Row.fetchOne(db, sql: "SELECT * FROM tickets WHERE token = ?", arguments: [token]).map(Self.ticketInfo) else {
                return .refused("unknown ticket")
            }
            if let problem = Self.ticketProblem(t, requester: from, now: now) { return .refused(problem) }
            if try Self.isLockedDown(db) || Self.isUserLocked(db, t.cuid) { return .refused("locked") }
            if !t.reuse {
                try db.execute(sql: "UPDATE tickets SET used = ? WHERE token = ? AND used IS NULL", arguments: [now, token])
                guard db.changesCount == 1 else { return .refused("ticket already used") }
            }
            guard let myCert = try Self.userCert(db, t.cuid) else { return .refused("the inviting user is gone") }
            let mySide = TallySide(rawValue: t.terms["side"]?.stringValue ?? "stock") ?? .stock
            var myTerms: [String: JSONValue] = [:]
            if let limit = t.terms["limit"] { myTerms["limit"] = limit }
            let mine = (cert: myCert, terms: JSONValue.object(myTerms)), theirs = (cert: certJSON, terms: JSONValue.object([:]))
            let core = try TallyCore(uuid: uuid, date: now, memo: t.terms["memo"]?.stringValue,
                                     stock: mySide == .stock ? mine : theirs, foil: mySide == .stock ? theirs : mine)
            var sign = TallySignatures(stock: nil, foil: nil, hash: core.hash)
            sign[mySide] = core.sign(with: key)
            try Self.insertTally(db, core: core, sign: sign, cuid: t.cuid, side: mySide, partner: from, state: .heldOffer,
                                 token: token, now: now)
            let record = TallyRecord(uuid: uuid, cuid: t.cuid, side: mySide, partner: from, state: .heldOffer, revision: 1,
                                     core: core, sign: sign, token: token, balance: 0, created: now, updated: now)
            let offer = Self.tallyMessage("offer", core, sign, record)
            try Self.enqueue(db, to: from, topic: uuid, message: offer)
            return .offer(offer)
        }
    }

    private static func insertTally(_ db: Database, core: TallyCore, sign: TallySignatures, cuid: CUID, side: TallySide,
                                    partner: CHAD, state: TallyState, token: String?, now: String) throws {
        try db.execute(sql: """
            INSERT INTO tallies (uuid, cuid, side, partner_agent, partner_cuid, partner_host, partner_port, state, revision,
                                 core, sign_stock, sign_foil, hash, token, created, updated)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """, arguments: [core.uuid, cuid.value, side.rawValue, partner.agent.description, partner.cuid.value,
                             partner.address.host, partner.address.port, state.rawValue, core.revision,
                             core.json.canonicalString, sign.stock, sign.foil, sign.hash, token, now, now])
    }

    /// `{"target":"tally","action":…,"to":partner,"from":us,"object":core+sign}`
    static func tallyMessage(_ action: String, _ core: TallyCore, _ sign: TallySignatures, _ t: TallyRecord) -> JSONValue {
        ["target": "tally", "action": .string(action), "to": t.partner.json, "from": core.cert(t.side).chad.json,
         "object": TallyObject.make(core, sign)]
    }

    // MARK: Both sides: offer, open, void

    /// Handles an incoming `offer`, `open` or `void` from `peer` in one
    /// transaction. Returns the replies to send at once (an `open` answers
    /// an `open`, a `void` answers a `void`), after the change is committed.
    public func receiveTally(_ message: JSONValue, from peer: AgentID, autoAcceptKey: (CUID) throws -> SigningKey?) throws -> TallyOutcome {
        guard let action = message["action"]?.stringValue, let object = message["object"], let toJSON = message["to"],
              let to = try? CHAD(json: toJSON) else { return .ignored("malformed tally message") }
        let core: TallyCore, sign: TallySignatures
        do { (core, sign) = try TallyObject.parse(object) } catch { return .ignored("bad tally object: \(error)") }
        // Which of our users, and on which side: the one whose certificate the core holds.
        let mySide: TallySide
        if core.stockCert.chad.agent == to.agent, core.stockCert.chad.cuid == to.cuid { mySide = .stock }
        else if core.foilCert.chad.agent == to.agent, core.foilCert.chad.cuid == to.cuid { mySide = .foil }
        else { return .ignored("the tally does not name the addressee") }
        guard core.cert(mySide.other).chad.agent == peer else { return .ignored("the tally's partner is not this peer") }
        let key: SigningKey? = action == "offer" ? try autoAcceptKey(to.cuid) : nil
        let now = Self.now()
        return try guardedWrite { db in
            switch action {
            case "offer": return try Self.receiveOffer(db, core: core, sign: sign, mySide: mySide, to: to, peer: peer, acceptKey: key, now: now)
            case "open": return try Self.receiveOpen(db, core: core, sign: sign, mySide: mySide, now: now)
            case "void": return try Self.receiveVoid(db, core: core, now: now)
            default: return .ignored("unknown tally action \(Printable.quote(action))")
            }
        }
    }

    private static func receiveOffer(_ db: Database, core: TallyCore, sign: TallySignatures, mySide: TallySide, to: CHAD,
                                     peer: AgentID, acceptKey: SigningKey?, now: String) throws -> TallyOutcome {
        if let existing = try fetchTally(db, uuid: core.uuid) {
            return .ignored("offer for a tally we have (\(existing.state.rawValue))")
        }
        // A locked user (or site) takes no offers now; the partner's offer waits in its outbox.
        if try isLockedDown(db) || isUserLocked(db, to.cuid) { return .ignored("locked: the offer waits") }
        // It must answer one of our requests to that user at that site...
        guard let request = try Row.fetchOne(db, sql: """
            SELECT * FROM tallies WHERE state = 'draft' AND cuid = ? AND partner_agent = ? AND partner_cuid = ? ORDER BY created LIMIT 1
            """, arguments: [to.cuid.value, peer.description, core.cert(mySide.other).chad.cuid.value]).map(tallyRecord)
        else { return .ignored("offer without a request") }
        // ...be signed by the inviting user and hold our user's own certificate.
        // A bad offer ends the request: the inviting site misbehaves.
        let problem: String?
        if !core.verify(sign[mySide.other], by: mySide.other) || sign[mySide] != nil {
            problem = "the inviting site's offer has a signature that does not verify; no tally was opened"
        } else if try userCert(db, to.cuid) != core.certJSON(mySide) {
            problem = "the inviting site's offer holds a wrong certificate for \(to.cuid); no tally was opened"
        } else {
            problem = nil
        }
        if let problem {
            let note: JSONValue = [requestNoteKey: ["note": .string(problem)]]
            try db.execute(sql: "UPDATE tallies SET state = 'void', core = ?, updated = ? WHERE uuid = ?",
                           arguments: [note.canonicalString, now, request.uuid])
            try db.execute(sql: "DELETE FROM outbox WHERE topic = ?", arguments: [request.uuid])
            return .ignored(problem)
        }
        let requestJSON = try String.fetchOne(db, sql: "SELECT core FROM tallies WHERE uuid = ?", arguments: [request.uuid]).map { try JSONValue(parsing: $0) }
        let wantsAccept = requestJSON?[requestNoteKey]?["accept"]?.boolValue ?? false
        try db.execute(sql: "DELETE FROM tallies WHERE uuid = ?", arguments: [request.uuid])
        try db.execute(sql: "DELETE FROM outbox WHERE topic = ?", arguments: [request.uuid])
        var sign = sign
        var state = TallyState.peerOffer
        // --accept: only when accepting commits our user to no credit of its own.
        if wantsAccept, let acceptKey, core.limit(mySide) == 0 {
            sign[mySide] = core.sign(with: acceptKey)
            state = .open
        }
        try insertTally(db, core: core, sign: sign, cuid: to.cuid, side: mySide, partner: core.cert(mySide.other).chad,
                        state: state, token: request.token, now: now)
        if state == .open, let t = try fetchTally(db, uuid: core.uuid) {
            try enqueue(db, to: t.partner, topic: core.uuid, message: tallyMessage("open", core, sign, t))
        }
        return .applied(replies: [])
    }

    private static func receiveOpen(_ db: Database, core: TallyCore, sign: TallySignatures, mySide: TallySide, now: String) throws -> TallyOutcome {
        guard let t = try fetchTally(db, uuid: core.uuid), t.side == mySide, let mine = t.core else { return .ignored("open for an unknown tally") }
        guard mine.json == core.json else { return .ignored("open with a different core") }
        guard core.verify(sign.stock, by: .stock), core.verify(sign.foil, by: .foil) else { return .ignored("open signatures do not verify") }
        switch t.state {
        case .heldOffer:
            try db.execute(sql: """
                UPDATE tallies SET state = 'open', sign_stock = ?, sign_foil = ?, updated = ? WHERE uuid = ?
                """, arguments: [sign.stock, sign.foil, now, core.uuid])
            try db.execute(sql: "DELETE FROM outbox WHERE topic = ?", arguments: [core.uuid])
            return .applied(replies: [tallyMessage("open", core, sign, t)])
        case .open:
            // Our own open came back: it was applied there.
            let had = try Int.fetchOne(db, sql: "SELECT count(*) FROM outbox WHERE topic = ?", arguments: [core.uuid]) ?? 0
            try db.execute(sql: "DELETE FROM outbox WHERE topic = ?", arguments: [core.uuid])
            // A repeat of the requester's open: the issuer answers again (its
            // answer may have been lost); the requester answers nothing, so no
            // open ever bounces between the two sites.
            let answer = try had == 0 && issued(db, t)
            return .applied(replies: answer ? [tallyMessage("open", core, sign, t)] : [])
        default:
            return .ignored("open for a tally in state \(t.state.rawValue)")
        }
    }

    private static func receiveVoid(_ db: Database, core: TallyCore, now: String) throws -> TallyOutcome {
        guard let t = try fetchTally(db, uuid: core.uuid), let mine = t.core, mine.json == core.json else { return .ignored("void for an unknown tally") }
        switch t.state {
        case .heldOffer, .peerOffer:
            try db.execute(sql: "UPDATE tallies SET state = 'void', updated = ? WHERE uuid = ?", arguments: [now, core.uuid])
            try db.execute(sql: "DELETE FROM outbox WHERE topic = ?", arguments: [core.uuid])
            return .applied(replies: [tallyMessage("void", core, t.sign ?? TallySignatures(stock: nil, foil: nil, hash: core.hash), t)])
        case .void:
            let had = try Int.fetchOne(db, sql: "SELECT count(*) FROM outbox WHERE topic = ?", arguments: [core.uuid]) ?? 0
            try db.execute(sql: "DELETE FROM outbox WHERE topic = ?", arguments: [core.uuid])
            if had > 0 { return .applied(replies: []) }
            // A repeated void from the requester: its echo was lost; answer again.
            return try issued(db, t)
                ? .applied(replies: [tallyMessage("void", core, t.sign ?? TallySignatures(stock: nil, foil: nil, hash: core.hash), t)])
                : .ignored("void repeated")
        default:
            return .ignored("void for a tally in state \(t.state.rawValue)")
        }
    }

    /// Whether this site issued the ticket `t` came from (it is the issuer's
    /// side of the dialog, which answers repeats).
    static func issued(_ db: Database, _ t: TallyRecord) throws -> Bool {
        guard let token = t.token else { return false }
        return try Bool.fetchOne(db, sql: "SELECT 1 FROM tickets WHERE token = ?", arguments: [token]) != nil
    }

    // MARK: A user answers an offer

    /// Signs the offered tally as our user and queues `open`.
    public func acceptTally(_ id: String, key: (CUID) throws -> SigningKey) throws -> TallyRecord {
        let t = try tally(id)
        guard t.state == .peerOffer, let core = t.core, var sign = t.sign else {
            throw ModelError.invalid("tally \(t.uuid) is \(t.state.rawValue), not an offer waiting for you")
        }
        sign[t.side] = core.sign(with: try key(t.cuid))
        let now = Self.now()
        let signed = sign
        return try guardedWrite { db in
            try Self.checkNotLocked(db, t.cuid)
            try db.execute(sql: """
                UPDATE tallies SET state = 'open', sign_stock = ?, sign_foil = ?, updated = ? WHERE uuid = ? AND state = 'P.offer'
                """, arguments: [signed.stock, signed.foil, now, t.uuid])
            guard db.changesCount == 1 else { throw ModelError.invalid("tally \(t.uuid) changed meanwhile; look again") }
            try Self.enqueue(db, to: t.partner, topic: t.uuid, message: Self.tallyMessage("open", core, signed, t))
            guard let updated = try Self.fetchTally(db, uuid: t.uuid) else { throw StoreError.damaged("tally vanished") }
            return updated
        }
    }

    /// Refuses the offered tally and queues `void`.
    public func refuseTally(_ id: String) throws -> TallyRecord {
        let t = try tally(id)
        guard t.state == .peerOffer, let core = t.core, let sign = t.sign else {
            throw ModelError.invalid("tally \(t.uuid) is \(t.state.rawValue), not an offer waiting for you")
        }
        let now = Self.now()
        return try guardedWrite { db in
            try db.execute(sql: "UPDATE tallies SET state = 'void', updated = ? WHERE uuid = ? AND state = 'P.offer'", arguments: [now, t.uuid])
            guard db.changesCount == 1 else { throw ModelError.invalid("tally \(t.uuid) changed meanwhile; look again") }
            try Self.enqueue(db, to: t.partner, topic: t.uuid, message: Self.tallyMessage("void", core, sign, t))
            guard let updated = try Self.fetchTally(db, uuid: t.uuid) else { throw StoreError.damaged("tally vanished") }
            return updated
        }
    }
}
