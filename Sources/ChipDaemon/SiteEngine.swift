import ChipChannel
import ChipModel
import ChipPeer
import ChipProtocol
import ChipStore
import Foundation
import Logging

/// What the engine knows of one open channel. Everything in it goes with
/// the channel: a message goes once per channel, and again on a later one.
struct ConnectionState {
    let connection: PeerConnection
    /// The authenticated partner.
    let agent: AgentID
    /// Outbox messages already written on this channel (until they are removed).
    var sentOutbox: Set<Int64> = []
    /// Chain entries sent per tally, up to this index (we are the foil).
    var chainSent: [String: Int64] = [:]
    /// Pending chits sent (we are the stock).
    var chitsSent: Set<String> = []
    /// Invoice refusals sent.
    var refusalsSent: Set<String> = []
    /// A referee channel (9.8): an agent that shares no tally with us asks
    /// about lifts we decide; only `commit`, `abort`, `query` are taken.
    var referee = false
    /// Our side of a referee channel we dialed with a fresh key (9.8): only
    /// R's answers are taken, and nothing of ours but questions to R goes on it.
    var asker = false
    /// When the last message came (a referee channel closes idle after 10 s).
    var lastMessage = Date()
}

/// The open channels of one partner in the order they opened: adding and
/// removing one is O(1) (amortized), whatever the number; the walks go
/// newest first. Removed ids stay in `order` until they are more than half
/// of it (or at its end), so a walk costs at most twice the open channels.
struct ChannelOrder {
    private var order: [UInt64] = []
    private var open: Set<UInt64> = []

    var isEmpty: Bool { open.isEmpty }
    var count: Int { open.count }

    mutating func append(_ id: UInt64) {
        guard open.insert(id).inserted else { return }
        order.append(id)
    }

    mutating func remove(_ id: UInt64) {
        guard open.remove(id) != nil else { return }
        while let last = order.last, !open.contains(last) { order.removeLast() }
        if order.count > 2 * open.count + 16 { order.removeAll { !open.contains($0) } }
    }

    /// The open ids, newest first, walked lazily (a walk that stops at the
    /// first open channel costs O(1)).
    var newestFirst: LazyFilterSequence<ReversedCollection<[UInt64]>> {
        let open = self.open
        return order.reversed().lazy.filter { open.contains($0) }
    }
}

/// What the fault-injection hook does with a delivered message (tests).
public enum MessageFault: Sendable, Equatable {
    /// `drop` loses the message silently; `cut` loses it and closes the channel.
    case deliver, drop, cut, duplicate
    case delay(Double)
}

/// The site engine: answers the network layer's questions from the site
/// file, keeps track of open channels per partner, and delivers the outbox.
/// Incoming messages are handed to the protocol handlers by target.
public actor SiteEngine: PeerPolicy {
    let store: SiteStore
    let logger: Logger
    /// Opens users' keys on a sealed site (nil when not sealed).
    let sealingKey: SealingKey?
    /// Set once the network layer exists (the node needs the engine first).
    var node: PeerNode?
    /// Where the engine reads the time, draws back-off jitter, and asks the
    /// daemon for a pass (now, or at a deadline).
    let clock: any SiteClock
    let random: any SiteRandom
    public nonisolated let wake: WakeUp

    /// Open (or opening) channels by connection id, and the ids per partner
    /// agent, newest last.
    private var connections: [UInt64: ConnectionState] = [:]
    private var channels: [AgentID: ChannelOrder] = [:]
    /// `store.changeCount()` after the last message handled.
    private var changesSeen = 0
    /// First contacts closed without an answer, per request (topic).
    private var firstContactCloses: [String: Int] = [:]
    /// Silent closes of a first contact in a row that mean the issuer refused.
    static let closesMeaningRefusal = 3
    /// Pause before trying a closed first contact again.
    static let firstContactRetry: TimeInterval = 0.3
    /// Agents being dialed now, and when each may be dialed again.
    private var dialing: Set<AgentID> = []
    private var retryAfter: [AgentID: (at: Date, failures: Int)] = [:]
    /// A pass after a channel closed (its partner may need a new one): not
    /// at once, so a partner that closes every channel it opens is not
    /// redialed in a tight loop (the one-second poll used to space those).
    static let passAfterClose: TimeInterval = 0.5
    /// A pass after a received message changed the site file: coalesced,
    /// so a stream of messages costs at most one pass per this interval.
    /// The handlers answer their own message directly; the pass is for
    /// the rest of the outbox.
    static let passAfterChange: TimeInterval = 0.02
    /// A retry after a store error or a failed send.
    static let retryAfterError: TimeInterval = 1

    /// Route discovery in progress and the lift timers (LiftEngine.swift).
    var liftState = LiftEngineState()
    /// This site's agent (a lift may name it as referee: its messages to
    /// itself are handled here, not dialed).
    let ownAgent: AgentID?
    /// A test's override of the `lift.*` settings (nil: the site file's).
    var liftSettings: LiftEngineSettings?

    /// Agents accepted for a referee channel, until it opens (by address),
    /// the open referee channels' addresses, and each address's token bucket.
    var refereeAskers: [AgentID: (address: String, at: Date)] = [:]
    var refereeChannels: [UInt64: String] = [:]
    /// The referee channels this site dialed (9.8: a fresh key each), by referee.
    var askerChannels: [AgentID: PeerConnection] = [:]
    var refereeRates: [String: RefereeRate] = [:]

    /// Test and diagnostics hook: sees every delivered message.
    private var observers: [@Sendable (JSONValue, AgentID) -> Void] = []
    /// Test hook (fault injection): what becomes of each delivered message
    /// before it is routed. Never set by serve.
    private var faults: (@Sendable (JSONValue, AgentID) -> MessageFault)?
    /// Test-only crash point (TestKill.swift); nil in every real run.
    var testKill: TestKill?

    public init(
        store: SiteStore, sealingKey: SealingKey?, logger: Logger,
        clock: any SiteClock = SystemClock(), random: any SiteRandom = SystemRandom(), wake: WakeUp? = nil
    ) {
        self.store = store
        self.sealingKey = sealingKey
        self.logger = logger
        self.clock = clock
        self.random = random
        self.wake = wake ?? WakeUp(clock: clock, pending: true)
        changesSeen = (try? store.changeCount()) ?? 0
        ownAgent = try? store.agent()
    }

    public func setLiftSettings(_ s: LiftEngineSettings) {
        liftSettings = s
        liftState.nextClear = nil
    }

    func attach(_ node: PeerNode) { self.node = node }

    public func observe(_ observer: @escaping @Sendable (JSONValue, AgentID) -> Void) { observers.append(observer) }

    /// Sets the fault-injection hook (tests only).
    public func injectFaults(_ f: (@Sendable (JSONValue, AgentID) -> MessageFault)?) { faults = f }

    /// Open channels with `agent`.
    public func openChannels(with agent: AgentID) async -> Int {
        var n = 0
        guard let order = channels[agent] else { return 0 }
        for id in order.newestFirst {
            if let c = connections[id]?.connection, await c.isOpen { n += 1 }
        }
        return n
    }

    /// Entries the engine keeps per connection, in all its maps (tests,
    /// diagnostics): zero once every channel has closed.
    public func perConnectionEntries() -> Int {
        connections.count + channels.values.reduce(0) { $0 + $1.count } + refereeChannels.count + askerChannels.count
    }

    /// Called when the open channels fell by ``memoryReleaseStep`` since the
    /// last call, or to none after at least ``memoryReleaseFloor``: serve
    /// gives the allocator's free memory back to the system there. Once per
    /// ``memoryReleaseDelay`` at most, off the close path.
    public func setMemoryRelease(_ release: (@Sendable () -> Void)?) { memoryRelease = release }
    private var memoryRelease: (@Sendable () -> Void)?
    /// The most channels open since the last release.
    private var openHigh = 0
    private var releasePending = false
    static let memoryReleaseStep = 1_000
    static let memoryReleaseFloor = 64
    static let memoryReleaseDelay: TimeInterval = 1

    private func noteClosed() {
        guard memoryRelease != nil, !releasePending else { return }
        let open = connections.count
        guard openHigh - open >= Self.memoryReleaseStep || (open == 0 && openHigh >= Self.memoryReleaseFloor) else { return }
        releasePending = true
        let clock = self.clock
        Task {
            try? await clock.sleep(until: clock.now.addingTimeInterval(Self.memoryReleaseDelay))
            self.releaseMemory()
        }
    }

    private func releaseMemory() {
        releasePending = false
        openHigh = connections.count
        memoryRelease?()
    }

    // MARK: PeerPolicy

    public func judge(_ question: ChannelQuestion, from address: String) async -> Bool {
        do {
            switch question {
            case .ticket(let t):
                guard let ticket = try store.ticket(t.token), ticket.cuid == t.to.cuid else { return false }
                // Lockdown refuses new handshakes; a locked user takes no new tallies.
                if try store.isHeld(ticket.cuid) { return false }
                let now = Timestamp.format(millisecondsSince1970: clock.milliseconds)
                // A repeat from the requester who already redeemed it is let in: its
                // ticket message is answered with the same offer (idempotence).
                if try store.ticketRedeemed(token: t.token, by: t.from) { return true }
                if let problem = try store.ticketProblem(token: t.token, requester: t.from, now: now) {
                    logger.debug("ticket refused", metadata: ["why": "\(problem)", "from": "\(address)"])
                    return false
                }
                return true
            case .agent(let agent):
                if try store.isLockedDown() { return false }
                if try store.isPartner(agent) { return true }
                return acceptRefereeChannel(agent, from: address)
            }
        } catch {
            logger.warning("cannot judge a channel question", metadata: ["error": "\(error)"])
            return false
        }
    }

    public func opened(_ connection: PeerConnection) async {
        guard let peer = await connection.peer else { return }
        if !connection.isInitiator, let address = refereeAskers.removeValue(forKey: peer)?.address {
            // A referee channel: nothing of ours goes on it, and it closes when idle.
            var state = ConnectionState(connection: connection, agent: peer)
            state.referee = true
            state.lastMessage = clock.now
            connections[connection.id] = state
            refereeChannels[connection.id] = address
            openHigh = max(openHigh, connections.count)
            wake.schedule(at: clock.now.addingTimeInterval(Double(RefereeChannel.idleMs) / 1000))
            return
        }
        if connection.isInitiator, connection.localAgent != ownAgent {
            // Our side of a referee channel, dialed with a fresh key: not a
            // channel with the partner for anything else.
            var state = ConnectionState(connection: connection, agent: peer)
            state.asker = true
            connections[connection.id] = state
            openHigh = max(openHigh, connections.count)
            return
        }
        connections[connection.id] = ConnectionState(connection: connection, agent: peer)
        channels[peer, default: ChannelOrder()].append(connection.id)
        openHigh = max(openHigh, connections.count)
        retryAfter[peer] = nil
        let wake = self.wake
        await connection.whenRoom { wake.signal() }
        await flush(peer)
        await syncChains(with: peer)
        // The rest (refusals, other partners' work) in a pass.
        wake.signal()
    }

    /// The router: a delivered message is parsed once into its typed form
    /// and handed to the one handler of its target (Handlers.swift).
    public func received(_ json: JSONValue, on connection: PeerConnection) async {
        guard let peer = await connection.peer else { return }
        for observer in observers { observer(json, peer) }
        if connections[connection.id]?.referee == true {
            guard admittedOnRefereeChannel(json, connection: connection) else {
                connection.close()
                return
            }
        } else if connections[connection.id]?.asker == true {
            guard let m = try? SiteMessage(json: json), RefereeChannel.admitsAnswer(m) else {
                connection.close()
                return
            }
        }
        switch faults?(json, peer) ?? .deliver {
        case .deliver: break
        case .drop: return
        case .cut:
            // A lost message on TCP means a broken channel: the sender sends
            // what it queued again on the next one.
            connection.close()
            return
        case .duplicate: await route(json, peer: peer, on: connection)
        case .delay(let seconds):
            // Handled later, after messages that came meanwhile (reordering).
            Task {
                try? await Task.sleep(for: .seconds(seconds))
                await self.route(json, peer: peer, on: connection)
            }
            return
        }
        await route(json, peer: peer, on: connection)
    }

    private func route(_ json: JSONValue, peer: AgentID, on connection: PeerConnection) async {
        let message: SiteMessage
        do { message = try SiteMessage(json: json) } catch {
            logger.debug("message ignored", metadata: ["why": "\(error)", "peer": "\(peer)"])
            return
        }
        logger.debug("received", metadata: ["target": "\(message.target.rawValue)", "action": "\(message.action)", "peer": "\(peer)"])
        testKillBefore(message)
        do {
            switch message {
            case .tally(let m): try await handleTally(m, from: peer, on: connection)
            case .chit(let m): try await handleChit(m, from: peer, on: connection)
            case .route(let m): await handleRoute(m, from: peer, on: connection)
            case .lift(let m): try await handleLift(m, from: peer, on: connection)
            }
        } catch {
            logger.warning("message not applied", metadata: ["action": "\(message.action)", "error": "\(error)"])
        }
    }

    /// After a `nak` with the partner's head: chain entries go again from there.
    func rewindChain(on connection: PeerConnection, tally: String, to index: Int64) {
        connections[connection.id]?.chainSent[tally] = index
    }

    /// A pass soon when the message changed the site file (not for a
    /// duplicate or an ignored one).
    public func handled(on connection: PeerConnection) async {
        guard let changes = try? store.changeCount(), changes != changesSeen else { return }
        changesSeen = changes
        wake.schedule(at: clock.now.addingTimeInterval(Self.passAfterChange))
    }

    public func closed(_ connection: PeerConnection) async {
        refereeChannels[connection.id] = nil
        guard let state = connections.removeValue(forKey: connection.id) else { return }
        if state.asker {
            if askerChannels[state.agent]?.id == connection.id { askerChannels[state.agent] = nil }
            noteClosed()
            return
        }
        if var rest = channels.removeValue(forKey: state.agent) {
            // Taken out while it changes, so the dictionary holds no second copy.
            rest.remove(connection.id)
            if !rest.isEmpty { channels[state.agent] = rest }
        }
        noteClosed()
        wake.schedule(at: clock.now.addingTimeInterval(Self.passAfterClose))
    }

    // MARK: The referee channel (9.8)

    /// Open referee channels (diagnostics, tests).
    public func openRefereeChannels() -> Int { refereeChannels.count }

    /// An agent we share no tally with may open a channel to a referee
    /// site, for lift `commit`, `abort` and `query` only: at most 4 from one
    /// address and 256 in all.
    func acceptRefereeChannel(_ agent: AgentID, from address: String) -> Bool {
        guard currentLiftSettings().referee else { return false }
        // An accepted handshake that never opened stops counting after a while.
        let stale = clock.now.addingTimeInterval(-Self.refereeHandshakeWindow)
        refereeAskers = refereeAskers.filter { $0.value.at > stale }
        let open = refereeChannels.count + refereeAskers.count
        let fromAddress =
            refereeChannels.values.filter { $0 == address }.count + refereeAskers.values.filter { $0.address == address }.count
        guard RefereeChannel.accepts(fromAddress: fromAddress, open: open) else { return false }
        refereeAskers[agent] = (address, clock.now)
        return true
    }

    /// How long an accepted referee handshake may take to open.
    static let refereeHandshakeWindow: TimeInterval = 10

    /// What a referee channel carries: `commit`, `abort`, `query`, within
    /// the address's rate; anything else closes it.
    private func admittedOnRefereeChannel(_ json: JSONValue, connection: PeerConnection) -> Bool {
        guard let message = try? SiteMessage(json: json), RefereeChannel.admits(message),
            let address = refereeChannels[connection.id]
        else { return false }
        let now = clock.milliseconds
        var rate = refereeRates[address] ?? RefereeRate(now: now)
        let ok = rate.take(now: now)
        refereeRates[address] = rate
        connections[connection.id]?.lastMessage = clock.now
        return ok
    }

    /// Referee channels idle for 10 s are closed; the next one is timed.
    func closeIdleRefereeChannels() {
        let limit = Double(RefereeChannel.idleMs) / 1000
        var next: Date?
        for id in refereeChannels.keys {
            guard let state = connections[id] else { continue }
            let due = state.lastMessage.addingTimeInterval(limit)
            if due <= clock.now { state.connection.close() } else { next = min(next ?? due, due) }
        }
        if let next { wake.schedule(at: next) }
        if refereeChannels.isEmpty, refereeRates.count > 0 { refereeRates = [:] }
    }

    // MARK: Outbox delivery

    /// One pass over the outbox: send on open channels, dial where none is.
    public func pump() async {
        // In lockdown everything waits in the outbox; nothing is dialed.
        if (try? store.isLockedDown()) ?? true { return }
        let agents: [(agent: AgentID, address: SiteAddress, firstContact: Bool)]
        do { agents = try store.outboxAgents() } catch {
            logger.warning("cannot read the outbox", metadata: ["error": "\(error)"])
            retryLater()
            return
        }
        await syncChains(with: nil)
        await sendRefusals()
        await deliverLocally()
        await liftWork()
        closeIdleRefereeChannels()
        for target in agents where target.agent != ownAgent {
            // A ticket message only ever travels as the payload of IK (section 4),
            // so a waiting one means a dial even when a channel is open, unless
            // an open channel already carried it (its answer is on the way:
            // the offer takes it out of the outbox; a closed channel means a
            // new dial). So an issuer that answers with no offer is not
            // redialed in a loop.
            if await openConnection(target.agent) != nil, !target.firstContact {
                await flush(target.agent)
            } else if target.firstContact, await firstContactCarried(to: target.agent) {
                await flush(target.agent)
            } else {
                startDial(target.agent, address: target.address)
            }
        }
    }

    /// Whether every first-contact message waiting for `agent` went out in
    /// the IK of a channel with it that is still open.
    private func firstContactCarried(to agent: AgentID) async -> Bool {
        guard let waiting = try? store.outbox(for: agent).filter(\.firstContact).map(\.id), !waiting.isEmpty else { return false }
        guard let order = channels[agent] else { return false }
        for id in order.newestFirst {
            guard let state = connections[id], await state.connection.isOpen else { continue }
            if waiting.allSatisfy({ state.sentOutbox.contains($0) }) { return true }
        }
        return false
    }

    /// Sends what partners still need for their chains to agree with ours:
    /// chain entries (we are the foil) or pending chits (we are the stock),
    /// dialing partners with no open channel. `peer` limits it to one partner.
    func syncChains(with peer: AgentID?) async {
        let work: [ChainWork]
        do { work = try store.chainWork() } catch {
            retryLater()
            return
        }
        for item in work where peer == nil || item.partner.agent == peer {
            guard let connection = await openConnection(item.partner.agent) else {
                startDial(item.partner.agent, address: item.partner.address)
                continue
            }
            do {
                switch item.side {
                case .foil:
                    var after = max(item.acked, connections[connection.id]?.chainSent[item.tally] ?? item.acked)
                    for _ in 0..<Self.batchesPerPass where after < item.length {
                        // A full queue waits for a later pass (the partner's ack, or the
                        // connection's room callback once the queue has drained).
                        guard await connection.hasRoom,
                            let upd = try store.chainUpdate(tally: item.tally, after: after)
                        else { break }
                        try await connection.send(upd)
                        after = upd["object"]?["entries"]?.arrayValue?.last?["index"]?.integerValue ?? item.length
                        guard isTracked(connection) else { break }
                        // Only forward: a pass that overlapped a later one must not
                        // move the mark back (a nak moves it back on purpose).
                        let mark = max(after, connections[connection.id]?.chainSent[item.tally] ?? 0)
                        connections[connection.id]?.chainSent[item.tally] = mark
                        after = mark
                    }
                case .stock:
                    // As many batches as the foil would send, not one per pass:
                    // batches are cut by size, so long memos make many.
                    for _ in 0..<Self.batchesPerPass {
                        let sent = connections[connection.id]?.chitsSent ?? []
                        guard await connection.hasRoom,
                            let (message, uuids) = try store.pendingTransfer(tally: item.tally, excluding: sent)
                        else { break }
                        try await connection.send(message)
                        guard isTracked(connection) else { break }
                        connections[connection.id]?.chitsSent.formUnion(uuids)
                    }
                }
            } catch {
                logger.debug("chain sync failed; will retry", metadata: ["error": "\(error)"])
                retryLater()
            }
        }
    }

    /// Our users' refusals of invoices go out on open channels once per
    /// channel; a repeated invoice is answered with the refusal as well.
    func sendRefusals() async {
        guard let refusals = try? store.invoiceRefusals() else {
            retryLater()
            return
        }
        for r in refusals {
            guard let connection = await openConnection(r.agent), !(connections[connection.id]?.refusalsSent.contains(r.uuid) ?? false) else {
                continue
            }
            // Claimed before the send suspends (see `flush`).
            connections[connection.id]?.refusalsSent.insert(r.uuid)
            do {
                try await connection.send(r.message)
            } catch {
                connections[connection.id]?.refusalsSent.remove(r.uuid)
                continue
            }
        }
    }

    /// Batches of chain entries sent per tally per pass.
    static let batchesPerPass = 20

    /// Whether `connection` is still one of ours: after an `await` it may have
    /// closed (and `closed` cleared its marks), so marks are not written back.
    private func isTracked(_ connection: PeerConnection) -> Bool { connections[connection.id] != nil }

    func openConnection(_ agent: AgentID) async -> PeerConnection? {
        guard let order = channels[agent] else { return nil }
        for id in order.newestFirst {
            if let c = connections[id]?.connection, await c.isOpen { return c }
        }
        return nil
    }

    /// A pass again a little later (a store error, a failed send).
    func retryLater() {
        wake.schedule(at: clock.now.addingTimeInterval(Self.retryAfterError))
    }

    /// `flush` for every agent with something queued and a channel open
    /// (a handler's, right after its commit); dials wait for the pass.
    func flushOpenChannels() async {
        guard let agents = try? store.outboxAgents() else { return }
        for target in agents where target.agent != ownAgent && !target.firstContact {
            if await openConnection(target.agent) != nil { await flush(target.agent) }
        }
    }

    /// Sends every waiting message for `agent` not yet sent on its channel.
    func flush(_ agent: AgentID) async {
        guard let connection = await openConnection(agent) else { return }
        let entries: [OutboxEntry]
        do { entries = try store.outbox(for: agent) } catch {
            retryLater()
            return
        }
        for entry in entries where !entry.firstContact && !(connections[connection.id]?.sentOutbox.contains(entry.id) ?? false) {
            // Messages of a locked user (or of a site in lockdown) wait in the outbox.
            if let from = entry.message["from"]?["cuid"]?.stringValue.flatMap({ try? CUID($0) }), (try? store.isHeld(from)) ?? true {
                continue
            }
            // A full queue waits for a later pass (the connection's room callback).
            guard await connection.hasRoom else { return }
            // Claimed before the send suspends: another flush for this agent
            // (a pass and a handler's, overlapping at an await) skips it.
            guard isTracked(connection), !(connections[connection.id]?.sentOutbox.contains(entry.id) ?? false) else { continue }
            connections[connection.id]?.sentOutbox.insert(entry.id)
            do {
                try await connection.send(entry.message)
            } catch ChannelError.messageTooLarge(let size) {
                // It can never go; the ones behind it still can. Once per channel in the log.
                logger.warning("outbox message too large to send", metadata: ["topic": "\(entry.topic)", "bytes": "\(size)"])
            } catch {
                logger.debug("send failed; will retry", metadata: ["error": "\(error)"])
                connections[connection.id]?.sentOutbox.remove(entry.id)
                retryLater()
                return
            }
        }
    }

    private func startDial(_ agent: AgentID, address: SiteAddress) {
        guard let node, !dialing.contains(agent) else { return }
        if let retry = retryAfter[agent], retry.at > clock.now {
            // Not yet: a pass then (the timer may have been dropped for an
            // earlier one, see WakeUp).
            wake.schedule(at: retry.at)
            return
        }
        dialing.insert(agent)
        Task { await self.dial(agent, address: address, node: node) }
    }

    private func dial(_ agent: AgentID, address: SiteAddress, node: PeerNode) async {
        defer { dialing.remove(agent) }
        let first: OutboxEntry?
        do {
            try store.noteAttempt(agent)
            // A waiting ticket message rides in IK (first contact); else N+KK.
            first = try store.outbox(for: agent).first(where: \.firstContact)
        } catch { return }
        do {
            let connection = try await node.dial(
                host: address.host, port: address.port, remote: agent,
                ticketMessage: first?.message)
            if let first {
                connections[connection.id]?.sentOutbox.insert(first.id)
                firstContactCloses[first.topic] = nil
            }
            await flush(agent)
            await syncChains(with: agent)
        } catch PeerError.handshakeFailed where first != nil {
            // The issuer closes a first contact silently when it refuses the
            // ticket; the network may also have cut it. Only a few closes in
            // a row count as a refusal (a repeat of a redeemed ticket is let in
            // and answered with the same offer, so trying again is safe).
            guard let first else { return }
            let closes = (firstContactCloses[first.topic] ?? 0) + 1
            if closes >= Self.closesMeaningRefusal {
                firstContactCloses[first.topic] = nil
                try? store.failRequest(topic: first.topic, note: "the inviting site refused the ticket (used, expired, or not for this requester)")
                logger.info("ticket refused by the inviting site", metadata: ["agent": "\(agent)"])
            } else {
                firstContactCloses[first.topic] = closes
                retryAt(agent, clock.now.addingTimeInterval(Self.firstContactRetry), failures: closes)
            }
        } catch {
            let failures = (retryAfter[agent]?.failures ?? 0) + 1
            retryAt(agent, clock.now.addingTimeInterval(Self.backoff(failures: failures, random: random)), failures: failures)
            logger.debug("dial failed", metadata: ["agent": "\(agent)", "error": "\(error)"])
        }
    }

    /// `agent` is dialed again at `at`, in the pass its timer asks for.
    private func retryAt(_ agent: AgentID, _ at: Date, failures: Int) {
        retryAfter[agent] = (at, failures)
        wake.schedule(at: at)
    }

    /// Capped exponential backoff with jitter: 0.5 s doubling to 60 s, ±50 %.
    static func backoff(failures: Int, random: any SiteRandom) -> TimeInterval {
        let base = min(60, 0.5 * pow(2, Double(min(failures, 10) - 1)))
        return base * random.double(in: 0.5...1.5)
    }
}
