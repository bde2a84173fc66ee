import ChipChannel
import ChipModel
import ChipPeer
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// The site's user port (protocol 10.1): binds, accepts, enforces the
/// limits before and around the handshake, and drives one
/// ``UserChannelMachine`` per connection. Everything above it goes through
/// ``UserPortHost`` and ``UserSession``.
///
/// At accept, before a byte is read: an address with `failedRegistrations`
/// refusals in the window, over `maxConnectionsPerAddress`, out of handshake
/// tokens, or the port at `maxConnections` is closed silently. Then `A` must
/// come within `handshakeTimeout`, a frame at least every `idleTimeout`, no
/// frame above `maxFrameLength`, and at most `maxSessionsPerUser` sessions.
public final class UserPortListener: Sendable {
    public let local: LocalSite
    public let limits: UserPortLimits
    let host: any UserPortHost
    let group: any EventLoopGroup
    let logger: Logger

    /// One connection: its channel always, its device and user once the
    /// site has granted a session (a place counted against the user).
    private struct Entry {
        var channel: any Channel
        var device: DeviceID?
        var user: CUID?
        var session: UserSession?
    }

    private struct State {
        var buckets: TokenBuckets
        var failures: FailureWindows
        var connections = 0
        var perAddress: [String: Int] = [:]
        var nextID: UInt64 = 1
        var entries: [UInt64: Entry] = [:]
        var byDevice: [DeviceID: Set<UInt64>] = [:]
        var byUser: [CUID: Set<UInt64>] = [:]
        /// Each connection's task, by id: unstructured tasks, not a task
        /// group's children (the runtime walks a group's list of children to
        /// remove one, so n connections ending would cost n²).
        var tasks: [UInt64: Task<Void, Never>] = [:]
        var server: (any Channel)?
        var acceptTask: Task<Void, Never>?
        var port: Int?
    }
    private let state: NIOLockedValueBox<State>

    public init(local: LocalSite, limits: UserPortLimits = UserPortLimits(), host: any UserPortHost, group: any EventLoopGroup, logger: Logger) {
        self.local = local
        self.limits = limits
        self.host = host
        self.group = group
        var logger = logger
        logger[metadataKey: "port"] = "user"
        self.logger = logger
        state = NIOLockedValueBox(
            State(
                buckets: TokenBuckets(rate: limits.handshakeRate, burst: limits.handshakeBurst),
                failures: FailureWindows(limit: limits.failedRegistrations, window: limits.failedRegistrationWindow)))
    }

    /// Connections open now (in handshake or in session).
    public var connectionCount: Int { state.withLockedValue { $0.connections } }
    /// Entries kept per connection (entries, tasks, the per-device,
    /// per-user and per-address maps; tests, diagnostics): zero once every
    /// connection has ended.
    public var perConnectionEntries: Int {
        state.withLockedValue { s in
            s.entries.count + s.tasks.count + s.perAddress.count
                + s.byDevice.values.reduce(0) { $0 + $1.count } + s.byUser.values.reduce(0) { $0 + $1.count }
        }
    }
    /// The port bound by `listen` (useful with port 0).
    public var port: Int? { state.withLockedValue { $0.port } }

    /// The open sessions of a user (to send its events).
    public func sessions(user: CUID) -> [UserSession] {
        state.withLockedValue { s in (s.byUser[user] ?? []).compactMap { s.entries[$0]?.session } }
    }

    /// The open sessions of a device.
    public func sessions(device: DeviceID) -> [UserSession] {
        state.withLockedValue { s in (s.byDevice[device] ?? []).compactMap { s.entries[$0]?.session } }
    }

    /// Closes every connection of this device at once (a revoke, 10.4),
    /// those whose `session` question the site is still answering included
    /// (so a revoke committed before this call leaves no session of the
    /// device open, whatever the race); returns how many.
    @discardableResult
    public func closeSessions(device: DeviceID) -> Int {
        let channels = state.withLockedValue { s in (s.byDevice[device] ?? []).compactMap { s.entries[$0]?.channel } }
        for channel in channels { channel.close(promise: nil) }
        return channels.count
    }

    /// Closes every connection of this user's devices at once; returns how many.
    @discardableResult
    public func closeSessions(user: CUID) -> Int {
        let channels = state.withLockedValue { s in (s.byUser[user] ?? []).compactMap { s.entries[$0]?.channel } }
        for channel in channels { channel.close(promise: nil) }
        return channels.count
    }

    // MARK: Listening

    /// Binds and starts accepting; returns the bound port (port 0 picks one).
    @discardableResult
    public func listen(host: String, port: Int) async throws -> Int {
        let limits = self.limits
        let server = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 4096)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelOption(.writeBufferWaterMark, value: .init(low: limits.writeBufferLow, high: limits.maxQueuedBytes))
            .bind(host: host, port: port) { [self] channel in
                let address = channel.remoteAddress?.ipAddress ?? "unknown"
                // Admission before a single byte is read.
                guard admit(address) else {
                    return channel.close().flatMapThrowing { () throws -> NIOAsyncChannel<Frame, Frame> in
                        throw UserPortError.closedSilently
                    }
                }
                return channel.eventLoop.makeCompletedFuture {
                    do {
                        let ops = channel.pipeline.syncOperations
                        try ops.addHandler(FrameDecoder(maxFrameLength: limits.maxFrameLength))
                        try ops.addHandler(MessageToByteHandler(FrameEncoder()))
                        try ops.addHandler(FrameIdleHandler(timeout: limits.idleTimeout))
                        return try NIOAsyncChannel<Frame, Frame>(wrappingChannelSynchronously: channel)
                    } catch {
                        release(address)
                        throw error
                    }
                }
            }
        guard let bound = server.channel.localAddress?.port else { throw UserPortError.connectFailed("no local address") }
        let task = Task { [self] in
            do {
                try await server.executeThenClose { inbound in
                    for try await child in inbound { start(child) }
                }
            } catch {
                logger.debug("accept loop ended", metadata: ["error": "\(error)"])
            }
        }
        state.withLockedValue {
            $0.server = server.channel
            $0.acceptTask = task
            $0.port = bound
        }
        return bound
    }

    private static func now() -> Double { Double(NIODeadline.now().uptimeNanoseconds) / 1e9 }

    private func admit(_ address: String) -> Bool {
        let now = Self.now()
        return state.withLockedValue { s in
            guard !s.failures.isBlocked(address, now: now) else { return false }
            guard s.connections < limits.maxConnections, s.perAddress[address, default: 0] < limits.maxConnectionsPerAddress else { return false }
            guard s.buckets.admit(address, now: now) else { return false }
            s.connections += 1
            s.perAddress[address, default: 0] += 1
            return true
        }
    }

    private func release(_ address: String) {
        state.withLockedValue { s in
            s.connections -= 1
            let left = s.perAddress[address, default: 1] - 1
            s.perAddress[address] = left > 0 ? left : nil
        }
    }

    // MARK: Running a connection

    private enum Next {
        case read
        case stop
        case stopAfterSend
    }

    /// What one connection has learned; only its own task touches it.
    private final class Progress {
        var grant: UserSessionGrant?
        var session: UserSession?
    }

    /// Runs the connection in its own task, kept by id until it ends (the
    /// lock is held while the task is made, so its end finds it there).
    private func start(_ child: NIOAsyncChannel<Frame, Frame>) {
        state.withLockedValue { s in
            let id = s.nextID
            s.nextID += 1
            s.entries[id] = Entry(channel: child.channel)
            s.tasks[id] = Task { [self] in await run(child, id: id) }
        }
    }

    private func run(_ child: NIOAsyncChannel<Frame, Frame>, id: UInt64) async {
        let channel = child.channel
        let address = channel.remoteAddress?.ipAddress ?? "unknown"
        let link = UserLink(
            channel: channel, machine: .responder(local: local), maxQueuedBytes: limits.maxQueuedBytes,
            writeStallTimeout: limits.writeStallTimeout)
        // The handshake deadline: open within the limit or be closed.
        let deadline = channel.eventLoop.scheduleTask(in: .nanoseconds(Int64(limits.handshakeTimeout * 1e9))) {
            Task { if await !link.isOpen { link.close() } }
        }
        let progress = Progress()
        do {
            try await child.executeThenClose { inbound, outbound in
                await link.attach(outbound)
                for try await frame in inbound {
                    switch await perform(await link.receive(frame), link: link, id: id, address: address, progress: progress) {
                    case .read: continue
                    case .stop: return
                    case .stopAfterSend:
                        await link.drained()
                        return
                    }
                }
            }
        } catch {
            logger.debug("connection ended", metadata: ["conn": "\(id)", "error": "\(error)"])
        }
        deadline.cancel()
        await link.finish()
        state.withLockedValue { s in
            s.tasks[id] = nil
            if let entry = s.entries.removeValue(forKey: id) {
                if let device = entry.device { Self.remove(id, from: &s.byDevice, at: device) }
                if let user = entry.user { Self.remove(id, from: &s.byUser, at: user) }
            }
        }
        // The host hears of the close before the connection stops counting,
        // so `shutdown` returns after every `closed`.
        if let session = progress.session { await host.closed(session) }
        release(address)
    }

    private static func remove<K: Hashable>(_ id: UInt64, from map: inout [K: Set<UInt64>], at key: K) {
        map[key]?.remove(id)
        if map[key]?.isEmpty == true { map[key] = nil }
    }

    /// Carries out the machine's actions (its frames are already queued).
    private func perform(_ actions: [UserChannelAction], link: UserLink, id: UInt64, address: String, progress: Progress) async -> Next {
        for action in actions {
            switch action {
            case .send, .answered:
                continue  // sends are queued by the link; `answered` is the device's
            case .ask(.register(let registration)):
                let user = await host.register(registration, from: address)
                if user == nil {
                    let now = Self.now()
                    state.withLockedValue { $0.failures.record(address, now: now) }
                }
                return await perform(await link.answerRegistration(user), link: link, id: id, address: address, progress: progress)
            case .ask(.session(let device)):
                // Known by device before the site is asked, so a revoke that
                // commits while the site answers still closes this connection.
                state.withLockedValue { s in
                    s.entries[id]?.device = device
                    s.byDevice[device, default: []].insert(id)
                }
                var grant = await host.session(device: device, from: address)
                if let g = grant, !reserve(id, user: g.user) {
                    logger.debug("session refused: the user has the most sessions", metadata: ["conn": "\(id)"])
                    grant = nil
                }
                progress.grant = grant
                return await perform(await link.answerSession(grant), link: link, id: id, address: address, progress: progress)
            case .opened(let device, _):
                guard let grant = progress.grant else { return .stop }
                let session = UserSession(id: id, remoteAddress: address, device: device, grant: grant, link: link)
                progress.session = session
                state.withLockedValue { $0.entries[id]?.session = session }
                logger.debug("session open", metadata: ["conn": "\(id)"])
                await host.opened(session)
            case .deliver(let message):
                guard let session = progress.session else { return .stop }
                await host.received(message, on: session)
            case .closeAfterSend:
                return .stopAfterSend
            case .close(let why):
                logger.debug("closing", metadata: ["conn": "\(id)", "why": "\(why)"])
                return .stop
            }
        }
        return .read
    }

    /// Takes one of the user's session places for connection `id`; false at the cap.
    private func reserve(_ id: UInt64, user: CUID) -> Bool {
        state.withLockedValue { s in
            guard s.entries[id] != nil, (s.byUser[user]?.count ?? 0) < limits.maxSessionsPerUser else { return false }
            s.entries[id]?.user = user
            s.byUser[user, default: []].insert(id)
            return true
        }
    }

    // MARK: Stopping

    /// Stops accepting, closes every connection, and waits (bounded) for them to end.
    public func shutdown() async {
        let (server, channels, task) = state.withLockedValue { s in (s.server, s.entries.values.map(\.channel), s.acceptTask) }
        try? await server?.close()
        for channel in channels { channel.close(promise: nil) }
        await task?.value
        // Accepted after the snapshot (before the server closed): closed and
        // cancelled as well, as a task group's children were.
        let (late, tasks) = state.withLockedValue { s in (s.entries.values.map(\.channel), Array(s.tasks.values)) }
        for channel in late { channel.close(promise: nil) }
        for task in tasks { task.cancel() }
        for _ in 0..<300 where connectionCount > 0 {
            try? await Task.sleep(for: .milliseconds(10))
        }
    }
}
