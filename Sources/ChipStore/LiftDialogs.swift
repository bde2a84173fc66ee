import ChipModel
import ChipProtocol
import Foundation
import GRDB

// The site's side of the lift dialogs (section 9): one message, one
// transaction. Each entry point loads the snapshot its decider needs
// (ChipProtocol: PromiseDialog, LiftCall, LiftAck, DecisionApply, Referee,
// RouteDiscovery, LiftStart), asks it, and applies the effects in the same
// write transaction; the engine sends the replies after the commit.

/// A lift in progress, for the engine's timers (9.6 step 4, 9.7).
public struct LiftInProgress: Sendable, Equatable {
    public var lift: String
    public var role: LiftRecord.Role
    public var state: LiftRecord.State
    public var deadlineMs: Int64
    /// Timeout queries sent so far, and when the last was (ms).
    public var queries: Int
    public var lastQueryMs: Int64?
}

extension SiteStore {
    /// The label an origin key is sealed under (as the agent key is).
    static func originKeyLabel(_ lift: String) -> String { "chipsite origin key \(lift)" }

    // MARK: Loading what the deciders see

    static func liftSite(_ db: Database) throws -> LiftSite {
        LiftSite(agent: try agent(db), address: try address(db))
    }

    /// The chits 9.2 counts on `tally`: pending `tran` chits, lift chits `pend` or good-not-chained.
    static func heldChits(_ db: Database, tally: String) throws -> [HeldChit] {
        try Row.fetchAll(
            cached: db,
            sql: """
                SELECT c.uuid, c.type, c.by, c.units, h.referee FROM chits c LEFT JOIN lift_headers h ON h.lift = c.lift
                WHERE c.tally = ? AND ((c.type <> 'lift' AND c.state = 'pending') OR (c.type = 'lift' AND c.state IN ('pend', 'good')))
                """, arguments: [tally]
        ).compactMap { row in
            let type: String = row["type"], by: String = row["by"], referee: String? = row["referee"]
            guard let side = TallySide(rawValue: by) else { return nil }
            return HeldChit(
                uuid: row["uuid"], kind: type == "lift" ? .lift : .tran, by: side, units: row["units"],
                referee: referee.flatMap { try? AgentID($0) })
        }
    }

    /// Our user's half of open tally `t`, for 9.2's checks.
    static func liftHalf(_ db: Database, _ t: TallyRecord, core: TallyCore) throws -> LiftHalf {
        let trade = t.trade ?? .defaults(limit: core.limit(t.side))
        return LiftHalf(
            tally: t.uuid, side: t.side, stockLimit: core.limit(.stock), foilLimit: core.limit(.foil), balance: t.balance,
            held: try heldChits(db, tally: t.uuid), trade: trade)
    }

    /// Every open tally of an unlocked user, seen from our user's half (no
    /// lifts through a locked user or a site in lockdown).
    static func foreignTallies(_ db: Database) throws -> [RouteDiscovery.Foreign] {
        if try isLockedDown(db) { return [] }
        let rows = try Row.fetchAll(
            cached: db,
            sql: """
                SELECT t.* FROM tallies t JOIN users u ON u.cuid = t.cuid WHERE t.state = ? AND u.locked = 0 ORDER BY t.uuid
                """, arguments: [TallyState.open.rawValue])
        var out = [RouteDiscovery.Foreign]()
        for row in rows {
            let t = try tallyRecord(row)
            guard let core = t.core else { continue }
            out.append(
                RouteDiscovery.Foreign(
                    uuid: t.uuid, user: core.cert(t.side).chad, partner: core.cert(t.side.other).chad,
                    half: try liftHalf(db, t, core: core)))
        }
        return out
    }

    static func unlockedUsers(_ db: Database) throws -> Set<CUID> {
        if try isLockedDown(db) { return [] }
        return Set(try String.fetchAll(cached: db, sql: "SELECT cuid FROM users WHERE locked = 0").compactMap { try? CUID($0) })
    }

    /// Lifts in progress with `agent` (9.9's 64 per partner): distinct H of
    /// `pend` lift chits on tallies with it.
    static func liftsWithPartner(_ db: Database, _ agent: AgentID) throws -> Int {
        try Int.fetchOne(
            cached: db,
            sql: """
                SELECT count(DISTINCT c.lift) FROM chits c JOIN tallies t ON t.uuid = c.tally
                WHERE t.partner_agent = ? AND c.type = 'lift' AND c.state = 'pend'
                """, arguments: [agent.description]) ?? 0
    }

    static func liftHeader(_ db: Database, _ lift: String) throws -> LiftHeader? {
        guard let text = try String.fetchOne(cached: db, sql: "SELECT header FROM lift_headers WHERE lift = ?", arguments: [lift]) else { return nil }
        return try LiftHeader(json: try JSONValue(parsing: text))
    }

    static func answer(_ text: String?) -> LiftAnswer? {
        guard let text else { return nil }
        if text == "ack" { return .ack }
        return LiftRefusal(rawValue: text).map { .refuse($0) }
    }

    static func answerText(_ a: LiftAnswer) -> String {
        switch a {
        case .ack: "ack"
        case .refuse(let r): r.rawValue
        }
    }

    /// Our record of H, with what the deciders need beside it.
    struct StoredLift {
        var record: LiftRecord
        var promiseAnswer: LiftAnswer?
        var originSecret: [UInt8]?
        var queries: Int
        var updated: String
    }

    static func storedLift(_ db: Database, _ lift: String) throws -> StoredLift? {
        guard
            let row = try Row.fetchOne(
                cached: db, sql: "SELECT l.*, h.header FROM lifts l JOIN lift_headers h ON h.lift = l.lift WHERE l.lift = ?", arguments: [lift])
        else { return nil }
        return try storedLift(row)
    }

    static func storedLift(_ row: Row) throws -> StoredLift {
        let header = try LiftHeader(json: try JSONValue(parsing: row["header"] as String))
        let role: String = row["role"], state: String = row["state"], internalText: String = row["internal"]
        guard let r = LiftRecord.Role(rawValue: role), let s = LiftRecord.State(rawValue: state) else { throw StoreError.damaged("lift state") }
        let internalHops = (try? JSONValue(parsing: internalText))?.arrayValue?.compactMap(\.stringValue) ?? []
        let secret: Data? = row["origin_secret"]
        return StoredLift(
            record: LiftRecord(
                header: header, role: r, state: s, hop: row["hop"], answer: answer(row["answer"]), internalHops: internalHops,
                outgoing: row["outgoing"]),
            promiseAnswer: answer(row["promise_answer"]), originSecret: secret.map(Array.init), queries: row["queries"],
            updated: row["updated"])
    }

    /// The hop of the promise a record sent: its outgoing tally's place in the path.
    static func promisedHop(_ r: LiftRecord) -> Int? {
        guard let out = r.outgoing, let nonce = HopNonce.nonce(qid: r.header.qid, tally: out) else { return nil }
        return r.header.path.firstIndex(of: nonce)
    }

    static func originKey(_ stored: StoredLift?, sealingKey: SealingKey?) -> SigningKey? {
        guard let stored, stored.record.role == .origin, let secret = stored.originSecret else { return nil }
        return try? signingKey(from: secret, sealingKey: sealingKey, label: originKeyLabel(stored.record.header.hash))
    }

    /// The decisions held for H: the applied one first, then proof.
    static func heldDecisions(_ db: Database, _ lift: String) throws -> [SignedDecision] {
        try String.fetchAll(cached: db, sql: "SELECT decision FROM lift_decisions WHERE lift = ? ORDER BY applied DESC", arguments: [lift])
            .compactMap { try? SignedDecision(json: try JSONValue(parsing: $0)) }
    }

    /// Our open tally whose nonce is `path[hop]` of `header`.
    static func tallyOnHop(_ db: Database, _ header: LiftHeader, hop: Int) throws -> TallyRecord? {
        guard hop >= 0, hop < header.path.count else { return nil }
        for row in try Row.fetchAll(cached: db, sql: "SELECT * FROM tallies WHERE state = ?", arguments: [TallyState.open.rawValue]) {
            let t = try tallyRecord(row)
            if HopNonce.nonce(qid: header.qid, tally: t.uuid) == header.path[hop] { return t }
        }
        return nil
    }

    /// Our neighbours on H (9.7): one per foreign tally holding a chit of H;
    /// a tally we pay on leads to a successor, one we are paid on to a predecessor.
    static func neighbours(_ db: Database, _ header: LiftHeader, stored: StoredLift?) throws -> [DecisionApply.Neighbour] {
        var out = [DecisionApply.Neighbour]()
        let rows = try Row.fetchAll(
            cached: db, sql: "SELECT c.by, t.* FROM chits c JOIN tallies t ON t.uuid = c.tally WHERE c.lift = ?", arguments: [header.hash])
        for row in rows {
            let t = try tallyRecord(row)
            let by: String = row["by"]
            guard let core = t.core, let nonce = HopNonce.nonce(qid: header.qid, tally: t.uuid),
                let hop = header.path.firstIndex(of: nonce)
            else { continue }
            let successor = by == t.side.rawValue
            var answered = true
            if successor {
                switch stored?.promiseAnswer {
                case .refuse(.invalid), .refuse(.late), nil: answered = false
                default: answered = true
                }
            }
            out.append(
                DecisionApply.Neighbour(
                    hop: hop, user: core.cert(t.side.other).chad, ours: core.cert(t.side).chad, successor: successor, answered: answered))
        }
        return out
    }

    // MARK: Lift messages

    /// Handles a lift message from `peer` at `now` (ms on this site's
    /// clock). `siteKey` signs what this site signs (its segment's chits, an
    /// arrive, a referee's decision); `sealingKey` opens a stored origin key.
    /// `acks`: neighbours' `ack`s received before `m` and not applied yet
    /// (the engine lets them ride the next transaction, `receiveAcks`);
    /// applied first, in the same transaction.
    public func receiveLift(
        _ m: LiftMessage, from peer: AgentID, siteKey: SigningKey, sealingKey: SealingKey?, now: Int64, acks: [LiftMessage] = []
    ) throws -> Outcome {
        let stamp = Timestamp.format(millisecondsSince1970: now)
        return try guardedWrite { db in
            try Self.applyAcks(acks, db, stamp: stamp)
            let decision = try Self.decideLift(m, db, siteKey: siteKey, sealingKey: sealingKey, now: now)
            return try Self.commitLift(decision, db, siteKey: siteKey, sealingKey: sealingKey, now: now, stamp: stamp)
        }
    }

    /// Neighbours' `ack`s in one transaction (each takes a message out of
    /// the outbox, 9.9; one lost in a crash only means a resend, answered
    /// as a repeat).
    public func receiveAcks(_ acks: [LiftMessage], now: Int64) throws {
        guard !acks.isEmpty else { return }
        let stamp = Timestamp.format(millisecondsSince1970: now)
        try guardedWrite { db in try Self.applyAcks(acks, db, stamp: stamp) }
    }

    /// An ack needs no key: it only takes a message out of the outbox.
    static func applyAcks(_ acks: [LiftMessage], _ db: Database, stamp: String) throws {
        for ack in acks where ack.action == .ack { _ = try commit(try decideAck(ack, db), db, now: stamp) }
    }

    static func decideAck(_ m: LiftMessage, _ db: Database) throws -> Decision {
        let stored = try storedLift(db, m.lift)
        return LiftAck.decide(
            m,
            snapshot: LiftAck.Snapshot(
                known: stored != nil, promisedHop: stored.flatMap { promisedHop($0.record) }, promiseAnswered: stored?.promiseAnswer != nil))
    }

    /// The decider for lift message `m`, on the snapshot read in `db`.
    static func decideLift(_ m: LiftMessage, _ db: Database, siteKey: SigningKey, sealingKey: SealingKey?, now: Int64) throws -> Decision {
        let decision: Decision
        switch m.action {
        case .promise:
            decision = PromiseDialog.decide(
                m, snapshot: try Self.promiseSnapshot(db, m, siteKey: siteKey, sealingKey: sealingKey), now: now, key: siteKey)
        case .refuse, .arrive:
            decision = LiftCall.decide(m, snapshot: try Self.callSnapshot(db, m.lift, sealingKey: sealingKey), now: now)
        case .ack:
            decision = try decideAck(m, db)
        case .good, .void:
            decision = DecisionApply.decide(m, snapshot: try Self.decisionSnapshot(db, m.lift))
        case .status:
            decision = DecisionApply.status(m, held: try Self.heldDecisions(db, m.lift))
        case .commit, .abort, .query:
            let stored = try String.fetchOne(cached: db, sql: "SELECT decision FROM referee_decisions WHERE lift = ?", arguments: [m.lift])
                .flatMap { try? SignedDecision(json: try JSONValue(parsing: $0)) }
            decision = Referee.decide(m, snapshot: Referee.Snapshot(site: try Self.liftSite(db), stored: stored), now: now, key: siteKey)
        case .pending:
            decision = .ignore("pending: asked again on the timeout-query schedule")
        }
        return decision
    }

    /// Takes out of `decision` what it sends this site itself (`own`): a
    /// call queued to itself as referee, an answer addressed to itself.
    static func takeMessagesToSelf(_ decision: inout Decision, own: AgentID) -> [LiftMessage] {
        var taken: [LiftMessage] = []
        decision.effects.removeAll { effect in
            guard case .enqueueToReferee(let referee, _, .lift(let m)) = effect, referee.agent == own else { return false }
            taken.append(m)
            return true
        }
        decision.replies.removeAll { reply in
            guard case .lift(let m) = reply, m.to.agent == own else { return false }
            taken.append(m)
            return true
        }
        return taken
    }

    /// Messages this site sends itself in a row (chipsite's, not section 9's).
    static let localLiftSteps = 4

    /// Applies `decision` in `db`; what it sends to this site itself is
    /// decided and applied here too, in the same transaction. That is
    /// chipsite's O as its own lift's referee (9.8): the `arrive` that makes
    /// O call, R's decision (stored before any answer carries it: it commits
    /// with the rest) and O applying it are one commit, not three with a
    /// pass between each. Bounded: call → decision → applied is two steps.
    static func commitLift(
        _ decision: Decision, _ db: Database, siteKey: SigningKey, sealingKey: SealingKey?, now: Int64, stamp: String
    ) throws -> Outcome {
        let own = try agent(db)
        var first = decision
        var local = takeMessagesToSelf(&first, own: own)
        let outcome = try commit(first, db, now: stamp)
        var replies = first.replies
        for _ in 0..<localLiftSteps where !local.isEmpty {
            var next: [LiftMessage] = []
            for m in local {
                var d = try decideLift(m, db, siteKey: siteKey, sealingKey: sealingKey, now: now)
                next += takeMessagesToSelf(&d, own: own)
                _ = try commit(d, db, now: stamp)
                replies += d.replies
            }
            local = next
        }
        guard local.isEmpty else { throw StoreError.damaged("a lift message to this site itself did not settle in \(localLiftSteps) steps") }
        // A promise refused `invalid` or `late` stores nothing but is
        // still answered (9.6 step 2).
        if case .ignored = outcome { return replies.isEmpty ? outcome : .applied(replies: replies) }
        return .applied(replies: replies)
    }

    static func promiseSnapshot(_ db: Database, _ m: LiftMessage, siteKey: SigningKey, sealingKey: SealingKey?) throws -> PromiseDialog.Snapshot {
        let site = try liftSite(db)
        guard case .user(let to) = m.to, case .user(let from) = m.from, let hop = m.hop else {
            return PromiseDialog.Snapshot(site: site, tallies: [])
        }
        let lift = m.lift
        var s = PromiseDialog.Snapshot(site: site, tallies: [])
        s.answered = answer(try String.fetchOne(cached: db, sql: "SELECT answer FROM lifts WHERE lift = ? AND hop = ?", arguments: [lift, hop]))
        guard case .promise(let header, _, let chit) = m.body else { return s }
        s.holdsChit = try Bool.fetchOne(cached: db, sql: "SELECT 1 FROM chits WHERE uuid = ?", arguments: [chit.uuid]) != nil
        for row in try Row.fetchAll(
            cached: db, sql: "SELECT * FROM tallies WHERE state = ? AND cuid = ? AND partner_agent = ? AND partner_cuid = ?",
            arguments: [TallyState.open.rawValue, to.cuid.value, from.agent.description, from.cuid.value])
        {
            let t = try tallyRecord(row)
            guard let core = t.core else { continue }
            s.tallies.append(
                PromiseDialog.Inbound(
                    core: core, user: core.cert(t.side).chad, partner: core.cert(t.side.other).chad, half: try liftHalf(db, t, core: core)))
        }
        s.acceptsReferee = try acceptsReferee(db, header.referee.agent)
        s.withPartner = try liftsWithPartner(db, from.agent)
        let stored = try storedLift(db, lift)
        s.record = stored?.record
        s.decided = try heldDecisions(db, lift).first
        s.foreign = try foreignTallies(db)
        s.unlocked = try unlockedUsers(db)
        s.originKey = originKey(stored, sealingKey: sealingKey)
        if let find = header.find { s.seal = openSeal(find, siteKey: siteKey) }
        return s
    }

    static func callSnapshot(_ db: Database, _ lift: String, sealingKey: SealingKey?) throws -> LiftCall.Snapshot {
        let site = try liftSite(db)
        guard let stored = try storedLift(db, lift) else { return LiftCall.Snapshot(site: site, record: nil, promisedHop: nil) }
        let r = stored.record
        var predecessor: LiftCall.Predecessor?
        if let hop = r.hop, let t = try tallyOnHop(db, r.header, hop: hop), let core = t.core {
            predecessor = LiftCall.Predecessor(hop: hop, user: core.cert(t.side.other).chad, ours: core.cert(t.side).chad)
        }
        return LiftCall.Snapshot(
            site: site, record: r, promisedHop: promisedHop(r), promiseAnswer: stored.promiseAnswer, predecessor: predecessor,
            originKey: originKey(stored, sealingKey: sealingKey))
    }

    static func decisionSnapshot(_ db: Database, _ lift: String) throws -> DecisionApply.Snapshot {
        let stored = try storedLift(db, lift)
        guard let header = try stored?.record.header ?? liftHeader(db, lift) else { return DecisionApply.Snapshot(header: nil, known: false) }
        let holdsChit = try Bool.fetchOne(cached: db, sql: "SELECT 1 FROM chits WHERE lift = ? LIMIT 1", arguments: [lift]) != nil
        let passed = try Bool.fetchOne(cached: db, sql: "SELECT passed FROM lift_decisions WHERE lift = ? AND applied = 1", arguments: [lift])
        return DecisionApply.Snapshot(
            header: header, held: try heldDecisions(db, lift), known: stored != nil || holdsChit,
            neighbours: try neighbours(db, header, stored: stored), passed: passed ?? false)
    }

    // MARK: Route discovery

    /// What a route query `m` sees here (9.4): the engine adds whether the
    /// qid was seen and whether a rate or count limit is passed.
    /// `siteKey` opens the seal of a linear query naming this site.
    public func routeSnapshot(_ m: RouteMessage, siteKey: SigningKey) throws -> RouteDiscovery.Snapshot {
        try guardedRead { db in
            guard case .query(let q) = m.body else {
                return RouteDiscovery.Snapshot(site: try Self.agent(db), foreign: [], unlocked: [])
            }
            var seal: SealContents?
            if case .payee(let find) = q.find { seal = Self.openSeal(find, siteKey: siteKey) }
            return RouteDiscovery.Snapshot(
                site: try Self.agent(db), foreign: try Self.foreignTallies(db), unlocked: try Self.unlockedUsers(db),
                acceptsReferee: try Self.acceptsReferee(db, q.referee.agent), seal: seal)
        }
    }

    /// A linear lift's seal, opened when it names this site (nil: not ours,
    /// or it does not open or parse).
    static func openSeal(_ find: LiftFind, siteKey: SigningKey) -> SealContents? {
        guard find.agent.publicKey == siteKey.publicKey,
            let bytes = SealedBox.open(find.seal, with: siteKey, maxBytes: LiftLimits.maxSealBytes),
            let json = try? JSONValue(parsing: bytes)
        else { return nil }
        return try? SealContents(json: json)
    }

    /// This site as a lift names it (the referee, O's `from` to R).
    public func liftSite() throws -> LiftSite { try guardedRead { db in try Self.liftSite(db) } }

    // MARK: The originator

    /// The queries of a circular lift (9.4 "Start") from this site's open tallies now.
    public func circularQueries(_ ask: LiftStart.Ask) throws -> [LiftStart.Query] {
        let foreign = try guardedRead { db in try Self.foreignTallies(db) }
        do { return try LiftStart.circular(ask, foreign: foreign, internalTallies: []) } catch { throw ModelError.invalid("\(error)") }
    }

    /// The queries of a linear lift from `payor` (9.4 "Start", linear).
    public func linearQueries(_ ask: LiftStart.Ask, payor: CUID, find: LiftFind) throws -> [LiftStart.Query] {
        let foreign = try guardedRead { db in try Self.foreignTallies(db) }
        do {
            return try LiftStart.linear(ask, payor: payor, find: find, foreign: foreign, internalTallies: [])
        } catch { throw ModelError.invalid("\(error)") }
    }

    /// The most a circular lift could clear from here now: the largest debt
    /// back to target on any open tally (0: nothing to clear).
    public func circularWant() throws -> Int64 {
        try guardedRead { db in try Self.foreignTallies(db).map { LiftCapacity.payee($0.half, kind: .circ) }.max() ?? 0 }
    }

    /// The open tallies whose balance is past its target by at least `min`
    /// now (a circular lift could clear that much on them), by uuid.
    public func talliesOverTarget(min: Int64) throws -> Set<String> {
        try guardedRead { db in
            Set(try Self.foreignTallies(db).filter { LiftCapacity.payee($0.half, kind: .circ) >= Swift.max(min, 1) }.map(\.uuid))
        }
    }

    /// `exec` (9.6 step 1) in one transaction: the record, the origin key
    /// (sealed like the agent key), O's segment chits and reservations, and
    /// the first `promise` in the outbox. Returns H.
    public func execLift(
        _ q: LiftStart.Query, route: FoundRoute, uuid: String, now: Int64, life: Int64 = LiftLimits.originLifeMs, originKey: SigningKey,
        siteKey: SigningKey, sealingKey: SealingKey?, request: Int64? = nil
    ) throws -> String {
        let stamp = Timestamp.format(millisecondsSince1970: now)
        return try guardedWrite { db in
            let foreign = try Self.foreignTallies(db)
            let decision: Decision
            do {
                decision = try LiftStart.exec(
                    q, route: route, uuid: uuid, now: now, life: life, originKey: originKey, siteKey: siteKey, foreign: foreign,
                    internalTallies: [])
            } catch { throw ModelError.invalid("\(error)") }
            // The tallies may have moved since the query: check the segment again.
            guard let t0 = foreign.first(where: { $0.uuid == q.t0 }) else { throw ModelError.invalid("the outgoing tally is gone") }
            var lift: String?
            for effect in decision.effects {
                if case .insertLiftRecord(let r) = effect { lift = r.header.hash }
                if case .insertLiftChit(let c, let h, _) = effect, c.tally == t0.uuid,
                    let why = LiftCapacity.payerRefusal(t0.half, units: h.units, referee: h.referee.agent, withPartner: 0)
                {
                    throw ModelError.invalid("the outgoing tally no longer carries the lift (\(why.rawValue))")
                }
            }
            guard let lift else { throw StoreError.damaged("exec made no record") }
            _ = try Self.commit(decision, db, now: stamp)
            let sealed = Self.storedSeed(of: originKey, sealingKey: sealingKey, label: Self.originKeyLabel(lift))
            try db.execute(cached: "UPDATE lifts SET origin_secret = ? WHERE lift = ?", arguments: [Data(sealed), lift])
            if let request {
                try db.execute(
                    cached: "UPDATE lift_requests SET state = 'done', lifts = ?, updated = ? WHERE id = ?",
                    arguments: [JSONValue.array([.string(lift)]).canonicalString, stamp, request])
            }
            return lift
        }
    }

    /// Lifts this site still has to see through: records in `exec`, `call`
    /// or `part` (the engine's timers: O's abort at the deadline, 9.7's queries).
    public func liftsInProgress() throws -> [LiftInProgress] {
        try guardedRead { db in
            try Row.fetchAll(
                cached: db,
                sql: """
                    SELECT l.*, h.header FROM lifts l JOIN lift_headers h ON h.lift = l.lift WHERE l.state IN ('exec', 'call', 'part')
                    """
            ).map { row in
                let s = try Self.storedLift(row)
                let last: String? = s.queries > 0 ? s.updated : nil
                return LiftInProgress(
                    lift: s.record.header.hash, role: s.record.role, state: s.record.state, deadlineMs: s.record.header.deadlineMs,
                    queries: s.queries, lastQueryMs: last.flatMap { Timestamp.parse($0) })
            }
        }
    }

    /// O's timer (9.6 step 4): a lift still in `exec` at `deadline` − 1 s is aborted.
    /// `siteKey` signs the decision when this site is the lift's referee.
    public func tickLift(_ lift: String, now: Int64, siteKey: SigningKey, sealingKey: SealingKey?) throws {
        let stamp = Timestamp.format(millisecondsSince1970: now)
        _ = try guardedWrite { db -> Outcome in
            guard let stored = try Self.storedLift(db, lift) else { return .ignored("no such lift") }
            let s = try Self.callSnapshot(db, lift, sealingKey: sealingKey)
            let effects = LiftCall.tick(stored.record, s, now: now)
            guard !effects.isEmpty else { return .ignored("not due") }
            return try Self.commitLift(.apply(effects), db, siteKey: siteKey, sealingKey: sealingKey, now: now, stamp: stamp)
        }
    }

    /// 9.7's timeout queries for H: `status` to each neighbour and `query`
    /// to R (sent, never queued), counted on the record.
    public func timeoutQueries(_ lift: String, now: Int64) throws -> [SiteMessage] {
        let stamp = Timestamp.format(millisecondsSince1970: now)
        return try guardedWrite { db in
            guard let stored = try Self.storedLift(db, lift), [.exec, .call, .part].contains(stored.record.state) else { return [] }
            let header = stored.record.header
            var out = [SiteMessage]()
            for n in try Self.neighbours(db, header, stored: stored) {
                out.append(.lift(LiftMessage(to: .user(n.user), from: .user(n.ours), body: .status(lift: lift, hop: n.hop))))
            }
            out.append(.lift(LiftMessage(to: .site(header.referee), from: .site(try Self.liftSite(db)), body: .query(header: header))))
            try db.execute(cached: "UPDATE lifts SET queries = queries + 1, updated = ? WHERE lift = ?", arguments: [stamp, lift])
            return out
        }
    }

    // MARK: Applying lift effects (not chits and decisions: LiftChain.swift)

    static func insertLiftRecord(_ db: Database, _ r: LiftRecord, now: String) throws {
        try insertHeader(db, r.header, now: now)
        let internalHops = JSONValue.array(r.internalHops.map(JSONValue.string)).canonicalString
        try db.execute(
            cached: """
                INSERT INTO lifts (lift, role, state, hop, answer, internal, outgoing, created, updated)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                """,
            arguments: [
                r.header.hash, r.role.rawValue, r.state.rawValue, r.hop, r.answer.map(answerText), internalHops, r.outgoing, now, now
            ])
    }

    /// Keeps a header once per H.
    static func insertHeader(_ db: Database, _ h: LiftHeader, now: String) throws {
        try db.execute(
            cached: """
                INSERT OR IGNORE INTO lift_headers (lift, header, kind, units, deadline, referee, created) VALUES (?, ?, ?, ?, ?, ?, ?)
                """, arguments: [h.hash, h.json.canonicalString, h.kind.rawValue, h.units, h.deadline, h.referee.agent.description, now])
    }
}

/// A person's request to serve about lifts (the CLI writes it, serve runs it).
public struct LiftRequest: Sendable, Equatable {
    public enum Kind: String, Sendable { case clear, pay }
    public enum State: String, Sendable { case new, started, done }
    public var id: Int64
    public var kind: Kind
    public var cuid: CUID?
    public var params: JSONValue
    public var state: State
    /// The H of each lift it started.
    public var lifts: [String]
    public var note: String?
}

extension SiteStore {
    /// Asks serve to pay `units` from `payor` to the payee of `link` by a
    /// linear lift (`lift pay`); returns the request's id.
    /// `auth` is a device's signed authorisation (`lift.pay`, protocol 10.6:
    /// `{"auth","sign"}`), kept with the request so that `lift.show` finds
    /// the payment by `auth.uuid` and returns it.
    public func requestPay(payor: CUID, link: PayLink, units: Int64, memo: String?, auth: JSONValue? = nil) throws -> Int64 {
        guard LiftLimits.units.contains(units) else { throw ModelError.invalid("the amount must be more than 0") }
        if let asked = link.units, asked != units {
            throw ModelError.invalid("the link asks for \(Amount.format(asked)) CHIPs, not \(Amount.format(units))")
        }
        if let memo, !Chit.memoFits(memo) { throw ModelError.invalid("the memo is too long") }
        let now = Self.now()
        return try guardedWrite { db in
            guard try String.fetchOne(cached: db, sql: "SELECT cuid FROM users WHERE cuid = ?", arguments: [payor.value]) != nil else {
                throw StoreError.notFound("no user \(payor)")
            }
            try Self.checkNotLocked(db, payor)
            if link.agent == (try Self.agent(db)) {
                throw ModelError.invalid("the payee is on this site: pay on a tally, not by a lift")
            }
            var params: [String: JSONValue] = [
                "cuid": .string(link.cuid.value), "agent": .string(link.agent.description), "units": .integer(units)
            ]
            if let m = memo ?? link.memo { params["memo"] = .string(m) }
            if let ref = link.ref { params["ref"] = ref }
            if let auth { params["auth"] = auth }
            try db.execute(
                cached: "INSERT INTO lift_requests (kind, cuid, params, state, created, updated) VALUES ('pay', ?, ?, 'new', ?, ?)",
                arguments: [payor.value, JSONValue.object(params).canonicalString, now, now])
            return db.lastInsertedRowID
        }
    }

    /// Asks serve to look for circular lifts now (`lift clear`); returns the request's id.
    public func requestClear(user: CUID?) throws -> Int64 {
        let now = Self.now()
        return try guardedWrite { db in
            if let user, try String.fetchOne(cached: db, sql: "SELECT cuid FROM users WHERE cuid = ?", arguments: [user.value]) == nil {
                throw StoreError.notFound("no user \(user)")
            }
            try db.execute(
                cached: "INSERT INTO lift_requests (kind, cuid, state, created, updated) VALUES ('clear', ?, 'new', ?, ?)",
                arguments: [user?.value, now, now])
            return db.lastInsertedRowID
        }
    }

    /// `payor`'s pay request whose device authorisation has uuid `uuid` (`lift.show`).
    public func liftPayment(payor: CUID, authUUID uuid: String) throws -> LiftRequest? {
        try guardedRead { db in
            try Row.fetchOne(
                cached: db,
                sql: """
                    SELECT * FROM lift_requests WHERE kind = 'pay' AND cuid = ? AND json_extract(params, '$.auth.auth.uuid') = ?
                    ORDER BY id DESC LIMIT 1
                    """, arguments: [payor.value, uuid]
            ).map { try Self.liftRequest($0) }
        }
    }

    public func liftRequests(state: LiftRequest.State? = nil) throws -> [LiftRequest] {
        try guardedRead { db in
            try Row.fetchAll(
                cached: db, sql: "SELECT * FROM lift_requests WHERE ? IS NULL OR state = ? ORDER BY id", arguments: [state?.rawValue, state?.rawValue]
            ).map(Self.liftRequest)
        }
    }

    public func liftRequest(_ id: Int64) throws -> LiftRequest? {
        try guardedRead { db in try Row.fetchOne(cached: db, sql: "SELECT * FROM lift_requests WHERE id = ?", arguments: [id]).map(Self.liftRequest) }
    }

    static func liftRequest(_ row: Row) throws -> LiftRequest {
        let kind: String = row["kind"], state: String = row["state"], cuid: String? = row["cuid"]
        let params: String = row["params"], lifts: String = row["lifts"]
        guard let k = LiftRequest.Kind(rawValue: kind), let s = LiftRequest.State(rawValue: state) else {
            throw StoreError.damaged("lift request state")
        }
        return LiftRequest(
            id: row["id"], kind: k, cuid: try cuid.map { try CUID($0) }, params: (try? JSONValue(parsing: params)) ?? [:], state: s,
            lifts: (try? JSONValue(parsing: lifts))?.arrayValue?.compactMap(\.stringValue) ?? [], note: row["note"])
    }

    /// The request moves on: `started` (its discovery runs), or `done` with
    /// the lifts it started or why none.
    public func updateLiftRequest(_ id: Int64, state: LiftRequest.State, lifts: [String] = [], note: String? = nil) throws {
        let now = Self.now()
        let list = JSONValue.array(lifts.map(JSONValue.string)).canonicalString
        try guardedWrite { db in
            try db.execute(
                cached: "UPDATE lift_requests SET state = ?, lifts = ?, note = ?, updated = ? WHERE id = ?",
                arguments: [state.rawValue, list, note, now, id])
        }
    }

    /// The state of lift H in our record (nil: none).
    public func liftState(_ lift: String) throws -> LiftRecord.State? {
        try guardedRead { db in
            try String.fetchOne(cached: db, sql: "SELECT state FROM lifts WHERE lift = ?", arguments: [lift]).flatMap(LiftRecord.State.init)
        }
    }
}

/// A lift still undecided long past its deadline (doctor: its referee is
/// unreachable or silent; 9.7 says alert the operator after 1 h).
public struct StalledLift: Sendable, Equatable {
    public var lift: String
    public var referee: AgentID
    public var deadline: String
}

extension SiteStore {
    /// Lifts in `exec`, `call` or `part` whose deadline is more than
    /// `LiftLimits.alertAfterMs` before `now` (ms).
    public func stalledLifts(now: Int64) throws -> [StalledLift] {
        try guardedRead { db in
            try Row.fetchAll(
                cached: db,
                sql: """
                    SELECT l.lift, h.referee, h.deadline FROM lifts l JOIN lift_headers h USING (lift)
                    WHERE l.state IN ('exec', 'call', 'part') ORDER BY h.deadline
                    """
            ).compactMap { row in
                let deadline: String = row["deadline"], referee: String = row["referee"]
                guard let ms = Timestamp.parse(deadline), now - ms > LiftLimits.alertAfterMs, let r = try? AgentID(referee) else { return nil }
                return StalledLift(lift: row["lift"], referee: r, deadline: deadline)
            }
        }
    }

    /// Referees caught signing both results for one lift (9.7).
    public func droppedReferees() throws -> [(agent: String, lift: String)] {
        try guardedRead { db in
            try Row.fetchAll(cached: db, sql: "SELECT agent, lift FROM referees_dropped ORDER BY created").map { ($0["agent"], $0["lift"]) }
        }
    }
}
