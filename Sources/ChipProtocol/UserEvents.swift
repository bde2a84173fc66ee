import ChipModel

/// One subscribed session's event stream (protocol 10.5) as a pure value:
/// the user's events go in in commit order (as the store hands them over,
/// replay first), and come out in `seq` order with no gaps, each once, those
/// of a command's transaction (and all later ones) held back until that
/// command's reply has gone out. Events the session does not want (topics)
/// or may not see (scopes) advance the stream without being sent.
public struct UserEventQueue: Sendable {
    /// The highest `seq` passed (sent or skipped).
    public private(set) var passed: Int64
    public let topics: Set<UserTopic>?
    public let scopes: Set<UserScope>
    private var waiting: [Int64: UserEvent] = [:]
    /// Request id → first `seq` of its transaction, until its reply is sent.
    private var holds: [String: Int64] = [:]

    /// A stream that has passed `since` (the device's `since`, or the latest
    /// `seq` when it subscribed without one).
    public init(since: Int64, topics: Set<UserTopic>?, scopes: Set<UserScope>) {
        self.passed = since
        self.topics = topics
        self.scopes = scopes
    }

    /// Events waiting for a gap to fill or a reply to go out.
    public var waitingCount: Int { waiting.count }

    /// Command `id` committed events from `seq` on: hold them (and later ones)
    /// until ``replySent(_:)``. A command that committed no event holds nothing.
    public mutating func hold(_ id: String, from seq: Int64) {
        holds[id] = min(holds[id] ?? seq, seq)
    }

    /// The reply to `id` has been written: what may go now.
    public mutating func replySent(_ id: String) -> [UserEvent] {
        holds[id] = nil
        return drain()
    }

    /// An event of the user's (a repeat or one already passed is dropped):
    /// what may go now, in order.
    public mutating func add(_ event: UserEvent) -> [UserEvent] {
        guard event.seq > passed else { return [] }
        waiting[event.seq] = event
        return drain()
    }

    /// Whether this session sends `event` (topic wanted and visible, 10.5).
    public func wants(_ event: UserEvent) -> Bool {
        if let topics, !topics.contains(event.topic) { return false }
        let kind = event.data["kind"]?.stringValue.flatMap(SignKind.init(rawValue:))
        return UserEvent.visible(topic: event.topic, kind: kind, scopes: scopes)
    }

    private mutating func drain() -> [UserEvent] {
        var out = [UserEvent]()
        let barrier = holds.values.min() ?? Int64.max
        while passed < Int64.max, let next = waiting[passed + 1], next.seq < barrier {
            waiting[next.seq] = nil
            passed = next.seq
            if wants(next) { out.append(next) }
        }
        return out
    }
}

/// The device's side (10.5): it drops any `seq` not above the highest it
/// has processed, and asks to reload on a `resync`.
public struct UserEventCursor: Sendable, Equatable {
    /// The highest `seq` processed: the `since` of the next subscribe.
    public private(set) var highest: Int64

    public init(highest: Int64 = 0) { self.highest = highest }

    /// Whether an event with `seq` is new (and now processed).
    public mutating func accept(_ seq: Int64) -> Bool {
        guard seq > highest else { return false }
        highest = seq
        return true
    }

    /// After a `resync` the device reloads and goes on from `latest`.
    public mutating func resync(latest: Int64) { highest = latest }
}
