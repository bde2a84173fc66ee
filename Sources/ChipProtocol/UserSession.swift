import ChipModel

// The user session's dialog (protocol 10.4-10.5) as a pure decider: a
// request frame, a command's outcome or the news that the user's events
// moved on goes in, with the clock and the latest committed `seq`; what the
// session sends, runs or loads comes out. The edge carries the actions out
// (ChipUserPort); the site runs each `.run` against the store, the same
// operations as the CLI, and hands the outcome back.

/// What a session does next, in order.
public enum UserSessionAction: Sendable, Equatable {
    /// Send one JSON object (a reply or an event) in one `T` frame.
    case send(JSONValue)
    /// Run this request against the store; answer with ``UserSessionMachine/finished(_:_:)``.
    case run(UserRequest)
    /// Load the user's events after this `seq` (one batch); answer with
    /// ``UserSessionMachine/loaded(_:after:latest:)``.
    case loadEvents(after: Int64)
    /// Close the session (debug-log only; the device learns nothing more).
    case close(String)
}

/// How a command the site ran ended.
public enum UserCommandOutcome: Sendable, Equatable {
    /// The reply to send (success, replay or error), already in wire form.
    case reply(JSONValue)
    /// `events.subscribe` ran: `latest` is the user's latest `seq`; `resync`
    /// when `since` is older than the kept window (10.5).
    case subscribed(latest: Int64, resync: Bool)
    /// `events.unsubscribe` ran.
    case unsubscribed
}

/// One session's state. The site keeps one per open session.
public struct UserSessionMachine: Sendable {
    /// Requests in flight per session (10.1); more: `rate_limited`.
    public static let maxInFlight = UserPortDefaults.maxRequestsInFlight
    /// Events loaded at a time while catching up.
    public static let eventBatch = 200
    /// The largest reply or event sent: one `T` frame carries at most
    /// 65,519 plaintext bytes (Noise's 65,535 less the tag); the rest is margin.
    public static let maxReplyBytes = 65_000

    /// The device's scopes and the user's custody, as the session began (10.4).
    public private(set) var scopes: Set<UserScope>
    public private(set) var custody: UserCustody
    /// The user is locked or the site locked down (10.4).
    public private(set) var locked: Bool
    /// Request id → the latest committed `seq` when it started (its events, if any, come after).
    private var inFlight: [String: Int64] = [:]
    /// Request id → the subscribe args while `events.subscribe` runs.
    private var subscribing: [String: (topics: Set<UserTopic>?, since: Int64?)] = [:]
    /// Keys of idempotent requests running here, and the repeats waiting for them (10.5).
    private var runningKeys: [IdempotencyKey: String] = [:]
    private var waitingRepeats: [IdempotencyKey: [UserRequest]] = [:]
    /// The subscription, once `events.subscribe` has answered.
    public private(set) var events: UserEventQueue?
    /// The highest `seq` loaded from the store since the subscription began.
    private var loadedUpTo: Int64 = 0
    /// The `after` of the `.loadEvents` under way (one at a time).
    private var pendingLoad: Int64?
    /// The latest committed `seq` this session has heard of.
    private var latest: Int64 = 0

    public init(scopes: Set<UserScope>, custody: UserCustody, locked: Bool) {
        self.scopes = scopes
        self.custody = custody
        self.locked = locked
    }

    /// Requests running (or waiting for a running repeat).
    public var inFlightCount: Int { inFlight.count }
    public var isSubscribed: Bool { events != nil }

    /// The user's lock, the site's lockdown or the user's custody changed.
    public mutating func update(custody: UserCustody, locked: Bool) {
        self.custody = custody
        self.locked = locked
    }

    /// One `T` frame's message. `latestSeq` is the user's latest committed
    /// `seq` as the site knows it now (a lower figure only holds back more).
    public mutating func received(_ message: UserMessage, now: Int64, latestSeq: Int64) -> [UserSessionAction] {
        latest = max(latest, latestSeq)
        let request: UserRequest
        do throws(UserRequestFailure) { request = try UserRequest(message: message) } catch {
            switch error {
            case .closeSession(let why): return [.close(why)]
            case .reply(let id, let e): return [.send(UserReply.error(id: id, e))]
            }
        }
        let id = request.id
        if inFlight[id] != nil {
            return [.send(UserReply.error(id: id, UserError(.badRequest, "a request with this id is still running")))]
        }
        if inFlight.count >= Self.maxInFlight {
            return [.send(UserReply.error(id: id, UserError(.rateLimited, "at most \(Self.maxInFlight) requests in flight")))]
        }
        if let e = request.command.precheck(scopes: scopes, locked: locked, custody: custody) {
            return [.send(UserReply.error(id: id, e))]
        }
        switch request.command {
        case .ping:
            return [.send(UserReply.ok(id: id, data: ["time": .string(Timestamp.format(millisecondsSince1970: now))]))]
        case .eventsSubscribe(let topics, let since):
            if let since, since < 0 { return [.send(UserReply.error(id: id, UserError(.badRequest, "since is a seq (0 or more)")))] }
            subscribing[id] = (topics, since)
        default: break
        }
        inFlight[id] = latest
        events?.hold(id, from: latest + 1)
        if let key = request.idempotencyKey {
            if runningKeys[key] != nil {
                waitingRepeats[key, default: []].append(request)
                return []
            }
            runningKeys[key] = id
        }
        return [.run(request)]
    }

    /// The command `request` (from a `.run`) ended: its reply goes out,
    /// then what it held back; a repeat that waited for it runs now.
    public mutating func finished(_ request: UserRequest, _ outcome: UserCommandOutcome) -> [UserSessionAction] {
        let id = request.id
        guard inFlight.removeValue(forKey: id) != nil else { return [] }
        var out = [UserSessionAction]()
        switch outcome {
        case .reply(let reply):
            subscribing[id] = nil
            if reply.canonicalBytes.count > Self.maxReplyBytes {
                out.append(.send(UserReply.error(id: id, UserError(.tooLarge, "the reply would not fit in one frame"))))
            } else {
                out.append(.send(reply))
            }
        case .subscribed(let newest, let resync):
            let args = subscribing.removeValue(forKey: id)
            latest = max(latest, newest)
            out.append(.send(UserReply.ok(id: id, data: ["seq": .integer(newest)])))
            var since = args?.since ?? newest
            if resync || since > newest {
                if resync { out.append(.send(UserEvent.resync(latest: newest))) }
                since = newest
            }
            var queue = UserEventQueue(since: since, topics: args?.topics, scopes: scopes)
            for (other, start) in inFlight { queue.hold(other, from: start + 1) }
            events = queue
            loadedUpTo = since
        case .unsubscribed:
            events = nil
            out.append(.send(UserReply.ok(id: id, data: [:])))
        }
        if var queue = events {
            out += queue.replySent(id).map { .send($0.json) }
            events = queue
        }
        if let key = request.idempotencyKey, runningKeys[key] == id {
            runningKeys[key] = nil
            if var waiting = waitingRepeats.removeValue(forKey: key), !waiting.isEmpty {
                let next = waiting.removeFirst()
                if !waiting.isEmpty { waitingRepeats[key] = waiting }
                runningKeys[key] = next.id
                out.append(.run(next))
            }
        }
        return out + catchUp()
    }

    /// The user's events moved on (a commit anywhere): what to load.
    public mutating func eventsCommitted(latest newest: Int64) -> [UserSessionAction] {
        latest = max(latest, newest)
        return catchUp()
    }

    /// A batch the site loaded for `.loadEvents(after:)`, in `seq` order,
    /// and the latest `seq` at that moment. A batch no load is waiting for
    /// is ignored; one asked for an older subscription's cursor is used as
    /// far as it fits this one's.
    public mutating func loaded(_ batch: [UserEvent], after: Int64, latest newest: Int64) -> [UserSessionAction] {
        guard pendingLoad == after else { return [] }
        pendingLoad = nil
        latest = max(latest, newest)
        guard var queue = events else { return [] }
        // A batch that starts past this subscription's cursor would leave a gap: ask again.
        guard after <= loadedUpTo else { return catchUp() }
        var out = [UserSessionAction]()
        for event in batch where event.seq > loadedUpTo { out += queue.add(event).map { .send($0.json) } }
        events = queue
        // An empty batch means nothing more is there (whatever `latest` said).
        loadedUpTo = max(loadedUpTo, batch.last?.seq ?? latest)
        return out + catchUp()
    }

    /// Asks for the events after the last one seen, one load at a time.
    private mutating func catchUp() -> [UserSessionAction] {
        guard events != nil, pendingLoad == nil, latest > loadedUpTo else { return [] }
        pendingLoad = loadedUpTo
        return [.loadEvents(after: loadedUpTo)]
    }
}
