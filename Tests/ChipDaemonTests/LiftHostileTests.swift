import ChipModel
import ChipProtocol
import Foundation
import GRDB
import NIOConcurrencyHelpers
import Testing
import TestSupport
@testable import ChipDaemon
@testable import ChipStore

/// Hostile partners and referees against real site files (section 9.10).
@Suite(.serialized) struct LiftHostileTests {
    /// The referee (here the originator a) also signs `void` for a lift it
    /// decided `good`: b keeps good, stores the void as proof, drops a from
    /// its accept list and tells its operator (doctor); a promise whose
    /// chit was altered on the way is refused `invalid` and stored nowhere.
    @Test func anEquivocatingRefereeAndAnAlteredPromise() async throws {
        let (net, tallies) = try await LiftFaultTests.line(["a", "b", "c"])
        let promises = NIOLockedValueBox<[JSONValue]>([])
        await net["c"].daemon?.engine.injectFaults { m, _ in
            if m["target"]?.stringValue == "lift", m["action"]?.stringValue == "promise" { promises.withLockedValue { $0.append(m) } }
            return .deliver
        }
        let request = try LiftFaultTests.pay(net, from: "a", to: "c", units: 2000)
        #expect(try await LiftFaultTests.finalState(net, "a", request) == .good)
        #expect(try await net.quietAudit() == [])
        await net.stop()
        let lift = try #require(try net["a"].store.liftRequest(request)?.lifts.first)
        let b = net["b"], a = net["a"]

        // a signs void too and sends it to b on their hop.
        let header = try #require(try await b.store.database.read { db in try SiteStore.storedLift(db, lift) }?.record.header)
        let ab = tallies[0]
        let hop = try #require(header.path.firstIndex(of: HopNonce.nonce(qid: header.qid, tally: ab) ?? ""))
        let t = try b.store.tally(ab)
        let core = try #require(t.core)
        let void = try SignedDecision.make(lift: lift, result: .void, date: header.deadline, commit: nil, key: a.key)
        let m = LiftMessage(to: .user(core.cert(t.side).chad), from: .user(core.cert(t.side.other).chad), body: .decision(void, hop: hop))
        let outcome = try b.store.receiveLift(m, from: a.agent, siteKey: b.key, sealingKey: nil, now: wallClockMilliseconds())
        guard case .applied(let replies) = outcome else { Issue.record("not applied: \(outcome)"); return }
        #expect(replies.count == 1, "acknowledged")
        #expect(try b.store.liftState(lift) == .good)
        let proof = try await b.store.database.read { db in
            try Int.fetchOne(db, sql: "SELECT count(*) FROM lift_decisions WHERE lift = ? AND result = 'void' AND applied = 0", arguments: [lift])
        }
        #expect(proof == 1)
        #expect(try b.store.droppedReferees().map(\.agent) == [a.agent.description])
        #expect(try await b.store.database.read { db in try SiteStore.acceptsReferee(db, a.agent) } == false)
        #expect(try net.audit() == [])

        // A promise to c with a forged header (a new uuid, units and origin
        // key) whose chit b's agent did not sign: refused `invalid`, nothing stored.
        let real = try #require(promises.withLockedValue { $0.first })
        guard case .lift(let taken) = try SiteMessage(json: real), case .promise(let h, let i, let chit) = taken.body else {
            Issue.record("no promise taken")
            return
        }
        let forged = try LiftHeader.make(
            uuid: UUID().uuidString.lowercased(), kind: h.kind, qid: h.qid, date: h.date, deadline: h.deadline, units: h.units + 1,
            path: h.path, referee: h.referee, find: h.find, originKey: SigningKey.generate())
        let fakeChit = try LiftChit.make(header: forged, tally: chit.tally, by: chit.by, agentKey: SigningKey.generate())
        let altered = LiftMessage(to: taken.to, from: taken.from, body: .promise(header: forged, hop: i, chit: fakeChit))
        let before = try await net["c"].store.database.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM chits") }
        let refused = try net["c"].store.receiveLift(
            altered, from: b.agent, siteKey: net["c"].key, sealingKey: nil, now: wallClockMilliseconds())
        guard case .applied(let replies) = refused, case .lift(let reply)? = replies.first, case .refuse(_, _, let reason) = reply.body else {
            Issue.record("a forged promise was not refused: \(refused)")
            return
        }
        #expect(reason == .invalid)
        let after = try await net["c"].store.database.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM chits") }
        #expect(before == after, "nothing stored")
    }
}

/// The referee channel (9.8): a site that shares no tally with the referee
/// reaches it anyway.
@Suite(.serialized) struct LiftRefereeChannelTests {
    /// c withholds the decision from d (it neither passes it on, nor answers
    /// d's `status`, nor sends the chain entry): past the deadline d asks the
    /// referee (a, with whom it shares no tally) over a referee channel.
    @Test func aWithheldDecisionIsAskedOfTheReferee() async throws {
        let (net, _) = try await LiftFaultTests.line(settings: LiftEngineSettings(interval: 0, min: 1, lifeMs: 12_000))
        let c = net["c"].agent
        await net["d"].daemon?.engine.injectFaults { m, from in
            guard from == c, let target = m["target"]?.stringValue, let action = m["action"]?.stringValue else { return .deliver }
            if target == "chit", action == "upd" { return .drop }
            return target == "lift" && ["good", "void", "pending"].contains(action) ? .drop : .deliver
        }
        // Who asks a (the referee) a `query`, and as whom.
        let askers = NIOLockedValueBox<[(peer: AgentID, from: String?)]>([])
        await net["a"].daemon?.engine.observe { m, peer in
            guard m["target"]?.stringValue == "lift", m["action"]?.stringValue == "query" else { return }
            askers.withLockedValue { $0.append((peer, m["from"]?["agent"]?.stringValue)) }
        }
        let request = try LiftFaultTests.pay(net, from: "a", to: "d", units: 3000)
        #expect(try await LiftFaultTests.finalState(net, "a", request) == .good)
        let lift = try #require(try net["a"].store.liftRequest(request)?.lifts.first)
        #expect(try net["d"].store.liftState(lift) == .part, "d has not heard yet")
        #expect(try await eventually(40) { try net["d"].store.liftState(lift) == .good }, "d asked the referee")
        // d asked with a fresh key (9.8): a never learnt that it was d.
        let asked = askers.withLockedValue { $0 }
        #expect(!asked.isEmpty, "d's query reached a")
        for q in asked {
            #expect(q.peer != net["d"].agent, "d dialed the referee with its own site key")
            #expect(q.from == q.peer.description, "the query's from is the channel's fresh agent")
        }
        // c behaves again; d's new channel brings the chain entries it missed.
        await net["d"].daemon?.engine.injectFaults(nil)
        let port = try await net["d"].store.database.read { db in try SiteStore.address(db).port }
        await net["d"].stop()
        try await net["d"].start(port: port)
        #expect(try await net.quietAudit(30) == [])
        await net.stop()
    }

    /// A referee channel carries only commit, abort and query: a tally
    /// message on it closes it.
    @Test func aRefereeChannelClosesOnAnythingElse() async throws {
        let net = try LiftNetwork(["a", "z"])
        try await net.start()
        let a = net["a"], z = net["z"]
        let node = try #require(await z.daemon?.engine.node)
        let port = try await a.store.database.read { db in try SiteStore.address(db).port }
        let channel = try await node.dial(host: "127.0.0.1", port: port, remote: a.agent)
        #expect(try await eventually(5) { await a.daemon?.engine.openRefereeChannels() == 1 }, "a stranger may open a referee channel")
        try await channel.send(try z.message("offer", from: "z", to: a, toCuid: "a"))
        #expect(try await eventually(10) { await a.daemon?.engine.openRefereeChannels() == 0 }, "closed at once")
        #expect(await eventually(5) { await channel.isOpen == false })
        // lift.referee off: a stranger is refused at the handshake.
        await a.daemon?.engine.setLiftSettings(LiftEngineSettings(interval: 0, min: 1, referee: false))
        await #expect(throws: (any Error).self) { _ = try await node.dial(host: "127.0.0.1", port: port, remote: a.agent) }
        await net.stop()
    }
}

/// Discovery floods (9.9): a partner sending far more than 10 queries a
/// second gets `busy`, and another partner's lift through the same site
/// still passes.
@Suite(.serialized) struct LiftFloodTests {
    @Test func aFloodOfRouteQueriesIsAnsweredBusyAndLiftsStillPass() async throws {
        let (net, tallies) = try await LiftFaultTests.line(["a", "b", "c"])
        let a = net["a"], b = net["b"]
        let t = try a.store.tally(tallies[0])
        let core = try #require(t.core)
        let engine = try #require(a.daemon?.engine)
        // 60 well-formed circular queries from a's user to b's user at once, each a new qid.
        for _ in 0..<60 {
            let qid = try #require(HopNonce.qid(random: Crypto.randomBytes(HopNonce.qidBytes)))
            let q = RouteQuery(
                qid: qid, kind: .circ, units: 1000, min: 1000, ttl: 3, wait: 2000, referee: try a.store.liftSite(),
                find: .hop(try #require(HopNonce.nonce(qid: qid, tally: UUID().uuidString.lowercased()))),
                path: [try #require(HopNonce.nonce(qid: qid, tally: t.uuid))])
            let m = RouteMessage(to: core.cert(t.side.other).chad, from: core.cert(t.side).chad, body: .query(q))
            _ = await engine.sendDirect(.route(m), to: b.agent, address: m.to.address)
        }
        #expect(
            await eventually(10) { a.inbox.messages.filter { $0["object"]?["reason"]?.stringValue == "busy" }.count >= 40 },
            "all but about 10 a second are answered busy")
        // A healthy partner's lift through b in the same seconds still passes.
        let request = try LiftFaultTests.pay(net, from: "c", to: "a", units: 1000)
        #expect(try await LiftFaultTests.finalState(net, "c", request) == .good, "a healthy partner's lift passes during the flood")
        #expect(try await net.quietAudit() == [])
        await net.stop()
    }
}
