import ChipChannel
import ChipModel
import ChipProtocol
import ChipStore
import ChipUserPort
import Logging

#if canImport(Glibc)
    import Glibc
#endif

/// The site behind the user port (protocol section 10): answers the edge's
/// handshake questions from the store, keeps one ``UserSessionMachine`` per
/// open session and carries out what it decides: replies and events go out
/// through one ordered queue per session, commands run against the store
/// (``UserCommandRunner``), events are loaded when the user's `seq` moved.
///
/// Every command's change is committed by the store before its reply is
/// queued; a command's events follow its reply (the machine holds them).
public actor UserPortService: UserPortHost {
    let store: SiteStore
    let runner: UserCommandRunner
    let clock: any SiteClock
    let logger: Logger
    /// Wakes the delivery loop after a command queued something for a partner.
    let poke: @Sendable () -> Void
    nonisolated(unsafe) weak var listener: UserPortListener?

    struct Entry {
        let session: UserSession
        /// When the session opened (ms since 1970).
        let opened: Int64
        var machine: UserSessionMachine
        /// Replies and events in the order the machine decided them.
        let out: AsyncStream<Outgoing>.Continuation
    }

    enum Outgoing: Sendable {
        case json(JSONValue)
        case close
    }

    private var entries: [UInt64: Entry] = [:]
    /// A test-only crash point (``TestKill/reply``).
    private var testKill: TestKill?
    /// When the kept window was last pruned (ms; 0: not yet).
    private var prunedAt: Int64 = 0
    /// How often events past 30 days, replies past 24 h and expired tickets go.
    public static let pruneInterval: Int64 = 3_600_000
    /// Open sessions per user (events and lock changes go to all of them).
    private var byUser: [CUID: Set<UInt64>] = [:]
    /// Each user's latest committed `seq` as last read (after every pass and
    /// command): a request's hold starts after it. Lower than the truth only
    /// holds back more, never less (UserSessionMachine).
    private var latestSeq: [CUID: Int64] = [:]

    public init(store: SiteStore, sealingKey: SealingKey?, clock: any SiteClock, logger: Logger, poke: @escaping @Sendable () -> Void) {
        self.store = store
        self.runner = UserCommandRunner(store: store, sealingKey: sealingKey)
        self.clock = clock
        self.logger = logger
        self.poke = poke
    }

    /// The listener whose sessions this serves (for closing revoked devices).
    public func attach(_ listener: UserPortListener) {
        self.listener = listener
    }

    /// Arms a test-only crash point (`CHIPSITE_TEST_KILL_AT=reply`).
    public func setTestKill(_ k: TestKill?) { testKill = k }

    // MARK: UserPortHost

    public func register(_ registration: UserRegistration, from address: String) async -> CUID? {
        do {
            switch try store.registerDevice(registration, now: clock.milliseconds) {
            case .registered(let user, let device):
                logger.info("device registered", metadata: ["user": "\(user.value)", "device": "\(device)"])
                return user
            case .refused(let why):
                logger.info("registration refused", metadata: ["why": "\(why)", "address": "\(address)"])
                return nil
            }
        } catch {
            logger.error("registration failed", metadata: ["error": "\(error)"])
            return nil
        }
    }

    public func session(device: DeviceID, from address: String) async -> UserSessionGrant? {
        guard let info = try? store.deviceSession(device: device) else { return nil }
        try? store.touchDevice(device: device, now: clock.milliseconds)
        return UserSessionGrant(user: info.user, custody: info.custody, scopes: info.scopes)
    }

    public func opened(_ session: UserSession) async {
        let locked = (try? store.deviceSession(device: session.device))?.locked ?? true
        let machine = UserSessionMachine(scopes: session.grant.scopes, custody: session.grant.custody, locked: locked)
        let (stream, out) = AsyncStream<Outgoing>.makeStream()
        entries[session.id] = Entry(session: session, opened: clock.milliseconds, machine: machine, out: out)
        if latestSeq[session.user] == nil { latestSeq[session.user] = (try? store.latestUserSeq(cuid: session.user)) ?? 0 }
        byUser[session.user, default: []].insert(session.id)
        let logger = self.logger
        Task {
            for await item in stream {
                switch item {
                case .json(let message):
                    do { try await session.send(message) } catch {
                        logger.debug("user session send failed", metadata: ["session": "\(session.id)", "error": "\(error)"])
                        session.close()
                        return
                    }
                case .close:
                    session.close()
                    return
                }
            }
        }
    }

    public func received(_ message: UserMessage, on session: UserSession) async {
        guard var entry = entries[session.id] else { return }
        let latest = latestSeq[session.user] ?? 0
        let actions = entry.machine.received(message, now: clock.milliseconds, latestSeq: latest)
        entries[session.id] = entry
        perform(actions, on: session.id)
    }

    public func closed(_ session: UserSession) async {
        guard let entry = entries.removeValue(forKey: session.id) else { return }
        entry.out.finish()
        byUser[session.user]?.remove(session.id)
        if byUser[session.user]?.isEmpty == true {
            byUser[session.user] = nil
            latestSeq[session.user] = nil
        }
    }

    // MARK: The site changed

    /// After any commit that may concern users (a delivery pass, another
    /// process's write, a command): subscribed sessions load what is new;
    /// sessions of a revoked device close; lock changes reach the machines.
    public func siteChanged() {
        let now = clock.milliseconds
        if now - prunedAt >= Self.pruneInterval {
            prunedAt = now
            do {
                let pruned = try store.pruneUserData(now: now)
                logger.debug("user port data pruned", metadata: ["pruned": "\(pruned)"])
            } catch {
                logger.warning("user port data not pruned", metadata: ["error": "\(error)"])
            }
        }
        let devices = Set(entries.values.map(\.session.device))
        let states: SiteStore.SessionStates
        do { states = try store.sessionStates(users: Set(byUser.keys), devices: devices) } catch {
            return logger.warning("user sessions not brought up to date", metadata: ["error": "\(error)"])
        }
        for (user, ids) in byUser {
            let latest = states.seqs[user] ?? 0
            latestSeq[user] = max(latestSeq[user] ?? 0, latest)
            for id in ids {
                guard var entry = entries[id] else { continue }
                guard let info = states.live[entry.session.device] else {
                    logger.info("device revoked: closing its session", metadata: ["session": "\(id)"])
                    entry.out.yield(.close)
                    continue
                }
                entry.machine.update(custody: info.custody, locked: info.locked)
                let actions = entry.machine.eventsCommitted(latest: latest)
                entries[id] = entry
                perform(actions, on: id)
            }
        }
    }

    /// After one of `user`'s commands changed something: that user's
    /// sessions load its events (the delivery pass that follows brings the
    /// rest, revocations included, through ``siteChanged()``).
    private func userChanged(_ user: CUID) {
        guard let ids = byUser[user] else { return }
        let latest = max(latestSeq[user] ?? 0, (try? store.latestUserSeq(cuid: user)) ?? 0)
        latestSeq[user] = latest
        for id in ids {
            guard var entry = entries[id] else { continue }
            let actions = entry.machine.eventsCommitted(latest: latest)
            entries[id] = entry
            perform(actions, on: id)
        }
    }

    // MARK: Carrying out the machine's actions

    private func perform(_ actions: [UserSessionAction], on id: UInt64) {
        guard let entry = entries[id] else { return }
        for action in actions {
            switch action {
            case .send(let message): entry.out.yield(.json(message))
            case .close(let why):
                logger.debug("user session closed", metadata: ["session": "\(id)", "why": "\(why)"])
                entry.out.yield(.close)
                return
            case .run(let request): run(request, on: id, session: entry.session, opened: entry.opened)
            case .loadEvents(let after): load(after: after, on: id, user: entry.session.user)
            }
        }
    }

    private func run(_ request: UserRequest, on id: UInt64, session: UserSession, opened: Int64) {
        let runner = self.runner, clock = self.clock
        // `ping` reads nothing: answered here, without a task of its own.
        if case .ping = request.command {
            let data = UserCommandRunner.pingData(now: clock.milliseconds)
            return finished(request, .reply(UserReply.ok(id: request.id, data: data)), on: id, changes: false)
        }
        let caller = UserCommandRunner.Caller(
            user: session.user, device: session.device, scopes: session.grant.scopes, sessionOpened: opened)
        Task {
            let outcome = await runner.run(request, caller: caller, now: clock.milliseconds)
            self.finished(request, outcome, on: id, changes: request.command.changesSomething)
        }
    }

    private func finished(_ request: UserRequest, _ outcome: UserCommandOutcome, on id: UInt64, changes: Bool) {
        if testKill == .reply, changes, case .reply(let reply) = outcome, reply["ok"] == true {
            logger.critical("test: killed at reply (CHIPSITE_TEST_KILL_AT)", metadata: ["cmd": "\(request.command.name)"])
            kill(getpid(), SIGKILL)
        }
        if var entry = entries[id] {
            let actions = entry.machine.finished(request, outcome)
            entries[id] = entry
            perform(actions, on: id)
        }
        if changes, let user = entries[id]?.session.user {
            poke()
            userChanged(user)
        } else if changes {
            poke()
        }
    }

    private func load(after: Int64, on id: UInt64, user: CUID) {
        let store = self.store
        // The reads run off the actor; the machine takes their result on it.
        Task.detached {
            let batch = (try? store.userEvents(cuid: user, after: after, limit: UserSessionMachine.eventBatch)) ?? []
            let latest = (try? store.latestUserSeq(cuid: user)) ?? 0
            await self.loaded(batch, after: after, latest: latest, on: id)
        }
    }

    private func loaded(_ batch: [UserEvent], after: Int64, latest: Int64, on id: UInt64) {
        guard var entry = entries[id] else { return }
        let actions = entry.machine.loaded(batch, after: after, latest: latest)
        entries[id] = entry
        perform(actions, on: id)
    }
}

extension DeviceCommand {
    /// Whether a success may have changed the site file (the delivery loop
    /// and the other sessions then look).
    var changesSomething: Bool { idempotency != .none }
}
