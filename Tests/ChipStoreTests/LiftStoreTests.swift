import ChipModel
import Foundation
import GRDB
import Testing
import ChipProtocol
@testable import ChipStore

/// Trading variables (9.2), the `lift.*` settings and the lifts a site holds,
/// on real site files. Lift rows are written with SQL, as the lift engine will.
@Suite struct LiftStoreTests {
    /// b (bob) is the stock and grants alice 1000 CHIPs; a (alice) grants nothing.
    static func openTally() throws -> (PTwoSites, String) {
        let s = try PTwoSites()
        return (s, try ChainRun.openTally(s, issuerSide: .stock, limit: 1_000_000))
    }

    static func row(_ store: SiteStore, _ id: String) throws -> Row? {
        try store.database.read { db in try Row.fetchOne(db, sql: "SELECT * FROM tallies WHERE uuid = ?", arguments: [id]) }
    }

    static func loaded(_ store: SiteStore, _ id: String) throws -> TradingVariables {
        let t = try store.tally(id)
        return try store.database.read { db in try SiteStore.tradingVariables(db, tally: t) }
    }

    @Test func theDefaultsAreZeroAndTheHalfsLimit() throws {
        let (s, id) = try Self.openTally()
        let t = try s.b.tally(id)
        #expect(t.side == .stock)
        #expect(t.trade == TradingVariables.defaults(limit: 1_000_000))
        #expect(try Self.loaded(s.b, id) == TradingVariables.defaults(limit: 1_000_000))
        // alice's half grants nothing: bound 0.
        #expect(try s.a.tally(id).trade == TradingVariables.defaults(limit: 0))
    }

    @Test func setTradeChangesOnlyWhatIsGiven() throws {
        let (s, id) = try Self.openTally()
        var t = try s.b.setTrade(tally: id, target: 500_000)
        #expect(t.trade == (try TradingVariables(target: 500_000, bound: 1_000_000, reward: 0, clutch: 0, limit: 1_000_000)))
        // The bound still follows the limit (NULL in the file).
        #expect((try Self.row(s.b, id)?["trade_bound"] as Int64?) == nil)
        t = try s.b.setTrade(tally: String(id.prefix(8)), bound: 800_000, reward: 5, clutch: -5)
        #expect(t.trade == (try TradingVariables(target: 500_000, bound: 800_000, reward: 5, clutch: -5, limit: 1_000_000)))
        t = try s.b.setTrade(tally: id, clutch: 7)
        #expect(t.trade == (try TradingVariables(target: 500_000, bound: 800_000, reward: 5, clutch: 7, limit: 1_000_000)))
        #expect(try Self.loaded(s.b, id) == t.trade)
        // `.some(nil)`: the bound follows the limit again.
        t = try s.b.setTrade(tally: id, bound: .some(nil))
        #expect(t.trade?.bound == 1_000_000)
        #expect((try Self.row(s.b, id)?["trade_bound"] as Int64?) == nil)
        // The partner's site never sees any of it.
        #expect(try s.a.tally(id).trade == TradingVariables.defaults(limit: 0))
    }

    @Test func outOfRangeValuesAreRefusedAndNothingIsWritten() throws {
        let (s, id) = try Self.openTally()
        try s.b.setTrade(tally: id, target: 100_000, bound: 200_000, reward: 10, clutch: 0)
        let before = try s.b.tally(id)
        func refused(_ needle: String, _ body: () throws -> Void) {
            do {
                try body()
                Issue.record("accepted; expected \(needle)")
            } catch {
                #expect("\(error)".contains(needle), "\(error)")
            }
        }
        refused("at most the credit bob grants on this tally (1000 CHIPs)") { try s.b.setTrade(tally: id, bound: 1_000_001) }
        refused("at most the bound (200 CHIPs)") { try s.b.setTrade(tally: id, target: 200_001) }
        refused("the target (100 CHIPs) must be at most the bound (99.999 CHIPs)") { try s.b.setTrade(tally: id, bound: 99_999) }
        refused("-10^6 to 10^6") { try s.b.setTrade(tally: id, reward: 1_000_001) }
        refused("-10^6 to 10^6") { try s.b.setTrade(tally: id, clutch: -1_000_001) }
        refused("reward + clutch") { try s.b.setTrade(tally: id, reward: -20, clutch: 10) }
        // alice grants nothing: no target above 0 fits.
        refused("at most the bound (0 CHIPs)") { try s.a.setTrade(tally: id, target: 1) }
        refused("no tally") { try s.b.setTrade(tally: "ffffffff", target: 1) }
        #expect(try s.b.tally(id) == before)
        // A ModelError: one line for a person (chipsite's Main).
        #expect(throws: StoreError.self) { try s.b.setTrade(tally: id, bound: 1_000_001) }
    }

    @Test func onlyOpenTalliesTakeTradingVariables() throws {
        let s = try PTwoSites()
        let request = try s.a.requestTally(cuid: s.alice, ticket: try s.ticket(), accept: false)
        #expect(try s.a.tally(request).trade == nil)
        do {
            try s.a.setTrade(tally: request, target: 0)
            Issue.record("a request took trading variables")
        } catch {
            #expect("\(error)".contains("open tallies only"))
        }
    }

    @Test func aHandEditedBoundAboveTheLimitCountsAsTheLimit() throws {
        let (s, id) = try Self.openTally()
        try s.b.database.write { db in
            try db.execute(sql: "UPDATE tallies SET trade_target = 1500000, trade_bound = 2000000 WHERE uuid = ?", arguments: [id])
        }
        let v = try Self.loaded(s.b, id)
        #expect(v.bound == 1_000_000 && v.target == 1_000_000)
    }

    // MARK: Settings

    @Test func liftSettingsHaveDefaultsAndTypedValues() throws {
        let (s, _) = try Self.openTally()
        #expect(try s.b.liftSettings() == LiftSettings.defaults)
        #expect(LiftSettings.defaults.min == 1_000 && LiftSettings.defaults.interval == 60 && LiftSettings.defaults.life == 60)
        try s.b.setSetting(.liftInterval, "0")
        try s.b.setSetting(.liftReferee, "off")
        try s.b.setSetting(.liftLife, "120")
        try s.b.setSetting(.liftMin, "0.25")
        let listed = "\(s.agentA)@a.example:1, \(try AgentID(publicKey: SigningKey.generate().publicKey))@[::1]:7000"
        try s.b.setSetting(.liftReferees, listed)
        let got = try s.b.liftSettings()
        #expect(got.interval == 0 && !got.refereeOn && got.life == 120 && got.min == 250)
        guard case .list(let agents) = got.referees else { Issue.record("not a list: \(got.referees)"); return }
        #expect(agents.count == 2 && agents.first == s.agentA)
        for v in ["partners", "any", "none"] { try s.b.setSetting(.liftReferees, v) }
        #expect(try s.b.liftSettings().referees == RefereePolicy.none)
    }

    @Test func badLiftSettingsAreRefused() throws {
        let (s, _) = try Self.openTally()
        let bad: [(ConfigKey, String)] = [
            (.liftInterval, "-1"), (.liftInterval, "1.5"), (.liftInterval, "86401"), (.liftInterval, ""),
            (.liftReferee, "yes"), (.liftLife, "0"), (.liftLife, "121"), (.liftMin, "0"), (.liftMin, "1.0001"),
            (.liftMin, "-1"), (.liftReferees, "some"), (.liftReferees, "\(s.agentA)@a.example:1,"),
            (.liftReferees, "\(s.agentA)@a.example:1,\(s.agentA)@b.example:2"), (.liftReferees, "\(s.agentA)@bad host:1"),
            (.liftReferees, "\(s.agentA)@a.example:0"), (.liftReferees, "\(s.agentA)@::1:7000"), (.liftReferees, "x@a.example:1")
        ]
        for (key, value) in bad {
            #expect(throws: ModelError.self, "\(key.name) = \(value)") { try s.b.setSetting(key, value) }
        }
        #expect(try s.b.liftSettings() == LiftSettings.defaults)
        try s.b.database.write { db in try db.execute(sql: "INSERT INTO config (key, value) VALUES ('lift.life', '500')") }
        #expect(throws: StoreError.self) { try s.b.liftSettings() }
    }

    @Test func theAcceptListFollowsTheSetting() throws {
        let (s, _) = try Self.openTally()
        let stranger = try AgentID(publicKey: SigningKey.generate().publicKey)
        func accepts(_ a: AgentID) throws -> Bool { try s.b.database.read { db in try SiteStore.acceptsReferee(db, a) } }
        #expect(try accepts(stranger) && accepts(s.agentA))
        try s.b.setSetting(.liftReferees, "partners")
        #expect(try accepts(s.agentA) && accepts(s.agentB) && !accepts(stranger))
        try s.b.setSetting(.liftReferees, "none")
        #expect(try !accepts(s.agentA) && !accepts(s.agentB))
        try s.b.setSetting(.liftReferees, "\(stranger)@x.example:5")
        #expect(try accepts(stranger) && !accepts(s.agentA))
        try s.b.setSetting(.liftReferees, "any")
        try s.b.database.write { db in
            try db.execute(sql: "INSERT INTO referees_dropped (agent, lift, created) VALUES (?, ?, 'now')", arguments: [stranger.description, "h"])
        }
        #expect(try !accepts(stranger) && accepts(s.agentA))
    }

    // MARK: Lifts held

    static func h() -> String { Base64URL.encode(Crypto.randomBytes(32)) }

    /// Writes a header, optionally a record, and lift chits on `tally`, as the engine will.
    static func insertLift(
        _ store: SiteStore, h: String, kind: String = "circ", units: Int64 = 2_500, referee: String, role: String?, state: String,
        chits: [(uuid: String, tally: String, by: String, state: String)], created: String
    ) throws {
        try store.database.write { db in
            try db.execute(
                sql: "INSERT INTO lift_headers (lift, header, kind, units, deadline, referee, created) VALUES (?, '{}', ?, ?, ?, ?, ?)",
                arguments: [h, kind, units, "2026-12-01T10:01:00.000Z", referee, created])
            if let role {
                try db.execute(
                    sql: "INSERT INTO lifts (lift, role, state, hop, created, updated) VALUES (?, ?, ?, ?, ?, ?)",
                    arguments: [h, role, state, role == "origin" ? nil : 1, created, created])
            }
            for c in chits {
                try db.execute(
                    sql: """
                        INSERT INTO chits (uuid, tally, by, type, units, core, sign, hash, state, local, created, lift)
                        VALUES (?, ?, ?, 'lift', ?, '{}', 'sig', 'hash', ?, 1, ?, ?)
                        """, arguments: [c.uuid, c.tally, c.by, units, c.state, created, h])
            }
        }
    }

    static func decision(_ h: String, _ result: String, referee: String) -> String {
        JSONValue.object([
            "decision": ["lift": .string(h), "result": .string(result), "date": "2026-12-01T10:00:30.000Z", "referee": .string(referee)],
            "sign": "sig"
        ]).canonicalString
    }

    @Test func listAndShowReadRecordsRefereeDecisionsAndChits() throws {
        let (s, id) = try Self.openTally()
        let me = s.agentB.description
        let (h1, h2, h3) = (Self.h(), Self.h(), Self.h())
        try Self.insertLift(
            s.b, h: h1, referee: me, role: "relay", state: "part",
            chits: [(UUID().uuidString.lowercased(), id, "foil", "pend")], created: "2026-12-01T10:00:00.000Z")
        try Self.insertLift(
            s.b, h: h2, kind: "line", units: 7, referee: s.agentA.description, role: "origin", state: "good",
            chits: [(UUID().uuidString.lowercased(), id, "stock", "good")], created: "2026-12-01T11:00:00.000Z")
        try s.b.database.write { db in
            try db.execute(
                sql: "INSERT INTO lift_decisions (lift, result, decision, applied, created) VALUES (?, 'good', ?, 1, ?)",
                arguments: [h2, Self.decision(h2, "good", referee: s.agentA.description), "2026-12-01T11:00:30.000Z"])
            // A lift b decided as referee and holds no record or header of.
            try db.execute(
                sql: "INSERT INTO referee_decisions (lift, result, decision, deadline, created) VALUES (?, 'void', ?, ?, ?)",
                arguments: [h3, Self.decision(h3, "void", referee: me), "2026-12-01T09:01:00.000Z", "2026-12-01T09:01:05.000Z"])
            // b's own record of h1 and its referee decision: the record wins.
            try db.execute(
                sql: "INSERT INTO referee_decisions (lift, result, decision, deadline, created) VALUES (?, 'void', ?, ?, ?)",
                arguments: [h1, Self.decision(h1, "void", referee: me), "2026-12-01T10:01:00.000Z", "2026-12-01T10:01:05.000Z"])
        }
        let all = try s.b.lifts()
        #expect(all.map(\.id) == [h2, h1, h3])
        #expect(all.map(\.role) == [.origin, .relay, .referee])
        #expect(all.map(\.state) == ["good", "part", "void"])
        #expect(all[0].kind == .line && all[0].units == 7 && all[0].referee == s.agentA.description && all[0].tallies == [id])
        #expect(all[2].kind == nil && all[2].units == nil && all[2].referee == me && all[2].deadline == "2026-12-01T09:01:00.000Z")
        #expect(all[2].tallies.isEmpty)
        #expect(try s.b.lifts(state: "part").map(\.id) == [h1])
        #expect(try s.b.lifts(state: "void").map(\.id) == [h3])
        #expect(try s.b.lifts(state: "draft").isEmpty)
        #expect(try s.a.lifts().isEmpty)

        let shown = try s.b.lift(String(h2.prefix(6)))
        #expect(shown.id == h2 && shown.role == .origin && shown.chits.count == 1)
        #expect(shown.chits.first?.tally == id && shown.chits.first?.by == .stock && shown.chits.first?.state == "good")
        #expect(shown.decisions.map(\.result) == [.good] && shown.decisions.first?.applied == true)
        #expect(shown.decisions.first?.asReferee == false)
        let relay = try s.b.lift(h1)
        #expect(relay.role == .relay && relay.decisions.map(\.asReferee) == [true])
        let referee = try s.b.lift(h3)
        #expect(referee.role == .referee && referee.chits.isEmpty && referee.decisions.first?.result == .void)
    }

    @Test func showRefusesUnknownAmbiguousAndMalformedIDs() throws {
        let (s, id) = try Self.openTally()
        let h1 = "AAAA" + String(Self.h().dropFirst(4)), h2 = "AAAA" + String(Self.h().dropFirst(4))
        for h in [h1, h2] {
            try Self.insertLift(s.b, h: h, referee: s.agentB.description, role: nil, state: "", chits: [], created: "2026-12-01T10:00:00.000Z")
        }
        func refused(_ text: String, _ needle: String) {
            do {
                _ = try s.b.lift(text)
                Issue.record("\(text) was found")
            } catch {
                #expect("\(error)".contains(needle), "\(error)")
            }
        }
        refused("AAAA", "more than one lift")
        refused("aaaa", "no lift")
        refused("zzzzz", "no lift")
        refused("AAA", "at least its first 4")
        refused("AAAA%", "at least its first 4")
        refused(String(repeating: "A", count: 44), "at least its first 4")
        // A header alone (no record): shown, with no role.
        let header = try s.b.lift(h1)
        #expect(header.role == nil && header.state == nil && header.kind == .circ)
        // Not listed: list shows records and referee decisions only.
        #expect(try s.b.lifts().isEmpty)
        _ = id
    }
}
