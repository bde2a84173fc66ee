import ChipModel

/// The referee channel (9.8): what it may carry and its limits, as pure
/// values. The channel layer asks `admits` of every message and closes the
/// channel at the first `false`; `RefereeRate` is the per-address bucket.
public enum RefereeChannel {
    /// Messages per second per source address, and the burst.
    public static let messagesPerSecond = 10
    public static let burst = 20
    /// Referee channels per source address, and in all.
    public static let maxPerAddress = 4
    public static let maxChannels = 256
    /// Idle close.
    public static let idleMs: Int64 = 10_000

    /// Whether a message received on a referee channel may be: only `lift`
    /// `commit`, `abort` and `query`. Anything else closes the channel.
    public static func admits(_ m: SiteMessage) -> Bool {
        guard case .lift(let l) = m else { return false }
        switch l.body {
        case .call, .query: return true
        default: return false
        }
    }

    /// What the asker's side of a referee channel takes: R's answers
    /// (`good`, `void`, `pending`) and nothing else (9.8).
    public static func admitsAnswer(_ m: SiteMessage) -> Bool {
        guard case .lift(let l) = m else { return false }
        switch l.body {
        case .decision(_, nil), .pending(_, nil, _): return true
        default: return false
        }
    }

    /// Whether one more referee channel from an address with `fromAddress`
    /// open, `open` in all, may be accepted.
    public static func accepts(fromAddress: Int, open: Int) -> Bool { fromAddress < maxPerAddress && open < maxChannels }
}

/// A token bucket: `RefereeChannel.messagesPerSecond` tokens a second, at
/// most `RefereeChannel.burst` kept; the clock is passed in.
public struct RefereeRate: Sendable, Equatable {
    /// Tokens in thousandths, so that refill is exact in milliseconds.
    var milliTokens: Int64
    var at: Int64

    public init(now: Int64) {
        milliTokens = Int64(RefereeChannel.burst) * 1000
        at = now
    }

    /// Takes one token at `now`, if there is one.
    public mutating func take(now: Int64) -> Bool {
        let elapsed = max(0, now - at)
        at = max(at, now)
        milliTokens = min(Int64(RefereeChannel.burst) * 1000, milliTokens + elapsed * Int64(RefereeChannel.messagesPerSecond))
        guard milliTokens >= 1000 else { return false }
        milliTokens -= 1000
        return true
    }
}
