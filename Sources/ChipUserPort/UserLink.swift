import ChipChannel
import ChipModel
import NIOCore

/// Why a user-port call did not work. Short, and never carries a key or a token.
public enum UserPortError: Error, Equatable, Sendable, CustomStringConvertible {
    /// TCP did not connect (the address and the system's reason).
    case connectFailed(String)
    /// No answer within the handshake timeout.
    case timedOut
    /// The site closed without an answer: a refused registration, or an
    /// unknown, revoked or over-the-limit device (10.3, 10.4 say no more).
    case closedSilently
    /// No common protocol version (10.3, 10.4).
    case versionRefused
    /// The session is not open (any more).
    case notOpen
    /// A message is larger than one `T` frame carries.
    case tooLarge(Int)
    /// The agent id does not give a usable Noise key, or the device name is not 1-64 characters.
    case invalidArgument(String)

    public var description: String {
        switch self {
        case .connectFailed(let why): return "connection failed: \(why)"
        case .timedOut: return "the site did not answer in time"
        case .closedSilently: return "the site closed the connection without an answer"
        case .versionRefused: return "the site speaks no common protocol version"
        case .notOpen: return "the session is not open"
        case .tooLarge(let n): return "a message of \(n) bytes is larger than one frame"
        case .invalidArgument(let why): return why
        }
    }
}

/// One user-port connection's machine and its outbound queue, for either
/// side. Encryption happens inside the actor without a suspension, so queue
/// order is nonce order; one writer task takes frames in order and waits
/// while the socket is full, so `send` never waits on the other side.
actor UserLink {
    nonisolated let channel: any Channel
    private var machine: UserChannelMachine
    private var outbound: NIOAsyncChannelOutboundWriter<Frame>?
    private let maxQueuedBytes: Int
    private let writeStallTimeout: Double
    private var queue: [Frame] = []
    private var queuedBytes = 0
    private var writing = false
    /// Writes completed, and whether the watchdog timer is armed.
    private var writesDone: UInt64 = 0
    private var watchdogArmed = false
    private var writerWake: CheckedContinuation<Void, Never>?
    private var drainWaiters: [CheckedContinuation<Void, Never>] = []
    private(set) var finished = false

    init(channel: any Channel, machine: sending UserChannelMachine, maxQueuedBytes: Int, writeStallTimeout: Double) {
        self.channel = channel
        self.machine = machine
        self.maxQueuedBytes = maxQueuedBytes
        self.writeStallTimeout = writeStallTimeout
    }

    var isOpen: Bool { machine.isOpen && !finished }

    /// Closes the connection at once; nothing more is sent.
    nonisolated func close() { channel.close(promise: nil) }

    func attach(_ writer: NIOAsyncChannelOutboundWriter<Frame>) {
        outbound = writer
        Task { await self.writeLoop() }
    }

    // MARK: Feeding the machine (frames queued, other actions returned)

    func start(_ actions: [UserChannelAction]) -> [UserChannelAction] { route(actions) }
    func receive(_ frame: Frame) -> [UserChannelAction] { route(machine.receive(frame)) }
    func answerRegistration(_ user: CUID?) -> [UserChannelAction] { route(machine.answerRegistration(user)) }
    func answerSession(_ grant: UserSessionGrant?) -> [UserChannelAction] { route(machine.answerSession(grant)) }

    /// Encrypts one JSON message into a `T` frame and queues it.
    func send(_ message: JSONValue) throws(UserPortError) {
        guard !finished, outbound != nil, machine.isOpen else { throw .notOpen }
        let actions: [UserChannelAction]
        do throws(ChipChannel.ChannelError) {
            actions = try machine.send(message)
        } catch {
            if case .messageTooLarge(let n) = error { throw .tooLarge(n) }
            throw .notOpen
        }
        for case .send(let frame) in actions {
            guard enqueue(frame) else { throw .notOpen }
        }
    }

    private func route(_ actions: [UserChannelAction]) -> [UserChannelAction] {
        var rest: [UserChannelAction] = []
        for action in actions {
            if case .send(let frame) = action {
                guard enqueue(frame) else { return rest + [.close("not reading")] }
            } else {
                rest.append(action)
            }
        }
        return rest
    }

    // MARK: The queue

    private static func wireSize(_ frame: Frame) -> Int { FrameLimits.lengthPrefixBytes + 1 + frame.body.count }

    /// Queues a frame; false (and the connection closed) when the queue would
    /// pass `maxQueuedBytes`: the other side is not reading.
    private func enqueue(_ frame: Frame) -> Bool {
        guard !finished else { return false }
        let size = Self.wireSize(frame)
        guard queue.isEmpty || queuedBytes + size <= maxQueuedBytes else {
            finish()
            close()
            return false
        }
        queue.append(frame)
        queuedBytes += size
        writerWake?.resume()
        writerWake = nil
        return true
    }

    /// Waits until every queued frame has been handed to NIO (or the link finished).
    func drained() async {
        if finished || (queue.isEmpty && !writing) { return }
        await withCheckedContinuation { drainWaiters.append($0) }
    }

    private func wakeDrainWaiters() {
        for waiter in drainWaiters { waiter.resume() }
        drainWaiters.removeAll()
    }

    private func writeLoop() async {
        while !finished {
            guard !queue.isEmpty else {
                wakeDrainWaiters()
                await withCheckedContinuation { writerWake = $0 }
                continue
            }
            let next = queue.removeFirst()
            queuedBytes -= Self.wireSize(next)
            guard let outbound else { return }
            if !watchdogArmed { armWatchdog(seen: writesDone) }
            writing = true
            do {
                try await outbound.write(next)
                writing = false
                writesDone &+= 1
            } catch {
                writing = false
                finish()
                close()
                return
            }
        }
        wakeDrainWaiters()
    }

    // MARK: The write watchdog

    /// One timer per busy stretch, not one per frame: it fires every
    /// `writeStallTimeout` while frames are being written and closes the
    /// connection when no write completed since it was armed (the other
    /// side stopped reading: a write waits for NIO's buffer to drain). So a
    /// stalled write is cut after one to two periods.
    private func armWatchdog(seen: UInt64) {
        watchdogArmed = true
        channel.eventLoop.scheduleTask(in: .nanoseconds(Int64(writeStallTimeout * 1e9))) { [weak self] in
            Task { await self?.watchdogFired(seen: seen) }
        }
    }

    private func watchdogFired(seen: UInt64) {
        watchdogArmed = false
        guard !finished else { return }
        if writing, writesDone == seen {
            finish()
            close()
            return
        }
        if writing || !queue.isEmpty { armWatchdog(seen: writesDone) }
    }

    /// Marks the link finished and wipes the machine's keys.
    func finish() {
        finished = true
        queue.removeAll()
        queuedBytes = 0
        writerWake?.resume()
        writerWake = nil
        wakeDrainWaiters()
        machine.shutdown()
    }
}
