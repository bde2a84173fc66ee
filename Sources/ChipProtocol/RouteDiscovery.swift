import ChipModel

/// Route discovery at a site S (9.4) as pure steps: a query arriving on a
/// foreign hop `t` is dropped, answered (`none` or a match), or forwarded on
/// at most 4 foreign hops; once the forwards are answered (or time is up)
/// `answer` folds their replies into S's one answer. Route messages are never
/// queued and nothing here is stored: the cache of 9.4 is the engine's, fed
/// from `Forward`.
public enum RouteDiscovery {
    /// One of S's open foreign tallies, seen from S's user's half.
    public struct Foreign: Sendable, Equatable {
        public var uuid: String
        /// S's user on the tally, and the partner at the other site.
        public var user: CHAD
        public var partner: CHAD
        public var half: LiftHalf

        public init(uuid: String, user: CHAD, partner: CHAD, half: LiftHalf) {
            self.uuid = uuid
            self.user = user
            self.partner = partner
            self.half = half
        }
    }

    /// One of S's open internal tallies: both halves are S's users'.
    public struct Internal: Sendable, Equatable {
        public var uuid: String
        public var stock: CUID
        public var foil: CUID
        public var stockHalf: LiftHalf
        public var foilHalf: LiftHalf

        public init(uuid: String, stock: CUID, foil: CUID, stockHalf: LiftHalf, foilHalf: LiftHalf) {
            self.uuid = uuid
            self.stock = stock
            self.foil = foil
            self.stockHalf = stockHalf
            self.foilHalf = foilHalf
        }
    }

    /// What S holds for one query.
    public struct Snapshot: Sendable {
        /// S's agent.
        public var site: AgentID
        public var foreign: [Foreign]
        public var internalTallies: [Internal]
        /// Users that may be paid (not locked).
        public var unlocked: Set<CUID>
        /// S has seen this qid (it forwards a qid once).
        public var seen: Bool
        /// Over a rate or count limit of 9.9 (queries per partner, open qids).
        public var overLimit: Bool
        /// R is on S's accept list (9.8).
        public var acceptsReferee: Bool
        /// For a linear query naming S: its seal as S opened it (nil: it does not open).
        public var seal: SealContents?

        public init(
            site: AgentID, foreign: [Foreign], internalTallies: [Internal] = [], unlocked: Set<CUID>, seen: Bool = false,
            overLimit: Bool = false, acceptsReferee: Bool = true, seal: SealContents? = nil
        ) {
            self.site = site
            self.foreign = foreign
            self.internalTallies = internalTallies
            self.unlocked = unlocked
            self.seen = seen
            self.overLimit = overLimit
            self.acceptsReferee = acceptsReferee
            self.seal = seal
        }
    }

    /// A query S sends on: on tally `tally` (t′), reached from the inbound
    /// hop over `internalHops`, carrying at most `capacity` through S. The
    /// engine caches (`inbound`, `internalHops`, `tally`) by `nonce(t′)` for the promise.
    public struct Forward: Sendable, Equatable {
        public var tally: String
        public var internalHops: [String]
        public var capacity: Int64
        public var message: RouteMessage
        public init(tally: String, internalHops: [String], capacity: Int64, message: RouteMessage) {
            self.tally = tally
            self.internalHops = internalHops
            self.capacity = capacity
            self.message = message
        }
    }

    public enum Step: Sendable, Equatable {
        /// Not answered (the last path entry is no open tally between `from` and `to`).
        case drop(String)
        /// The answer, now.
        case answer(RouteMessage)
        /// Send these; answer with `answer(…)` once all are answered or `answerWithin` ms after receipt.
        case forward([Forward], inbound: String, answerWithin: Int64)
    }

    /// Decides a query `m` that arrived `elapsed` ms ago.
    public static func decide(_ m: RouteMessage, snapshot s: Snapshot, elapsed: Int64 = 0) -> Step {
        guard case .query(let q) = m.body else { return .drop("not a query") }
        // Step 1.
        guard let last = q.path.last,
            let t = s.foreign.first(where: { $0.user == m.to && $0.partner == m.from && HopNonce.nonce(qid: q.qid, tally: $0.uuid) == last })
        else { return .drop("the last path entry is no open tally between from and to") }
        func none(_ reason: RouteNoneReason) -> Step { .answer(RouteMessage(to: m.from, from: m.to, body: .noRoute(qid: q.qid, reason: reason))) }
        if s.seen { return none(.dup) }
        if !s.acceptsReferee { return none(.referee) }
        if s.overLimit || q.limitProblem != nil { return none(.busy) }
        let inbound = min(q.units, LiftCapacity.payee(t.half, kind: q.kind))
        if inbound < q.min { return none(.noRoute) }
        let reached = reach(from: t.user.cuid, width: inbound, min: q.min, kind: q.kind, s.internalTallies)
        func good(_ path: [String], _ max: Int64) -> Step {
            .answer(RouteMessage(to: m.from, from: m.to, body: .good(qid: q.qid, routes: [FoundRoute(path: path, max: max)])))
        }

        // Step 2: a match.
        switch q.find {
        case .payee(let find) where find.agent == s.site:
            guard let seal = s.seal, seal.qid == q.qid, seal.units == q.units, s.unlocked.contains(seal.cuid), let r = reached[seal.cuid]
            else { return none(.noRoute) }
            return good(q.path, r.width)
        case .hop(let closing):
            if q.path.count < LiftLimits.maxPath,
                let tc = s.foreign.first(where: { $0.uuid != t.uuid && HopNonce.nonce(qid: q.qid, tally: $0.uuid) == closing }),
                let r = reached[tc.user.cuid]
            {
                let carried = min(r.width, LiftCapacity.payer(tc.half))
                if carried >= q.min { return good(q.path + [closing], carried) }
            }
        case .payee: break
        }

        // Step 3: forward.
        if q.ttl == 0 { return none(.ttl) }
        guard q.path.count < LiftLimits.maxPath else { return none(.ttl) }
        let wait = q.wait - LiftLimits.forwardCostMs - elapsed
        guard wait >= LiftLimits.forwardCostMs else { return none(.time) }
        var candidates = [(Foreign, Reach, Int64)]()
        // Not back to the site it came from: that site has seen the qid (it
        // sent it) and could only answer `dup`.
        for f in s.foreign where f.uuid != t.uuid && f.partner.agent != m.from.agent {
            guard let r = reached[f.user.cuid] else { continue }
            let carried = min(r.width, LiftCapacity.payer(f.half))
            if carried >= q.min { candidates.append((f, r, carried)) }
        }
        if case .payee(let find) = q.find, candidates.contains(where: { $0.0.partner.agent == find.agent }) {
            candidates = candidates.filter { $0.0.partner.agent == find.agent }
        }
        // Circular: first the hops whose partner owes S's user (what the
        // partner's default target of 0 lets a circle clear), then capacity.
        func clears(_ c: (Foreign, Reach, Int64)) -> Int64 { q.kind == .circ ? min(c.2, max(0, c.0.half.holding(c.0.half.side))) : 0 }
        candidates.sort { clears($0) != clears($1) ? clears($0) > clears($1) : $0.2 != $1.2 ? $0.2 > $1.2 : $0.0.uuid < $1.0.uuid }
        // One forward per site, on its widest tally: the site forwards a qid
        // once, so a second query to it could only be answered `dup`.
        var sites = Set<AgentID>()
        candidates = candidates.filter { sites.insert($0.0.partner.agent).inserted }
        let forwards: [Forward] = candidates.prefix(LiftLimits.fanOut).compactMap { f, r, carried in
            guard let nonce = HopNonce.nonce(qid: q.qid, tally: f.uuid) else { return nil }
            var next = q
            next.ttl = q.ttl - 1
            next.wait = wait
            next.path = q.path + [nonce]
            return Forward(
                tally: f.uuid, internalHops: r.hops, capacity: carried,
                message: RouteMessage(to: f.partner, from: f.user, body: .query(next)))
        }
        if forwards.isEmpty { return none(.noRoute) }
        return .forward(forwards, inbound: t.uuid, answerWithin: max(0, q.wait - LiftLimits.answerMarginMs - elapsed))
    }

    /// Step 4: S's answer to query `m` from the replies to its `forwards`
    /// (by tally): `good` with ≤ 3 routes (largest `max`, then shortest),
    /// each `max` = min(`units`, the reply's `max`, S's segment capacity); a
    /// route that does not extend what S sent is ignored. No route: `none`.
    public static func answer(_ m: RouteMessage, forwards: [Forward], replies: [String: RouteMessage]) -> RouteMessage? {
        guard case .query(let q) = m.body else { return nil }
        var routes = [FoundRoute]()
        for f in forwards {
            guard case .query(let sent) = f.message.body, let reply = replies[f.tally], case .good(let qid, let found) = reply.body,
                qid == q.qid
            else { continue }
            for r in found where r.path.count >= sent.path.count && Array(r.path.prefix(sent.path.count)) == sent.path {
                routes.append(FoundRoute(path: r.path, max: min(q.units, r.max, f.capacity)))
            }
        }
        routes = routes.filter { $0.max >= q.min }
        routes.sort { $0.max != $1.max ? $0.max > $1.max : $0.path.count < $1.path.count }
        let body: RouteMessage.Body =
            routes.isEmpty
            ? .noRoute(qid: q.qid, reason: .noRoute) : .good(qid: q.qid, routes: Array(routes.prefix(LiftLimits.maxRoutes)))
        return RouteMessage(to: m.from, from: m.to, body: body)
    }

    /// How far value goes inside S from a user: the widest path of at most
    /// `LiftLimits.maxInternalHops` internal hops to each user, each hop carrying `min`.
    public struct Reach: Sendable, Equatable {
        public var width: Int64
        /// The internal tallies, in order.
        public var hops: [String]
    }

    /// The users reached from `start` (itself with no hops) and how much reaches each.
    public static func reach(from start: CUID, width: Int64, min least: Int64, kind: LiftKind, _ internalTallies: [Internal]) -> [CUID: Reach] {
        // Each internal tally carries value either way: payer's half pays, payee's half is paid.
        var edges = [(payer: CUID, payee: CUID, capacity: Int64, tally: String)]()
        for i in internalTallies {
            edges.append((i.stock, i.foil, min(LiftCapacity.payer(i.stockHalf), LiftCapacity.payee(i.foilHalf, kind: kind)), i.uuid))
            edges.append((i.foil, i.stock, min(LiftCapacity.payer(i.foilHalf), LiftCapacity.payee(i.stockHalf, kind: kind)), i.uuid))
        }
        var best: [CUID: Reach] = [start: Reach(width: width, hops: [])]
        var frontier = best
        for _ in 0..<LiftLimits.maxInternalHops where !frontier.isEmpty {
            var next = [CUID: Reach]()
            for e in edges {
                guard let r = frontier[e.payer] else { continue }
                let w = min(r.width, e.capacity)
                guard w >= least, w > (best[e.payee]?.width ?? 0), w > (next[e.payee]?.width ?? 0) else { continue }
                next[e.payee] = Reach(width: w, hops: r.hops + [e.tally])
            }
            for (user, r) in next where r.width > (best[user]?.width ?? 0) { best[user] = r }
            frontier = next
        }
        return best
    }
}
