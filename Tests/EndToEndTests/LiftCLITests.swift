import Foundation
import Testing
import TestSupport

/// `chipsite tally trade`, the `lift.*` settings and `chipsite lift list|show`
/// with the built binary. Lift rows are written with SQL, as the engine will.
@Suite(.serialized) struct LiftCLITests {
    @Test func liftSettingsAreSetCheckedAndListed() throws {
        let dir = try TempDir()
        let db = try adminSite(dir)
        let list = try json(try chipsite(["config", "list", "--db", db, "--json"]).stdout)
        let entries = try #require(list["config"] as? [[String: Any]])
        let defaults = Dictionary(uniqueKeysWithValues: entries.compactMap { e in (e["key"] as? String).map { ($0, e["default"] as? String) } })
        #expect(defaults["lift.interval"] == "60" && defaults["lift.referee"] == "on" && defaults["lift.referees"] == "any")
        #expect(defaults["lift.life"] == "60" && defaults["lift.min"] == "1")
        let agent = try json(try chipsite(["status", "--db", db, "--json"]).stdout)["agent"] as? String ?? ""
        for (key, value) in [
            ("lift.interval", "0"), ("lift.referee", "off"), ("lift.referees", "partners"), ("lift.referees", "\(agent)@h.example:65430"),
            ("lift.life", "120"), ("lift.min", "0.5")
        ] {
            let r = try chipsite(["config", "set", key, value, "--db", db])
            #expect(r.code == 0, "\(key) \(value): \(r.stderr)")
            #expect(try chipsite(["config", "get", key, "--db", db]).stdout == value + "\n")
        }
        let before = try chipsite(["config", "list", "--db", db, "--json"]).stdout
        expectOneLineError(try chipsite(["config", "set", "lift.interval", "86401", "--db", db]), containing: "lift.interval")
        expectOneLineError(try chipsite(["config", "set", "lift.interval", "2.5", "--db", db]), containing: "whole number")
        expectOneLineError(try chipsite(["config", "set", "lift.referee", "maybe", "--db", db]), containing: "on or off")
        expectOneLineError(try chipsite(["config", "set", "lift.referees", "friends", "--db", db]), containing: "AGENT@HOST:PORT")
        expectOneLineError(try chipsite(["config", "set", "lift.referees", "\(agent)@h.example:0", "--db", db]), containing: "port")
        expectOneLineError(try chipsite(["config", "set", "lift.life", "121", "--db", db]), containing: "1 to 120")
        expectOneLineError(try chipsite(["config", "set", "lift.min", "0", "--db", db]), containing: "lift.min")
        #expect(try chipsite(["config", "list", "--db", db, "--json"]).stdout == before)
        // doctor reports a hand-edited bad value.
        _ = try run(
            "/usr/bin/python3",
            [
                "-c",
                "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.execute(\"update config set value='999' where key='lift.life'\"); c.commit()",
                db
            ])
        let doctor = try chipsite(["doctor", "--db", db, "--json"])
        #expect(doctor.code != 0)
        #expect(doctor.stdout.contains("lift.life"))
    }

    @Test func tradeShowsAndSetsTheTradingVariablesOfOurHalf() throws {
        let t = try ChitTests.OpenTally(limit: "100")
        // bob (stock) grants 100 CHIPs: the defaults are target 0, bound 100 CHIPs.
        let shown = try json(try t.b.cli(["tally", "trade", t.id, "--json"]).stdout)
        #expect(shown["trade"] as? [String: Int] == ["target": 0, "bound": 100_000, "reward": 0, "clutch": 0])
        let set = try t.b.cli(["tally", "trade", String(t.id.prefix(8)), "--target", "10", "--bound", "50.5", "--reward", "5", "--clutch", "-5"])
        #expect(set.code == 0, "\(set.stderr)")
        #expect(set.stdout.contains("target    10 CHIPs") && set.stdout.contains("bound     50.5 CHIPs"))
        #expect(set.stdout.contains("reward    5 ppm") && set.stdout.contains("clutch    -5 ppm"))
        #expect(try t.b.tally(t.id)["trade"] as? [String: Int] == ["target": 10_000, "bound": 50_500, "reward": 5, "clutch": -5])
        #expect(try t.b.cli(["tally", "show", t.id]).stdout.contains("trade     target 10, bound 50.5 CHIPs; reward 5, clutch -5 ppm"))
        // Options left out keep their value; `limit` makes the bound follow the limit again.
        #expect(try t.b.cli(["tally", "trade", t.id, "--clutch=0", "--bound", "limit"]).code == 0)
        #expect(try t.b.tally(t.id)["trade"] as? [String: Int] == ["target": 10_000, "bound": 100_000, "reward": 5, "clutch": 0])
        // alice's site holds its own half: she grants nothing.
        #expect(try t.a.tally(t.id)["trade"] as? [String: Int] == ["target": 0, "bound": 0, "reward": 0, "clutch": 0])

        let before = try t.b.cli(["tally", "show", t.id, "--json"]).stdout
        expectOneLineError(try t.b.cli(["tally", "trade", t.id, "--bound", "100.001"]), containing: "at most the credit bob grants")
        expectOneLineError(try t.b.cli(["tally", "trade", t.id, "--target", "101"]), containing: "at most the bound")
        expectOneLineError(try t.b.cli(["tally", "trade", t.id, "--reward", "1000001"]), containing: "10^6")
        expectOneLineError(try t.b.cli(["tally", "trade", t.id, "--reward", "-6"]), containing: "reward + clutch")
        expectOneLineError(try t.a.cli(["tally", "trade", t.id, "--target", "1"]), containing: "at most the bound (0 CHIPs)")
        expectOneLineError(try t.b.cli(["tally", "trade", t.id, "--target", "ten"]), code: 2, containing: "invalid amount")
        expectOneLineError(try t.b.cli(["tally", "trade", t.id, "--reward", "0.5"]), code: 2, containing: "reward")
        expectOneLineError(try t.b.cli(["tally", "trade", "ffffffff"]), containing: "no tally")
        #expect(try t.b.cli(["tally", "show", t.id, "--json"]).stdout == before)
    }

    @Test func liftListAndShow() throws {
        let t = try ChitTests.OpenTally(limit: "100")
        let empty = try t.b.cli(["lift", "list", "--json"])
        #expect(empty.code == 0)
        #expect((try json(empty.stdout)["lifts"] as? [Any])?.isEmpty == true)
        #expect(try t.b.cli(["lift", "list"]).stdout == "No lifts yet.\n")
        expectOneLineError(try t.b.cli(["lift", "list", "--state", "done"]), code: 2, containing: "--state must be one of")
        expectOneLineError(try t.b.cli(["lift", "show", String(repeating: "Q", count: 43)]), containing: "no lift")
        expectOneLineError(try t.b.cli(["lift", "show", "Q"]), containing: "at least its first 4")

        let me = try t.b.agent(), other = try t.a.agent()
        let h1 = "L1" + String(repeating: "a", count: 41), h2 = "L2" + String(repeating: "b", count: 41)
        let h3 = "L3" + String(repeating: "c", count: 41)
        let chit1 = "11111111-1111-4111-8111-111111111111", chit2 = "22222222-2222-4222-8222-222222222222"
        let script = """
            import sqlite3, sys
            db, tally, me, other, h1, h2, h3, c1, c2 = sys.argv[1:]
            c = sqlite3.connect(db)
            hdr = "INSERT INTO lift_headers (lift, header, kind, units, deadline, referee, created) VALUES (?, '{}', ?, ?, ?, ?, ?)"
            c.execute(hdr, (h1, 'circ', 2500, '2026-12-01T10:01:00.000Z', me, '2026-12-01T10:00:00.000Z'))
            c.execute(hdr, (h2, 'line', 7000, '2026-12-01T11:01:00.000Z', other, '2026-12-01T11:00:00.000Z'))
            rec = "INSERT INTO lifts (lift, role, state, hop, created, updated) VALUES (?, ?, ?, ?, ?, ?)"
            c.execute(rec, (h1, 'relay', 'part', 1, '2026-12-01T10:00:00.000Z', '2026-12-01T10:00:00.000Z'))
            c.execute(rec, (h2, 'origin', 'good', None, '2026-12-01T11:00:00.000Z', '2026-12-01T11:00:00.000Z'))
            chit = "INSERT INTO chits (uuid, tally, by, type, units, core, sign, hash, state, local, created, lift) VALUES (?, ?, ?, 'lift', ?, '{}', 's', 'h', ?, 1, ?, ?)"
            c.execute(chit, (c1, tally, 'foil', 2500, 'pend', '2026-12-01T10:00:00.000Z', h1))
            c.execute(chit, (c2, tally, 'stock', 7000, 'good', '2026-12-01T11:00:00.000Z', h2))
            d = '{"decision":{"date":"2026-12-01T11:00:30.000Z","lift":"%s","referee":"%s","result":"good","commit":"x"},"sign":"s"}'
            c.execute("INSERT INTO lift_decisions (lift, result, decision, applied, created) VALUES (?, 'good', ?, 1, ?)", (h2, d % (h2, other), '2026-12-01T11:00:30.000Z'))
            v = '{"decision":{"date":"2026-12-01T09:01:01.000Z","lift":"%s","referee":"%s","result":"void"},"sign":"s"}'
            c.execute("INSERT INTO referee_decisions (lift, result, decision, deadline, created) VALUES (?, 'void', ?, ?, ?)", (h3, v % (h3, me), '2026-12-01T09:01:00.000Z', '2026-12-01T09:01:01.000Z'))
            c.commit()
            """
        let inserted = try run("/usr/bin/python3", ["-c", script, t.b.db, t.id, me, other, h1, h2, h3, chit1, chit2])
        #expect(inserted.code == 0, "\(inserted.stderr)")

        let listed = try json(try t.b.cli(["lift", "list", "--json"]).stdout)
        let lifts = try #require(listed["lifts"] as? [[String: Any]])
        #expect(lifts.compactMap { $0["id"] as? String } == [h2, h1, h3])
        #expect(Set(lifts[0].keys) == ["id", "kind", "role", "state", "units", "deadline", "referee", "tallies", "created"])
        #expect(lifts[0]["kind"] as? String == "line" && lifts[0]["role"] as? String == "origin" && lifts[0]["state"] as? String == "good")
        #expect(lifts[0]["units"] as? Int == 7000 && lifts[0]["referee"] as? String == other && lifts[0]["tallies"] as? [String] == [t.id])
        #expect(lifts[1]["role"] as? String == "relay" && lifts[1]["state"] as? String == "part")
        #expect(lifts[2]["role"] as? String == "referee" && lifts[2]["state"] as? String == "void" && lifts[2]["referee"] as? String == me)
        #expect(lifts[2]["kind"] is NSNull && (lifts[2]["tallies"] as? [String])?.isEmpty == true)
        let parts = try json(try t.b.cli(["lift", "list", "--state", "part", "--json"]).stdout)["lifts"] as? [[String: Any]]
        #expect(parts?.compactMap { $0["id"] as? String } == [h1])
        let human = try t.b.cli(["lift", "list"]).stdout
        #expect(human.split(separator: "\n").count == 3 && human.contains(h1) && human.contains("relay") && human.contains("2.5 CHIPs"))

        let shown = try json(try t.b.cli(["lift", "show", "L2bb", "--json"]).stdout)
        #expect(shown["id"] as? String == h2)
        let chits = try #require(shown["chits"] as? [[String: Any]])
        #expect(chits.count == 1 && chits[0]["uuid"] as? String == chit2 && chits[0]["tally"] as? String == t.id)
        #expect(chits[0]["by"] as? String == "stock" && chits[0]["units"] as? Int == 7000 && chits[0]["state"] as? String == "good")
        let decisions = try #require(shown["decisions"] as? [[String: Any]])
        #expect(decisions.count == 1 && decisions[0]["result"] as? String == "good" && decisions[0]["applied"] as? Bool == true)
        #expect((decisions[0]["decision"] as? [String: Any])?["sign"] as? String == "s")
        let text = try t.b.cli(["lift", "show", h1]).stdout
        #expect(text.contains("role      relay") && text.contains(chit1) && text.contains("2.5 CHIPs"))
        expectOneLineError(try t.b.cli(["lift", "show", "L"]), containing: "at least its first 4")
        #expect(try t.a.cli(["lift", "list"]).stdout == "No lifts yet.\n")
    }

    /// Three real `serve` processes: `lift clear` clears a circle of debt,
    /// then `lift pay` pays over two hops with a pay link (section 9).
    @Test func threeServesClearACircleAndPayAcrossTwoHops() throws {
        let dir = try TempDir()
        let a = try E2ESite(dir: dir, name: "a", user: "alice", port: freePort())
        let b = try E2ESite(dir: dir, name: "b", user: "bob", port: freePort())
        let c = try E2ESite(dir: dir, name: "c", user: "carol", port: freePort())
        for s in [a, b, c] { #expect(try s.cli(["config", "set", "lift.interval", "0"]).code == 0) }
        let sa = try a.serve(), sb = try b.serve(), sc = try c.serve()
        defer { _ = sa.stop(); _ = sb.stop(); _ = sc.stop() }
        // A ring of tallies, each granting 100 CHIPs to its requester.
        func open(_ from: E2ESite, _ to: E2ESite) throws -> String {
            let r = try json(try from.cli(["tally", "request", from.user, try to.ticket(["--limit", "100"]), "--accept", "--json"]).stdout)
            let id = try #require(r["id"] as? String)
            #expect(try eventually(15) { try (to.tally(id)["state"] as? String) == "open" && (from.tally(id)["state"] as? String) == "open" })
            return id
        }
        let ab = try open(a, b), bc = try open(b, c), ca = try open(c, a)
        // alice owes bob, bob owes carol, carol owes alice: 10 CHIPs each.
        #expect(try a.cli(["pay", "alice", ab, "10"]).code == 0)
        #expect(try b.cli(["pay", "bob", bc, "10"]).code == 0)
        #expect(try c.cli(["pay", "carol", ca, "10"]).code == 0)
        func balance(_ s: E2ESite, _ id: String) throws -> Int? { try s.tally(id)["balance"] as? Int }
        func chain(_ s: E2ESite, _ id: String) throws -> String? { try s.tally(id)["chain_head"] as? String }
        func agree(_ x: E2ESite, _ y: E2ESite, _ id: String) throws -> Bool {
            try chain(x, id) != nil && chain(x, id) == chain(y, id) && balance(x, id) == balance(y, id)
        }
        #expect(try eventually(20) { try agree(a, b, ab) && agree(b, c, bc) && agree(c, a, ca) })
        #expect(try abs(balance(a, ab) ?? 0) == 10_000)

        let cleared = try a.cli(["lift", "clear", "--wait", "30", "--json"])
        #expect(cleared.code == 0, "\(cleared.stderr)")
        let result = try json(cleared.stdout)
        let lifts = try #require(result["lifts"] as? [[String: Any]])
        #expect(lifts.first?["state"] as? String == "good")
        #expect(try eventually(20) { try agree(a, b, ab) && agree(b, c, bc) && agree(c, a, ca) })
        for (s, id) in [(a, ab), (b, bc), (c, ca)] { #expect(try balance(s, id) == 0, "tally \(id) is cleared") }
        let listed = try json(try b.cli(["lift", "list", "--json"]).stdout)["lifts"] as? [[String: Any]]
        #expect(listed?.first?["role"] as? String == "relay" && listed?.first?["state"] as? String == "good")

        // carol's pay link; alice pays it through bob (she can no longer pay carol directly).
        let link = try c.cli(["lift", "invoice", "carol", "5", "--memo", "lunch"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(link.hasPrefix("https://mychips.org/pay?chad=carol:"))
        expectOneLineError(try a.cli(["lift", "pay", "alice", link, "6"]), containing: "the link asks for 5 CHIPs")
        expectOneLineError(try a.cli(["lift", "pay", "alice", "not a link", "5"]), code: 2, containing: "CUID:AGENT")
        expectOneLineError(try a.cli(["lift", "pay", "alice", "carol:\(try c.agent())", "500", "--wait", "20"]), containing: "no lift")
        let paid = try a.cli(["lift", "pay", "alice", link, "5", "--wait", "30"])
        #expect(paid.code == 0, "\(paid.stderr)")
        #expect(paid.stdout.contains("Paid 5 CHIPs by lift"))
        #expect(try eventually(20) { try agree(a, b, ab) && agree(b, c, bc) })
        #expect(try abs(balance(a, ab) ?? 0) == 5000 && abs(balance(b, bc) ?? 0) == 5000, "alice owes bob 5, bob owes carol 5")
        let carol = try json(try c.cli(["lift", "list", "--json"]).stdout)["lifts"] as? [[String: Any]]
        #expect(carol?.contains { $0["role"] as? String == "terminus" && $0["state"] as? String == "good" } == true)
    }
}
