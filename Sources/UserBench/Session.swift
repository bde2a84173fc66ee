import BenchSupport
import ChipModel
import ChipUserPort
import Foundation
import Noise

/// How one request ended.
enum Outcome: Sendable {
    case reply(JSONValue)
    case closed
    case timedOut
}

/// One user-port session driven one request at a time: the request is
/// sent, then the reply with its id awaited (events and other replies are
/// skipped). Every wait is bounded by `timeout`; one watchdog per session
/// expires a late reply (no task per request, so the figure is the port's).
actor BenchSession {
    let session: UserClientSession
    let timeout: Double
    private var waiting: (id: String, deadline: Double, continuation: CheckedContinuation<Outcome, Never>)?
    private var early: [String: JSONValue] = [:]
    private var closed = false
    private var counter = 0
    private let name: String

    init(session: UserClientSession, name: String, timeout: Double) {
        self.session = session
        self.name = name
        self.timeout = timeout
    }

    /// Opens a session as `key` (a registered device) at `address`.
    static func open(address: SiteAddress, agent: AgentID, key: KeyPair, name: String, timeout: Double) async throws -> BenchSession {
        let session: UserClientSession
        do { session = try await UserPortClient.connect(address: address, agent: agent, deviceKey: key, timeout: timeout) } catch {
            throw BenchError("session for \(name): \(error)")
        }
        let s = BenchSession(session: session, name: name, timeout: timeout)
        await s.start()
        return s
    }

    private func start() {
        let messages = session.messages
        Task { [weak self] in
            for await message in messages { await self?.deliver(message) }
            await self?.finish()
        }
        Task { [weak self] in
            while let self, await self.watch() { try? await Task.sleep(nanoseconds: 100_000_000) }
        }
    }

    /// Expires an overdue wait; false once the session is closed.
    private func watch() -> Bool {
        if let w = waiting, now() > w.deadline {
            waiting = nil
            w.continuation.resume(returning: .timedOut)
        }
        return !closed
    }

    private func deliver(_ message: JSONValue) {
        guard message["event"] == nil, let id = message["id"]?.stringValue else { return }
        if let w = waiting, w.id == id {
            waiting = nil
            w.continuation.resume(returning: .reply(message))
        } else {
            early[id] = message
        }
    }

    private func finish() {
        closed = true
        waiting?.continuation.resume(returning: .closed)
        waiting = nil
    }

    /// A fresh request id in this session.
    func nextID() -> String {
        counter += 1
        return "\(name)-\(counter)"
    }

    /// Sends `{"id", "cmd", "args"?}` and waits for its reply.
    func call(_ cmd: String, args: JSONValue? = nil) async -> Outcome {
        let id = nextID()
        var request: [String: JSONValue] = ["id": .string(id), "cmd": .string(cmd)]
        if let args { request["args"] = args }
        return await send(.object(request), id: id)
    }

    func send(_ message: JSONValue, id: String) async -> Outcome {
        if closed { return .closed }
        do { try await session.send(message) } catch { return .closed }
        if let reply = early.removeValue(forKey: id) { return .reply(reply) }
        if closed { return .closed }
        return await withCheckedContinuation { c in waiting = (id, now() + timeout, c) }
    }

    func close() {
        session.close()
    }
}

extension Outcome {
    /// The reply when it says `ok`, else why not.
    func ok(_ what: String) throws -> JSONValue {
        switch self {
        case .reply(let r):
            guard r["ok"]?.boolValue == true else { throw BenchError("\(what): \(r.canonicalString)") }
            return r
        case .closed: throw BenchError("\(what): the session closed")
        case .timedOut: throw BenchError("\(what): no reply in time")
        }
    }
}
