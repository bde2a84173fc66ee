import ChipModel

/// A lift as a site on its path holds it (9.9's states and roles).
public struct LiftRecord: Sendable, Equatable {
    public enum Role: String, Sendable, CaseIterable { case origin, relay, terminus, referee }
    public enum State: String, Sendable, CaseIterable { case draft, seek, exec, call, part, good, void }

    public var header: LiftHeader
    public var role: Role
    public var state: State
    /// The hop the promise came in on (relay, terminus).
    public var hop: Int?
    /// The stored answer to that promise.
    public var answer: LiftAnswer?
    /// The segment: internal tallies in order, and the outgoing foreign tally (relay).
    public var internalHops: [String]
    public var outgoing: String?

    public init(
        header: LiftHeader, role: Role, state: State, hop: Int?, answer: LiftAnswer?, internalHops: [String] = [],
        outgoing: String? = nil
    ) {
        self.header = header
        self.role = role
        self.state = state
        self.hop = hop
        self.answer = answer
        self.internalHops = internalHops
        self.outgoing = outgoing
    }
}

/// The answer a site gives a promise, stored with its record (9.6 step 2).
public enum LiftAnswer: Sendable, Equatable {
    case ack
    case refuse(LiftRefusal)
}

/// The payee's site of hop `i` on a `promise` (9.6 step 2) as a pure
/// decision: repeats get the stored answer; a promise that fails the
/// stateless checks is refused (`invalid`, `late`) and nothing is stored;
/// else, in one transaction, the chit is stored and every check runs, and
/// the site either records `part` with its refusal, or makes its segment's
/// chits (its reservations) and queues the next `promise` (a relay) or
/// `arrive` (a linear terminus). The circular terminus (the originator's own
/// lift coming home) is the originator's dialog and is only acknowledged here.
public enum PromiseDialog {
    /// The open tally the promise came on, with our user's half.
    public struct Inbound: Sendable, Equatable {
        public var core: TallyCore
        /// Our user on it, and the partner (the payer).
        public var user: CHAD
        public var partner: CHAD
        public var half: LiftHalf

        public init(core: TallyCore, user: CHAD, partner: CHAD, half: LiftHalf) {
            self.core = core
            self.user = user
            self.partner = partner
            self.half = half
        }
    }

    /// What the site holds for one promise.
    public struct Snapshot: Sendable {
        /// This site.
        public var site: LiftSite
        /// The stored answer to this (H, hop), if it answered it.
        public var answered: LiftAnswer?
        /// The chit's uuid is already held.
        public var holdsChit: Bool
        /// The open tallies between the message's `to` and `from`.
        public var tallies: [Inbound]
        /// R is on the accept list (9.8).
        public var acceptsReferee: Bool
        /// Lifts in progress with the partner's agent (9.9).
        public var withPartner: Int
        /// This site's record of H, if any (another hop's, or its own as originator).
        public var record: LiftRecord?
        /// The decision this site already applied for H, if any.
        public var decided: SignedDecision?
        /// For a relay or a linear terminus: the site's other tallies.
        public var foreign: [RouteDiscovery.Foreign]
        public var internalTallies: [RouteDiscovery.Internal]
        public var unlocked: Set<CUID>
        /// A linear lift naming this site: its seal as the site opened it.
        public var seal: SealContents?
        /// The originator's key for H, when the lift is ours.
        public var originKey: SigningKey?

        public init(
            site: LiftSite, answered: LiftAnswer? = nil, holdsChit: Bool = false, tallies: [Inbound], acceptsReferee: Bool = true,
            withPartner: Int = 0, record: LiftRecord? = nil, decided: SignedDecision? = nil, foreign: [RouteDiscovery.Foreign] = [],
            internalTallies: [RouteDiscovery.Internal] = [], unlocked: Set<CUID> = [], seal: SealContents? = nil,
            originKey: SigningKey? = nil
        ) {
            self.site = site
            self.answered = answered
            self.holdsChit = holdsChit
            self.tallies = tallies
            self.acceptsReferee = acceptsReferee
            self.withPartner = withPartner
            self.record = record
            self.decided = decided
            self.foreign = foreign
            self.internalTallies = internalTallies
            self.unlocked = unlocked
            self.seal = seal
            self.originKey = originKey
        }
    }

    /// Decides `m` at `now` (ms on this site's clock); `key` is the site's
    /// agent key, which signs the segment's chits and an `arrive`.
    public static func decide(_ m: LiftMessage, snapshot s: Snapshot, now: Int64, key: SigningKey) -> Decision {
        guard case .user(let to) = m.to, case .user(let from) = m.from else { return .ignore("a promise travels between users") }
        func reply(_ lift: String, _ hop: Int, _ answer: LiftAnswer) -> SiteMessage {
            let body: LiftMessage.Body
            switch answer {
            case .ack: body = .ack(lift: lift, hop: hop, of: .promise)
            case .refuse(let reason): body = .refuse(lift: lift, hop: hop, reason: reason)
            }
            return .lift(LiftMessage(to: .user(from), from: .user(to), body: body))
        }
        let header: LiftHeader, hop: Int, chit: LiftChit
        switch m.body {
        case .invalidPromise(let lift, let hop, let why, _):
            if let answered = s.answered { return .apply([], replies: [reply(lift, hop, answered)]) }
            return Decision(replies: [reply(lift, hop, .refuse(.invalid))], ignored: why)
        case .promise(let h, let i, let c): (header, hop, chit) = (h, i, c)
        default: return .ignore("not a promise")
        }
        let lift = header.hash
        // A repeat: the stored answer, nothing run.
        if let answered = s.answered { return .apply([], replies: [reply(lift, hop, answered)]) }
        if s.holdsChit { return .apply([], replies: [reply(lift, hop, .ack)]) }
        // Stateless checks: refused, nothing stored.
        guard hop < header.path.count,
            let t = s.tallies.first(where: { HopNonce.nonce(qid: header.qid, tally: $0.core.uuid) == header.path[hop] }),
            t.user == to, t.partner == from, chit.tally == t.core.uuid, chit.by == t.half.side.other,
            t.core.cert(chit.by).chad.agent == from.agent, chit.verify(in: t.core)
        else { return Decision(replies: [reply(lift, hop, .refuse(.invalid))], ignored: "the promise does not fit an open tally of ours") }
        if now >= header.deadlineMs { return Decision(replies: [reply(lift, hop, .refuse(.late))], ignored: "past the deadline") }

        var effects: [Effect] = [.insertLiftChit(chit, header: header, local: false)]
        // Decided already: the chit takes that result; nothing is forwarded.
        if let decided = s.decided, decided.problem(for: header) == nil {
            effects.append(.applyLiftDecision(decided))
            return .apply(effects, replies: [reply(lift, hop, .ack)])
        }
        let last = hop == header.path.count - 1
        // The circular lift coming home to its originator: always
        // acknowledged; still in `exec`, O calls (a failed check: abort).
        if last, header.kind == .circ, let r = s.record, r.role == .origin {
            let fits = header.units <= LiftCapacity.payee(t.half, kind: .circ, excluding: chit.uuid)
            effects += LiftCall.call(
                fits ? .commit : .abort, r, LiftCall.Snapshot(site: s.site, record: r, promisedHop: nil, originKey: s.originKey),
                now: now)
            return .apply(effects, replies: [reply(lift, hop, .ack)])
        }
        func refuse(_ reason: LiftRefusal) -> Decision {
            effects.append(
                .insertLiftRecord(
                    LiftRecord(
                        header: header, role: last ? .terminus : .relay, state: .part, hop: hop,
                        answer: .refuse(reason))))
            return .apply(effects, replies: [reply(lift, hop, .refuse(reason))])
        }
        if !s.acceptsReferee { return refuse(.referee) }
        let remaining = Int64(header.path.count - 1 - hop)
        if header.dateMs - LiftLimits.dateAheadMs > now || header.deadlineMs > now + LiftLimits.deadlineAheadMs
            || (!last && header.deadlineMs - now < LiftLimits.relayPerHopMs * remaining + LiftLimits.relayReserveMs)
        {
            return refuse(.time)
        }
        if let why = LiftCapacity.payeeRefusal(
            t.half, units: header.units, kind: header.kind, referee: header.referee.agent,
            withPartner: s.withPartner, excluding: chit.uuid)
        {
            return refuse(why)
        }
        if s.record != nil { return refuse(.route) }

        let reached = RouteDiscovery.reach(from: to.cuid, width: header.units, min: header.units, kind: header.kind, s.internalTallies)
        // The segment's internal chits, each by the side whose user the value leaves.
        func segmentChits(_ hops: [String]) -> [Effect]? {
            var out = [Effect]()
            var at = to.cuid
            for uuid in hops {
                guard let i = s.internalTallies.first(where: { $0.uuid == uuid }), at == i.stock || at == i.foil,
                    let c = try? LiftChit.make(header: header, tally: uuid, by: at == i.stock ? .stock : .foil, agentKey: key)
                else { return nil }
                out.append(.insertLiftChit(c, header: header, local: true))
                at = at == i.stock ? i.foil : i.stock
            }
            return out
        }

        if !last {
            // A relay: the outgoing tally whose nonce is the next entry.
            guard
                let next = s.foreign.first(where: {
                    $0.uuid != t.core.uuid && HopNonce.nonce(qid: header.qid, tally: $0.uuid) == header.path[hop + 1]
                }),
                let r = reached[next.user.cuid]
            else { return refuse(.route) }
            if let why = LiftCapacity.payerRefusal(next.half, units: header.units, referee: header.referee.agent, withPartner: s.withPartner) {
                return refuse(why)
            }
            guard let inside = segmentChits(r.hops),
                let out = try? LiftChit.make(header: header, tally: next.uuid, by: next.half.side, agentKey: key)
            else { return refuse(.route) }
            effects += inside
            effects.append(.insertLiftChit(out, header: header, local: true))
            effects.append(
                .insertLiftRecord(
                    LiftRecord(
                        header: header, role: .relay, state: .part, hop: hop, answer: .ack,
                        internalHops: r.hops, outgoing: next.uuid)))
            let promise = LiftMessage(to: .user(next.partner), from: .user(next.user), body: .promise(header: header, hop: hop + 1, chit: out))
            effects.append(.enqueue(to: next.partner, topic: LiftTopic.promise(lift, hop: hop + 1), message: .lift(promise), firstContact: false))
            return .apply(effects, replies: [reply(lift, hop, .ack)])
        }

        // A linear terminus: the payee is ours.
        guard header.kind == .line, let find = header.find, find.agent == s.site.agent, key.publicKey == s.site.agent.publicKey,
            let seal = s.seal, seal.qid == header.qid, seal.units == header.units, s.unlocked.contains(seal.cuid)
        else { return refuse(.route) }
        guard let r = reached[seal.cuid] else { return refuse(.capacity) }
        guard let inside = segmentChits(r.hops) else { return refuse(.route) }
        effects += inside
        effects.append(.insertLiftRecord(LiftRecord(header: header, role: .terminus, state: .part, hop: hop, answer: .ack, internalHops: r.hops)))
        let arrive = LiftMessage(
            to: .user(from), from: .user(to), body: .arrive(lift: lift, hop: hop, sign: LiftAct.arrive.sign(lift: lift, key: key)))
        effects.append(.enqueue(to: from, topic: LiftTopic.back(lift), message: .lift(arrive), firstContact: false))
        return .apply(effects, replies: [reply(lift, hop, .ack)])
    }
}
