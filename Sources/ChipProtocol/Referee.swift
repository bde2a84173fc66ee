import ChipModel

/// Outbox topics of lift messages (9.9's "queued by … until"), so that an
/// answer or a decision can take them out.
public enum LiftTopic {
    /// A `promise` on hop `hop`: until its answer, or a `void` applied.
    public static func promise(_ lift: String, hop: Int) -> String { "lift:\(lift):promise:\(hop)" }
    /// A `refuse` passed on or an `arrive`, toward the originator.
    public static func back(_ lift: String) -> String { "lift:\(lift):back" }
    /// The originator's `commit` or `abort`, until R's decision.
    public static func call(_ lift: String) -> String { "lift:\(lift):call" }
    /// A decision to the neighbour on hop `hop`, until its `ack`.
    public static func decision(_ lift: String, hop: Int) -> String { "lift:\(lift):decision:\(hop)" }
}

/// The referee (9.7) as a pure decision: one decision per H, signed once,
/// never changed. `good` only for a commit before the deadline on R's clock;
/// an abort, or a commit or query at or after the deadline, is `void`; a
/// query before the deadline is `pending`, to ask again after it.
public enum Referee {
    /// What was asked, with the act's signature.
    public enum Request: Sendable, Equatable {
        case commit(sign: String)
        case abort(sign: String)
        case query
    }

    /// What the referee site holds for one H.
    public struct Snapshot: Sendable {
        /// This site's address (R).
        public var site: LiftSite
        /// The decision stored for the header's H, if any.
        public var stored: SignedDecision?

        public init(site: LiftSite, stored: SignedDecision?) {
            self.site = site
            self.stored = stored
        }
    }

    /// Decides a `commit`, `abort` or `query` message (anything else is ignored).
    public static func decide(_ m: LiftMessage, snapshot s: Snapshot, now: Int64, key: SigningKey) -> Decision {
        switch m.body {
        case .call(let act, let header, let sign):
            return decide(
                act == .commit ? .commit(sign: sign) : .abort(sign: sign), header: header, asker: m.from, snapshot: s,
                now: now, key: key)
        case .query(let header):
            return decide(.query, header: header, asker: m.from, snapshot: s, now: now, key: key)
        default:
            return .ignore("a referee takes only commit, abort and query")
        }
    }

    /// Decides one request about `header` (already parsed, so its hash,
    /// signature, version and times hold) from `asker`, at `now` (ms) on R's clock.
    public static func decide(
        _ request: Request, header: LiftHeader, asker: LiftParty, snapshot s: Snapshot, now: Int64,
        key: SigningKey
    ) -> Decision {
        guard key.publicKey == s.site.agent.publicKey else { return .ignore("the signing key is not this referee's") }
        guard header.referee.agent == s.site.agent else { return .ignore("the lift names another referee") }
        guard now - header.deadlineMs < LiftLimits.keepMs else { return .ignore("a header past the keep period: a lift never seen") }
        switch request {
        case .commit(let sign): guard header.verify(.commit, sign: sign) else { return .ignore("the commit does not verify with the origin") }
        case .abort(let sign): guard header.verify(.abort, sign: sign) else { return .ignore("the abort does not verify with the origin") }
        case .query: break
        }
        func answer(_ body: LiftMessage.Body) -> SiteMessage { .lift(LiftMessage(to: asker, from: .site(s.site), body: body)) }
        if let stored = s.stored {
            guard stored.lift == header.hash else { return .ignore("the stored decision is for another lift") }
            return .apply([], replies: [answer(.decision(stored, hop: nil))])
        }
        let result: LiftResult, commit: String?
        switch request {
        case .commit(let sign) where now < header.deadlineMs: (result, commit) = (.good, sign)
        case .commit, .abort: (result, commit) = (.void, nil)
        case .query:
            guard now >= header.deadlineMs else {
                let retry = min(header.deadlineMs + LiftLimits.pendingAfterDeadlineMs - now, LiftLimits.maxRetryMs)
                return .apply([], replies: [answer(.pending(lift: header.hash, hop: nil, retry: retry))])
            }
            (result, commit) = (.void, nil)
        }
        guard
            let d = try? SignedDecision.make(
                lift: header.hash, result: result, date: Timestamp.format(millisecondsSince1970: now),
                commit: commit, key: key)
        else { return .ignore("the decision could not be signed") }
        return .apply([.storeRefereeDecision(d, deadline: header.deadline)], replies: [answer(.decision(d, hop: nil))])
    }
}

/// Applying a referee's decision at a site on the lift (9.7): validity,
/// repeats, equivocation, and who is told.
public enum DecisionApply {
    public enum Verdict: Sendable, Equatable {
        /// Not valid for the header: dropped.
        case invalid(String)
        /// The first decision this site takes for H.
        case apply(LiftResult)
        /// One with the same result is held (a different `date` alone is a repeat).
        case repeated
        /// `void` was applied and a valid `good` came: good applies, both kept as proof.
        case upgrade
        /// `good` was applied and a valid `void` came: kept as proof, nothing changes.
        case proof
    }

    /// What `d` means to a site holding `held` for `header` (the applied one first).
    public static func judge(_ d: SignedDecision, header: LiftHeader, held: [SignedDecision]) -> Verdict {
        if let problem = d.problem(for: header) { return .invalid(problem) }
        if held.contains(where: { $0.result == d.result }) { return .repeated }
        guard let applied = held.first else { return .apply(d.result) }
        return applied.result == .void ? .upgrade : .proof
    }

    /// A neighbour on the lift.
    public struct Neighbour: Sendable, Equatable {
        /// The hop between us.
        public var hop: Int
        /// Its user, and ours, on that hop.
        public var user: CHAD
        public var ours: CHAD
        /// It is our successor (we promised to it), not our predecessor.
        public var successor: Bool
        /// A successor answered our promise, and not with `invalid` or `late`.
        public var answered: Bool

        public init(hop: Int, user: CHAD, ours: CHAD, successor: Bool, answered: Bool) {
            self.hop = hop
            self.user = user
            self.ours = ours
            self.successor = successor
            self.answered = answered
        }
    }

    /// What the site holds about H.
    public struct Snapshot: Sendable {
        /// The lift's header, from its record or a chit's promise.
        public var header: LiftHeader?
        /// The decisions taken for H: the applied one first, then proof.
        public var held: [SignedDecision]
        /// It holds a record or a chit for H.
        public var known: Bool
        public var neighbours: [Neighbour]
        /// The applied decision was queued on to the neighbours already.
        public var passed: Bool

        public init(header: LiftHeader?, held: [SignedDecision] = [], known: Bool, neighbours: [Neighbour] = [], passed: Bool = false) {
            self.header = header
            self.held = held
            self.known = known
            self.neighbours = neighbours
            self.passed = passed
        }
    }

    /// Decides a `good` or `void` message, from a neighbour (with `hop`) or
    /// from R answering us (no `hop`, never acknowledged).
    public static func decide(_ m: LiftMessage, snapshot s: Snapshot) -> Decision {
        guard case .decision(let d, let hop) = m.body else { return .ignore("not a decision") }
        guard s.known, let header = s.header else { return .ignore("a decision for a lift we hold nothing of: not acknowledged") }
        let verdict = judge(d, header: header, held: s.held)
        let lift = header.hash
        var replies = [SiteMessage]()
        if let hop, case .user(let sender) = m.from, case .user(let us) = m.to {
            replies.append(
                .lift(LiftMessage(to: .user(sender), from: .user(us), body: .ack(lift: lift, hop: hop, of: d.result == .good ? .good : .void))))
        }
        // The neighbour that sent it holds it: nothing more goes to it.
        let senderHop = hop.flatMap { h in s.neighbours.first { $0.hop == h && $0.user.agent == m.from.agent }?.hop }
        let told = senderHop.map { [Effect.dropOutbox(topic: LiftTopic.decision(lift, hop: $0))] } ?? []
        switch verdict {
        case .invalid(let why):
            return .ignore(why)
        case .repeated:
            // Applied from a chain entry (9.5) before this message came: it
            // has not gone on to the neighbours yet; it goes now, once.
            if !s.passed, s.held.first?.result == d.result {
                return .apply(told + pass(d, s.neighbours, except: senderHop) + [.setDecisionPassed(lift: lift)], replies: replies)
            }
            return .apply(told, replies: replies)
        case .proof:
            return .apply([.storeDecisionProof(d), .refereeEquivocated(referee: d.referee, lift: lift)] + told, replies: replies)
        case .apply(let result):
            var effects: [Effect] = [.applyLiftDecision(d), .dropOutbox(topic: LiftTopic.back(lift)), .dropOutbox(topic: LiftTopic.call(lift))]
            if result == .void {
                effects += s.neighbours.filter(\.successor).map { .dropOutbox(topic: LiftTopic.promise(lift, hop: $0.hop)) }
            }
            return .apply(effects + told + pass(d, s.neighbours, except: senderHop) + [.setDecisionPassed(lift: lift)], replies: replies)
        case .upgrade:
            var effects = [Effect]()
            if let applied = s.held.first { effects.append(.storeDecisionProof(applied)) }
            effects += [.applyLiftDecision(d), .dropOutbox(topic: LiftTopic.back(lift)), .dropOutbox(topic: LiftTopic.call(lift))]
            effects.append(.refereeEquivocated(referee: d.referee, lift: lift))
            return .apply(effects + told + pass(d, s.neighbours, except: senderHop) + [.setDecisionPassed(lift: lift)], replies: replies)
        }
    }

    /// The decision queued to each neighbour but the one that sent it; to a
    /// successor only once it answered our promise, and not `invalid` or `late`.
    static func pass(_ d: SignedDecision, _ neighbours: [Neighbour], except hop: Int?) -> [Effect] {
        neighbours.filter { $0.hop != hop && (!$0.successor || $0.answered) }.map { n in
            .enqueue(
                to: n.user, topic: LiftTopic.decision(d.lift, hop: n.hop),
                message: .lift(LiftMessage(to: .user(n.user), from: .user(n.ours), body: .decision(d, hop: n.hop))), firstContact: false)
        }
    }

    /// The answer to a neighbour's `status` (9.7): the decision held for H,
    /// else `pending`, with or without a record.
    public static func status(_ m: LiftMessage, held: [SignedDecision]) -> Decision {
        guard case .status(let lift, let hop) = m.body else { return .ignore("not a status") }
        let body: LiftMessage.Body =
            held.first.map { .decision($0, hop: hop) }
            ?? .pending(lift: lift, hop: hop, retry: LiftLimits.queryStartMs)
        return .apply([], replies: [.lift(LiftMessage(to: m.from, from: m.to, body: body))])
    }
}
