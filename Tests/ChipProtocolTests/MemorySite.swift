import ChipModel
import ChipProtocol
import TestSupport

// A site held in dictionaries instead of a SQLite file, for the property
// tests of the pure deciders. It loads each decider's snapshot the way
// Sources/ChipStore/Dialogs.swift does and applies every `Effect` with the
// meaning of the SQL statement the store runs for it (the statement is quoted
// above each case), including the constraints of the schema that the store
// trusts (primary keys, foreign keys, the chits' CHECKs and UNIQUE (tally,
// idx)). A message is one transaction: the effects are applied to a copy,
// which replaces the site only if none of them broke a constraint.
//
// The user-side operations (request, accept, refuse a tally; pay; invoice)
// mirror SiteStore's (Tallies.swift, Chits.swift, Invoices.swift). Keys,
// uuids, tokens and the clock come from the site's seeded generator, so a run
// is the same on every machine.

/// A constraint of the site file's schema that an effect broke: the store's
/// transaction would roll back.
struct ConstraintViolation: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

/// A user operation refused (SiteStore throws `ModelError.invalid` for these).
struct Refused: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

struct MemoryUser {
    let cuid: CUID
    let key: SigningKey
    let cert: JSONValue
    var chad: CHAD
}

/// A message waiting in the outbox.
struct MemoryOutboxEntry: Equatable {
    let id: Int
    let to: CHAD
    let topic: String
    let message: SiteMessage
    let firstContact: Bool
}

/// A lift chit row (type 'lift'): 'pend', 'good', 'void' or 'chained' at `index`.
struct MemoryLiftChit: Equatable {
    enum State: String { case pend, good, void, chained }
    var chit: LiftChit
    var state: State
    var index: Int64?
    var chainHash: String?
    var local: Bool
    var created: String
}

/// A lift_decisions row: the decision, and whether it is the one applied (else proof).
struct MemoryDecision: Equatable {
    var decision: SignedDecision
    var applied: Bool
}

/// An invoice row: the record and the object as it was sent or received.
struct MemoryInvoice: Equatable {
    var record: InvoiceRecord
    var object: JSONValue
}

struct MemorySite {
    let name: String
    /// The site's agent key: it signs the lift chits of its users' halves (9.5).
    let siteKey: SigningKey
    let agent: AgentID
    let address: SiteAddress
    var rng: SplitMix64
    /// Milliseconds; every `now()` moves it on by one, so `created` orders rows.
    var clock: Int64 = 1_796_083_200_000  // 2026-12-01T00:00:00.000Z

    var users: [CUID: MemoryUser] = [:]
    var lockedUsers: Set<CUID> = []
    var lockedDown = false
    var tickets: [String: TicketInfo] = [:]
    var tallies: [String: TallyRecord] = [:]
    /// Row order of the tallies (SQLite's rowid), for "the first row that matches".
    var tallyRow: [String: Int] = [:]
    var acked: [String: Int64] = [:]
    /// The request note of a `draft` (core column `{"request":{"accept":…}}`).
    var requestAccepts: [String: Bool] = [:]
    var chits: [String: ChitRecord] = [:]
    var chitRow: [String: Int] = [:]
    /// The `prior` column of chained chits.
    var priors: [String: String] = [:]
    /// Lift chits (the chits table's type 'lift' rows), headers and decisions by H.
    var liftChits: [String: MemoryLiftChit] = [:]
    var liftHeaders: [String: LiftHeader] = [:]
    var liftDecisions: [String: [LiftResult: MemoryDecision]] = [:]
    var invoices: [String: MemoryInvoice] = [:]
    var outbox: [MemoryOutboxEntry] = []
    var rows = 0

    init(name: String, seed: UInt64, port: Int) throws {
        self.name = name
        rng = SplitMix64(seed: seed)
        siteKey = try SigningKey(seed: Self.bytes(32, &rng))
        agent = try AgentID(publicKey: siteKey.publicKey)
        address = try SiteAddress(host: "\(name).example", port: port)
    }

    static func bytes(_ n: Int, _ rng: inout SplitMix64) -> [UInt8] {
        (0..<n).map { _ in UInt8.random(in: 0...255, using: &rng) }
    }

    static func hex(_ bytes: [UInt8]) -> String { bytes.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined() }

    mutating func now() -> String {
        clock += 1
        return Timestamp.format(millisecondsSince1970: clock)
    }

    /// A version 4 uuid from the site's generator.
    mutating func newUUID() -> String {
        var b = Self.bytes(16, &rng)
        b[6] = b[6] & 0x0F | 0x40
        b[8] = b[8] & 0x3F | 0x80
        let h = Array(Self.hex(b))
        return String(h[0..<8]) + "-" + String(h[8..<12]) + "-" + String(h[12..<16]) + "-" + String(h[16..<20]) + "-" + String(h[20..<32])
    }

    mutating func nextRow() -> Int {
        rows += 1
        return rows
    }

    // MARK: Users and tickets

    @discardableResult
    mutating func addUser(_ cuid: String, name: String) throws -> MemoryUser {
        let id = try CUID(cuid)
        let key = try SigningKey(seed: Self.bytes(32, &rng))
        let chad = CHAD(cuid: id, agent: agent, address: address)
        let cert = try Certificate(chad: chad, type: .person, name: name, email: nil, publicKey: key.publicKey, date: now())
        let user = MemoryUser(cuid: id, key: key, cert: cert.json, chad: chad)
        users[id] = user
        return user
    }

    func user(_ cuid: CUID) throws -> MemoryUser {
        guard let u = users[cuid] else { throw Refused("no user \(cuid)") }
        return u
    }

    func isLocked(_ cuid: CUID) -> Bool { lockedDown || lockedUsers.contains(cuid) }

    /// SiteStore.issueTicket: a token for `cuid`'s tally with these terms.
    mutating func issueTicket(
        _ cuid: CUID, lifetime ms: Int64 = 600_000, reuse: Bool = false, bound: String? = nil,
        terms: JSONValue
    ) throws -> TallyTicket {
        let token = Self.hex(Self.bytes(16, &rng))
        let expires = Timestamp.format(millisecondsSince1970: clock + ms)
        tickets[token] = TicketInfo(
            token: token, cuid: cuid, expires: expires, reuse: reuse, bound: bound, terms: terms, used: nil,
            created: now())
        return try TallyTicket(token: token, expires: expires, chad: try user(cuid).chad)
    }

    // MARK: Receiving: load the snapshot, decide, apply (one transaction)

    /// Hands a message from `peer` to its dialog, as SiteStore.receiveTally /
    /// receiveChit do, and commits the decision. Returns the decision.
    mutating func receive(_ message: SiteMessage, from peer: AgentID) throws -> Decision {
        switch message {
        case .tally(let m):
            if m.action == .ticket { return try redeemTicket(m) }
            let a: TallyDialog.Addressed
            switch TallyDialog.address(m, peer: peer) {
            case .success(let addressed): a = addressed
            case .failure(let why): return .ignore(why.description)
            }
            let key = m.action == .offer ? users[a.to.cuid]?.key : nil
            let now = self.now()
            let decision = TallyDialog.decide(m.action, a, snapshot: tallySnapshot(m.action, a, peer: peer, acceptKey: key), now: now)
            try commit(decision, now: now)
            return decision
        case .chit(let m):
            let now = self.now()
            let decision: Decision
            switch m.action {
            case .tran, .upd, .ack, .nak: decision = ChainDialog.decide(m, snapshot: chainSnapshot(m, peer: peer))
            case .invoice, .refuse: decision = InvoiceDialog.decide(m, snapshot: invoiceSnapshot(m, peer: peer))
            }
            try commit(decision, now: now)
            return decision
        case .route, .lift:
            return .ignore("no dialog for \(message.target.rawValue) yet")
        }
    }

    /// Parses the JSON a partner sent (as the engine does) and receives it.
    mutating func receive(json: JSONValue, from peer: AgentID) throws -> Decision {
        do {
            return try receive(try SiteMessage(json: json), from: peer)
        } catch let error as MessageError {
            return .ignore(error.description)
        }
    }

    /// SiteStore.redeemTicket.
    mutating func redeemTicket(_ m: TallyMessage) throws -> Decision {
        guard case .ticket(let token, _, _) = m.body, let from = m.from else { return .ignore("not a ticket message") }
        guard let ticket = tickets[token], ticket.cuid == m.to.cuid else { return .ignore("unknown ticket") }
        let key = try user(ticket.cuid).key
        let now = self.now()
        let uuid = newUUID()
        // SELECT * FROM tallies WHERE token = ? AND partner_agent = ? AND partner_cuid = ?
        let existing = firstTally { $0.token == token && $0.partner.agent == from.agent && $0.partner.cuid == from.cuid }
        let snapshot = TallyDialog.TicketSnapshot(
            ticket: tickets[token], existing: existing, locked: isLocked(ticket.cuid),
            inviterCert: users[ticket.cuid]?.cert)
        let decision = TallyDialog.decideTicket(m, snapshot: snapshot, now: now, uuid: uuid, key: key)
        try commit(decision, now: now)
        return decision
    }

    /// The first tally row (in row order) that matches.
    func firstTally(where match: (TallyRecord) -> Bool) -> TallyRecord? {
        tallies.values.filter(match).min { (tallyRow[$0.uuid] ?? 0) < (tallyRow[$1.uuid] ?? 0) }
    }

    /// SiteStore.tallySnapshot.
    func tallySnapshot(
        _ action: TallyMessage.Action, _ a: TallyDialog.Addressed, peer: AgentID,
        acceptKey: SigningKey?
    ) -> TallyDialog.Snapshot {
        let existing = tallies[a.core.uuid]
        var s = TallyDialog.Snapshot(existing: existing)
        switch action {
        case .offer:
            s.locked = isLocked(a.to.cuid)
            // WHERE state = 'draft' AND cuid = ? AND partner_agent = ? AND partner_cuid = ? ORDER BY created LIMIT 1
            s.request = tallies.values
                .filter { $0.state == .draft && $0.cuid == a.to.cuid && $0.partner.agent == peer && $0.partner.cuid == a.partner.cuid }
                .min { ($0.created, tallyRow[$0.uuid] ?? 0) < ($1.created, tallyRow[$1.uuid] ?? 0) }
            if let request = s.request { s.requestAccepts = requestAccepts[request.uuid] ?? false }
            s.userCert = users[a.to.cuid]?.cert
            s.acceptKey = acceptKey
        case .open, .void:
            if let existing, let token = existing.token { s.issued = tickets[token] != nil }
            s.waiting = outbox.contains { $0.topic == a.core.uuid }
        case .draft, .ticket:
            break
        }
        return s
    }

    /// SiteStore.partnerTally: the open tally `uuid` shared with `peer`.
    func partnerTally(_ uuid: String, peer: AgentID) -> TallyRecord? {
        guard let t = tallies[uuid], t.state == .open, t.partner.agent == peer, t.core != nil else { return nil }
        return t
    }

    /// SiteStore.chainSnapshot.
    func chainSnapshot(_ m: ChitMessage, peer: AgentID) -> ChainDialog.Snapshot {
        guard let t = partnerTally(m.tally, peer: peer) else { return ChainDialog.Snapshot(tally: nil) }
        var s = ChainDialog.Snapshot(tally: t)
        let (uuids, indices) = ChainDialog.wants(m)
        // SELECT uuid, hash, tally, state, local, note, lift FROM chits WHERE uuid IN (…): any tally.
        for uuid in uuids {
            if let l = liftChits[uuid] {
                s.chits[uuid] = ChainDialog.StoredChit(
                    hash: l.chit.hash, tally: l.chit.tally, state: l.state == .chained ? .chained : .pending, local: l.local, note: nil,
                    lift: l.chit.lift)
            }
            guard let c = chits[uuid] else { continue }
            s.chits[uuid] = ChainDialog.StoredChit(hash: c.chit.hash, tally: c.chit.tally, state: c.state, local: c.local, note: c.note)
        }
        // SELECT idx, chain_hash FROM chits WHERE tally = ? AND idx IN (…), for 0 < idx <= chain_length.
        let positive = Set(indices.filter { $0 > 0 && $0 <= t.chainLength })
        if !positive.isEmpty {
            for c in chits.values where c.chit.tally == t.uuid {
                if let index = c.index, positive.contains(index) { s.hashes[index] = c.chainHash }
            }
        }
        switch m.action {
        case .tran, .upd:
            if m.action == .tran {
                s.locked = isLocked(t.cuid)
                s.held = reservations(t.uuid)
            }
            // SELECT uuid, units, object FROM invoices WHERE tally = ? AND direction = 'out' AND state = 'open'
            for i in invoices.values where i.record.tally == t.uuid && i.record.direction == .out && i.record.state == .open {
                guard let by = i.object["by"]?.stringValue.flatMap(TallySide.init(rawValue:)) else { continue }
                s.asked[i.record.uuid] = ChainDialog.AskedInvoice(units: i.record.units, by: by)
            }
        case .ack, .nak:
            // SELECT uuid, chit FROM invoices WHERE tally = ? AND direction = 'in' AND state = 'paid' AND chit IN (…)
            for i in invoices.values where i.record.tally == t.uuid && i.record.direction == .in && i.record.state == .paid {
                if let chit = i.record.chit, uuids.contains(chit) { s.paidBy[chit] = i.record.uuid }
            }
        case .invoice, .refuse:
            break
        }
        return s
    }

    /// SiteStore.invoiceSnapshot.
    func invoiceSnapshot(_ m: ChitMessage, peer: AgentID) -> InvoiceDialog.Snapshot {
        guard let t = partnerTally(m.tally, peer: peer) else { return InvoiceDialog.Snapshot(tally: nil, existing: nil) }
        let uuid: String
        switch m.body {
        case .invoice(let i): uuid = i.uuid
        case .refuse(_, let u, _): uuid = u
        default: return InvoiceDialog.Snapshot(tally: t, existing: nil)
        }
        let open =
            m.action == .invoice
            ? invoices.values.filter { $0.record.tally == t.uuid && $0.record.direction == .in && $0.record.state == .open }.count : 0
        return InvoiceDialog.Snapshot(tally: t, existing: invoices[uuid]?.record, openIncoming: open)
    }

    // MARK: Applying a decision

    /// All the effects or none (a broken constraint rolls the transaction back).
    mutating func commit(_ decision: Decision, now: String) throws {
        var copy = self
        for effect in decision.effects { try copy.apply(effect, now: now) }
        self = copy
    }

    mutating func apply(_ effect: Effect, now: String) throws {
        switch effect {
        case .consumeTicket(let token, let at):
            // UPDATE tickets SET used = ? WHERE token = ? AND used IS NULL; exactly one row, or the store throws.
            guard var t = tickets[token], t.used == nil else { throw ConstraintViolation("ticket used meanwhile") }
            t.used = at
            tickets[token] = t
        case .insertTally(let r):
            guard let core = r.core, let sign = r.sign else { throw ConstraintViolation("a tally without a core") }
            try insertTally(
                core: core, sign: sign, cuid: r.cuid, side: r.side, partner: r.partner, state: r.state, token: r.token,
                now: r.created)
        case .deleteTally(let uuid):
            // DELETE FROM tallies WHERE uuid = ? (a chit or invoice row referencing it would stop the delete).
            guard tallies[uuid] != nil else { return }
            if chits.values.contains(where: { $0.chit.tally == uuid }) || liftChits.values.contains(where: { $0.chit.tally == uuid })
                || invoices.values.contains(where: { $0.record.tally == uuid })
            {
                throw ConstraintViolation("FOREIGN KEY: tally \(uuid) still has rows")
            }
            tallies[uuid] = nil
            tallyRow[uuid] = nil
            acked[uuid] = nil
            requestAccepts[uuid] = nil
        case .setTallyState(let uuid, let state, let sign):
            // UPDATE tallies SET state = ?[, sign_stock = ?, sign_foil = ?], updated = ? WHERE uuid = ?
            guard var t = tallies[uuid] else { return }
            t.state = state
            if let sign {
                // The hash column stays as it is (a row without one reads back without signatures).
                t.sign = t.sign.map { TallySignatures(stock: sign.stock, foil: sign.foil, hash: $0.hash) }
            }
            t.updated = now
            tallies[uuid] = t
        case .voidRequest(let uuid, let note):
            // UPDATE tallies SET state = 'void', core = {"request":{"note":…}}, updated = ? WHERE uuid = ?
            guard var t = tallies[uuid] else { return }
            t.state = .void
            t.core = nil
            t.note = note
            t.updated = now
            tallies[uuid] = t
            requestAccepts[uuid] = nil
        case .enqueue(let to, let topic, let message, let firstContact):
            enqueue(to: to, topic: topic, message: message, firstContact: firstContact)
        case .dropOutbox(let topic):
            // DELETE FROM outbox WHERE topic = ?
            outbox.removeAll { $0.topic == topic }
        case .insertChit(let chit, let local):
            try insertChit(chit, local: local, now: now)
        case .chainChit(let uuid, let index, let prior, let hash):
            // UPDATE chits SET state = 'chained', idx = ?, prior = ?, chain_hash = ? WHERE uuid = ?
            if var l = liftChits[uuid] {
                try checkIndex(index, tally: l.chit.tally, except: uuid)
                l.state = .chained
                l.index = index
                l.chainHash = hash
                liftChits[uuid] = l
                priors[uuid] = prior
                return
            }
            guard var c = chits[uuid] else { return }
            try checkIndex(index, tally: c.chit.tally, except: uuid)
            c.state = .chained
            c.index = index
            c.chainHash = hash
            chits[uuid] = c
            priors[uuid] = prior
        case .refuseChit(let uuid, let reason):
            // UPDATE chits SET state = 'refused', note = ? WHERE uuid = ?
            if liftChits[uuid] != nil { throw ConstraintViolation("CHECK: a lift chit (\(uuid)) cannot be refused") }
            guard var c = chits[uuid] else { return }
            // CHECK ((state = 'chained') = (idx IS NOT NULL))
            if c.index != nil { throw ConstraintViolation("CHECK: a chained chit (\(uuid)) cannot be refused") }
            c.state = .refused
            c.note = reason
            chits[uuid] = c
        case .setChainHead(let tally, let length, let head, let balance):
            // UPDATE tallies SET chain_length = ?, chain_head = ?, balance = ?, updated = ? WHERE uuid = ?
            guard var t = tallies[tally] else { return }
            guard length >= 0 else { throw ConstraintViolation("CHECK: chain_length >= 0") }
            t.chainLength = length
            t.chainHead = head
            t.balance = balance
            t.updated = now
            tallies[tally] = t
        case .setAcked(let tally, let index):
            // UPDATE tallies SET acked_length = ? WHERE uuid = ?
            guard tallies[tally] != nil else { return }
            guard index >= 0 else { throw ConstraintViolation("CHECK: acked_length >= 0") }
            acked[tally] = index
        case .insertIncomingInvoice(let i):
            // INSERT INTO invoices (uuid, tally, direction, units, memo, object, state, created, updated) VALUES (…, 'in', …, 'open', …)
            guard invoices[i.uuid] == nil else { throw ConstraintViolation("UNIQUE: invoices.uuid \(i.uuid)") }
            guard tallies[i.tally] != nil else { throw ConstraintViolation("FOREIGN KEY: invoice on no tally") }
            guard i.units > 0, i.units <= Amount.maxMilli else { throw ConstraintViolation("CHECK: invoice units") }
            invoices[i.uuid] = MemoryInvoice(
                record: InvoiceRecord(
                    uuid: i.uuid, tally: i.tally, direction: .in, units: i.units, memo: i.memo, state: .open, chit: nil,
                    note: nil, created: now),
                object: i.json)
        case .settleInvoice(let uuid, let chit):
            // UPDATE invoices SET state = 'paid', chit = ? WHERE uuid = ? AND direction = 'out' AND state = 'open'
            guard var i = invoices[uuid], i.record.direction == .out, i.record.state == .open else { return }
            i.record.state = .paid
            i.record.chit = chit
            invoices[uuid] = i
        case .reopenInvoice(let uuid):
            // UPDATE invoices SET state = 'open', chit = NULL WHERE uuid = ? AND direction = 'in' AND state = 'paid'
            guard var i = invoices[uuid], i.record.direction == .in, i.record.state == .paid else { return }
            i.record.state = .open
            i.record.chit = nil
            invoices[uuid] = i
        case .refuseOurInvoice(let uuid, let reason):
            // UPDATE invoices SET state = 'refused', note = ? WHERE uuid = ? AND direction = 'out' AND state = 'open'
            guard var i = invoices[uuid], i.record.direction == .out, i.record.state == .open else { return }
            i.record.state = .refused
            i.record.note = reason
            invoices[uuid] = i
        case .insertLiftChit(let chit, let header, let local):
            try insertLiftChit(chit, header: header, local: local, now: now)
        case .applyLiftDecision(let d):
            try applyLiftDecision(d, now: now)
        case .storeDecisionProof(let d):
            try storeDecisionProof(d)
        case .storeRefereeDecision, .refereeEquivocated, .insertLiftRecord, .setLiftState, .setPromiseAnswer, .enqueueToReferee,
            .setDecisionPassed:
            // Lifts (section 9): as ChipStore/LiftEffects.swift, no lift records yet.
            throw ConstraintViolation("lift records are not stored yet")
        }
    }

    // MARK: Lift chits (ChipStore/LiftChain.swift)

    /// SiteStore.insertLiftChit: INSERT INTO lift_headers … ON CONFLICT (lift)
    /// DO NOTHING; INSERT INTO chits (…, 'lift', …, 'pend', …) ON CONFLICT (uuid) DO NOTHING.
    mutating func insertLiftChit(_ chit: LiftChit, header: LiftHeader, local: Bool, now: String) throws {
        guard chit.lift == header.hash else { throw ConstraintViolation("a lift chit of another header") }
        if liftHeaders[header.hash] == nil { liftHeaders[header.hash] = header }
        guard liftChits[chit.uuid] == nil, chits[chit.uuid] == nil else { return }
        guard tallies[chit.tally] != nil else { throw ConstraintViolation("FOREIGN KEY: chit on no tally") }
        liftChits[chit.uuid] = MemoryLiftChit(chit: chit, state: .pend, index: nil, chainHash: nil, local: local, created: now)
        chitRow[chit.uuid] = nextRow()
    }

    /// SiteStore.applyLiftDecision: the decision applied (an applied one of
    /// the other result becomes proof; a void after a good is proof only),
    /// then every chit of H: void → 'void'; good → chained on our foil
    /// tallies (no limit check), 'good' on our stock tallies; chained ones stay.
    mutating func applyLiftDecision(_ d: SignedDecision, now: String) throws {
        let other: LiftResult = d.result == .good ? .void : .good
        guard liftHeaders[d.lift] != nil else { throw ConstraintViolation("FOREIGN KEY: a decision of no header") }
        var rows = liftDecisions[d.lift] ?? [:]
        if d.result == .void, rows[other]?.applied == true {
            try storeDecisionProof(d)
            return
        }
        rows[other]?.applied = false
        if rows[d.result] == nil { rows[d.result] = MemoryDecision(decision: d, applied: true) } else { rows[d.result]?.applied = true }
        liftDecisions[d.lift] = rows
        for uuid in liftChits.keys.sorted() {
            guard var l = liftChits[uuid], l.chit.lift == d.lift, l.state != .chained, let t = tallies[l.chit.tally] else { continue }
            switch (d.result, t.side) {
            case (.void, _):
                l.state = .void
                liftChits[uuid] = l
            case (.good, .stock):
                l.state = .good
                liftChits[uuid] = l
            case (.good, .foil):
                // SiteStore.chainLiftChit: the next entry, balance moved, no limit check.
                guard let core = t.core else { throw ConstraintViolation("a tally without a core") }
                let index = t.chainLength + 1, prior = t.chainHead ?? core.hash
                let hash = Chain.entryHash(index: index, prior: prior, chitHash: l.chit.hash)
                try apply(.chainChit(uuid: uuid, index: index, prior: prior, hash: hash), now: now)
                try apply(.setChainHead(tally: t.uuid, length: index, head: hash, balance: t.balance + l.chit.balanceEffect), now: now)
            }
        }
    }

    /// SiteStore.storeDecisionProof: INSERT … applied 0 ON CONFLICT (lift, result) DO NOTHING.
    mutating func storeDecisionProof(_ d: SignedDecision) throws {
        guard liftHeaders[d.lift] != nil else { throw ConstraintViolation("FOREIGN KEY: a decision of no header") }
        if liftDecisions[d.lift]?[d.result] == nil { liftDecisions[d.lift, default: [:]][d.result] = MemoryDecision(decision: d, applied: false) }
    }

    /// SiteStore.reservations: our pending payments and the lift chits 'pend' or 'good' on `tally` (9.2).
    func reservations(_ tally: String) -> [HeldChit] {
        chits.values.filter { $0.chit.tally == tally && $0.state == .pending && $0.local }.map {
            HeldChit(uuid: $0.chit.uuid, kind: .tran, by: $0.chit.by, units: $0.chit.units)
        }
            + liftChits.values.filter { $0.chit.tally == tally && ($0.state == .pend || $0.state == .good) }.map {
                HeldChit(uuid: $0.chit.uuid, kind: .lift, by: $0.chit.by, units: $0.chit.units)
            }
    }

    /// SiteStore.insertTally: a new row (chain empty, balance 0).
    mutating func insertTally(
        core: TallyCore, sign: TallySignatures, cuid: CUID, side: TallySide, partner: CHAD, state: TallyState,
        token: String?, now: String
    ) throws {
        guard tallies[core.uuid] == nil else { throw ConstraintViolation("UNIQUE: tallies.uuid \(core.uuid)") }
        guard users[cuid] != nil else { throw ConstraintViolation("FOREIGN KEY: tally of no user") }
        tallies[core.uuid] = TallyRecord(
            uuid: core.uuid, cuid: cuid, side: side, partner: partner, state: state, revision: core.revision,
            core: core, sign: sign, token: token, balance: 0, created: now, updated: now)
        tallyRow[core.uuid] = nextRow()
    }

    /// SiteStore.insertChit: a pending row.
    mutating func insertChit(_ chit: Chit, local: Bool, now: String) throws {
        guard chits[chit.uuid] == nil else { throw ConstraintViolation("UNIQUE: chits.uuid \(chit.uuid)") }
        guard tallies[chit.tally] != nil else { throw ConstraintViolation("FOREIGN KEY: chit on no tally") }
        chits[chit.uuid] = ChitRecord(chit: chit, state: .pending, index: nil, chainHash: nil, local: local, note: nil, created: now)
        chitRow[chit.uuid] = nextRow()
    }

    /// UNIQUE (tally, idx), and idx >= 1.
    func checkIndex(_ index: Int64, tally: String, except uuid: String) throws {
        guard index >= 1 else { throw ConstraintViolation("CHECK: idx >= 1") }
        if chits.values.contains(where: { $0.chit.tally == tally && $0.index == index && $0.chit.uuid != uuid })
            || liftChits.values.contains(where: { $0.chit.tally == tally && $0.index == index && $0.chit.uuid != uuid })
        {
            throw ConstraintViolation("UNIQUE: chits (tally, idx) \(index)")
        }
    }

    /// SiteStore.enqueue.
    mutating func enqueue(to: CHAD, topic: String, message: SiteMessage, firstContact: Bool = false) {
        outbox.append(MemoryOutboxEntry(id: nextRow(), to: to, topic: topic, message: message, firstContact: firstContact))
    }

    /// SiteStore.outbox(for:): what waits for `agent`, oldest first.
    func outbox(for agent: AgentID) -> [MemoryOutboxEntry] { outbox.filter { $0.to.agent == agent } }

    // MARK: Our users' tally operations (SiteStore, Tallies.swift)

    /// requestTally: a `draft` and the ticket message queued (first contact).
    @discardableResult
    mutating func requestTally(_ cuid: CUID, ticket: TallyTicket, accept: Bool) throws -> String {
        let now = self.now()
        if ticket.expires <= now { throw Refused("the ticket expired at \(ticket.expires)") }
        let provisional = newUUID()
        let u = try user(cuid)
        if isLocked(cuid) { throw Refused("\(cuid) is locked") }
        if ticket.chad.agent == agent { throw Refused("the ticket was issued by this site") }
        if tallies.values.contains(where: { $0.token == ticket.token && $0.cuid == cuid && $0.state != .void }) {
            throw Refused("\(cuid) has already used this ticket")
        }
        tallies[provisional] = TallyRecord(
            uuid: provisional, cuid: cuid, side: .foil, partner: ticket.chad, state: .draft, revision: 1,
            core: nil, sign: nil, token: ticket.token, balance: 0, created: now, updated: now)
        tallyRow[provisional] = nextRow()
        requestAccepts[provisional] = accept
        let message = try TallyMessage.ticket(token: ticket.token, cert: u.cert, to: ticket.chad, from: u.chad)
        enqueue(to: ticket.chad, topic: provisional, message: .tally(message), firstContact: true)
        return provisional
    }

    /// acceptTally: our user signs the offer; `open` is queued.
    mutating func acceptTally(_ uuid: String) throws {
        guard let t = tallies[uuid], t.state == .peerOffer, let core = t.core, var sign = t.sign else {
            throw Refused("tally \(uuid) is not an offer waiting for you")
        }
        sign[t.side] = core.sign(with: try user(t.cuid).key)
        if isLocked(t.cuid) { throw Refused("\(t.cuid) is locked") }
        let now = self.now()
        try apply(.setTallyState(uuid: uuid, state: .open, sign: sign), now: now)
        enqueue(to: t.partner, topic: uuid, message: TallyDialog.message(.open, t, core: core, sign: sign))
    }

    /// refuseTally: the offer ends void; `void` is queued.
    mutating func refuseTally(_ uuid: String) throws {
        guard let t = tallies[uuid], t.state == .peerOffer, let core = t.core, let sign = t.sign else {
            throw Refused("tally \(uuid) is not an offer waiting for you")
        }
        let now = self.now()
        try apply(.setTallyState(uuid: uuid, state: .void, sign: nil), now: now)
        enqueue(to: t.partner, topic: uuid, message: TallyDialog.message(.void, t, core: core, sign: sign))
    }

    // MARK: Paying (SiteStore.payBatch, Chits.swift)

    /// A payment by our user on tally `id`: checked against the limits
    /// (counting our chits not yet chained), signed, and committed: chained
    /// at once on the foil's site, pending on the stock's. `checkLimit: false`
    /// skips the site's own limit check, as a partner's faulty or hostile
    /// site may; the partner's dialog must then refuse it.
    @discardableResult
    mutating func pay(
        tally id: String, units: Int64, memo: String? = nil, ref: JSONValue? = nil, settling invoice: String? = nil,
        checkLimit: Bool = true
    ) throws -> Chit {
        guard let t = tallies[id], t.state == .open, let core = t.core else { throw Refused("tally \(id) is not open") }
        guard units > 0, units <= Amount.maxMilli else { throw Refused("the amount must be more than 0") }
        let key = try user(t.cuid).key
        let date = now()
        let chit = try Chit(tally: id, by: t.side, uuid: newUUID(), date: date, units: units, memo: memo, ref: ref, key: key)
        if isLocked(t.cuid) { throw Refused("\(t.cuid) is locked") }
        let half = LiftHalf(
            tally: id, side: t.side, stockLimit: core.limit(.stock), foilLimit: core.limit(.foil), balance: t.balance,
            held: reservations(id))
        if checkLimit, !LiftCapacity.limitAllows(units: units, by: t.side, on: half) {
            throw Refused("the payment would exceed the limit")
        }
        var copy = self
        if let invoice {
            // UPDATE invoices SET state = 'paid', chit = ? WHERE uuid = ? AND tally = ? AND direction = 'in' AND state = 'open'
            guard var i = copy.invoices[invoice], i.record.tally == id, i.record.direction == .in, i.record.state == .open else {
                throw Refused("invoice \(invoice) is no longer open")
            }
            i.record.state = .paid
            i.record.chit = chit.uuid
            copy.invoices[invoice] = i
        }
        try copy.insertChit(chit, local: true, now: date)
        if t.side == .foil {
            // SiteStore.chain: index, prior, hash and balance from the tally row.
            let length = t.chainLength, prior = t.chainHead ?? core.hash
            let index = length + 1
            let hash = Chain.entryHash(index: index, prior: prior, chitHash: chit.hash)
            try copy.apply(.chainChit(uuid: chit.uuid, index: index, prior: prior, hash: hash), now: date)
            try copy.apply(.setChainHead(tally: id, length: index, head: hash, balance: t.balance + chit.balanceEffect), now: date)
        }
        self = copy
        return chit
    }

    // MARK: Invoices (Invoices.swift)

    /// createInvoice: our user asks the partner for `units`; queued until answered.
    @discardableResult
    mutating func createInvoice(tally id: String, units: Int64, memo: String? = nil) throws -> String {
        guard let t = tallies[id], t.state == .open else { throw Refused("tally \(id) is not open") }
        if isLocked(t.cuid) { throw Refused("\(t.cuid) is locked") }
        let uuid = newUUID()
        let now = self.now()
        let object = InvoiceObject(tally: id, uuid: uuid, units: units, date: now, by: t.side.other, memo: memo, ref: nil)
        invoices[uuid] = MemoryInvoice(
            record: InvoiceRecord(
                uuid: uuid, tally: id, direction: .out, units: units, memo: memo, state: .open, chit: nil, note: nil,
                created: now),
            object: object.json)
        enqueue(to: t.partner, topic: OutboxTopic.invoice(uuid), message: InvoiceDialog.invoice(t, object))
        return uuid
    }

    /// payInvoice: a chit whose ref names the invoice, which is marked paid in the same transaction.
    @discardableResult
    mutating func payInvoice(_ uuid: String) throws -> Chit {
        guard let i = invoices[uuid], i.record.direction == .in, i.record.state == .open else {
            throw Refused("invoice \(uuid) is not one to pay")
        }
        var ref: [String: JSONValue] = ["invoice": .string(uuid)]
        if let theirs = i.object["ref"] { ref["ref"] = theirs }
        return try pay(tally: i.record.tally, units: i.record.units, memo: i.record.memo, ref: .object(ref), settling: uuid)
    }

    /// refuseInvoice: the partner's invoice is refused (the refusal goes out on new channels and to repeats).
    mutating func refuseInvoice(_ uuid: String, reason: String?) throws {
        guard var i = invoices[uuid], i.record.direction == .in, i.record.state == .open else {
            throw Refused("invoice \(uuid) is not one waiting for your answer")
        }
        i.record.state = .refused
        i.record.note = reason ?? "refused"
        invoices[uuid] = i
    }

    /// invoiceRefusals: our users' refusals, as messages to their partners.
    func invoiceRefusals(to peer: AgentID) -> [SiteMessage] {
        invoices.values.filter { $0.record.direction == .in && $0.record.state == .refused }.sorted { $0.record.uuid < $1.record.uuid }
            .compactMap { i in
                guard let t = tallies[i.record.tally], t.partner.agent == peer else { return nil }
                return InvoiceDialog.refusal(t, uuid: i.record.uuid, reason: i.record.note)
            }
    }

    // MARK: What to send (Chits.swift)

    /// The chain of `tally` in order.
    func chain(of tally: String) -> [ChitRecord] {
        chits.values.filter { $0.chit.tally == tally && $0.state == .chained }.sorted { ($0.index ?? 0) < ($1.index ?? 0) }
    }

    /// chainWork for one tally: entries the partner has not confirmed (foil),
    /// or pending chits of ours (stock); nil when nothing is to be sent.
    func chainWork(_ tally: String) -> (length: Int64, acked: Int64)? {
        guard let t = tallies[tally], t.state == .open else { return nil }
        let acked = self.acked[tally] ?? 0
        switch t.side {
        case .foil: return t.chainLength > acked ? (t.chainLength, acked) : nil
        case .stock:
            return chits.values.contains { $0.chit.tally == tally && $0.state == .pending && $0.local } ? (t.chainLength, acked) : nil
        }
    }

    /// chainUpdate: the `upd` with our chain entries after `after` (foil side).
    func chainUpdate(tally id: String, after: Int64) -> SiteMessage? {
        guard let t = tallies[id], let core = t.core else { return nil }
        let all = entries(of: id)
        let rows = all.filter { $0.index > after }.prefix(MessageLimits.chainBatch)
        let start = all.first { $0.index == after }?.hash
        var prior = start ?? core.hash
        var entries = [ChainEntry]()
        for e in rows {
            entries.append(ChainEntry(index: e.index, prior: prior, hash: e.hash, chit: e.chit))
            prior = e.hash
        }
        return ChainDialog.update(t, entries: entries)
    }

    /// The whole chain of `tally` in order, lift chits with their header and
    /// applied good decision (SiteStore.chainRowsSQL; a lift chit without them is left out).
    func entries(of tally: String) -> [(index: Int64, hash: String, chit: ChainChit)] {
        var out = chain(of: tally).compactMap { c -> (index: Int64, hash: String, chit: ChainChit)? in
            guard let index = c.index, let hash = c.chainHash else { return nil }
            return (index, hash, .tran(c.chit))
        }
        for l in liftChits.values where l.chit.tally == tally && l.state == .chained {
            guard let index = l.index, let hash = l.chainHash, let header = liftHeaders[l.chit.lift],
                let good = liftDecisions[l.chit.lift]?[.good], good.applied
            else { continue }
            out.append((index, hash, .lift(GoodLiftChit(chit: l.chit, header: header, decision: good.decision))))
        }
        return out.sorted { $0.index < $1.index }
    }

    /// pendingTransfer: the `tran` with our pending chits not yet `sent` (stock side).
    func pendingTransfer(tally id: String, excluding sent: Set<String>) -> (message: SiteMessage, uuids: [String])? {
        guard let t = tallies[id] else { return nil }
        let pending = chits.values.filter { $0.chit.tally == id && $0.state == .pending && $0.local }
            .sorted { ($0.created, chitRow[$0.chit.uuid] ?? 0) < ($1.created, chitRow[$1.chit.uuid] ?? 0) }
            .prefix(MessageLimits.chainBatch + sent.count)
            .filter { !sent.contains($0.chit.uuid) }.prefix(MessageLimits.chainBatch)
        return ChainDialog.transfer(t, chits: pending.map(\.chit))
    }

    /// Everything the dialogs change, as one string (to see that nothing moved).
    var fingerprint: String {
        let t = tallies.values.map { "\($0.uuid) \($0.state.rawValue) \($0.chainLength) \($0.balance) \(acked[$0.uuid] ?? 0)" }.sorted()
        let c =
            (chits.values.map { "\($0.chit.uuid) \($0.state.rawValue) \($0.index ?? 0)" }
            + liftChits.values.map { "\($0.chit.uuid) \($0.state.rawValue) \($0.index ?? 0)" }).sorted()
        let i = invoices.values.map { "\($0.record.uuid) \($0.record.state.rawValue) \($0.record.chit ?? "-")" }.sorted()
        let o = outbox.map { "\($0.topic) \($0.message.action)" }
        return (t + c + i + o).joined(separator: "|")
    }

    /// SiteStore.verifyTally: signatures, links, balance; empty when all is well.
    func verifyTally(_ id: String) -> [String] {
        guard let t = tallies[id], let core = t.core, let sign = t.sign else { return ["tally \(id) has no signed core"] }
        var problems = [String]()
        if !core.verify(sign.stock, by: .stock) || !core.verify(sign.foil, by: .foil) { problems.append("a tally signature does not verify") }
        var prior = core.hash
        var balance: Int64 = 0
        let entries = self.entries(of: id)
        for (n, e) in entries.enumerated() {
            let index = Int64(n + 1)
            if e.index != index { problems.append("chain entry \(index) is missing"); break }
            switch e.chit {
            case .tran(let chit): if !chit.verify(in: core) { problems.append("chit \(index): the signature does not verify") }
            case .lift(let lift): if let why = lift.problem(in: core) { problems.append("chit \(index): \(why)") }
            }
            let expected = Chain.entryHash(index: index, prior: prior, chitHash: e.chit.hash)
            if e.hash != expected { problems.append("chain entry \(index): the link hash is wrong"); break }
            prior = expected
            balance += e.chit.balanceEffect
            if e.chit.tran != nil, !Chit.withinLimits(balance, stockLimit: core.limit(.stock), foilLimit: core.limit(.foil)) {
                problems.append("chit \(index) takes the balance past a limit")
            }
        }
        if t.chainLength != Int64(entries.count) { problems.append("the tally says \(t.chainLength) entries, the chain has \(entries.count)") }
        if (t.chainHead ?? core.hash) != prior { problems.append("the tally's chain head is not the last entry's hash") }
        if balance != t.balance { problems.append("the balance is \(t.balance) but the chits add up to \(balance)") }
        return problems
    }
}
