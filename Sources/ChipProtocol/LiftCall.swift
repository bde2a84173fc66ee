import ChipModel

/// Back toward the originator (9.6 steps 3 and 4): a relay passes each
/// `refuse` and `arrive` to its predecessor; the originator O calls: `commit`
/// to R on a verified `arrive` (or its circular promise come home) while
/// `deadline` − its clock ≥ 1 s, `abort` on any `refuse` or at that second.
/// O records `call` with the act; never both, and never the same H again.
public enum LiftCall {
    /// Where the lift came from at a relay: the hop and the users on it.
    public struct Predecessor: Sendable, Equatable {
        public var hop: Int
        /// Its user, and ours.
        public var user: CHAD
        public var ours: CHAD
        public init(hop: Int, user: CHAD, ours: CHAD) {
            self.hop = hop
            self.user = user
            self.ours = ours
        }
    }

    /// What the site holds about H.
    public struct Snapshot: Sendable {
        /// This site's address (O's `from` to R).
        public var site: LiftSite
        /// Our record of H.
        public var record: LiftRecord?
        /// The hop of the promise we sent, and its answer so far.
        public var promisedHop: Int?
        public var promiseAnswer: LiftAnswer?
        /// A relay's predecessor.
        public var predecessor: Predecessor?
        /// O's origin key for H (O only).
        public var originKey: SigningKey?

        public init(
            site: LiftSite, record: LiftRecord?, promisedHop: Int?, promiseAnswer: LiftAnswer? = nil, predecessor: Predecessor? = nil,
            originKey: SigningKey? = nil
        ) {
            self.site = site
            self.record = record
            self.promisedHop = promisedHop
            self.promiseAnswer = promiseAnswer
            self.predecessor = predecessor
            self.originKey = originKey
        }
    }

    /// Decides a `refuse` or an `arrive` from our successor, at `now` (ms).
    public static func decide(_ m: LiftMessage, snapshot s: Snapshot, now: Int64) -> Decision {
        guard case .user(let sender) = m.from, case .user(let us) = m.to else { return .ignore("refuse and arrive travel between users") }
        guard let record = s.record, let hop = m.hop, hop == s.promisedHop else { return .ignore("not about a promise we sent") }
        let header = record.header, lift = header.hash
        let ack: SiteMessage
        let back: LiftMessage.Body
        var effects = [Effect]()
        let firstAnswer = s.promiseAnswer == nil
        switch m.body {
        case .refuse(_, _, let reason):
            // The promise's own answer is not acknowledged; one passed on from further is.
            ack = .lift(LiftMessage(to: .user(sender), from: .user(us), body: .ack(lift: lift, hop: hop, of: .refuse)))
            back = .refuse(lift: lift, hop: s.predecessor?.hop ?? hop, reason: reason)
            if firstAnswer {
                effects += [.setPromiseAnswer(lift: lift, hop: hop, answer: .refuse(reason)), .dropOutbox(topic: LiftTopic.promise(lift, hop: hop))]
            }
        case .arrive(_, _, let sign):
            guard header.kind == .line, let find = header.find, LiftAct.arrive.verify(sign, lift: lift, publicKey: find.agent.publicKey) else {
                return .ignore("an arrive that does not verify with find.agent")
            }
            ack = .lift(LiftMessage(to: .user(sender), from: .user(us), body: .ack(lift: lift, hop: hop, of: .arrive)))
            back = .arrive(lift: lift, hop: s.predecessor?.hop ?? hop, sign: sign)
            if firstAnswer {
                effects += [.setPromiseAnswer(lift: lift, hop: hop, answer: .ack), .dropOutbox(topic: LiftTopic.promise(lift, hop: hop))]
            }
        default:
            return .ignore("not a refuse or an arrive")
        }
        let isRefuse = m.action == .refuse
        let replies: [SiteMessage] = isRefuse && firstAnswer ? [] : [ack]
        switch record.state {
        case .good, .void, .call:
            // Decided or called already: nothing more goes back.
            return .apply(effects, replies: replies)
        case .part:
            guard let p = s.predecessor else { return .ignore("a relay without its predecessor") }
            effects.append(
                .enqueue(
                    to: p.user, topic: LiftTopic.back(lift), message: .lift(LiftMessage(to: .user(p.user), from: .user(p.ours), body: back)),
                    firstContact: false))
            return .apply(effects, replies: replies)
        case .exec where record.role == .origin:
            return .apply(effects + call(isRefuse ? .abort : .commit, record, s, now: now), replies: replies)
        default:
            return .ignore("a refuse or arrive for a lift in state \(record.state.rawValue)")
        }
    }

    /// O's call on its record in `exec`: `commit` only while `deadline` − now
    /// ≥ 1 s, else `abort`; queued to R and recorded (`call`) together.
    public static func call(_ wanted: LiftAct, _ record: LiftRecord, _ s: Snapshot, now: Int64) -> [Effect] {
        guard record.role == .origin, record.state == .exec, let key = s.originKey,
            key.publicKey == record.header.originKey
        else { return [] }
        let header = record.header
        let act: LiftAct = wanted == .commit && header.deadlineMs - now >= LiftLimits.commitMarginMs ? .commit : .abort
        let message = LiftMessage(
            to: .site(header.referee), from: .site(s.site),
            body: .call(act, header: header, sign: act.sign(lift: header.hash, key: key)))
        return [
            .setLiftState(lift: header.hash, state: .call, call: act),
            .enqueueToReferee(header.referee, topic: LiftTopic.call(header.hash), message: .lift(message))
        ]
    }

    /// O's timer: at `deadline` − 1 s a lift still in `exec` is aborted.
    public static func tick(_ record: LiftRecord, _ s: Snapshot, now: Int64) -> [Effect] {
        guard record.state == .exec, record.header.deadlineMs - now < LiftLimits.commitMarginMs else { return [] }
        return call(.abort, record, s, now: now)
    }

    /// When a site whose record is still `part`, `exec` or `call` asks next
    /// (9.7): `deadline` + 2 s + `jitter` (0-2 s, drawn by the caller), then
    /// 2 s after each attempt, doubling to 5 min. `attempt` counts from 0.
    public static func nextQuery(deadline: Int64, attempt: Int, jitter: Int64, lastAt: Int64?) -> Int64 {
        guard attempt > 0, let lastAt else {
            return deadline + LiftLimits.queryStartMs + min(max(0, jitter), LiftLimits.queryJitterMs)
        }
        var gap = LiftLimits.queryStartMs
        for _ in 1..<attempt where gap < LiftLimits.queryBackoffMaxMs { gap *= 2 }
        return lastAt + min(gap, LiftLimits.queryBackoffMaxMs)
    }
}
