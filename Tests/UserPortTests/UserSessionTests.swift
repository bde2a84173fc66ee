import ChipModel
import TestSupport
import Testing

@testable import ChipProtocol

/// The session decider (10.4-10.5): requests in, replies, runs, loads and
/// events out, in the order the protocol asks.
@Suite struct UserSessionTests {
    static let all = Set(UserScope.allCases)
    static let tally = "0b1c7a52-3d4e-4f60-8a1b-2c3d4e5f6a7b"

    func machine(scopes: Set<UserScope> = all, custody: UserCustody = .site, locked: Bool = false) -> UserSessionMachine {
        UserSessionMachine(scopes: scopes, custody: custody, locked: locked)
    }

    func message(_ id: String, _ cmd: String, _ args: JSONValue = [:], idem: String? = nil) -> UserMessage {
        var o: [String: JSONValue] = ["id": .string(id), "cmd": .string(cmd), "args": args]
        if let idem { o["idem"] = .string(idem) }
        return UserMessage(json: .object(o))
    }

    func request(_ id: String, units: Int64 = 5, idem: String? = nil) -> UserMessage {
        message(id, "chit.request", ["tally": .string(Self.tally), "units": .integer(units)], idem: idem)
    }

    func runs(_ actions: [UserSessionAction]) -> [UserRequest] {
        actions.compactMap { if case .run(let r) = $0 { r } else { nil } }
    }

    func sent(_ actions: [UserSessionAction]) -> [JSONValue] {
        actions.compactMap { if case .send(let j) = $0 { j } else { nil } }
    }

    func code(_ reply: JSONValue?) -> String? { reply?["error"]?["code"]?.stringValue }

    func event(_ seq: Int64) -> UserEvent { UserEvent(topic: .chit, seq: seq, data: ["n": .integer(seq)]) }

    @Test func pingIsAnsweredInPlaceWithTheClock() {
        var m = machine(scopes: [])
        let out = m.received(message("p", "ping"), now: 1_764_633_600_000, latestSeq: 0)
        #expect(runs(out).isEmpty)
        #expect(sent(out).first?["data"]?["time"]?.stringValue == "2025-12-02T00:00:00.000Z")
        #expect(m.inFlightCount == 0)
    }

    @Test func badFramesCloseOrAnswerAsTenFiveSays() {
        var m = machine()
        #expect(m.received(UserMessage(json: [1, 2]), now: 0, latestSeq: 0) == [.close("a request must be a JSON object")])
        #expect(code(sent(m.received(message("x", "no.such"), now: 0, latestSeq: 0)).first) == "unknown_cmd")
        let noID = sent(m.received(UserMessage(json: ["cmd": "ping"]), now: 0, latestSeq: 0)).first
        #expect(code(noID) == "bad_request" && noID?["id"] == .null)
        let float = UserMessage(json: ["id": "f", "cmd": "ping"], hasBadNumber: true)
        #expect(code(sent(m.received(float, now: 0, latestSeq: 0)).first) == "bad_request")
    }

    @Test func scopesAndLocksAreCheckedBeforeTheStore() {
        var reader = machine(scopes: [.read])
        #expect(code(sent(reader.received(request("r"), now: 0, latestSeq: 0)).first) == "forbidden")
        #expect(runs(reader.received(message("l", "tally.list"), now: 0, latestSeq: 0)).count == 1)
        var locked = machine(locked: true)
        #expect(code(sent(locked.received(request("r"), now: 0, latestSeq: 0)).first) == "locked")
        #expect(runs(locked.received(message("d", "device.list"), now: 0, latestSeq: 0)).count == 1)
        locked.update(custody: .site, locked: false)
        #expect(runs(locked.received(request("r2"), now: 0, latestSeq: 0)).count == 1)
    }

    @Test func atMostThirtyTwoInFlightAndIDsAreUnique() throws {
        var m = machine()
        for i in 0..<UserSessionMachine.maxInFlight {
            #expect(runs(m.received(message("l\(i)", "tally.list"), now: 0, latestSeq: 0)).count == 1)
        }
        #expect(code(sent(m.received(message("one-more", "tally.list"), now: 0, latestSeq: 0)).first) == "rate_limited")
        #expect(code(sent(m.received(message("l0", "tally.list"), now: 0, latestSeq: 0)).first) == "bad_request")
        let first = try UserRequest(id: "l0", command: .tallyList(state: nil, page: UserPage()))
        #expect(sent(m.finished(first, .reply(UserReply.ok(id: "l0", data: [:])))).count == 1)
        #expect(runs(m.received(message("again", "tally.list"), now: 0, latestSeq: 0)).count == 1)
        #expect(m.finished(first, .reply([:])).isEmpty)  // a second answer to one request is ignored
    }

    @Test func aRepeatOfARunningRequestWaitsForIt() throws {
        var m = machine()
        let idem = "5f0e8a3c-1b2d-4c6e-9f7a-0b1c2d3e4f5a"
        let first = try #require(runs(m.received(request("a", idem: idem), now: 0, latestSeq: 0)).first)
        #expect(m.received(request("b", idem: idem), now: 0, latestSeq: 0).isEmpty)
        let out = m.finished(first, .reply(UserReply.ok(id: "a", data: ["uuid": "x"])))
        #expect(sent(out).count == 1)
        let repeatRun = try #require(runs(out).first)
        #expect(repeatRun.id == "b")
        #expect(sent(m.finished(repeatRun, .reply(UserReply.ok(id: "b", data: ["uuid": "x"], replayed: true)))).count == 1)
        #expect(m.inFlightCount == 0)
    }

    @Test func subscribeRepliesThenReplaysThenStreams() throws {
        var m = machine()
        let sub = try #require(runs(m.received(message("s", "events.subscribe", ["since": 1]), now: 0, latestSeq: 3)).first)
        let out = m.finished(sub, .subscribed(latest: 3, resync: false))
        #expect(sent(out) == [UserReply.ok(id: "s", data: ["seq": 3])])
        #expect(out.last == .loadEvents(after: 1))
        #expect(sent(m.loaded([event(2), event(3)], after: 1, latest: 3)).map { $0["seq"] } == [2, 3])
        #expect(m.eventsCommitted(latest: 3).isEmpty)
        #expect(m.eventsCommitted(latest: 4) == [.loadEvents(after: 3)])
        #expect(m.eventsCommitted(latest: 5).isEmpty)  // one load at a time
        let next = m.loaded([event(4)], after: 3, latest: 5)
        #expect(sent(next).map { $0["seq"] } == [4])
        #expect(next.last == .loadEvents(after: 4))
        #expect(sent(m.loaded([event(4), event(5)], after: 4, latest: 5)).map { $0["seq"] } == [5])  // 4 again is dropped
        #expect(m.loaded([event(6)], after: 5, latest: 6).isEmpty)  // no load waits for that batch
    }

    @Test func anOldSinceGetsOneResync() throws {
        var m = machine()
        let sub = try #require(runs(m.received(message("s", "events.subscribe", ["since": 1]), now: 0, latestSeq: 0)).first)
        let out = sent(m.finished(sub, .subscribed(latest: 90, resync: true)))
        #expect(out == [UserReply.ok(id: "s", data: ["seq": 90]), UserEvent.resync(latest: 90)])
        #expect(m.eventsCommitted(latest: 91) == [.loadEvents(after: 90)])
    }

    @Test func aCommandsEventsGoAfterItsReply() throws {
        var m = machine()
        let sub = try #require(runs(m.received(message("s", "events.subscribe"), now: 0, latestSeq: 5)).first)
        #expect(!m.finished(sub, .subscribed(latest: 5, resync: false)).contains(.loadEvents(after: 5)))
        let pay = try #require(runs(m.received(request("r"), now: 0, latestSeq: 5)).first)
        // The command committed event 6; the site's change notice comes before its reply.
        #expect(m.eventsCommitted(latest: 6) == [.loadEvents(after: 5)])
        #expect(sent(m.loaded([event(6)], after: 5, latest: 6)).isEmpty)
        let out = sent(m.finished(pay, .reply(UserReply.ok(id: "r", data: [:]))))
        #expect(out.map { $0["id"] ?? $0["seq"] } == ["r", 6])
    }

    @Test func unsubscribeStopsTheStream() throws {
        var m = machine()
        let sub = try #require(runs(m.received(message("s", "events.subscribe"), now: 0, latestSeq: 0)).first)
        _ = m.finished(sub, .subscribed(latest: 0, resync: false))
        let unsub = try #require(runs(m.received(message("u", "events.unsubscribe"), now: 0, latestSeq: 0)).first)
        #expect(sent(m.finished(unsub, .unsubscribed)) == [UserReply.ok(id: "u", data: [:])])
        #expect(m.eventsCommitted(latest: 9).isEmpty && !m.isSubscribed)
    }

    /// Seeded interleavings of requests, commits, change notices and loads:
    /// every request gets one reply, events go once in `seq` order, and none
    /// of a command's events goes before its reply.
    @Test(arguments: 0..<40) func seededInterleavingsKeepTheOrder(seed: UInt64) throws {
        var rng = SplitMix64(seed: seed)
        var m = machine()
        var committed: [UserEvent] = []
        var running: [(UserRequest, [Int64])] = []
        var pendingLoad: Int64?
        var replied = Set<String>()
        var eventOwner: [Int64: String] = [:]
        var sentSeqs: [Int64] = []
        var asked = 0

        func take(_ actions: [UserSessionAction]) throws {
            for a in actions {
                switch a {
                case .run(let r):
                    // Commits zero to two events now (before its reply).
                    var mine: [Int64] = []
                    for _ in 0..<Int.random(in: 0...2, using: &rng) {
                        let e = event(Int64(committed.count + 1))
                        committed.append(e)
                        mine.append(e.seq)
                        eventOwner[e.seq] = r.id
                    }
                    running.append((r, mine))
                case .send(let j):
                    if let id = j["id"]?.stringValue {
                        #expect(!replied.contains(id), "two replies to \(id)")
                        replied.insert(id)
                    } else if let seq = j["seq"]?.integerValue {
                        #expect(sentSeqs.last.map { seq > $0 } ?? true, "events out of order")
                        if let owner = eventOwner[seq] { #expect(replied.contains(owner), "event \(seq) before the reply to \(owner)") }
                        sentSeqs.append(seq)
                    }
                case .loadEvents(let after):
                    #expect(pendingLoad == nil, "two loads at once")
                    pendingLoad = after
                case .close(let why): Issue.record("closed: \(why)")
                }
            }
        }

        try take(m.received(message("s", "events.subscribe", ["since": 0]), now: 0, latestSeq: 0))
        for _ in 0..<300 {
            switch Int.random(in: 0..<5, using: &rng) {
            case 0 where asked < 60:
                asked += 1
                try take(m.received(request("r\(asked)"), now: 0, latestSeq: Int64(committed.count)))
            case 1 where !running.isEmpty:
                let (r, _) = running.remove(at: Int.random(in: 0..<running.count, using: &rng))
                if case .eventsSubscribe = r.command {
                    try take(m.finished(r, .subscribed(latest: Int64(committed.count), resync: false)))
                } else {
                    try take(m.finished(r, .reply(UserReply.ok(id: r.id, data: [:]))))
                }
            case 2: try take(m.eventsCommitted(latest: Int64(committed.count)))
            case 3 where pendingLoad != nil:
                let after = Int(pendingLoad ?? 0)
                pendingLoad = nil
                let n = Int.random(in: 1...3, using: &rng)
                try take(m.loaded(Array(committed.dropFirst(after).prefix(n)), after: Int64(after), latest: Int64(committed.count)))
            default: break
            }
        }
        // Drain: finish everything, then deliver the loads.
        while let (r, _) = running.popLast() {
            if case .eventsSubscribe = r.command {
                try take(m.finished(r, .subscribed(latest: Int64(committed.count), resync: false)))
            } else {
                try take(m.finished(r, .reply(UserReply.ok(id: r.id, data: [:]))))
            }
        }
        try take(m.eventsCommitted(latest: Int64(committed.count)))
        var rounds = 0
        while let after = pendingLoad, rounds < 1000 {
            rounds += 1
            pendingLoad = nil
            try take(m.loaded(Array(committed.dropFirst(Int(after)).prefix(3)), after: after, latest: Int64(committed.count)))
        }
        #expect(replied.count == asked + 1)
        #expect(sentSeqs == committed.map(\.seq))
    }
}
