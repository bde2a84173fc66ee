import ChipChannel
import ChipModel
import ChipProtocol
import ChipUserPort
import Foundation
import Noise

/// Request ids unique within this process: `c<pid>-<n>`.
enum ClientIDs {
    private static let counter = Counter()

    static func next() -> String { "c\(ProcessInfo.processInfo.processIdentifier)-\(counter.next())" }

    private final class Counter: @unchecked Sendable {
        private let lock = NSLock()
        private var n = 0
        func next() -> Int {
            lock.lock()
            defer { lock.unlock() }
            n += 1
            return n
        }
    }
}

/// How one request ended.
enum ClientOutcome: Sendable {
    case reply(JSONValue)
    case closed
    case timedOut
}

/// The text of a session that ended without an answer.
let silentCloseMessage = "the site closed the session: the device may be revoked or the site unreachable"

/// One open session as the client uses it: requests matched to their replies
/// by id (replies may come in any order, 10.5), events handed on in order.
actor ClientConnection {
    let session: UserClientSession
    nonisolated let events: AsyncStream<JSONValue>
    private let eventSink: AsyncStream<JSONValue>.Continuation
    private var waiting: [String: CheckedContinuation<ClientOutcome, Never>] = [:]
    private var early: [String: JSONValue] = [:]
    /// Ids sent by `post` (nobody waits for their replies).
    private var unwaited: Set<String> = []
    private(set) var isClosed = false

    private init(session: UserClientSession) {
        self.session = session
        (events, eventSink) = AsyncStream.makeStream(of: JSONValue.self)
    }

    nonisolated var grant: UserSessionGrant { session.grant }

    /// Opens a session for `profile` with its device key; a failure is one
    /// clear line (never a key).
    static func open(_ profile: ClientProfile, key: KeyPair, timeout: Double) async throws -> ClientConnection {
        let session: UserClientSession
        do {
            session = try await UserPortClient.connect(address: profile.address, agent: profile.agent, deviceKey: key, timeout: timeout)
        } catch {
            throw ClientFailure.connect(error, profile.address, timeout)
        }
        let connection = ClientConnection(session: session)
        await connection.start()
        return connection
    }

    private func start() {
        let messages = session.messages
        Task { [weak self] in
            for await message in messages { await self?.deliver(message) }
            await self?.finish()
        }
    }

    private func deliver(_ message: JSONValue) {
        if message["event"] == nil, let id = message["id"]?.stringValue {
            if let c = waiting.removeValue(forKey: id) {
                c.resume(returning: .reply(message))
            } else if unwaited.remove(id) == nil {
                early[id] = message
            }
        } else {
            eventSink.yield(message)
        }
    }

    private func finish() {
        isClosed = true
        for c in waiting.values { c.resume(returning: .closed) }
        waiting = [:]
        eventSink.finish()
    }

    private func expire(_ id: String) {
        waiting.removeValue(forKey: id)?.resume(returning: .timedOut)
    }

    /// Sends `message` (its `id` is `id`) and waits at most `timeout` seconds
    /// for the reply.
    func send(_ message: JSONValue, id: String, timeout: Double) async -> ClientOutcome {
        if isClosed { return .closed }
        do { try await session.send(message) } catch { return .closed }
        if let reply = early.removeValue(forKey: id) { return .reply(reply) }
        if isClosed { return .closed }
        return await withCheckedContinuation { c in
            waiting[id] = c
            Task { [weak self] in
                try? await Task.sleep(nanoseconds: UInt64(max(0, timeout) * 1e9))
                await self?.expire(id)
            }
        }
    }

    /// Sends without waiting (`client raw`, `ping` in `watch`); the reply is
    /// dropped, or handed on with the events when its id is not a string.
    func post(_ message: JSONValue) async -> Bool {
        if let id = message["id"]?.stringValue { unwaited.insert(id) }
        do { try await session.send(message) } catch { return false }
        return true
    }

    /// Sends `request` and returns the reply's `data`; an error reply, a
    /// silent close or a timeout throws one line.
    func call(_ request: UserRequest, timeout: Double) async throws -> JSONValue {
        try ClientFailure.check(await send(request.json, id: request.id, timeout: timeout), timeout: timeout)
    }

    /// Builds a request from a command (fresh id) and calls it.
    func call(_ command: DeviceCommand, idem: String? = nil, timeout: Double) async throws -> JSONValue {
        let request: UserRequest
        do { request = try UserRequest(id: ClientIDs.next(), command: command, idem: idem) } catch {
            throw CLIError("\(error.code.rawValue): \(error.message)")
        }
        return try await call(request, timeout: timeout)
    }

    func close() {
        session.close()
    }
}

/// Why a command could not finish, as the one line `chipsite: error:` prints.
enum ClientFailure {
    static func connect(_ error: UserPortError, _ address: SiteAddress, _ timeout: Double) -> CLIError {
        switch error {
        case .connectFailed(let why): return CLIError("cannot reach the site's user port at \(address.host):\(address.port): \(why)")
        case .timedOut: return CLIError("the site at \(address.host):\(address.port) did not answer within \(seconds(timeout))")
        case .closedSilently: return CLIError(silentCloseMessage)
        default: return CLIError(error.description)
        }
    }

    /// The reply's `data`, or the error as `code: message`.
    static func check(_ outcome: ClientOutcome, timeout: Double) throws -> JSONValue {
        switch outcome {
        case .closed: throw CLIError(silentCloseMessage)
        case .timedOut: throw CLIError("no reply from the site within \(seconds(timeout))")
        case .reply(let reply):
            if reply["ok"] == true { return reply["data"] ?? .null }
            let code = reply["error"]?["code"]?.stringValue ?? "error"
            let message = reply["error"]?["message"]?.stringValue ?? "the site refused the request"
            throw CLIError("\(Printable.clip(code)): \(Printable.line(String(message.unicodeScalars.prefix(maxMessage))))")
        }
    }

    /// The longest error message shown from the site (it is the site's text).
    static let maxMessage = 500

    static func seconds(_ t: Double) -> String {
        t == t.rounded() ? "\(Int(t)) s" : "\(t) s"
    }
}
