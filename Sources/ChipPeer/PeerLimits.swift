#if canImport(Glibc)
    import Glibc
#endif
import ChipModel

/// What one peer, or everyone together, may cost this site. Each value but
/// `writeStallTimeout` is a config key in the site file
/// (doc/configuration.md); these are the defaults.
public struct PeerLimits: Sendable, Equatable {
    /// Largest frame accepted (`peer.max_frame`, 17-65536).
    public var maxFrameLength: Int = PeerDefaults.maxFrame
    /// Seconds a handshake may take from the first byte (`peer.handshake_timeout`).
    public var handshakeTimeout: Double = PeerDefaults.handshakeTimeout
    /// Seconds without a received frame before the responder closes (`peer.idle_timeout`).
    public var idleTimeout: Double = PeerDefaults.idleTimeout
    /// Connections open at once, both directions (`peer.max_connections`).
    public var maxConnections: Int = PeerDefaults.maxConnections
    /// Handshakes per second allowed from one source address (`peer.handshake_rate`).
    public var handshakeRate: Double = PeerDefaults.handshakeRate
    /// Burst of handshakes allowed from one source address (`peer.handshake_burst`).
    public var handshakeBurst: Double = PeerDefaults.handshakeBurst
    /// Bytes queued for sending to one peer before the channel is dropped
    /// (the messages stay in the outbox) (`peer.max_queued_bytes`).
    public var maxQueuedBytes: Int = PeerDefaults.maxQueuedBytes
    /// Seconds one frame may wait for the peer to take it (its socket full:
    /// a peer that stopped reading) before the channel is dropped, so a stuck
    /// peer holds up the delivery to others for at most this long.
    public var writeStallTimeout: Double = 20

    public init() {}

    /// A write waits while NIO's buffer for a peer holds more than
    /// `maxQueuedBytes`, and goes on once it is down to this: after the peer
    /// has taken `resumeBytes`, not half the buffer. So the stall watchdog
    /// asks a slow but live peer for 64 KiB per `writeStallTimeout`
    /// (3.2 kB/s), whatever `peer.max_queued_bytes` is.
    public static let resumeBytes = 64 * 1024
    public var writeBufferLow: Int { max(maxQueuedBytes / 2, maxQueuedBytes - Self.resumeBytes) }

    /// Raises this process's soft `RLIMIT_NOFILE` to its hard limit (every
    /// connection is a descriptor, and the usual soft limit, 1024, is the
    /// default `peer.max_connections`); returns the soft limit now.
    public static func raiseDescriptorLimit() -> Int {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return 0 }
        if limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max
            _ = setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
            _ = getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        }
        return Int(limit.rlim_cur)
    }
}

/// Token buckets keyed by source address: `rate` tokens per second up to
/// `burst`. Pure and clock-free (the caller passes the time), so it can be
/// tested; the table is capped so a spray of addresses cannot grow it forever.
public struct TokenBuckets: Sendable {
    public let rate: Double
    public let burst: Double
    public let maxKeys: Int
    private var buckets: [String: (tokens: Double, last: Double)] = [:]

    public init(rate: Double, burst: Double, maxKeys: Int = 10_000) {
        self.rate = rate
        self.burst = max(burst, 1)
        self.maxKeys = maxKeys
    }

    /// Takes one token for `key` at time `now` (seconds); false when none is left.
    public mutating func admit(_ key: String, now: Double) -> Bool {
        var entry = buckets[key] ?? (tokens: burst, last: now)
        entry.tokens = min(burst, entry.tokens + max(0, now - entry.last) * rate)
        entry.last = now
        guard entry.tokens >= 1 else {
            buckets[key] = entry
            return false
        }
        entry.tokens -= 1
        if buckets[key] == nil, buckets.count >= maxKeys { evictFull(now: now) }
        buckets[key] = entry
        return true
    }

    /// Drops buckets that have refilled (they hold no memory worth keeping);
    /// if none has, drops everything: forgetting is safe, only lenient.
    private mutating func evictFull(now: Double) {
        buckets = buckets.filter { min(burst, $0.value.tokens + (now - $0.value.last) * rate) < burst }
        if buckets.count >= maxKeys { buckets.removeAll(keepingCapacity: true) }
    }

    public var count: Int { buckets.count }
}
