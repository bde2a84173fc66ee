import ChipModel
import ChipProtocol
import Foundation
import GRDB

// The site's side of every dialog: one message, one transaction. Each
// `receive` loads the snapshot its decider needs, asks the decider
// (ChipProtocol), and applies the decision's effects in the same write
// transaction. Nothing here decides anything; the replies go out after the
// commit (the engine sends them).

extension SiteStore {
    // MARK: Tally messages (sections 6 and 7)

    /// Handles a tally message from `peer`: a ticket (we issued it), or an
    /// offer, open, void or draft. `userKey` opens one of our users' keys:
    /// the inviting user's for a ticket, and for an offer the requester's when
    /// it asked to accept at once (a key that cannot be opened means no
    /// accepting at once, never a failure).
    public func receiveTally(_ m: TallyMessage, from peer: AgentID, userKey: (CUID) throws -> SigningKey) throws -> Outcome {
        if m.action == .ticket { return try redeemTicket(m, userKey: userKey) }
        let a: TallyDialog.Addressed
        switch TallyDialog.address(m, peer: peer) {
        case .success(let addressed): a = addressed
        case .failure(let why): return .ignored(why.description)
        }
        let key: SigningKey? = m.action == .offer ? try? userKey(a.to.cuid) : nil
        let now = Self.now()
        return try guardedWrite { db in
            let snapshot = try Self.tallySnapshot(db, m.action, a, peer: peer, acceptKey: key)
            return try Self.commit(TallyDialog.decide(m.action, a, snapshot: snapshot, now: now), db, now: now)
        }
    }

    /// The issuer's side of a ticket (section 6): of two racing redemptions
    /// of a one-time token exactly one wins (the transaction is the lock).
    func redeemTicket(_ m: TallyMessage, userKey: (CUID) throws -> SigningKey) throws -> Outcome {
        guard case .ticket(let token, _, _) = m.body, let from = m.from else { return .ignored("not a ticket message") }
        guard let ticket = try self.ticket(token), ticket.cuid == m.to.cuid else { return .ignored("unknown ticket") }
        // A `device` user's key is its device's (10.7): the offer waits for its signature.
        let key: SigningKey? = try custody(of: ticket.cuid) == .device ? nil : try userKey(ticket.cuid)
        let now = Self.now()
        let uuid = TallyCore.newUUID()
        return try guardedWrite { db in
            let existing = try Row.fetchOne(
                cached: db,
                sql: """
                    SELECT * FROM tallies WHERE token = ? AND partner_agent = ? AND partner_cuid = ?
                    """, arguments: [token, from.agent.description, from.cuid.value]
            ).map(Self.tallyRecord)
            let stored = try Row.fetchOne(cached: db, sql: "SELECT * FROM tickets WHERE token = ?", arguments: [token]).map(Self.ticketInfo)
            let snapshot = TallyDialog.TicketSnapshot(
                ticket: stored, existing: existing,
                locked: try Self.isLockedDown(db) || Self.isUserLocked(db, ticket.cuid),
                inviterCert: try Self.userCert(db, ticket.cuid))
            return try Self.commit(TallyDialog.decideTicket(m, snapshot: snapshot, now: now, uuid: uuid, key: key), db, now: now)
        }
    }

    static func tallySnapshot(
        _ db: Database, _ action: TallyMessage.Action, _ a: TallyDialog.Addressed, peer: AgentID,
        acceptKey: SigningKey?
    ) throws -> TallyDialog.Snapshot {
        let existing = try fetchTally(db, uuid: a.core.uuid)
        var s = TallyDialog.Snapshot(existing: existing)
        switch action {
        case .offer:
            s.locked = try isLockedDown(db) || isUserLocked(db, a.to.cuid)
            // One read: the request's row holds both the record and, in its
            // core column, whether it asked to accept at once.
            if let row = try Row.fetchOne(
                cached: db,
                sql: """
                    SELECT * FROM tallies WHERE state = ? AND cuid = ? AND partner_agent = ? AND partner_cuid = ? ORDER BY created LIMIT 1
                    """, arguments: [TallyState.draft.rawValue, a.to.cuid.value, peer.description, a.partner.cuid.value])
            {
                s.request = try tallyRecord(row)
                let core: String = row["core"]
                s.requestAccepts = (try JSONValue(parsing: core))[requestNoteKey]?["accept"]?.boolValue ?? false
            }
            s.userCert = try userCert(db, a.to.cuid)
            s.acceptKey = acceptKey
        case .open, .void:
            if let existing { s.issued = try issued(db, existing) }
            s.waiting = try Bool.fetchOne(cached: db, sql: "SELECT 1 FROM outbox WHERE topic = ? LIMIT 1", arguments: [a.core.uuid]) ?? false
        case .draft, .ticket:
            break
        }
        return s
    }

    /// Whether this site issued the ticket `t` came from (it is the issuer's
    /// side of the dialog, which answers repeats).
    static func issued(_ db: Database, _ t: TallyRecord) throws -> Bool {
        guard let token = t.token else { return false }
        return try Bool.fetchOne(cached: db, sql: "SELECT 1 FROM tickets WHERE token = ?", arguments: [token]) != nil
    }

    // MARK: Chit messages (section 8)

    /// Handles a chain message (tran, upd, ack, nak) or an invoice message
    /// (invoice, refuse) from `peer`.
    public func receiveChit(_ m: ChitMessage, from peer: AgentID) throws -> Outcome {
        let now = Self.now()
        return try guardedWrite { db in
            switch m.action {
            case .tran, .upd, .ack, .nak:
                return try Self.commit(ChainDialog.decide(m, snapshot: try Self.chainSnapshot(db, m, peer: peer)), db, now: now)
            case .invoice, .refuse:
                return try Self.commit(InvoiceDialog.decide(m, snapshot: try Self.invoiceSnapshot(db, m, peer: peer)), db, now: now)
            }
        }
    }

    /// The open tally `uuid` shared with `peer`, or nil: a chit message about
    /// any other tally is ignored.
    static func partnerTally(_ db: Database, _ uuid: String, peer: AgentID) throws -> TallyRecord? {
        guard
            let t = try Row.fetchOne(
                cached: db, sql: "SELECT * FROM tallies WHERE uuid = ? AND state = ? AND partner_agent = ?",
                arguments: [uuid, TallyState.open.rawValue, peer.description]
            ).map(tallyRecord),
            t.core != nil
        else { return nil }
        return t
    }

    static func chainSnapshot(_ db: Database, _ m: ChitMessage, peer: AgentID) throws -> ChainDialog.Snapshot {
        guard let t = try partnerTally(db, m.tally, peer: peer) else { return ChainDialog.Snapshot(tally: nil) }
        var s = ChainDialog.Snapshot(tally: t)
        let (uuids, indices) = ChainDialog.wants(m)
        if !uuids.isEmpty {
            let marks = Array(repeating: "?", count: uuids.count).joined(separator: ",")
            for row in try Row.fetchAll(
                db, sql: "SELECT uuid, hash, tally, state, local, note, lift FROM chits WHERE uuid IN (\(marks))",
                arguments: StatementArguments(Array(uuids)))
            {
                let state: String = row["state"], lift: String? = row["lift"]
                // A lift chit is chained or not yet (pend, good, void: outside the chain).
                let stored: ChitRecord.State =
                    lift == nil ? ChitRecord.State(rawValue: state) ?? .refused : state == "chained" ? .chained : .pending
                s.chits[row["uuid"]] = ChainDialog.StoredChit(
                    hash: row["hash"], tally: row["tally"], state: stored, local: row["local"], note: row["note"], lift: lift)
            }
        }
        let positive = indices.filter { $0 > 0 && $0 <= t.chainLength }
        if !positive.isEmpty {
            let marks = Array(repeating: "?", count: positive.count).joined(separator: ",")
            for row in try Row.fetchAll(
                db, sql: "SELECT idx, chain_hash FROM chits WHERE tally = ? AND idx IN (\(marks))",
                arguments: StatementArguments([t.uuid] + positive.map { $0 as any DatabaseValueConvertible }))
            {
                s.hashes[row["idx"]] = row["chain_hash"]
            }
        }
        switch m.action {
        case .tran, .upd:
            if m.action == .tran {
                s.locked = try isLockedDown(db) || isUserLocked(db, t.cuid)
                s.held = try reservations(db, tally: t.uuid)
            }
            for row in try Row.fetchAll(
                cached: db,
                sql: """
                    SELECT uuid, units, object FROM invoices WHERE tally = ? AND direction = 'out' AND state = 'open'
                    """, arguments: [t.uuid])
            {
                let object: String = row["object"]
                guard let by = (try? JSONValue(parsing: object))?["by"]?.stringValue.flatMap(TallySide.init(rawValue:)) else { continue }
                s.asked[row["uuid"]] = ChainDialog.AskedInvoice(units: row["units"], by: by)
            }
        case .ack, .nak:
            if !uuids.isEmpty {
                let marks = Array(repeating: "?", count: uuids.count).joined(separator: ",")
                for row in try Row.fetchAll(
                    db,
                    sql: """
                        SELECT uuid, chit FROM invoices WHERE tally = ? AND direction = 'in' AND state = 'paid' AND chit IN (\(marks))
                        """, arguments: StatementArguments([t.uuid] + Array(uuids)))
                {
                    s.paidBy[row["chit"]] = row["uuid"]
                }
            }
        case .invoice, .refuse:
            break
        }
        return s
    }

    static func invoiceSnapshot(_ db: Database, _ m: ChitMessage, peer: AgentID) throws -> InvoiceDialog.Snapshot {
        guard let t = try partnerTally(db, m.tally, peer: peer) else { return InvoiceDialog.Snapshot(tally: nil, existing: nil) }
        let uuid: String
        switch m.body {
        case .invoice(let i): uuid = i.uuid
        case .refuse(_, let u, _): uuid = u
        default: return InvoiceDialog.Snapshot(tally: t, existing: nil)
        }
        let existing = try Row.fetchOne(cached: db, sql: "SELECT * FROM invoices WHERE uuid = ?", arguments: [uuid]).flatMap(invoiceRecord)
        let open =
            m.action == .invoice
            ? try Int.fetchOne(
                cached: db, sql: "SELECT count(*) FROM invoices WHERE tally = ? AND direction = 'in' AND state = 'open'",
                arguments: [t.uuid]) ?? 0
            : 0
        return InvoiceDialog.Snapshot(tally: t, existing: existing, openIncoming: open)
    }

    // MARK: Applying a decision

    /// Applies `decision`'s effects inside the open transaction and returns
    /// what the engine is to do once it commits.
    static func commit(_ decision: Decision, _ db: Database, now: String) throws -> Outcome {
        for effect in decision.effects { try apply(effect, db, now: now) }
        return decision.outcome
    }

    /// The `chit` event of a `tran` chit's new state, for the user who holds its tally.
    static func appendChitUserEvent(
        _ db: Database, _ uuid: String, state: String, extra: [String: JSONValue], now: String, localOnly: Bool = false
    ) throws {
        guard
            let row = try Row.fetchOne(
                cached: db, sql: "SELECT tally, by, units, local FROM chits WHERE uuid = ? AND type = 'tran'" + (localOnly ? " AND local = 1" : ""),
                arguments: [uuid])
        else { return }
        let tally: String = row["tally"], by: String = row["by"], units: Int64 = row["units"], local: Bool = row["local"]
        var data: [String: JSONValue] = [
            "uuid": .string(uuid), "tally": .string(tally), "by": .string(by), "units": .integer(units), "state": .string(state),
            "local": .bool(local)
        ]
        data.merge(extra) { a, _ in a }
        try appendTallyUserEvent(db, tally: tally, topic: .chit, data: .object(data), now: now)
    }

    static func apply(_ effect: Effect, _ db: Database, now: String) throws {
        switch effect {
        case .consumeTicket(let token, let at):
            try db.execute(cached: "UPDATE tickets SET used = ? WHERE token = ? AND used IS NULL", arguments: [at, token])
            guard db.changesCount == 1 else { throw StoreError.damaged("ticket used meanwhile") }
        case .insertTally(let r):
            guard let core = r.core, let sign = r.sign else { throw StoreError.damaged("a tally without a core") }
            try insertTally(
                db, core: core, sign: sign, cuid: r.cuid, side: r.side, partner: r.partner, state: r.state,
                token: r.token, now: r.created)
            // A partner's offer or request reaches one of our users (10.5).
            try appendUserEvent(
                db, cuid: r.cuid.value, topic: .tally, data: ["uuid": .string(core.uuid), "state": .string(r.state.rawValue)],
                now: Timestamp.parse(now) ?? 0)
            try appendSignEventIfDevice(db, tally: core.uuid, now: now)
        case .deleteTally(let uuid):
            try db.execute(cached: "DELETE FROM tallies WHERE uuid = ?", arguments: [uuid])
        case .setTallyState(let uuid, let state, let sign):
            let before = try String.fetchOne(cached: db, sql: "SELECT state FROM tallies WHERE uuid = ?", arguments: [uuid])
            if before != state.rawValue {
                // The partner offered, accepted or refused (10.5).
                try appendTallyUserEvent(db, tally: uuid, topic: .tally, data: ["uuid": .string(uuid), "state": .string(state.rawValue)], now: now)
            }
            if let sign {
                try db.execute(
                    cached: "UPDATE tallies SET state = ?, sign_stock = ?, sign_foil = ?, updated = ? WHERE uuid = ?",
                    arguments: [state.rawValue, sign.stock, sign.foil, now, uuid])
            } else {
                try db.execute(cached: "UPDATE tallies SET state = ?, updated = ? WHERE uuid = ?", arguments: [state.rawValue, now, uuid])
            }
        case .voidRequest(let uuid, let note):
            try voidRequest(db, uuid: uuid, note: note, now: now)
            try appendTallyUserEvent(db, tally: uuid, topic: .tally, data: ["uuid": .string(uuid), "state": "void"], now: now)
        case .enqueue(let to, let topic, let message, let firstContact):
            try enqueue(db, to: to, topic: topic, message: message.json, firstContact: firstContact)
        case .dropOutbox(let topic):
            try dropOutbox(db, topic: topic)
        case .insertChit(let chit, let local):
            try insertChit(db, chit, local: local, now: now)
        case .chainChit(let uuid, let index, let prior, let hash):
            try db.execute(
                cached: "UPDATE chits SET state = 'chained', idx = ?, prior = ?, chain_hash = ? WHERE uuid = ?",
                arguments: [index, prior, hash, uuid])
            // A payment chained on one of our users' tallies: the user received
            // it, or (`local`) the partner's site took the user's own (10.5).
            // A lift chit's result is the lift event.
            try appendChitUserEvent(db, uuid, state: "chained", extra: ["index": .integer(index)], now: now)
        case .refuseChit(let uuid, let reason):
            try db.execute(cached: "UPDATE chits SET state = 'refused', note = ? WHERE uuid = ?", arguments: [reason, uuid])
            // The partner's site refused one of our user's payments.
            try appendChitUserEvent(db, uuid, state: "refused", extra: ["reason": .string(reason)], now: now, localOnly: true)
        case .setChainHead(let tally, let length, let head, let balance):
            try db.execute(
                cached: "UPDATE tallies SET chain_length = ?, chain_head = ?, balance = ?, updated = ? WHERE uuid = ?",
                arguments: [length, head, balance, now, tally])
        case .setAcked(let tally, let index):
            try db.execute(cached: "UPDATE tallies SET acked_length = ? WHERE uuid = ?", arguments: [index, tally])
        case .insertIncomingInvoice(let i):
            try db.execute(
                cached: """
                    INSERT INTO invoices (uuid, tally, direction, units, memo, object, state, created, updated)
                    VALUES (?, ?, 'in', ?, ?, ?, 'open', ?, ?)
                    """, arguments: [i.uuid, i.tally, i.units, i.memo, i.json.canonicalString, now, now])
            // An invoice to one of our users (10.5).
            try appendTallyUserEvent(
                db, tally: i.tally, topic: .invoice,
                data: ["uuid": .string(i.uuid), "tally": .string(i.tally), "units": .integer(i.units), "state": "open"], now: now)
            try appendInvoiceSignEventIfDevice(db, i, now: now)
        case .settleInvoice(let uuid, let chit):
            try db.execute(
                cached: """
                    UPDATE invoices SET state = 'paid', chit = ?, updated = ? WHERE uuid = ? AND direction = 'out' AND state = 'open'
                    """, arguments: [chit, now, uuid])
        case .reopenInvoice(let uuid):
            try db.execute(
                cached: """
                    UPDATE invoices SET state = 'open', chit = NULL, updated = ? WHERE uuid = ? AND direction = 'in' AND state = 'paid'
                    """, arguments: [now, uuid])
        case .refuseOurInvoice(let uuid, let reason):
            try db.execute(
                cached: """
                    UPDATE invoices SET state = 'refused', note = ?, updated = ? WHERE uuid = ? AND direction = 'out' AND state = 'open'
                    """, arguments: [reason, now, uuid])
        case .storeRefereeDecision, .applyLiftDecision, .storeDecisionProof, .refereeEquivocated, .insertLiftChit, .insertLiftRecord,
            .setLiftState, .setPromiseAnswer, .enqueueToReferee, .setDecisionPassed:
            try applyLift(effect, db, now: now)
        }
    }

    /// A request that cannot go on: void, with the reason kept for its user.
    static func voidRequest(_ db: Database, uuid: String, note: String, now: String) throws {
        let request: JSONValue = [requestNoteKey: ["note": .string(note)]]
        try db.execute(
            cached: "UPDATE tallies SET state = ?, core = ?, updated = ? WHERE uuid = ?",
            arguments: [TallyState.void.rawValue, request.canonicalString, now, uuid])
    }
}
