import ChipChannel
import ChipModel

/// What one device, one address or everyone together may cost the site on
/// the user port (protocol 10.1, and section 4 for the handshake rate and
/// connection caps). The defaults are ``UserPortDefaults`` and the peer
/// port's; every value is injectable so tests can shorten the clocks.
public struct UserPortLimits: Sendable, Equatable {
    /// Largest frame accepted: the largest `T` the machine reads
    /// (`UserChannelMachine.maxMessageBytes` + a 16-byte tag + the header), 65536.
    public var maxFrameLength: Int = UserPortLimits.machineMaxFrame
    /// Seconds from accept until `A` must have opened the session (10 s).
    public var handshakeTimeout: Double = UserPortDefaults.handshakeTimeout
    /// Seconds without a received frame before the site closes (300 s).
    /// Counted in whole frames, so dribbled bytes do not keep a session up.
    public var idleTimeout: Double = UserPortDefaults.idleTimeout
    /// Connections open at once on the user port, from everyone (1024, as the peer port).
    public var maxConnections: Int = PeerDefaults.maxConnections
    /// Connections open at once from one source address (64: a few users
    /// behind one NAT, each with 8 sessions).
    public var maxConnectionsPerAddress: Int = 64
    /// Handshakes per second from one source address, and their burst (20 and 5, as the peer port).
    public var handshakeRate: Double = PeerDefaults.handshakeRate
    public var handshakeBurst: Double = PeerDefaults.handshakeBurst
    /// Registrations the site refused (a token not found, burned, expired…)
    /// one address may make per window (5 per 60 s); after that every new
    /// connection from it is closed at accept until the window has passed.
    public var failedRegistrations: Int = UserPortDefaults.failedRegistrationsPerWindow
    public var failedRegistrationWindow: Double = UserPortDefaults.failedRegistrationWindow
    /// Sessions open at once per user (8). The 9th is closed silently in
    /// place of its `A`, as an unknown key would be (nothing is stored).
    public var maxSessionsPerUser: Int = UserPortDefaults.maxSessionsPerUser
    /// Bytes encrypted for one session but not yet taken by NIO (1 MiB, as
    /// the peer port; NIO's own buffer holds at most as much again). A
    /// device that stops reading is closed when a send would pass it.
    public var maxQueuedBytes: Int = PeerDefaults.maxQueuedBytes
    /// Seconds one frame may wait for the device's socket before the session is closed.
    public var writeStallTimeout: Double = 20

    public init() {}

    /// The frame a `T` of `UserChannelMachine.maxMessageBytes` makes.
    public static let machineMaxFrame = min(FrameLimits.maxLength, 1 + UserChannelMachine.maxMessageBytes + 16)

    /// NIO's write buffer resumes after this much has drained (as `PeerLimits.writeBufferLow`).
    var writeBufferLow: Int { max(maxQueuedBytes / 2, maxQueuedBytes - 64 * 1024) }
}

/// Failures per key (a source address) in a sliding window: pure and
/// clock-free (the caller passes the time, in seconds), capped in keys so a
/// spray of addresses cannot grow it forever (forgetting is only lenient).
public struct FailureWindows: Sendable {
    public let limit: Int
    public let window: Double
    public let maxKeys: Int
    private var failures: [String: [Double]] = [:]

    public init(limit: Int, window: Double, maxKeys: Int = 10_000) {
        self.limit = max(limit, 1)
        self.window = window
        self.maxKeys = maxKeys
    }

    /// Records one failure for `key` at `now`.
    public mutating func record(_ key: String, now: Double) {
        var times = recent(key, now: now)
        times.append(now)
        if times.count > limit { times.removeFirst(times.count - limit) }
        if failures[key] == nil, failures.count >= maxKeys { evict(now: now) }
        failures[key] = times
    }

    /// Whether `key` has `limit` failures within the window before `now`.
    /// (Old entries go when the table is full, in `record`.)
    public func isBlocked(_ key: String, now: Double) -> Bool {
        guard failures[key] != nil else { return false }
        return recent(key, now: now).count >= limit
    }

    private func recent(_ key: String, now: Double) -> [Double] {
        (failures[key] ?? []).filter { now - $0 < window }
    }

    private mutating func evict(now: Double) {
        failures = failures.filter { $0.value.contains { now - $0 < window } }
        if failures.count >= maxKeys { failures.removeAll(keepingCapacity: true) }
    }

    public var count: Int { failures.count }
}
