import ChipChannel
#if canImport(Glibc)
import Glibc
#endif
import ChipModel
import ChipPeer
import ChipProtocol
import ChipStore
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Noise

/// `chipsite serve`: the only process that talks to other sites. It listens
/// for peers, delivers the outbox, and wakes up when a CLI command pokes its
/// Unix socket or every second otherwise.
public final class SiteDaemon: Sendable {
    /// How often the outbox is looked at without a poke.
    public static let pollInterval: Duration = .seconds(1)

    public let engine: SiteEngine
    public let node: PeerNode
    let store: SiteStore
    let logger: Logger
    let group: MultiThreadedEventLoopGroup
    /// Set by a poke, cleared when the outbox loop wakes.
    private let poked = NIOLockedValueBox(false)
    private let pokeServer = NIOLockedValueBox<((any Channel), String)?>(nil)
    /// How often the outbox loop checks for a poke while it waits.
    static let pokeCheck: Duration = .milliseconds(4)

    public init(store: SiteStore, siteKey: SigningKey, sealingKey: SealingKey?, limits: PeerLimits, logger: Logger) throws {
        var secret = siteKey.curve25519SecretKey()
        defer { Crypto.wipe(&secret) }
        let local = LocalSite(agent: try AgentID(publicKey: siteKey.publicKey), staticKey: try KeyPair(privateKey: secret))
        self.store = store
        self.logger = logger
        group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        engine = SiteEngine(store: store, sealingKey: sealingKey, logger: logger)
        node = PeerNode(local: local, limits: limits, policy: engine, group: group, logger: logger)
    }

    /// Reads the peer limits from the site file's config, defaults elsewhere.
    public static func limits(from store: SiteStore) throws -> PeerLimits {
        var l = PeerLimits()
        func value(_ key: ConfigKey) throws -> Double? { try store.configValue(key).flatMap(Double.init) }
        if let v = try value(.peerMaxFrame) { l.maxFrameLength = Int(v) }
        if let v = try value(.peerHandshakeTimeout) { l.handshakeTimeout = v }
        if let v = try value(.peerIdleTimeout) { l.idleTimeout = v }
        if let v = try value(.peerMaxConnections) { l.maxConnections = Int(v) }
        if let v = try value(.peerHandshakeRate) { l.handshakeRate = v }
        if let v = try value(.peerHandshakeBurst) { l.handshakeBurst = v }
        if let v = try value(.peerMaxQueuedBytes) { l.maxQueuedBytes = Int(v) }
        return l
    }

    /// Binds the peer port; returns the bound address.
    public func start(host: String, port: Int) async throws -> SocketAddress {
        await engine.attach(node)
        return try await node.listen(host: host, port: port)
    }

    /// Asks the outbox loop to look now.
    public func poke() { poked.withLockedValue { $0 = true } }

    /// Delivers the outbox until the task is cancelled.
    public func run() async {
        while !Task.isCancelled {
            await engine.pump()
            var waited: Duration = .zero
            while waited < Self.pollInterval, !Task.isCancelled {
                if poked.withLockedValue({ p in defer { p = false }; return p }) { break }
                try? await Task.sleep(for: Self.pokeCheck)
                waited += Self.pokeCheck
            }
        }
    }

    /// Closes every channel and the listener, then the event loops.
    public func stop() async {
        if let (channel, socketPath) = pokeServer.withLockedValue({ $0 }) {
            try? await channel.close()
            unlink(socketPath)
        }
        await node.shutdown()
        try? await group.shutdownGracefully()
    }
}

// MARK: - The poke socket

extension SiteDaemon {
    /// The Unix socket beside the site file where CLI commands poke the
    /// daemon (doc/architecture.md). Nil when the path is too long for a
    /// socket address; then the daemon's one-second poll still finds the work.
    public static func pokeSocketPath(forSiteFile path: String) -> String? {
        let socket = path + ".sock"
        return socket.utf8.count < 100 ? socket : nil
    }

    /// Listens on the poke socket (mode 0600): any connection wakes the outbox loop.
    public func listenForPokes(siteFile: String) async throws {
        guard let socketPath = Self.pokeSocketPath(forSiteFile: siteFile) else { return }
        let server = try await ServerBootstrap(group: group)
            .bind(unixDomainSocketPath: socketPath, cleanupExistingSocketFile: true) { channel in
                channel.eventLoop.makeCompletedFuture { channel }
            }
        chmod(socketPath, 0o600)
        Task { [self] in
            try? await server.executeThenClose { inbound in
                for try await connection in inbound {
                    poke()
                    connection.close(promise: nil)
                }
            }
        }
        pokeServer.withLockedValue { $0 = (server.channel, socketPath) }
    }

    /// Wakes a running daemon for `siteFile`, if one listens. Never fails:
    /// without a daemon the intent waits in the file.
    public static func pokeRunning(siteFile: String) {
        guard let socketPath = pokeSocketPath(forSiteFile: siteFile) else { return }
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return }
        defer { close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (i, byte) in socketPath.utf8.enumerated() where i < raw.count - 1 { raw[i] = byte }
        }
        _ = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
    }
}
