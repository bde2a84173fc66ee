import ChipChannel
import ChipModel
import ChipPeer
import ChipProtocol
import ChipStore
import Foundation
import Logging
import Noise

/// How serve runs lifts: config `lift.*` (ChipProtocol `LiftSettings`),
/// which a test may override.
public struct LiftEngineSettings: Sendable, Equatable {
    /// Seconds between automatic circular passes; 0: none.
    public var interval: TimeInterval
    /// The least a lift carries (milliCHIPs).
    public var min: Int64
    /// `deadline − date` of the lifts this site starts (ms).
    public var lifeMs: Int64
    /// This site answers other sites' commits, aborts and queries as referee.
    public var referee: Bool
    public init(interval: TimeInterval = 60, min: Int64 = 1000, lifeMs: Int64 = LiftLimits.originLifeMs, referee: Bool = true) {
        self.interval = interval
        self.min = min
        self.lifeMs = lifeMs
        self.referee = referee
    }

    public init(_ s: LiftSettings) {
        self.init(interval: TimeInterval(s.interval), min: s.min, lifeMs: s.life * 1000, referee: s.refereeOn)
    }
}

/// What the engine keeps in memory about lifts: route discovery (9.4's
/// cache lives here, never in the file: route messages are not queued), and
/// when the lift timers are due. Everything else is in the site file.
struct LiftEngineState {
    /// A query this site forwarded, waiting for its forwards' replies.
    struct Forwarded {
        let query: RouteMessage
        /// The connection it came on (nil for our own discovery).
        let inbound: PeerConnection?
        let forwards: [RouteDiscovery.Forward]
        var replies: [String: RouteMessage] = [:]
        let answerAt: Date
        /// Our own discovery: the queries O sent, and the request it serves.
        var own: [LiftStart.Query]? = nil
        var request: Int64? = nil
    }
    var forwarded: [String: Forwarded] = [:]
    /// Qids seen (9.4: a qid is forwarded once), until they leave the cache,
    /// with the last path entry they came with (the hop).
    var seen: [String: (until: Date, hop: String?)] = [:]
    /// Queries per partner in the current second (9.9: ≤ 10/s).
    var rate: [AgentID: (second: Int64, count: Int)] = [:]
    /// The next automatic circular pass.
    var nextClear: Date? = nil
    /// People's requests whose discovery runs now (a restart forgets them:
    /// the request is still `new` in the file and runs again; one that
    /// started a lift is `done` in that lift's transaction).
    var running: Set<Int64> = []
    /// Neighbours' `ack`s not applied yet. An ack only takes a message out
    /// of the outbox (9.9), so it need not cost a commit of its own: it
    /// rides the next lift message's transaction, or its own once
    /// `acksDue` passes. One lost in a crash means a resend, answered as a
    /// repeat (9.6).
    /// The tallies past their target at the last look (`overTargetAt`),
    /// to start a circular pass when a balance crosses its target.
    var overTarget: Set<String> = []
    var overTargetAt: Date? = nil
    /// How often at most the pass looks for balances that crossed (it reads every open tally).
    static let crossCheck: TimeInterval = 1
    /// A crossing's pass is followed by one more this much later.
    static let crossingFollowUpAfter: TimeInterval = 3
    var crossingFollowUp: Date? = nil
    var acks: [LiftMessage] = []
    var acksDue: Date? = nil
    /// How long an ack waits for a transaction to ride, and how many wait at most.
    static let ackDelay: TimeInterval = 0.05
    static let maxAcks = 256
}

extension SiteEngine {
    // MARK: Routing

    /// Target `route` (9.4): a query is answered, dropped or forwarded; a
    /// reply to a query we forwarded is kept until all are in.
    func handleRoute(_ m: RouteMessage, from peer: AgentID, on connection: PeerConnection) async {
        guard m.from.agent == peer else { return logger.debug("route message from another agent than the channel's") }
        switch m.body {
        case .query(let q):
            let now = clock.now
            pruneSeen(now)
            let second = clock.milliseconds / 1000
            var r = liftState.rate[peer] ?? (second, 0)
            if r.second != second { r = (second, 0) }
            r.count += 1
            liftState.rate[peer] = r
            let overLimit = r.count > LiftLimits.queriesPerSecondPerPartner || liftState.forwarded.count >= LiftLimits.maxOpenQids
            var snapshot: RouteDiscovery.Snapshot
            do { snapshot = try store.routeSnapshot(m, siteKey: try store.siteKey(sealingKey: sealingKey)) } catch {
                return logger.warning("cannot read for a route query", metadata: ["error": "\(error)"])
            }
            if let seen = liftState.seen[q.qid], seen.hop == q.path.last {
                // The same query on the same hop again: a repeat of one
                // message (never sent twice), not the qid met by another path.
                return logger.debug("route query repeated on its hop: dropped")
            }
            snapshot.seen = liftState.seen[q.qid] != nil
            snapshot.overLimit = overLimit
            let step = RouteDiscovery.decide(m, snapshot: snapshot)
            switch step {
            case .drop(let why):
                logger.debug("route query dropped", metadata: ["why": "\(why)"])
            case .answer(let reply):
                // Seen once matched (a qid is forwarded or matched once); a
                // `none` for this hop leaves it open to another hop with room.
                if case .good = reply.body {
                    liftState.seen[q.qid] = (now.addingTimeInterval(Double(LiftLimits.routeCacheMs) / 1000), q.path.last)
                }
                try? await connection.send(SiteMessage.route(reply).json)
            case .forward(let forwards, _, let within):
                liftState.seen[q.qid] = (now.addingTimeInterval(Double(LiftLimits.routeCacheMs) / 1000), q.path.last)
                let at = now.addingTimeInterval(Double(within) / 1000)
                liftState.forwarded[q.qid] = LiftEngineState.Forwarded(query: m, inbound: connection, forwards: forwards, answerAt: at)
                wake.schedule(at: at)
                for f in forwards {
                    if await !sendDirect(.route(f.message), to: f.message.to.agent, address: f.message.to.address) {
                        routeReply(
                            RouteMessage(to: f.message.from, from: f.message.to, body: .noRoute(qid: q.qid, reason: .noRoute)),
                            from: f.message.to.agent)
                    }
                }
                await finishDiscovery(q.qid, force: false)
            }
        case .good, .noRoute:
            if case .noRoute(_, let reason) = m.body { logger.debug("no route", metadata: ["reason": "\(reason.rawValue)"]) }
            routeReply(m, from: peer)
            await finishDiscovery(m.qid, force: false)
        }
    }

    /// Keeps a reply to one of our forwards (by the tally it went on).
    private func routeReply(_ m: RouteMessage, from peer: AgentID) {
        guard var f = liftState.forwarded[m.qid] else { return }
        guard let sent = f.forwards.first(where: { $0.message.to == m.from && $0.message.from == m.to && $0.message.to.agent == peer }),
            f.replies[sent.tally] == nil
        else { return }
        f.replies[sent.tally] = m
        liftState.forwarded[m.qid] = f
    }

    /// Answers a forwarded query once every forward replied or its time is
    /// up (`force`); for our own discovery, starts the lift on the best route.
    func finishDiscovery(_ qid: String, force: Bool) async {
        guard let f = liftState.forwarded[qid] else { return }
        guard force || f.replies.count >= f.forwards.count else { return }
        liftState.forwarded[qid] = nil
        if let own = f.own {
            await execBest(own, replies: f.replies, request: f.request)
            if let request = f.request { liftState.running.remove(request) }
            return
        }
        guard let answer = RouteDiscovery.answer(f.query, forwards: f.forwards, replies: f.replies), let inbound = f.inbound else { return }
        try? await inbound.send(SiteMessage.route(answer).json)
    }

    /// Discoveries whose time is up are answered with what came.
    func finishDueDiscoveries() async {
        let now = clock.now
        for (qid, f) in liftState.forwarded where f.answerAt <= now { await finishDiscovery(qid, force: true) }
        if let next = liftState.forwarded.values.map(\.answerAt).min() { wake.schedule(at: next) }
    }

    private func pruneSeen(_ now: Date) {
        if liftState.seen.count > 4 * LiftLimits.maxOpenQids { liftState.seen = liftState.seen.filter { $0.value.until > now } }
    }

    // MARK: The originator

    /// Looks for circular lifts through our users now (9.4 "Start", circular):
    /// one discovery; the lift starts on the best route found.
    /// `user`: only circles through this user of ours (`lift clear --user`).
    func startCircular(request: Int64?, user: CUID? = nil) async {
        let settings = currentLiftSettings()
        do {
            // chipsite's O names itself as referee (9.8); naming another is not built yet.
            guard settings.referee else {
                if let request { try store.updateLiftRequest(request, state: .done, note: Self.noReferee) }
                return
            }
            let want = try store.circularWant()
            guard want >= settings.min else {
                if let request { try store.updateLiftRequest(request, state: .done, note: "no debt to clear") }
                return
            }
            guard let qid = HopNonce.qid(random: Crypto.randomBytes(HopNonce.qidBytes)) else { return }
            let paddingCount = Int(random.double(in: 0...2.999))
            let padding = (0..<paddingCount).map { _ in Base64URL.encode(Crypto.randomBytes(32)) }
            let ask = LiftStart.Ask(
                qid: qid, units: want, min: min(settings.min, want), referee: try store.liftSite(), padding: padding,
                wait: LiftLimits.maxWaitMs)
            // Without internal tallies a circle through our user leaves on one of its tallies.
            let queries = try store.circularQueries(ask).filter { user == nil || $0.message.from.cuid == user }
            guard !queries.isEmpty else {
                if let request { try store.updateLiftRequest(request, state: .done, note: "no circle of debt through this site's tallies") }
                return
            }
            if let request { liftState.running.insert(request) }
            logger.info("looking for circular lifts", metadata: ["queries": "\(queries.count)", "units": "\(want)"])
            await discover(qid: qid, queries, request: request)
        } catch {
            logger.warning("cannot start a circular lift", metadata: ["error": "\(error)"])
            if let request { try? store.updateLiftRequest(request, state: .done, note: "\(error)") }
        }
    }

    /// A linear lift (9.4 "Start", linear) for request `request`: the payee
    /// sealed to its site, one discovery, the lift on the route found.
    func startLinear(_ request: LiftRequest) async {
        do {
            guard currentLiftSettings().referee else { return try store.updateLiftRequest(request.id, state: .done, note: Self.noReferee) }
            guard let payor = request.cuid, let payee = request.params["cuid"]?.stringValue.flatMap({ try? CUID($0) }),
                let agent = request.params["agent"]?.stringValue.flatMap({ try? AgentID($0) }),
                let units = request.params["units"]?.integerValue
            else { return try store.updateLiftRequest(request.id, state: .done, note: "a malformed pay request") }
            guard let qid = HopNonce.qid(random: Crypto.randomBytes(HopNonce.qidBytes)) else { return }
            let contents = SealContents(
                qid: qid, cuid: payee, units: units, memo: request.params["memo"]?.stringValue, ref: request.params["ref"])
            let find = LiftFind(agent: agent, seal: try SealedBox.seal(contents.json.canonicalBytes, to: agent))
            let paddingCount = Int(random.double(in: 0...2.999))
            let padding = (0..<paddingCount).map { _ in Base64URL.encode(Crypto.randomBytes(32)) }
            let ask = LiftStart.Ask(
                qid: qid, units: units, min: units, referee: try store.liftSite(), padding: padding, wait: LiftLimits.maxWaitMs)
            let queries = try store.linearQueries(ask, payor: payor, find: find)
            guard !queries.isEmpty else {
                return try store.updateLiftRequest(request.id, state: .done, note: "no tally of \(payor) can carry \(Amount.format(units)) CHIPs")
            }
            liftState.running.insert(request.id)
            await discover(qid: qid, queries, request: request.id)
        } catch {
            logger.warning("cannot start a linear lift", metadata: ["error": "\(error)"])
            try? store.updateLiftRequest(request.id, state: .done, note: "\(error)")
        }
    }

    static let noReferee = "lift.referee is off: this site starts lifts only as their referee (`chipsite config set lift.referee on`)"

    /// Sends our own queries and waits (in memory, on the wake-up timer)
    /// for their replies; `finishDiscovery` starts the lift.
    private func discover(qid: String, _ queries: [LiftStart.Query], request: Int64?) async {
        let now = clock.now
        liftState.seen[qid] = (now.addingTimeInterval(Double(LiftLimits.routeCacheMs) / 1000), nil)
        let at = now.addingTimeInterval(Double(LiftLimits.maxWaitMs) / 1000)
        let forwards = queries.map { q in
            RouteDiscovery.Forward(tally: q.t0, internalHops: q.internalHops, capacity: q.capacity, message: q.message)
        }
        liftState.forwarded[qid] = LiftEngineState.Forwarded(
            query: queries[0].message, inbound: nil, forwards: forwards, answerAt: at, own: queries, request: request)
        wake.schedule(at: at)
        for q in queries where await !sendDirect(.route(q.message), to: q.message.to.agent, address: q.message.to.address) {
            routeReply(
                RouteMessage(to: q.message.from, from: q.message.to, body: .noRoute(qid: qid, reason: .noRoute)), from: q.message.to.agent)
        }
        await finishDiscovery(qid, force: false)
    }

    /// `exec` on the widest route any of our queries found.
    private func execBest(_ queries: [LiftStart.Query], replies: [String: RouteMessage], request: Int64?) async {
        var best: (LiftStart.Query, FoundRoute)?
        for q in queries {
            guard case .query(let sent) = q.message.body, let reply = replies[q.t0], case .good(_, let routes) = reply.body else { continue }
            for r in routes where r.path.starts(with: sent.path) {
                let carried = min(r.max, q.capacity)
                if carried > (best.map { min($0.1.max, $0.0.capacity) } ?? 0) { best = (q, r) }
            }
        }
        guard let (q, route) = best else {
            logger.info("no circular lift found")
            if let request { try? store.updateLiftRequest(request, state: .done, note: "no route found") }
            return
        }
        do {
            // The request is done in the lift's own transaction: one commit
            // less before the promise leaves, and a crash cannot start it twice.
            let lift = try store.execLift(
                q, route: route, uuid: UUID().uuidString.lowercased(), now: clock.milliseconds, life: currentLiftSettings().lifeMs,
                originKey: SigningKey.generate(),
                siteKey: try store.siteKey(sealingKey: sealingKey), sealingKey: sealingKey, request: request)
            logger.info("lift started", metadata: ["lift": "\(lift)", "hops": "\(route.path.count)"])
            await flush(q.message.to.agent)
            wake.signal()
        } catch {
            logger.info("lift not started", metadata: ["error": "\(error)"])
            if let request { try? store.updateLiftRequest(request, state: .done, note: "\(error)") }
        }
    }

    // MARK: Lift messages

    /// Target `lift` (9.6, 9.7): each message is decided and applied in one
    /// transaction; the replies go back on its channel; what it queued goes
    /// out in the pass that follows.
    func handleLift(_ m: LiftMessage, from peer: AgentID, on connection: PeerConnection?) async throws {
        guard m.from.agent == peer else { return logger.debug("lift message from another agent than the channel's") }
        if [.commit, .abort, .query].contains(m.action), peer != ownAgent, !currentLiftSettings().referee {
            return logger.debug("not a referee (lift.referee off)", metadata: ["action": "\(m.action.rawValue)"])
        }
        if m.action == .ack {
            liftState.acks.append(m)
            if liftState.acks.count >= LiftEngineState.maxAcks { return applyAcks() }
            if liftState.acksDue == nil {
                let at = clock.now.addingTimeInterval(LiftEngineState.ackDelay)
                liftState.acksDue = at
                wake.schedule(at: at)
            }
            return
        }
        testKillBefore(m)
        let acks = liftState.acks
        liftState.acks = []
        liftState.acksDue = nil
        let outcome = try store.receiveLift(
            m, from: peer, siteKey: try store.siteKey(sealingKey: sealingKey), sealingKey: sealingKey, now: clock.milliseconds,
            acks: acks)
        if m.action == .promise, case .applied = outcome { testKillPoint(.reserved, "promise applied") }
        switch outcome {
        case .applied(let replies):
            logger.debug("lift \(m.action.rawValue)", metadata: ["lift": "\(m.lift)"])
            for reply in replies {
                if let connection, reply.json["to"]?["agent"]?.stringValue != ownAgent?.description {
                    try? await connection.send(reply.json)
                } else if case .lift(let back) = reply {
                    // An answer to ourselves (we are our own lift's referee).
                    try await handleLift(back, from: peer, on: nil)
                }
            }
            // What it queued (the next promise, an arrive passed back, a
            // decision passed on) goes out now on the channels already
            // open, not in the pass that follows; the pass does the rest.
            await flushOpenChannels()
            wake.signal()
        case .ignored(let why):
            logger.debug("lift message ignored", metadata: ["why": "\(why)", "action": "\(m.action.rawValue)"])
        }
    }

    /// Starts a circular pass if a tally's balance went past its target
    /// (by at least `lift.min`) since the last look; looks at most once a
    /// second (`LiftEngineState.crossCheck`), in passes, which run when
    /// something changed, and once more a second after the last of them.
    /// Whether it started one.
    func circularPassOnCrossing(_ settings: LiftEngineSettings) async -> Bool {
        if let again = liftState.crossingFollowUp {
            if clock.now >= again {
                liftState.crossingFollowUp = nil
                await startCircular(request: nil)
                return true
            }
            wake.schedule(at: again)
        }
        if let at = liftState.overTargetAt, clock.now < at.addingTimeInterval(LiftEngineState.crossCheck) {
            wake.schedule(at: at.addingTimeInterval(LiftEngineState.crossCheck))
            return false
        }
        guard let now = try? store.talliesOverTarget(min: settings.min) else { return false }
        let first = liftState.overTargetAt == nil
        let crossed = !now.subtracting(liftState.overTarget).isEmpty
        liftState.overTarget = now
        liftState.overTargetAt = clock.now
        // At start-up what is past its target was not a crossing: the interval's pass takes it.
        guard crossed, !first else { return false }
        logger.debug("a balance crossed its target: looking for circular lifts now")
        await startCircular(request: nil)
        // Once more a little later: the other halves of the circle may
        // still have been settling on their sites, or the other sites of
        // the circle, seeing their own crossing at the same moment, started
        // passes that took the same credit (a random 0-3 s more keeps the
        // second passes of several sites apart).
        let again = clock.now.addingTimeInterval(LiftEngineState.crossingFollowUpAfter + random.double(in: 0...3))
        liftState.crossingFollowUp = again
        wake.schedule(at: again)
        return true
    }

    /// Whether the passes have looked for balances past their target yet (tests).
    func hasLookedForCrossings() -> Bool { liftState.overTargetAt != nil }

    /// The acks waiting (`LiftEngineState.acks`), in their own transaction.
    func applyAcks() {
        let acks = liftState.acks
        liftState.acks = []
        liftState.acksDue = nil
        do {
            try store.receiveAcks(acks, now: clock.milliseconds)
        } catch {
            logger.debug("acks not applied; their messages will be sent again", metadata: ["error": "\(error)"])
        }
    }

    /// Outbox messages addressed to this site itself (we are our own lift's
    /// referee, chipsite's default, 9.8) are handled here, not dialed.
    func deliverLocally() async {
        guard let own = ownAgent, let entries = try? store.outbox(for: own) else { return }
        for entry in entries {
            guard case .lift(let m)? = try? SiteMessage(json: entry.message) else {
                try? store.removeOutbox(id: entry.id)
                continue
            }
            do { try await handleLift(m, from: own, on: nil) } catch {
                logger.warning("local lift message not applied", metadata: ["error": "\(error)"])
                retryLater()
                continue
            }
            // A call to ourselves is answered at once; the decision takes it out.
            if (try? store.outbox(for: own).contains { $0.id == entry.id }) == true { try? store.removeOutbox(id: entry.id) }
        }
    }

    /// The settings now: the test's override, else the site file's `lift.*`.
    func currentLiftSettings() -> LiftEngineSettings {
        if let liftSettings { return liftSettings }
        return (try? store.liftSettings()).map(LiftEngineSettings.init) ?? LiftEngineSettings()
    }

    // MARK: Timers

    /// The lift timers, in each pass: O's abort at `deadline` − 1 s, 9.7's
    /// timeout queries from `deadline` + 2 s, the automatic circular pass,
    /// and people's requests. Arms the wake-up for the next one due.
    func liftWork() async {
        let now = clock.milliseconds
        if let due = liftState.acksDue {
            if clock.now >= due { applyAcks() } else { wake.schedule(at: due) }
        }
        await finishDueDiscoveries()
        if let requests = try? store.liftRequests(state: .new) {
            for r in requests where !liftState.running.contains(r.id) {
                switch r.kind {
                case .clear: await startCircular(request: r.id, user: r.cuid)
                case .pay: await startLinear(r)
                }
            }
        }
        let settings = currentLiftSettings()
        // A balance that crossed its target since the last look starts a
        // circular pass now, not at the next interval: the site whose
        // payment closed a circle of debt finds it at once.
        if settings.interval > 0, await circularPassOnCrossing(settings) {
            liftState.nextClear = clock.now.addingTimeInterval(settings.interval)
        }
        // The automatic circular pass: armed only while there is debt to
        // clear, so an idle site arms no timer (a change re-arms it).
        if settings.interval > 0 {
            if let next = liftState.nextClear, next > clock.now {
                wake.schedule(at: next)
            } else if let want = try? store.circularWant(), want >= settings.min {
                let due = liftState.nextClear != nil
                liftState.nextClear = clock.now.addingTimeInterval(settings.interval)
                if due { await startCircular(request: nil) }
                if let at = liftState.nextClear { wake.schedule(at: at) }
            } else {
                liftState.nextClear = nil
            }
        }
        guard let lifts = try? store.liftsInProgress() else { return retryLater() }
        var due: Int64?
        func arm(_ at: Int64) { due = min(due ?? at, at) }
        for l in lifts {
            if l.role == .origin, l.state == .exec {
                let at = l.deadlineMs - LiftLimits.commitMarginMs
                if now >= at {
                    try? store.tickLift(l.lift, now: now, siteKey: try store.siteKey(sealingKey: sealingKey), sealingKey: sealingKey)
                } else {
                    arm(at)
                }
            }
            let jitter = Int64(random.double(in: 0...Double(LiftLimits.queryJitterMs)))
            let at = LiftCall.nextQuery(deadline: l.deadlineMs, attempt: l.queries, jitter: jitter, lastAt: l.lastQueryMs)
            if now >= at {
                await sendTimeoutQueries(l.lift, now: now)
                arm(now + LiftLimits.queryStartMs)
            } else {
                arm(at)
            }
        }
        if let due { wake.schedule(at: Date(timeIntervalSince1970: Double(due) / 1000)) }
    }

    private func sendTimeoutQueries(_ lift: String, now: Int64) async {
        guard let messages = try? store.timeoutQueries(lift, now: now) else { return }
        for message in messages {
            guard case .lift(let m) = message else { continue }
            if m.to.agent == ownAgent {
                try? await handleLift(m, from: m.to.agent, on: nil)
            } else if case .user(let to) = m.to {
                _ = await sendDirect(message, to: to.agent, address: to.address)
            } else if case .site(let r) = m.to {
                await sendToReferee(m, r)
            }
        }
    }

    // MARK: Sending what is never queued

    /// Sends `message` on an open channel with `agent`, dialing one if none
    /// is open (the partner policy decides, as for any channel).
    /// A question to a referee (9.8): on a channel already open with it, as
    /// this site; else on a referee channel of our own, dialed with a fresh
    /// key (its agent in `from`, alone), so R does not learn which site
    /// asks. One such channel carries the questions of many lifts until R
    /// closes it idle.
    func sendToReferee(_ m: LiftMessage, _ r: LiftSite) async {
        if let c = await openConnection(r.agent) {
            try? await c.send(SiteMessage.lift(m).json)
            return
        }
        var channel = askerChannels[r.agent]
        if let c = channel, await !c.isOpen { channel = nil }
        if channel == nil {
            guard let node else { return }
            do {
                let c = try await node.dial(host: r.address.host, port: r.address.port, remote: r.agent, as: try Self.freshIdentity())
                askerChannels[r.agent] = c
                channel = c
            } catch {
                logger.debug("cannot reach a referee", metadata: ["agent": "\(r.agent)", "error": "\(error)"])
                return
            }
        }
        guard let c = channel else { return }
        var asked = m
        asked.from = .agent(c.localAgent)
        try? await c.send(SiteMessage.lift(asked).json)
    }

    /// A fresh identity for one referee channel (9.8).
    static func freshIdentity() throws -> LocalSite {
        let key = SigningKey.generate()
        var secret = key.curve25519SecretKey()
        defer { Crypto.wipe(&secret) }
        return LocalSite(agent: try AgentID(publicKey: key.publicKey), staticKey: try KeyPair(privateKey: secret))
    }

    func sendDirect(_ message: SiteMessage, to agent: AgentID, address: SiteAddress) async -> Bool {
        if let c = await openConnection(agent) {
            do {
                try await c.send(message.json)
                return true
            } catch { return false }
        }
        guard let node else { return false }
        do {
            let c = try await node.dial(host: address.host, port: address.port, remote: agent)
            try await c.send(message.json)
            return true
        } catch {
            logger.debug("cannot reach a lift neighbour", metadata: ["agent": "\(agent)", "error": "\(error)"])
            return false
        }
    }
}
