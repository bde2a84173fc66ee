import ChipChannel
import ChipModel
import ChipPeer
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Noise

/// The device's side of the user port, for the reference client and the
/// tests: register with a ticket (10.3), or open a session (10.4).
public enum UserPortClient {
    /// Registers `deviceKey` (a fresh key) at the site of `ticket`, named
    /// `deviceName`. Returns the user and device id the site stored; throws
    /// `closedSilently` for any refusal (10.3 says no more). `localAddress`,
    /// when given, is the IP address the connection is made from (a bench
    /// spreads its devices over several loopback addresses).
    public static func register(
        ticket: UserTicket, deviceName: String, deviceKey: KeyPair, timeout: Double = UserPortDefaults.handshakeTimeout,
        localAddress: String? = nil, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) async throws(UserPortError) -> (user: CUID, device: DeviceID) {
        guard UserChannelMachine.validDeviceName(deviceName) else { throw .invalidArgument("a device name is 1-64 characters") }
        let (machine, initial): (UserChannelMachine, [UserChannelAction])
        do throws(ChipChannel.ChannelError) {
            (machine, initial) = try UserChannelMachine.register(device: deviceKey, ticket: ticket, deviceName: deviceName)
        } catch {
            throw .invalidArgument("the ticket's agent is not a usable key")
        }
        let dialed = try await dial(
            ticket.address, machine: machine, initial: initial, timeout: timeout, localAddress: localAddress, group: group)
        switch dialed.answer {
        case .registered(_, let user, let device): return (user, device)
        case .versionRefused: throw .versionRefused
        case .session: throw .closedSilently
        }
    }

    /// Opens a session as `deviceKey` at the site `agent` listening at
    /// `address` (from `localAddress` when given, as in `register`).
    public static func connect(
        address: SiteAddress, agent: AgentID, deviceKey: KeyPair, timeout: Double = UserPortDefaults.handshakeTimeout,
        localAddress: String? = nil, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) async throws(UserPortError) -> UserClientSession {
        let (machine, initial): (UserChannelMachine, [UserChannelAction])
        do throws(ChipChannel.ChannelError) {
            (machine, initial) = try UserChannelMachine.session(device: deviceKey, site: agent)
        } catch {
            throw .invalidArgument("the agent id is not a usable key")
        }
        let dialed = try await dial(address, machine: machine, initial: initial, timeout: timeout, localAddress: localAddress, group: group)
        switch dialed.answer {
        case .session(let version, let agent, let grant):
            return UserClientSession(link: dialed.link, version: version, agent: agent, grant: grant, messages: dialed.messages)
        case .versionRefused: throw .versionRefused
        case .registered: throw .closedSilently
        }
    }

    private struct Dialed {
        var link: UserLink
        var answer: UserHandshakeAnswer
        var messages: AsyncStream<JSONValue>
    }

    /// The handshake's outcome, settled once by whichever comes first.
    private final class Outcome: Sendable {
        private let box = NIOLockedValueBox<(settled: Bool, timedOut: Bool)>((false, false))
        let promise: EventLoopPromise<UserHandshakeAnswer?>

        init(_ promise: EventLoopPromise<UserHandshakeAnswer?>) { self.promise = promise }

        func settle(_ answer: UserHandshakeAnswer?, timedOut: Bool = false) {
            let first = box.withLockedValue { b -> Bool in
                guard !b.settled else { return false }
                b = (true, timedOut)
                return true
            }
            if first { promise.succeed(answer) }
        }

        var timedOut: Bool { box.withLockedValue { $0.timedOut } }
    }

    private static func dial(
        _ address: SiteAddress, machine: sending UserChannelMachine, initial: [UserChannelAction], timeout: Double, localAddress: String?,
        group: any EventLoopGroup
    ) async throws(UserPortError) -> Dialed {
        let limits = UserPortLimits()
        let child: NIOAsyncChannel<Frame, Frame>
        var bootstrap = ClientBootstrap(group: group)
        if let localAddress {
            do { bootstrap = bootstrap.bind(to: try SocketAddress(ipAddress: localAddress, port: 0)) } catch {
                throw .invalidArgument("not an IP address: \(localAddress)")
            }
        }
        do {
            child =
                try await bootstrap
                .connectTimeout(.nanoseconds(Int64(timeout * 1e9)))
                .channelOption(.socketOption(.tcp_nodelay), value: 1)
                .connect(host: address.host, port: address.port) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        let ops = channel.pipeline.syncOperations
                        try ops.addHandler(FrameDecoder(maxFrameLength: FrameLimits.maxLength))
                        try ops.addHandler(MessageToByteHandler(FrameEncoder()))
                        return try NIOAsyncChannel<Frame, Frame>(wrappingChannelSynchronously: channel)
                    }
                }
        } catch {
            throw .connectFailed("\(address.host):\(address.port): \(error)")
        }
        let channel = child.channel
        let link = UserLink(channel: channel, machine: machine, maxQueuedBytes: limits.maxQueuedBytes, writeStallTimeout: limits.writeStallTimeout)
        let outcome = Outcome(channel.eventLoop.makePromise(of: UserHandshakeAnswer?.self))
        let (messages, continuation) = AsyncStream.makeStream(of: JSONValue.self)
        let deadline = channel.eventLoop.scheduleTask(in: .nanoseconds(Int64(timeout * 1e9))) {
            outcome.settle(nil, timedOut: true)
            channel.close(promise: nil)
        }
        Task {
            do {
                try await child.executeThenClose { inbound, outbound in
                    await link.attach(outbound)
                    _ = await link.start(initial)
                    reading: for try await frame in inbound {
                        for action in await link.receive(frame) {
                            switch action {
                            case .answered(let answer):
                                deadline.cancel()
                                outcome.settle(answer)
                                if await !link.isOpen { break reading }
                            case .deliver(let message):
                                continuation.yield(message.json)
                            case .close, .closeAfterSend:
                                break reading
                            case .send, .ask, .opened:
                                continue
                            }
                        }
                    }
                }
            } catch {}
            deadline.cancel()
            await link.finish()
            outcome.settle(nil)
            continuation.finish()
        }
        let answer: UserHandshakeAnswer?
        do { answer = try await outcome.promise.futureResult.get() } catch { answer = nil }
        guard let answer else { throw outcome.timedOut ? .timedOut : .closedSilently }
        return Dialed(link: link, answer: answer, messages: messages)
    }
}

/// An open session from the device's side: send requests, read replies
/// and events in the order they came.
public final class UserClientSession: Sendable {
    /// The version `A` picked.
    public let version: Int
    /// The site's agent, as `A` confirmed it.
    public let agent: AgentID
    /// The user, custody, scopes and features the site granted.
    public let grant: UserSessionGrant
    /// Replies and events, in order; ends when the connection closes.
    /// Unbounded: the device reads what its own site sends.
    public let messages: AsyncStream<JSONValue>
    let link: UserLink

    init(link: UserLink, version: Int, agent: AgentID, grant: UserSessionGrant, messages: AsyncStream<JSONValue>) {
        self.link = link
        self.version = version
        self.agent = agent
        self.grant = grant
        self.messages = messages
    }

    /// Encrypts and queues one request (never waits on the socket).
    public func send(_ message: JSONValue) async throws(UserPortError) { try await link.send(message) }

    public var isOpen: Bool { get async { await link.isOpen } }

    /// Closes the connection at once.
    public func close() { link.close() }
}
