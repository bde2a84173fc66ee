import ChipChannel
import ChipModel
import Logging
import NIOCore

/// What the site decides and does for the network layer. The engine
/// implements it; the network layer knows nothing of tallies or tickets.
public protocol PeerPolicy: Sendable {
    /// Answers a channel question (a ticket, or whether an agent is a partner).
    func judge(_ question: ChannelQuestion, from address: String) async -> Bool
    /// A channel is open with an authenticated peer.
    func opened(_ connection: PeerConnection) async
    /// A message that passed the envelope checks, in the order received.
    func received(_ message: JSONValue, on connection: PeerConnection) async
    /// The connection is gone.
    func closed(_ connection: PeerConnection) async
    /// `received` has returned for a message on `connection` (the policy may
    /// then look whether the message changed anything).
    func handled(on connection: PeerConnection) async
}

extension PeerPolicy {
    public func handled(on connection: PeerConnection) async {}
}

/// One TCP connection to another site, driving a ``ChannelMachine``. Frames
/// are read in order by one task; `send` may be called from any task.
public actor PeerConnection {
    public nonisolated let id: UInt64
    public nonisolated let isInitiator: Bool
    /// The agent this side of the channel speaks as.
    public nonisolated let localAgent: AgentID
    /// The remote IP address (for logs and rate limits).
    public nonisolated let remoteAddress: String
    nonisolated let channel: any Channel
    private var machine: ChannelMachine
    private var outbound: NIOAsyncChannelOutboundWriter<Frame>?
    private var openWaiters: [CheckedContinuation<Bool, Never>] = []
    private var finished = false
    private let logger: Logger
    private let limits: PeerLimits

    /// The authenticated peer once the channel is open.
    public private(set) var peer: AgentID?

    init(id: UInt64, channel: any Channel, machine: sending ChannelMachine, remoteAddress: String, limits: PeerLimits, logger: Logger) {
        self.id = id
        self.limits = limits
        self.channel = channel
        self.machine = machine
        self.isInitiator = machine.isInitiator
        self.localAgent = machine.localAgent
        self.remoteAddress = remoteAddress
        var logger = logger
        logger[metadataKey: "conn"] = "\(id)"
        self.logger = logger
    }

    public var isOpen: Bool { machine.isOpen && !finished }

    /// Encrypts one message and queues it for the writer; throws if the
    /// channel is not open. Never waits for the peer's socket, so no task
    /// of the engine (or the reading task) is held up by a slow peer.
    public func send(_ message: JSONValue) async throws {
        guard !finished, outbound != nil else { throw ChannelError.notOpen }
        for action in try machine.send(message) {
            if case .send(let frame) = action { try enqueue(frame) }
        }
    }

    /// Whether less than half of `maxQueuedBytes` waits to be written: the
    /// engine's delivery passes send only while there is room, and go on in
    /// a later pass, so only replies can fill the rest. A false answer arms
    /// the `whenRoom` callback: it runs once the queue is below half again.
    public var hasRoom: Bool {
        let room = queuedBytes < limits.maxQueuedBytes / 2
        if !room { roomWanted = true }
        return room
    }

    /// Called (once per false `hasRoom`) when the queue has drained below
    /// half of `maxQueuedBytes` again; never after the connection finished.
    public func whenRoom(_ callback: @escaping @Sendable () -> Void) { onRoom = callback }

    private var roomWanted = false
    private var onRoom: (@Sendable () -> Void)?

    /// Frames encrypted but not yet written, in nonce order. Encryption
    /// happens inside the actor without a suspension, so queue order is
    /// nonce order; one writer task per connection keeps it on the wire.
    /// Bytes in `queue` are capped at `limits.maxQueuedBytes` (NIO's own
    /// buffer holds at most as much again): a peer that stops reading gets
    /// its channel dropped, and what was not sent stays in the outbox.
    private var queue: [Frame] = []
    private var queuedBytes = 0
    private var writerWake: CheckedContinuation<Void, Never>?

    private static func wireSize(_ frame: Frame) -> Int { FrameLimits.lengthPrefixBytes + 1 + frame.body.count }

    private func enqueue(_ frame: Frame) throws {
        guard !finished else { throw ChannelError.notOpen }
        let size = Self.wireSize(frame)
        guard queue.isEmpty || queuedBytes + size <= limits.maxQueuedBytes else {
            _ = stop("peer not reading: \(queuedBytes) bytes queued")
            throw ChannelError.notOpen
        }
        queue.append(frame)
        queuedBytes += size
        writerWake?.resume()
        writerWake = nil
    }

    /// The connection's one writer: takes frames in order and waits while
    /// the peer's socket is full. NIO's buffer resumes a waiting write once
    /// 64 KiB have drained (PeerNode's water marks); a peer that takes less
    /// than that in `writeStallTimeout` is cut off (the write then fails).
    private func writeLoop() async {
        while !finished {
            guard !queue.isEmpty else {
                await withCheckedContinuation { writerWake = $0 }
                continue
            }
            let next = queue.removeFirst()
            queuedBytes -= Self.wireSize(next)
            if roomWanted, queuedBytes < limits.maxQueuedBytes / 2 {
                roomWanted = false
                onRoom?()
            }
            guard let outbound else { return }
            let channel = self.channel
            let watchdog = channel.eventLoop.scheduleTask(in: .nanoseconds(Int64(limits.writeStallTimeout * 1e9))) {
                channel.close(promise: nil)
            }
            do {
                try await outbound.write(next)
                watchdog.cancel()
            } catch {
                watchdog.cancel()
                _ = stop("write failed")
                return
            }
        }
    }

    /// Closes the connection; nothing more is sent.
    public nonisolated func close() { channel.close(promise: nil) }

    /// Waits until the channel is open (true) or has closed (false).
    func waitUntilOpen() async -> Bool {
        if machine.isOpen { return true }
        if finished { return false }
        return await withCheckedContinuation { openWaiters.append($0) }
    }

    func attach(_ writer: NIOAsyncChannelOutboundWriter<Frame>) {
        outbound = writer
        Task { await self.writeLoop() }
    }

    func receive(_ frame: Frame, policy: any PeerPolicy) async -> Bool {
        await perform(machine.receive(frame), policy: policy)
    }

    /// Carries out the machine's actions; false once the connection must close.
    func perform(_ actions: [ChannelAction], policy: any PeerPolicy) async -> Bool {
        for action in actions {
            switch action {
            case .send(let frame):
                guard outbound != nil else { return false }
                do { try enqueue(frame) } catch { return stop("write failed") }
            case .ask(let question):
                let accepted = await policy.judge(question, from: remoteAddress)
                guard await perform(machine.answer(accepted), policy: policy) else { return false }
            case .opened(let agent):
                peer = agent
                logger.debug("channel open", metadata: ["peer": "\(agent)", "initiator": "\(isInitiator)"])
                for waiter in openWaiters { waiter.resume(returning: true) }
                openWaiters.removeAll()
                await policy.opened(self)
            case .deliver(let message):
                await policy.received(message, on: self)
                await policy.handled(on: self)
            case .dropped(let why):
                logger.debug("message dropped", metadata: ["why": "\(why)"])
            case .close(let why):
                return stop(why)
            }
        }
        return !machine.isClosed
    }

    func stop(_ why: String) -> Bool {
        if !finished { logger.debug("closing", metadata: ["why": "\(why)"]) }
        finish()
        close()
        return false
    }

    func finish() {
        finished = true
        onRoom = nil
        queue.removeAll()
        queuedBytes = 0
        writerWake?.resume()
        writerWake = nil
        machine.shutdown()
        for waiter in openWaiters { waiter.resume(returning: false) }
        openWaiters.removeAll()
    }
}
