import Synchronization
import ChipModel
import ChipProtocol
import Foundation
import GRDB

extension SiteStore {
    static let requestNoteKey = "request"

    // MARK: Keys

    /// A user's signing key, opened with `sealingKey` when sealed.
    public func userKey(_ cuid: CUID, sealingKey: SealingKey?) throws -> SigningKey {
        let found = try guardedRead { db -> (secret: Data, custody: String)? in
            try Row.fetchOne(cached: db, sql: "SELECT secret, custody FROM users WHERE cuid = ?", arguments: [cuid.value]).map {
                ($0["secret"], $0["custody"])
            }
        }
        guard let (secret, custody) = found else { throw StoreError.unknownUser(cuid.value) }
        // A device-custody user's key is the device's (10.7): the site signs nothing for it.
        guard custody == UserCustody.site.rawValue else { throw StoreError.deviceCustody(cuid.value) }
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
        let (core, note) = try Self.parsedCores.core(coreText)
        let sign: TallySignatures? = (row["hash"] as String?).map { hash in
            TallySignatures(stock: row["sign_stock"], foil: row["sign_foil"], hash: hash)
        }
        return TallyRecord(
            uuid: row["uuid"], cuid: try CUID(cuid), side: s,
            partner: CHAD(cuid: try CUID(pcuid), agent: try AgentID(agent), address: try SiteAddress(host: host, port: port)),
            state: st, revision: row["revision"], core: core, sign: sign, token: row["token"], balance: row["balance"],
            created: row["created"], updated: row["updated"], note: note,
            chainLength: row["chain_length"] ?? 0, chainHead: row["chain_head"],
            trade: try core.map { core in try Self.trade(row, limit: core.limit(s)) })
    }

    /// The cores of tallies read so far, parsed (a core's text is parsed and
    /// its certificates checked once, not on every message about its tally).
    static let parsedCores = ParsedCores()

    /// Tallies, newest first, optionally of one user.
    public func tallies(user: CUID? = nil) throws -> [TallyRecord] {
        try guardedRead { db in
            let rows =
                user == nil
                ? try Row.fetchAll(cached: db, sql: "SELECT * FROM tallies ORDER BY created DESC, uuid")
                : try Row.fetchAll(cached: db, sql: "SELECT * FROM tallies WHERE cuid = ? ORDER BY created DESC, uuid", arguments: [user?.value])
            return try rows.map(Self.tallyRecord)
        }
    }

    /// The tally whose uuid is `id` or starts with it (at least 4 characters).
    public func tally(_ id: String) throws -> TallyRecord {
        try byUUIDPrefix(id, table: .tallies, record: Self.tallyRecord)
    }

    static func fetchTally(_ db: Database, uuid: String) throws -> TallyRecord? {
        try Row.fetchOne(cached: db, sql: "SELECT * FROM tallies WHERE uuid = ?", arguments: [uuid]).map(tallyRecord)
    }

    static func userCert(_ db: Database, _ cuid: CUID) throws -> JSONValue? {
        try String.fetchOne(cached: db, sql: "SELECT cert FROM users WHERE cuid = ?", arguments: [cuid.value]).map { try JSONValue(parsing: $0) }
    }

    /// Refuses an action for `cuid` while the site is locked down or the user is locked.
    static func checkNotLocked(_ db: Database, _ cuid: CUID) throws {
        if try isLockedDown(db) { throw StoreError.locked("the site is locked down (`chipsite lockdown off` to lift it)") }
        if try isUserLocked(db, cuid) { throw StoreError.locked("user \(cuid) is locked (`chipsite user unlock \(cuid)` to lift it)") }
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
            if try Bool.fetchOne(
                cached: db, sql: "SELECT 1 FROM tallies WHERE token = ? AND cuid = ? AND state != ?",
                arguments: [ticket.token, cuid.value, TallyState.void.rawValue]) != nil
            {
                throw ModelError.invalid("\(cuid) has already used this ticket")
            }
            let request: JSONValue = [Self.requestNoteKey: ["accept": .bool(accept)]]
            try db.execute(
                cached: """
                    INSERT INTO tallies (uuid, cuid, side, partner_agent, partner_cuid, partner_host, partner_port, state, core, token, created, updated)
                    VALUES (?, ?, 'foil', ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """,
                arguments: [
                    provisional, cuid.value, ticket.chad.agent.description, ticket.chad.cuid.value, ticket.chad.address.host,
                    ticket.chad.address.port, TallyState.draft.rawValue, request.canonicalString, ticket.token, now, now
                ])
            let message = try TallyMessage.ticket(token: ticket.token, cert: cert, to: ticket.chad, from: me)
            try Self.enqueue(db, to: ticket.chad, topic: provisional, message: SiteMessage.tally(message).json, firstContact: true)
            return provisional
        }
    }

    /// A first contact for request `topic` was refused by the issuer (it closed
    /// the channel): the request ends void and its message leaves the outbox.
    public func failRequest(topic: String, note: String) throws {
        let now = Self.now()
        try guardedWrite { db in
            guard try Self.fetchTally(db, uuid: topic)?.state == .draft else { return }
            try Self.voidRequest(db, uuid: topic, note: note, now: now)
            try Self.dropOutbox(db, topic: topic)
            try Self.appendTallyUserEvent(db, tally: topic, topic: .tally, data: ["uuid": .string(topic), "state": "void"], now: now)
        }
    }

    static func insertTally(
        _ db: Database, core: TallyCore, sign: TallySignatures, cuid: CUID, side: TallySide,
        partner: CHAD, state: TallyState, token: String?, now: String
    ) throws {
        try db.execute(
            cached: """
                INSERT INTO tallies (uuid, cuid, side, partner_agent, partner_cuid, partner_host, partner_port, state, revision,
                                     core, sign_stock, sign_foil, hash, token, created, updated)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """,
            arguments: [
                core.uuid, cuid.value, side.rawValue, partner.agent.description, partner.cuid.value,
                partner.address.host, partner.address.port, state.rawValue, core.revision,
                core.json.canonicalString, sign.stock, sign.foil, sign.hash, token, now, now
            ])
    }

    // MARK: A user answers an offer

    /// Signs the offered tally as our user and queues `open`.
    public func acceptTally(_ id: String, key: (CUID) throws -> SigningKey) throws -> TallyRecord {
        try acceptTally(id, revision: nil) { t, core in core.sign(with: try key(t.cuid)) }
    }

    /// Accepts the offered tally with the user's own signature (a device's,
    /// protocol 10.7: the site signs nothing for a `device` user). The
    /// signature must verify against the user's certificate in the core, and
    /// the tally must still be at `revision`.
    public func acceptTally(_ id: String, revision: Int64, signature: String) throws -> TallyRecord {
        try acceptTally(id, revision: revision) { t, core in
            guard core.verify(signature, by: t.side) else { throw ModelError.invalid("the signature is not the user's") }
            return signature
        }
    }

    private func acceptTally(_ id: String, revision: Int64?, sign make: (TallyRecord, TallyCore) throws -> String) throws
        -> TallyRecord
    {
        let t = try tally(id)
        guard t.state == .peerOffer, let core = t.core, var sign = t.sign else {
            throw ModelError.invalid("tally \(t.uuid) is \(t.state.rawValue), not an offer waiting for you")
        }
        sign[t.side] = try make(t, core)
        let now = Self.now()
        let signed = sign
        let revision = revision ?? t.revision
        return try guardedWrite { db in
            try Self.checkNotLocked(db, t.cuid)
            try db.execute(
                cached: """
                    UPDATE tallies SET state = ?, sign_stock = ?, sign_foil = ?, updated = ?
                    WHERE uuid = ? AND state = ? AND revision = ?
                    """,
                arguments: [TallyState.open.rawValue, signed.stock, signed.foil, now, t.uuid, TallyState.peerOffer.rawValue, revision])
            guard db.changesCount == 1 else { throw ModelError.invalid("tally \(t.uuid) changed meanwhile; look again") }
            try Self.enqueue(db, to: t.partner, topic: t.uuid, message: TallyDialog.message(.open, t, core: core, sign: signed).json)
            guard let updated = try Self.fetchTally(db, uuid: t.uuid) else { throw StoreError.damaged("tally vanished") }
            return updated
        }
    }

    /// Sends the offer of a tally that waits in `P.draft` for a `device`
    /// user's signature (a partner redeemed the user's invitation, 10.6
    /// `tally.offer`): the signature must verify against the user's
    /// certificate in the core and the tally still be at `revision`; the
    /// tally becomes `H.offer` and the offer is queued, in one transaction.
    public func offerTally(_ id: String, revision: Int64, signature: String) throws -> TallyRecord {
        let t = try tally(id)
        guard t.state == .peerDraft, let core = t.core, var sign = t.sign else {
            throw ModelError.invalid("tally \(t.uuid) is \(t.state.rawValue), not an offer waiting for your signature")
        }
        guard core.verify(signature, by: t.side) else { throw ModelError.invalid("the signature is not the user's") }
        sign[t.side] = signature
        let now = Self.now()
        let signed = sign
        return try guardedWrite { db in
            try Self.checkNotLocked(db, t.cuid)
            try db.execute(
                cached: """
                    UPDATE tallies SET state = ?, sign_stock = ?, sign_foil = ?, updated = ?
                    WHERE uuid = ? AND state = ? AND revision = ?
                    """,
                arguments: [
                    TallyState.heldOffer.rawValue, signed.stock, signed.foil, now, t.uuid, TallyState.peerDraft.rawValue, revision
                ])
            guard db.changesCount == 1 else { throw ModelError.invalid("tally \(t.uuid) changed meanwhile; look again") }
            guard let updated = try Self.fetchTally(db, uuid: t.uuid) else { throw StoreError.damaged("tally vanished") }
            try Self.enqueue(db, to: t.partner, topic: t.uuid, message: TallyDialog.message(.offer, updated, core: core, sign: signed).json)
            return updated
        }
    }

    /// Refuses a tally waiting for our user (``TallyDialog/refuse(_:)``):
    /// an offer (`P.offer`) ends `void` and `void` is queued; a redeemed
    /// invitation waiting for a `device` user's offer signature (`P.draft`)
    /// ends `void` with nothing queued. One transaction.
    public func refuseTally(_ id: String) throws -> TallyRecord {
        let t = try tally(id)
        let tell: SiteMessage?
        switch TallyDialog.refuse(t) {
        case .failure(let why): throw ModelError.invalid(why.description)
        case .success(let message): tell = message
        }
        let now = Self.now()
        return try guardedWrite { db in
            try db.execute(
                cached: "UPDATE tallies SET state = ?, updated = ? WHERE uuid = ? AND state = ? AND revision = ?",
                arguments: [TallyState.void.rawValue, now, t.uuid, t.state.rawValue, t.revision])
            guard db.changesCount == 1 else { throw ModelError.invalid("tally \(t.uuid) changed meanwhile; look again") }
            if let tell { try Self.enqueue(db, to: t.partner, topic: t.uuid, message: tell.json) }
            guard let updated = try Self.fetchTally(db, uuid: t.uuid) else { throw StoreError.damaged("tally vanished") }
            return updated
        }
    }
}

/// Tally cores by their stored text: the core (nil for a request's note) and
/// the note. Bounded: when full it starts again, so a site with more tallies
/// than it holds parses some twice, never holds more than `capacity`.
final class ParsedCores: Sendable {
    static let capacity = 4096
    private let cores = Mutex<[String: (core: TallyCore?, note: String?)]>([:])

    func core(_ text: String) throws -> (core: TallyCore?, note: String?) {
        if let hit = cores.withLock({ $0[text] }) { return hit }
        let json = try JSONValue(parsing: text)
        let parsed =
            json[SiteStore.requestNoteKey] == nil
            ? (core: Optional(try TallyCore(json: json)), note: String?.none)
            : (core: TallyCore?.none, note: json[SiteStore.requestNoteKey]?["note"]?.stringValue)
        cores.withLock { c in
            if c.count >= Self.capacity { c.removeAll(keepingCapacity: true) }
            c[text] = parsed
        }
        return parsed
    }
}
