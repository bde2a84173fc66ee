/// The defaults of the peer port's limits, written once: `PeerLimits`
/// (ChipPeer) starts from them and the `peer.*` settings (ChipStore's
/// `ConfigKey`, doc/configuration.md) show and document them.
public enum PeerDefaults {
    /// Largest frame accepted: the 16-bit length of protocol section 2.
    public static let maxFrame = 65536
    /// Seconds a handshake may take from the first byte.
    public static let handshakeTimeout = 10.0
    /// Seconds without a received frame before the responder closes.
    public static let idleTimeout = 60.0
    /// Connections open at once, both directions.
    public static let maxConnections = 1024
    /// Handshakes per second from one source address, and their burst.
    public static let handshakeRate = 20.0
    public static let handshakeBurst = 5.0
    /// Bytes queued for sending to one peer before the channel is dropped.
    public static let maxQueuedBytes = 1 << 20
}
