import ChipChannel
import ChipModel
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// Why a dial did not give an open channel.
public enum PeerError: Error, Equatable, Sendable, CustomStringConvertible {
    case refused(String)
    case handshakeFailed
    case invalidAgent

    public var description: String {
        switch self {
        case .refused(let why): return "connection failed: \(why)"
        case .handshakeFailed: return "the peer did not complete the handshake"
        case .invalidAgent: return "the agent id is not a usable key"
        }
    }
}

/// The network edge of a site: listens for other sites, dials them, and
/// enforces the limits before any cryptography. Everything above it goes
/// through ``PeerPolicy`` and ``PeerConnection``.
public final class PeerNode: Sendable {
    public let local: LocalSite
    public let limits: PeerLimits
    let policy: any PeerPolicy
    let group: any EventLoopGroup
    let logger: Logger

    private struct State {
        var buckets: TokenBuckets
        var connections = 0
        var nextID: UInt64 = 1
        var channels: [UInt64: any Channel] = [:]
        /// Each connection's task, by connection id. Unstructured tasks, not
        /// a task group's children: the runtime keeps a group's children in
        /// a list it walks to remove one, so n connections ending cost n².
        var tasks: [UInt64: Task<Void, Never>] = [:]
        var server: (any Channel)?
        var acceptTask: Task<Void, Never>?
    }
    private let state: NIOLockedValueBox<State>

    public init(local: LocalSite, limits: PeerLimits, policy: any PeerPolicy, group: any EventLoopGroup, logger: Logger) {
        self.local = local
        self.limits = limits
        self.policy = policy
        self.group = group
        self.logger = logger
        state = NIOLockedValueBox(State(buckets: TokenBuckets(rate: limits.handshakeRate, burst: limits.handshakeBurst)))
    }

    /// Connections open now (both directions).
    public var connectionCount: Int { state.withLockedValue { $0.connections } }

    /// Entries the node keeps per connection (channels and tasks; tests,
    /// diagnostics): zero once every connection has ended.
    public var perConnectionEntries: Int { state.withLockedValue { $0.channels.count + $0.tasks.count } }

    // MARK: Listening

    /// Binds and starts accepting; returns the bound address (port 0 picks one).
    @discardableResult
    public func listen(host: String, port: Int) async throws -> SocketAddress {
        let limits = self.limits
        let server = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: Self.listenBacklog)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelOption(.writeBufferWaterMark, value: Self.waterMark(limits))
            .bind(host: host, port: port) { [self] channel in
                let address = channel.remoteAddress?.ipAddress ?? "unknown"
                // Admission before a single byte is read: rate and count.
                guard admit(address) else {
                    return channel.close().flatMapThrowing { () throws -> NIOAsyncChannel<Frame, Frame> in
                        throw PeerError.refused("limit")
                    }
                }
                return channel.eventLoop.makeCompletedFuture {
                    do {
                        try Self.addCodec(to: channel, limits: limits, responder: true)
                        return try NIOAsyncChannel<Frame, Frame>(wrappingChannelSynchronously: channel)
                    } catch {
                        release()  // admitted, but it will never run: give its place back
                        throw error
                    }
                }
            }
        guard let bound = server.channel.localAddress else { throw PeerError.refused("no local address") }
        let task = Task { [self] in
            do {
                try await server.executeThenClose { inbound in
                    for try await child in inbound {
                        let connection = makeConnection(child.channel, machine: .responder(local: local))
                        start(child, connection: connection, initial: [])
                    }
                }
            } catch {
                logger.debug("accept loop ended", metadata: ["error": "\(error)"])
            }
        }
        state.withLockedValue {
            $0.server = server.channel
            $0.acceptTask = task
        }
        return bound
    }

    private func admit(_ address: String) -> Bool {
        let now = NIODeadline.now().uptimeNanoseconds
        return state.withLockedValue { s in
            guard s.connections < limits.maxConnections else { return false }
            guard s.buckets.admit(address, now: Double(now) / 1e9) else { return false }
            s.connections += 1
            return true
        }
    }

    /// NIO's write buffer per connection (see `PeerLimits.writeBufferLow`).
    static func waterMark(_ limits: PeerLimits) -> ChannelOptions.Types.WriteBufferWaterMark {
        .init(low: limits.writeBufferLow, high: limits.maxQueuedBytes)
    }

    /// Gives back a place taken by `admit` for a connection that never ran.
    private func release() {
        state.withLockedValue { $0.connections -= 1 }
    }

    private static func addCodec(to channel: any Channel, limits: PeerLimits, responder: Bool) throws {
        let ops = channel.pipeline.syncOperations
        try ops.addHandler(FrameDecoder(maxFrameLength: limits.maxFrameLength))
        try ops.addHandler(MessageToByteHandler(FrameEncoder()))
        if responder { try ops.addHandler(FrameIdleHandler(timeout: limits.idleTimeout)) }
    }

    // MARK: Dialing

    /// Dials `host:port` and opens a channel to `remote`: IK with the ticket
    /// message when one is given (first contact), else N+KK. Returns once the
    /// channel is open; the connection then runs until either side closes.
    /// `as`: the identity to dial with (default this site's); a referee
    /// channel's asker dials with a fresh key per channel (9.8).
    public func dial(
        host: String, port: Int, remote: AgentID, ticketMessage: JSONValue? = nil, as identity: LocalSite? = nil
    ) async throws -> PeerConnection {
        let (machine, initial): (ChannelMachine, [ChannelAction])
        let me = identity ?? local
        if let ticketMessage {
            (machine, initial) = try ChannelMachine.firstContact(local: me, remote: remote, ticketMessage: ticketMessage)
        } else {
            (machine, initial) = try ChannelMachine.laterContact(local: me, remote: remote)
        }
        let limits = self.limits
        let child: NIOAsyncChannel<Frame, Frame>
        do {
            child = try await ClientBootstrap(group: group)
                .connectTimeout(.nanoseconds(Int64(limits.handshakeTimeout * 1e9)))
                .channelOption(.socketOption(.tcp_nodelay), value: 1)
                .channelOption(.writeBufferWaterMark, value: Self.waterMark(limits))
                .connect(host: host, port: port) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try Self.addCodec(to: channel, limits: limits, responder: false)
                        return try NIOAsyncChannel<Frame, Frame>(wrappingChannelSynchronously: channel)
                    }
                }
        } catch {
            throw PeerError.refused("\(host):\(port): \(error)")
        }
        state.withLockedValue { $0.connections += 1 }
        let connection = makeConnection(child.channel, machine: machine)
        start(child, connection: connection, initial: initial)
        guard await connection.waitUntilOpen() else { throw PeerError.handshakeFailed }
        return connection
    }

    // MARK: Running a connection

    private func makeConnection(_ channel: any Channel, machine: sending ChannelMachine) -> PeerConnection {
        let id = state.withLockedValue { s -> UInt64 in
            defer { s.nextID += 1 }
            s.channels[s.nextID] = channel
            return s.nextID
        }
        return PeerConnection(
            id: id, channel: channel, machine: machine,
            remoteAddress: channel.remoteAddress?.ipAddress ?? "unknown", limits: limits, logger: logger)
    }

    /// Runs the connection in its own task, kept by id until it ends (the
    /// lock is held while the task is made, so its end finds it there).
    private func start(_ child: NIOAsyncChannel<Frame, Frame>, connection: PeerConnection, initial: [ChannelAction]) {
        state.withLockedValue { s in
            s.tasks[connection.id] = Task { [self] in await run(child, connection: connection, initial: initial) }
        }
    }

    private func run(_ child: NIOAsyncChannel<Frame, Frame>, connection: PeerConnection, initial: [ChannelAction]) async {
        let channel = child.channel
        // The handshake deadline: open within the limit or be closed.
        let deadline = channel.eventLoop.scheduleTask(in: .nanoseconds(Int64(limits.handshakeTimeout * 1e9))) {
            Task { if await !connection.isOpen { connection.close() } }
        }
        do {
            try await child.executeThenClose { inbound, outbound in
                await connection.attach(outbound)
                guard await connection.perform(initial, policy: policy) else { return }
                for try await frame in inbound {
                    guard await connection.receive(frame, policy: policy) else { break }
                }
            }
        } catch {
            logger.debug("connection ended", metadata: ["conn": "\(connection.id)", "error": "\(error)"])
        }
        deadline.cancel()
        await connection.finish()
        state.withLockedValue { s in
            s.connections -= 1
            s.channels[connection.id] = nil
            s.tasks[connection.id] = nil
        }
        await policy.closed(connection)
    }

    // MARK: Stopping

    /// Stops accepting, closes every connection, and waits for the accept loop.
    public func shutdown() async {
        let (server, channels, task) = state.withLockedValue { s in (s.server, Array(s.channels.values), s.acceptTask) }
        try? await server?.close()
        for channel in channels { channel.close(promise: nil) }
        await task?.value
        // Accepted after the snapshot (before the server closed): closed and
        // cancelled as well, as a task group's children were.
        let (late, tasks) = state.withLockedValue { s in (Array(s.channels.values), Array(s.tasks.values)) }
        for channel in late { channel.close(promise: nil) }
        for task in tasks { task.cancel() }
        // Let every connection task finish before the event loops go away.
        for _ in 0..<Self.shutdownPolls where connectionCount > 0 {
            try? await Task.sleep(for: .milliseconds(10))
        }
    }

    /// Accept queue length. The per-address limits apply after accept, so
    /// the queue is shared by everyone: a long one keeps a flood from one
    /// address from crowding out a partner's connection (the kernel caps it
    /// at net.core.somaxconn).
    static let listenBacklog: Int32 = 4096

    /// Bound on the wait for connections to wind down at shutdown (× 10 ms).
    static let shutdownPolls = 300
}
