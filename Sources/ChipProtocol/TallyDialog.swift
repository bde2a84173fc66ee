import ChipModel

/// The tally dialog (protocol sections 6 and 7) as pure decisions: a ticket
/// redeemed by the issuer, and offer, open and void on both sides.
///
/// States (our side of one tally): a requester's `draft` (the ticket is on
/// its way) → `P.offer` (the issuer's offer waits for our user) → `open` or
/// `void`; the issuer's `H.offer` (our offer waits for theirs) → `open` or
/// `void`. Every message is idempotent: a repeat changes nothing, and the
/// issuer's side answers a repeated `open` or `void` again (its answer may
/// have been lost), the requester's never does, so nothing bounces.
public enum TallyDialog {
    // MARK: Tickets (section 6)

    /// Why ticket `t` cannot be used by `requester` at `now`, or nil.
    public static func ticketProblem(_ t: TicketInfo, requester: CHAD, now: String) -> String? {
        if t.expires <= now { return "ticket expired" }
        if !t.reuse, t.used != nil { return "ticket already used" }
        if let bound = t.bound, bound != requester.description { return "ticket is bound to another CHAD" }
        return nil
    }

    /// What the issuer's site holds about a ticket message.
    public struct TicketSnapshot: Sendable {
        public var ticket: TicketInfo?
        /// A tally this requester already made from this ticket.
        public var existing: TallyRecord?
        /// The site is locked down or the inviting user locked.
        public var locked: Bool
        /// The inviting user's certificate (nil: the user is gone).
        public var inviterCert: JSONValue?
        public init(ticket: TicketInfo?, existing: TallyRecord?, locked: Bool, inviterCert: JSONValue?) {
            self.ticket = ticket
            self.existing = existing
            self.locked = locked
            self.inviterCert = inviterCert
        }
    }

    /// The issuer's answer to a ticket message: consume the token (one-time),
    /// build the tally with both certificates, sign it as the inviting user
    /// (`key`) and queue the offer. A repeat from the same requester while the
    /// offer waits is answered with the same offer (it is still queued).
    /// `uuid` is the new tally's id, drawn by the caller. With no `key` (a
    /// `device` custody user, protocol 10.7) the tally waits in `P.draft`,
    /// unsigned and unsent, until the user's device signs the offer; a
    /// repeat meanwhile changes nothing (and is not refused, so its channel
    /// stays for the offer).
    public static func decideTicket(
        _ m: TallyMessage, snapshot s: TicketSnapshot, now: String, uuid: String,
        key: SigningKey?
    ) -> Decision {
        guard case .ticket(let token, let cert, let certificate) = m.body, let from = m.from else {
            return .ignore("not a ticket message")
        }
        guard certificate.chad == from else { return .ignore("certificate does not name the requester") }
        if let existing = s.existing, existing.core != nil, existing.sign != nil {
            switch existing.state {
            case .heldOffer: return .apply([])
            // The offer waits for the user's signature: the repeat changes
            // nothing and its channel stays (the offer goes on it once signed).
            case .peerDraft: return .apply([])
            default: return .ignore("tally already answered")
            }
        }
        guard let t = s.ticket, t.token == token, t.cuid == m.to.cuid else { return .ignore("unknown ticket") }
        if let problem = ticketProblem(t, requester: from, now: now) { return .ignore(problem) }
        if s.locked { return .ignore("locked") }
        guard let myCert = s.inviterCert else { return .ignore("the inviting user is gone") }
        let mySide = TallySide(rawValue: t.terms["side"]?.stringValue ?? "stock") ?? .stock
        var myTerms: [String: JSONValue] = [:]
        if let limit = t.terms["limit"] { myTerms["limit"] = limit }
        let mine = (cert: myCert, terms: JSONValue.object(myTerms)), theirs = (cert: cert, terms: JSONValue.object([:]))
        let core: TallyCore
        do {
            core = try TallyCore(
                uuid: uuid, date: now, memo: t.terms["memo"]?.stringValue,
                stock: mySide == .stock ? mine : theirs, foil: mySide == .stock ? theirs : mine)
        } catch { return .ignore("cannot build the tally: \(error)") }
        var sign = TallySignatures(stock: nil, foil: nil, hash: core.hash)
        if let key { sign[mySide] = core.sign(with: key) }
        let record = TallyRecord(
            uuid: uuid, cuid: t.cuid, side: mySide, partner: from, state: key == nil ? .peerDraft : .heldOffer,
            revision: core.revision, core: core, sign: sign, token: token, balance: 0, created: now, updated: now)
        var effects = [Effect]()
        if !t.reuse { effects.append(.consumeTicket(token: token, at: now)) }
        effects.append(.insertTally(record))
        if key != nil {
            effects.append(.enqueue(to: from, topic: uuid, message: message(.offer, record, core: core, sign: sign), firstContact: false))
        }
        return .apply(effects)
    }

    // MARK: Offer, open, void (section 7)

    /// A tally message as it concerns us: which of our users it is for, on
    /// which side, checked against the peer that sent it.
    public struct Addressed: Sendable, Equatable {
        public var core: TallyCore
        public var sign: TallySignatures
        public var mySide: TallySide
        /// Our user.
        public var to: CHAD
        /// The partner's user.
        public var partner: CHAD { core.cert(mySide.other).chad }
    }

    /// Which of our users and side `m` is for; nil (with why) when it names
    /// none of them or its partner is not `peer`.
    public static func address(_ m: TallyMessage, peer: AgentID) -> Result<Addressed, Reason> {
        guard case .tally(let core, let sign) = m.body else { return .failure(Reason("not a tally object")) }
        let to = m.to
        let mySide: TallySide
        if core.stockCert.chad.agent == to.agent, core.stockCert.chad.cuid == to.cuid {
            mySide = .stock
        } else if core.foilCert.chad.agent == to.agent, core.foilCert.chad.cuid == to.cuid {
            mySide = .foil
        } else {
            return .failure(Reason("the tally does not name the addressee"))
        }
        guard core.cert(mySide.other).chad.agent == peer else { return .failure(Reason("the tally's partner is not this peer")) }
        return .success(Addressed(core: core, sign: sign, mySide: mySide, to: to))
    }

    /// What our site holds about one tally message.
    public struct Snapshot: Sendable {
        /// Our tally with the core's uuid.
        public var existing: TallyRecord?
        /// The site is locked down or our user locked.
        public var locked: Bool
        /// Our user's oldest request (`draft`) to the partner's user at the peer.
        public var request: TallyRecord?
        /// Whether that request asked to accept the offer at once.
        public var requestAccepts: Bool
        /// Our user's certificate as we hold it.
        public var userCert: JSONValue?
        /// Whether this site issued the ticket of `existing` (the issuer answers repeats).
        public var issued: Bool
        /// Whether a message about this tally waits in our outbox.
        public var waiting: Bool
        /// Our user's key, when an offer may be accepted at once.
        public var acceptKey: SigningKey?

        public init(
            existing: TallyRecord?, locked: Bool = false, request: TallyRecord? = nil, requestAccepts: Bool = false,
            userCert: JSONValue? = nil, issued: Bool = false, waiting: Bool = false, acceptKey: SigningKey? = nil
        ) {
            self.existing = existing
            self.locked = locked
            self.request = request
            self.requestAccepts = requestAccepts
            self.userCert = userCert
            self.issued = issued
            self.waiting = waiting
            self.acceptKey = acceptKey
        }
    }

    /// Decides an offer, open, void or draft addressed to us.
    public static func decide(_ action: TallyMessage.Action, _ a: Addressed, snapshot s: Snapshot, now: String) -> Decision {
        switch action {
        case .offer: offer(a, s, now: now)
        case .open: open(a, s)
        case .void: void(a, s)
        case .draft: .ignore("counter-proposals (draft) are not taken: the offer stands or is refused")
        case .ticket: .ignore("a ticket travels only in IK")
        }
    }

    /// The requester's side: the issuer's offer answers our request. It must
    /// be signed by the inviting user and hold our user's own certificate; a
    /// bad offer ends the request (the inviting site misbehaves).
    static func offer(_ a: Addressed, _ s: Snapshot, now: String) -> Decision {
        if let existing = s.existing { return .ignore("offer for a tally we have (\(existing.state.rawValue))") }
        // A locked user (or site) takes no offers now; the partner's offer waits in its outbox.
        if s.locked { return .ignore("locked: the offer waits") }
        guard let request = s.request else { return .ignore("offer without a request") }
        let (core, mySide) = (a.core, a.mySide)
        let problem: String?
        if !core.verify(a.sign[mySide.other], by: mySide.other) || a.sign[mySide] != nil {
            problem = "the inviting site's offer has a signature that does not verify; no tally was opened"
        } else if s.userCert != core.certJSON(mySide) {
            problem = "the inviting site's offer holds a wrong certificate for \(a.to.cuid); no tally was opened"
        } else {
            problem = nil
        }
        if let problem {
            return .ignore(problem, effects: [.voidRequest(uuid: request.uuid, note: problem), .dropOutbox(topic: request.uuid)])
        }
        var sign = a.sign
        var state = TallyState.peerOffer
        // --accept: only when accepting commits our user to no credit of its own.
        if s.requestAccepts, let key = s.acceptKey, core.limit(mySide) == 0 {
            sign[mySide] = core.sign(with: key)
            state = .open
        }
        let record = TallyRecord(
            uuid: core.uuid, cuid: a.to.cuid, side: mySide, partner: a.partner, state: state,
            revision: core.revision, core: core, sign: sign, token: request.token, balance: 0,
            created: now, updated: now)
        var effects: [Effect] = [.deleteTally(uuid: request.uuid), .dropOutbox(topic: request.uuid), .insertTally(record)]
        if state == .open {
            effects.append(
                .enqueue(
                    to: record.partner, topic: core.uuid, message: message(.open, record, core: core, sign: sign),
                    firstContact: false))
        }
        return .apply(effects)
    }

    /// Both signatures: the tally opens (the issuer answers with its own
    /// `open`), or it was open already (our own open came back).
    static func open(_ a: Addressed, _ s: Snapshot) -> Decision {
        guard let t = s.existing, t.side == a.mySide, let mine = t.core else { return .ignore("open for an unknown tally") }
        let (core, sign) = (a.core, a.sign)
        guard mine.json == core.json else { return .ignore("open with a different core") }
        guard core.verify(sign.stock, by: .stock), core.verify(sign.foil, by: .foil) else { return .ignore("open signatures do not verify") }
        switch t.state {
        case .heldOffer:
            return .apply(
                [.setTallyState(uuid: core.uuid, state: .open, sign: sign), .dropOutbox(topic: core.uuid)],
                replies: [message(.open, t, core: core, sign: sign)])
        case .open:
            // Our own open came back: it was applied there. A repeat of the
            // requester's open: the issuer answers again; the requester never.
            let answer = !s.waiting && s.issued
            return .apply([.dropOutbox(topic: core.uuid)], replies: answer ? [message(.open, t, core: core, sign: sign)] : [])
        default:
            return .ignore("open for a tally in state \(t.state.rawValue)")
        }
    }

    /// A refusal of an offer (either side), or its echo.
    static func void(_ a: Addressed, _ s: Snapshot) -> Decision {
        guard let t = s.existing, let mine = t.core, mine.json == a.core.json else { return .ignore("void for an unknown tally") }
        let core = a.core
        let sign = t.sign ?? TallySignatures(stock: nil, foil: nil, hash: core.hash)
        switch t.state {
        case .heldOffer, .peerOffer:
            return .apply(
                [.setTallyState(uuid: core.uuid, state: .void, sign: nil), .dropOutbox(topic: core.uuid)],
                replies: [message(.void, t, core: core, sign: sign)])
        case .void:
            if s.waiting { return .apply([.dropOutbox(topic: core.uuid)]) }
            // A repeated void from the requester: its echo was lost; answer again.
            return s.issued ? .apply([], replies: [message(.void, t, core: core, sign: sign)]) : .ignore("void repeated")
        default:
            return .ignore("void for a tally in state \(t.state.rawValue)")
        }
    }

    // MARK: Our user refuses

    /// What our user's refusal of tally `t` does (`chipsite tally refuse`,
    /// 10.6 `tally.refuse`): the tally ends `void`, and the message to queue,
    /// if any. An offer waiting for the user (`P.offer`): the partner is told
    /// (`void`). A partner's redemption of the user's invitation waiting for
    /// the user's offer signature (`P.draft`): withdrawn, nothing sent (the
    /// partner holds no offer; a one-time ticket was burned when redeemed,
    /// and the partner's repeated ticket is refused, which ends its request).
    /// Any other state: nothing to refuse.
    public static func refuse(_ t: TallyRecord) -> Result<SiteMessage?, Reason> {
        switch t.state {
        case .peerOffer:
            guard let core = t.core, let sign = t.sign else { return .failure(Reason("tally \(t.uuid) has no offer to refuse")) }
            return .success(message(.void, t, core: core, sign: sign))
        case .peerDraft:
            return .success(nil)
        default:
            return .failure(Reason("tally \(t.uuid) is \(t.state.rawValue), not an offer waiting for you"))
        }
    }

    // MARK: Messages

    /// `action` about tally `t` from our user to the partner's.
    public static func message(_ action: TallyMessage.Action, _ t: TallyRecord, core: TallyCore, sign: TallySignatures) -> SiteMessage {
        .tally(TallyMessage.make(action, core: core, sign: sign, to: t.partner, from: core.cert(t.side).chad))
    }
}

/// A reason a message is not taken (for the log).
public struct Reason: Error, Sendable, Equatable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
