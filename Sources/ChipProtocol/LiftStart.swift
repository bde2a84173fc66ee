import ChipModel

/// The originator's start (9.4 "Start", 9.6 step 1) as pure steps: which
/// queries to send, and, from a found route, the lift (`exec`): its header,
/// its own segment's chits and reservations, and the first `promise`, in one
/// decision. Randomness (qid, padding nonces, header uuid) and the origin key
/// come in; the engine seals and stores that key in the same transaction.
public enum LiftStart {
    /// A query O sends on its outgoing foreign tally `t0`, and the segment
    /// it would use there.
    public struct Query: Sendable, Equatable {
        /// O's outgoing tally, and (circular) the closing tally whose payee is O's user.
        public var t0: String
        public var closing: String?
        /// Internal hops from the segment's first user to `t0`'s payer.
        public var internalHops: [String]
        /// What O's segment carries.
        public var capacity: Int64
        public var message: RouteMessage
    }

    /// What O asks for.
    public struct Ask: Sendable, Equatable {
        public var qid: String
        public var units: Int64
        public var min: Int64
        public var referee: LiftSite
        /// 0 to 2 random 32-byte nonces (base64url) put before `nonce(t0)`.
        public var padding: [String]
        public var ttl: Int64?
        public var wait: Int64

        public init(
            qid: String, units: Int64, min: Int64, referee: LiftSite, padding: [String] = [], ttl: Int64? = nil,
            wait: Int64 = LiftLimits.maxWaitMs
        ) {
            self.qid = qid
            self.units = units
            self.min = min
            self.referee = referee
            self.padding = padding
            self.ttl = ttl
            self.wait = wait
        }
    }

    /// Why O cannot start.
    public enum Problem: Error, Sendable, Equatable {
        case invalid(String)
        case noRoute
    }

    static func check(_ ask: Ask) throws(Problem) {
        guard HopNonce.qidBytes(ask.qid) != nil, LiftLimits.units.contains(ask.units), (1...ask.units).contains(ask.min),
            ask.padding.count <= LiftLimits.maxPadding, ask.padding.allSatisfy(Base64URL.isDigest),
            (0...LiftLimits.maxWaitMs).contains(ask.wait)
        else { throw .invalid("qid, units, min, padding or wait out of range") }
    }

    /// Circular: a query on each of up to 4 outgoing foreign tallies `t0`
    /// (largest capacity first) whose payer is reached from the payee of a
    /// foreign tally `tc` over ≤ 4 internal hops, `find.hop` = `nonce(tc)`.
    public static func circular(_ ask: Ask, foreign: [RouteDiscovery.Foreign], internalTallies: [RouteDiscovery.Internal]) throws(Problem) -> [Query]
    {
        try check(ask)
        let ttl = min(ask.ttl ?? LiftLimits.maxTTLCirc, LiftLimits.maxTTLCirc)
        var best = [String: Query]()
        for tc in foreign {
            let into = min(ask.units, LiftCapacity.payee(tc.half, kind: .circ))
            guard into >= ask.min, let closing = HopNonce.nonce(qid: ask.qid, tally: tc.uuid) else { continue }
            let reached = RouteDiscovery.reach(from: tc.user.cuid, width: into, min: ask.min, kind: .circ, internalTallies)
            for t0 in foreign where t0.uuid != tc.uuid {
                guard let r = reached[t0.user.cuid], let first = HopNonce.nonce(qid: ask.qid, tally: t0.uuid) else { continue }
                let carried = min(r.width, LiftCapacity.payer(t0.half))
                guard carried >= ask.min, carried > (best[t0.uuid]?.capacity ?? 0) else { continue }
                let q = RouteQuery(
                    qid: ask.qid, kind: .circ, units: ask.units, min: ask.min, ttl: ttl, wait: ask.wait, referee: ask.referee,
                    find: .hop(closing), path: ask.padding + [first])
                best[t0.uuid] = Query(
                    t0: t0.uuid, closing: tc.uuid, internalHops: r.hops, capacity: carried,
                    message: RouteMessage(to: t0.partner, from: t0.user, body: .query(q)))
            }
        }
        // As relays do (RouteDiscovery.decide): first the t0 whose partner owes O's user.
        let holding = Dictionary(uniqueKeysWithValues: foreign.map { ($0.uuid, $0.half.holding($0.half.side)) })
        return ranked(Array(best.values)) { min($0.capacity, max(0, holding[$0.t0] ?? 0)) }
    }

    /// Linear: a query on each of up to 4 outgoing foreign tallies whose
    /// payer is the payor or reached from it, preferring the payee's site.
    public static func linear(
        _ ask: Ask, payor: CUID, find: LiftFind, foreign: [RouteDiscovery.Foreign],
        internalTallies: [RouteDiscovery.Internal]
    ) throws(Problem) -> [Query] {
        try check(ask)
        let ttl = min(ask.ttl ?? LiftLimits.maxTTLLine, LiftLimits.maxTTLLine)
        let reached = RouteDiscovery.reach(from: payor, width: ask.units, min: ask.min, kind: .line, internalTallies)
        var out = [Query]()
        for t0 in foreign {
            guard let r = reached[t0.user.cuid], let first = HopNonce.nonce(qid: ask.qid, tally: t0.uuid) else { continue }
            let carried = min(r.width, LiftCapacity.payer(t0.half))
            guard carried >= ask.min else { continue }
            let q = RouteQuery(
                qid: ask.qid, kind: .line, units: ask.units, min: ask.min, ttl: ttl, wait: ask.wait, referee: ask.referee,
                find: .payee(find), path: ask.padding + [first])
            out.append(
                Query(
                    t0: t0.uuid, closing: nil, internalHops: r.hops, capacity: carried,
                    message: RouteMessage(to: t0.partner, from: t0.user, body: .query(q))))
        }
        let direct = out.filter { $0.message.to.agent == find.agent }
        return ranked(direct.isEmpty ? out : direct)
    }

    /// Those that clear most first (circular), then widest; one per partner
    /// site (a site forwards a qid once), at most 4.
    static func ranked(_ qs: [Query], clears: (Query) -> Int64 = { _ in 0 }) -> [Query] {
        var sites = Set<AgentID>()
        let sorted = qs.sorted {
            clears($0) != clears($1) ? clears($0) > clears($1) : $0.capacity != $1.capacity ? $0.capacity > $1.capacity : $0.t0 < $1.t0
        }
        return Array(sorted.filter { sites.insert($0.message.to.agent).inserted }.prefix(LiftLimits.fanOut))
    }

    /// `exec` (9.6 step 1): from a `route` found by query `q`, O's lift:
    /// linear lifts carry exactly the query's `units` (the route must carry
    /// them), circular ones as much of them as the route carries. The header
    /// is dated `now` with `deadline` = `now` + `life` (chipsite's 60 s,
    /// config `lift.life`; at most 120 s) and signed with
    /// `originKey`; O's segment chits are signed with the site key `siteKey`.
    public static func exec(
        _ q: Query, route: FoundRoute, uuid: String, now: Int64, life: Int64 = LiftLimits.originLifeMs, originKey: SigningKey,
        siteKey: SigningKey,
        foreign: [RouteDiscovery.Foreign], internalTallies: [RouteDiscovery.Internal]
    ) throws(Problem) -> Decision {
        guard case .query(let rq) = q.message.body, let t0 = foreign.first(where: { $0.uuid == q.t0 }) else { throw .invalid("not O's query") }
        guard route.path.count <= LiftLimits.maxPath, route.path.starts(with: rq.path) else {
            throw .invalid("the route does not start with O's path")
        }
        let units = rq.kind == .line ? rq.units : min(rq.units, route.max, q.capacity)
        guard units >= rq.min, route.max >= units, q.capacity >= units else { throw .noRoute }
        let find: LiftFind?
        switch rq.find {
        case .payee(let f): find = f
        case .hop: find = nil
        }
        let header: LiftHeader
        do {
            header = try LiftHeader.make(
                uuid: uuid, kind: rq.kind, qid: rq.qid, date: Timestamp.format(millisecondsSince1970: now),
                deadline: Timestamp.format(millisecondsSince1970: now + min(max(1, life), LiftLimits.maxLifeMs)), units: units,
                path: route.path, referee: rq.referee, find: find, originKey: originKey)
        } catch { throw .invalid("\(error)") }
        let hop = rq.path.count - 1
        var effects = [Effect]()
        // O's segment: its internal hops, then t0 by its payer.
        var chits = [LiftChit]()
        var user = segmentStart(q, internalTallies)
        for uuid in q.internalHops {
            guard let i = internalTallies.first(where: { $0.uuid == uuid }), user == i.stock || user == i.foil,
                let c = try? LiftChit.make(header: header, tally: uuid, by: user == i.stock ? .stock : .foil, agentKey: siteKey)
            else { throw .invalid("the segment's internal hops do not chain") }
            chits.append(c)
            user = user == i.stock ? i.foil : i.stock
        }
        guard user == t0.user.cuid, let out = try? LiftChit.make(header: header, tally: t0.uuid, by: t0.half.side, agentKey: siteKey) else {
            throw .invalid("the segment does not reach t0's payer")
        }
        chits.append(out)
        effects.append(
            .insertLiftRecord(
                LiftRecord(
                    header: header, role: .origin, state: .exec, hop: nil, answer: nil, internalHops: q.internalHops,
                    outgoing: t0.uuid)))
        effects += chits.map { .insertLiftChit($0, header: header, local: true) }
        let promise = LiftMessage(to: .user(t0.partner), from: .user(t0.user), body: .promise(header: header, hop: hop, chit: out))
        effects.append(.enqueue(to: t0.partner, topic: LiftTopic.promise(header.hash, hop: hop), message: .lift(promise), firstContact: false))
        return .apply(effects)
    }

    /// The user O's segment starts from (the closing tally's payee, or the
    /// payor): walking the internal hops back from `t0`'s payer.
    static func segmentStart(_ q: Query, _ internalTallies: [RouteDiscovery.Internal]) -> CUID {
        var user = q.message.from.cuid
        for uuid in q.internalHops.reversed() {
            guard let i = internalTallies.first(where: { $0.uuid == uuid }) else { break }
            user = user == i.stock ? i.foil : i.stock
        }
        return user
    }
}
