import ChipChannel
import ChipModel
import ChipUserPort
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Noise
import TestSupport
import Testing

/// A site's identity for the tests.
struct TestSite {
    let key = SigningKey.generate()
    var agent: AgentID { (try? AgentID(publicKey: key.publicKey)) ?? { preconditionFailure("a fresh key is an agent") }() }
    var local: LocalSite {
        get throws {
            var sk = key.curve25519SecretKey()
            defer { Crypto.wipe(&sk) }
            return LocalSite(agent: agent, staticKey: try KeyPair(privateKey: sk))
        }
    }
}

/// The site in memory: tokens to users, devices to grants; echoes every request.
actor FakeHost: UserPortHost {
    var tokens: [String: CUID] = [:]
    var devices: [DeviceID: UserSessionGrant] = [:]
    private(set) var registerCalls = 0
    private(set) var sessionCalls = 0
    private(set) var openedCount = 0
    private(set) var closedCount = 0
    private(set) var receivedCount = 0
    /// The source address of each `register` and `session` question, in order.
    private(set) var addresses: [String] = []
    var asked: Int { registerCalls + sessionCalls }

    func addToken(_ token: String, user: CUID) { tokens[token] = user }

    func register(_ registration: UserRegistration, from address: String) async -> CUID? {
        registerCalls += 1
        addresses.append(address)
        guard let user = tokens.removeValue(forKey: registration.token) else { return nil }
        devices[registration.device] = UserSessionGrant(user: user, custody: .device, scopes: Set(UserScope.allCases), features: ["events"])
        return user
    }

    /// While set, `session` waits for `releaseSessions` (a slow site).
    var holdSessions = false
    private var held: [CheckedContinuation<Void, Never>] = []
    var heldCount: Int { held.count }
    func hold() { holdSessions = true }
    func releaseSessions() {
        holdSessions = false
        for waiter in held { waiter.resume() }
        held.removeAll()
    }

    func session(device: DeviceID, from address: String) async -> UserSessionGrant? {
        sessionCalls += 1
        addresses.append(address)
        if holdSessions { await withCheckedContinuation { held.append($0) } }
        return devices[device]
    }

    func opened(_ session: UserSession) async { openedCount += 1 }

    func received(_ message: UserMessage, on session: UserSession) async {
        receivedCount += 1
        try? await session.send(["id": message.json["id"] ?? nil, "ok": true, "data": message.json])
    }

    func closed(_ session: UserSession) async { closedCount += 1 }
}

func token(_ n: Int) -> String { String(repeating: String(format: "%02x", n % 256), count: 16) }

/// A listener on loopback with a fake host.
struct Fixture {
    let site = TestSite()
    let host = FakeHost()
    let listener: UserPortListener
    let port: Int
    let alice: CUID

    init(_ configure: (inout UserPortLimits) -> Void = { _ in }) async throws {
        var limits = UserPortLimits()
        limits.handshakeBurst = 100
        limits.handshakeRate = 100
        configure(&limits)
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        listener = UserPortListener(local: try site.local, limits: limits, host: host, group: MultiThreadedEventLoopGroup.singleton, logger: logger)
        port = try await listener.listen(host: "127.0.0.1", port: 0)
        alice = try CUID("alice")
    }

    var address: SiteAddress { get throws { try SiteAddress(host: "127.0.0.1", port: port) } }

    func ticket(_ token: String) throws -> UserTicket {
        try UserTicket(address: try address, agent: site.agent, user: alice, token: token, expires: nil)
    }

    /// Registers a fresh device for alice; returns its key.
    func registeredDevice(_ n: Int = 1) async throws -> KeyPair {
        let key = KeyPair.generate()
        await host.addToken(token(n), user: alice)
        _ = try await UserPortClient.register(ticket: try ticket(token(n)), deviceName: "device \(n)", deviceKey: key)
        return key
    }

    func connect(_ key: KeyPair) async throws -> UserClientSession {
        try await UserPortClient.connect(address: try address, agent: site.agent, deviceKey: key)
    }
}

/// Collects a client session's messages without ever cancelling the stream.
final class Inbox: Sendable {
    private let box = NIOLockedValueBox<(messages: [JSONValue], ended: Bool)>(([], false))

    init(_ stream: AsyncStream<JSONValue>) {
        Task { [box] in
            for await message in stream { box.withLockedValue { $0.messages.append(message) } }
            box.withLockedValue { $0.ended = true }
        }
    }

    var messages: [JSONValue] { box.withLockedValue { $0.messages } }
    var ended: Bool { box.withLockedValue { $0.ended } }
}

/// What a raw connection saw.
final class RawState: Sendable {
    private let box = NIOLockedValueBox<(bytes: [UInt8], closed: Bool)>(([], false))
    func append(_ bytes: [UInt8]) { box.withLockedValue { $0.bytes += bytes } }
    func setClosed() { box.withLockedValue { $0.closed = true } }
    var bytes: [UInt8] { box.withLockedValue { $0.bytes } }
    var closed: Bool { box.withLockedValue { $0.closed } }
}

private final class Collector: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    let state: RawState
    init(_ state: RawState) { self.state = state }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = unwrapInboundIn(data)
        if let bytes = buffer.readBytes(length: buffer.readableBytes) { state.append(bytes) }
    }

    func channelInactive(context: ChannelHandlerContext) {
        state.setClosed()
        context.fireChannelInactive()
    }
}

/// A TCP connection that writes whatever bytes a test gives it.
struct RawClient {
    let channel: any Channel
    let state: RawState

    static func connect(port: Int, receiveBuffer: Int32? = nil) async throws -> RawClient {
        let state = RawState()
        var bootstrap = ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(Collector(state)) }
            }
        if let receiveBuffer { bootstrap = bootstrap.channelOption(.socketOption(.so_rcvbuf), value: SocketOptionValue(receiveBuffer)) }
        let channel = try await bootstrap.connect(host: "127.0.0.1", port: port).get()
        return RawClient(channel: channel, state: state)
    }

    func send(_ bytes: [UInt8]) async {
        try? await channel.writeAndFlush(channel.allocator.buffer(bytes: bytes)).get()
    }

    func waitClosed(_ timeout: Double) async -> Bool { await eventually(timeout) { state.closed } }

    /// Frames received so far.
    var frames: [Frame] {
        var reader = FrameReader()
        reader.append(state.bytes)
        var out: [Frame] = []
        while let frame = try? reader.next() { out.append(frame) }
        return out
    }

    func close() { channel.close(promise: nil) }
}

/// A raw connection that opens a session with a machine, then sends what the test likes.
struct RawSession {
    let raw: RawClient
    var machine: UserChannelMachine

    static func open(_ fixture: Fixture, key: KeyPair, receiveBuffer: Int32? = nil) async throws -> RawSession {
        let raw = try await RawClient.connect(port: fixture.port, receiveBuffer: receiveBuffer)
        var (machine, actions) = try UserChannelMachine.session(device: key, site: fixture.site.agent)
        for case .send(let frame) in actions { await raw.send(frame.encoded) }
        #expect(await eventually(10) { !raw.frames.isEmpty || raw.state.closed })
        let a = try #require(raw.frames.first)
        actions = machine.receive(a)
        #expect(machine.isOpen)
        return RawSession(raw: raw, machine: machine)
    }
}

/// `waitUntil`, always the async one (a closure without `await` would pick
/// the blocking one, and hold a thread of the pool the host runs on).
func eventually(_ timeout: Double, every interval: Double = 0.02, _ condition: () async throws -> Bool) async rethrows -> Bool {
    try await waitUntil(timeout: timeout, every: interval, condition)
}
