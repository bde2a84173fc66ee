import ChipChannel
#if canImport(Glibc)
    import Glibc
#endif
import ChipModel
import ChipPeer
import ChipProtocol
import ChipStore
import ChipUserPort
import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Noise

/// `chipsite serve`: the only process that talks to other sites. It listens
/// for peers and delivers the outbox in passes. Between passes it sleeps on
/// one ``WakeUp``, fed by pokes on its Unix socket, by the site file's
/// changes from other processes (inotify and `PRAGMA data_version`), and by
/// the engine (channels opened and closed, received messages that changed
/// the file, send queues with room again, dial back-off timers). There is
/// no polling loop: an idle site does nothing.
public final class SiteDaemon: Sendable {
    public let engine: SiteEngine
    public let node: PeerNode
    /// The user port (protocol section 10): the listener and the site behind it.
    public let users: UserPortService
    public let userPort: UserPortListener
    /// What `run()` waits on between passes.
    public let wake: WakeUp
    let clock: any SiteClock
    let store: SiteStore
    let logger: Logger
    let group: MultiThreadedEventLoopGroup
    private let pokeServer = NIOLockedValueBox<((any Channel), String)?>(nil)
    private let fileWatch = NIOLockedValueBox<SiteFileWatch?>(nil)
    private let fallback = NIOLockedValueBox<Task<Void, Never>?>(nil)
    private let passes = NIOLockedValueBox(0)

    /// Without inotify, how often the site file's data_version is looked at.
    public static let fallbackInterval: TimeInterval = 5

    public init(
        store: SiteStore, siteKey: SigningKey, sealingKey: SealingKey?, limits: PeerLimits, logger: Logger,
        clock: any SiteClock = SystemClock(), random: any SiteRandom = SystemRandom(), userLimits: UserPortLimits = UserPortLimits()
    ) throws {
        var secret = siteKey.curve25519SecretKey()
        defer { Crypto.wipe(&secret) }
        let local = LocalSite(agent: try AgentID(publicKey: siteKey.publicKey), staticKey: try KeyPair(privateKey: secret))
        self.store = store
        self.logger = logger
        self.clock = clock
        // Pending: the first pass runs at start.
        wake = WakeUp(clock: clock, pending: true)
        group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        engine = SiteEngine(store: store, sealingKey: sealingKey, logger: logger, clock: clock, random: random, wake: wake)
        node = PeerNode(local: local, limits: limits, policy: engine, group: group, logger: logger)
        let wake = self.wake
        var userLogger = logger
        userLogger[metadataKey: "port"] = "user"
        users = UserPortService(store: store, sealingKey: sealingKey, clock: clock, logger: userLogger, poke: { wake.signal() })
        userPort = UserPortListener(local: local, limits: userLimits, host: users, group: group, logger: userLogger)
    }

    /// Delivery passes run so far (tests, diagnostics).
    public var passCount: Int { passes.withLockedValue { $0 } }

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

    /// Binds the user port; returns the bound port.
    public func startUserPort(host: String, port: Int) async throws -> Int {
        await users.attach(userPort)
        return try await userPort.listen(host: host, port: port)
    }

    /// Asks for a delivery pass now.
    public func poke() { wake.signal() }

    /// Delivers the outbox, one pass per wake-up, until the task is
    /// cancelled or `stop()` is called.
    public func run() async {
        while !Task.isCancelled {
            await wake.wait()
            if Task.isCancelled || wake.isClosed { break }
            passes.withLockedValue { $0 += 1 }
            await engine.pump()
            // What the pass (or another process) committed may be news for a device.
            await users.siteChanged()
        }
    }

    /// Closes every channel and the listener, then the event loops.
    public func stop() async {
        fileWatch.withLockedValue { w in
            w?.stop()
            w = nil
        }
        fallback.withLockedValue { t in
            t?.cancel()
            t = nil
        }
        wake.close()
        if let (channel, socketPath) = pokeServer.withLockedValue({ $0 }) {
            try? await channel.close()
            unlink(socketPath)
        }
        await userPort.shutdown()
        await node.shutdown()
        try? await group.shutdownGracefully()
    }
}

// MARK: - The poke socket

extension SiteDaemon {
    /// The Unix socket beside the site file where CLI commands poke the
    /// daemon (doc/architecture.md). Nil when the path is too long for a
    /// socket address; then the file watch (`watchSiteFile`) finds the work.
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

// MARK: - The site file's changes

extension SiteDaemon {
    /// Wakes the daemon when another connection commits to `siteFile` (a
    /// CLI command that could not poke, or whose poke was lost): an inotify
    /// watch on the file's directory for writes to the file and its -wal,
    /// then `PRAGMA data_version` (which this connection's own commits do
    /// not change), and a wake-up only if it changed. Without inotify, the
    /// data_version is looked at every `fallbackInterval` (logged once).
    public func watchSiteFile(_ siteFile: String) {
        let store = self.store, wake = self.wake
        let last = NIOLockedValueBox((try? store.dataVersion()) ?? 0)
        @Sendable func check() -> Bool {
            guard let version = try? store.dataVersion() else { return false }
            let changed = last.withLockedValue { v in
                defer { v = version }
                return v != version
            }
            if changed { wake.signal() }
            return changed
        }
        do {
            let watch = try SiteFileWatch.start(siteFile: siteFile, changed: check)
            fileWatch.withLockedValue { w in
                w?.stop()
                w = watch
            }
        } catch {
            logger.warning(
                "no inotify watch on the site file; looking at it every \(Int(Self.fallbackInterval)) s",
                metadata: ["error": "\(error)"])
            let clock = self.clock
            let task = Task {
                while !Task.isCancelled {
                    do { try await clock.sleep(until: clock.now.addingTimeInterval(Self.fallbackInterval)) } catch { return }
                    _ = check()
                }
            }
            fallback.withLockedValue { t in
                t?.cancel()
                t = task
            }
        }
    }
}
