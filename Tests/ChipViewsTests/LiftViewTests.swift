import ChipModel
import ChipProtocol
import ChipViews
import Testing

/// The field names of the lift views and of a tally's trading variables,
/// pinned as doc/cli.md promises them.
@Suite struct LiftViewTests {
    static let h = String(repeating: "H", count: 42) + "A"
    static let referee = String(repeating: "R", count: 42) + "A"
    static let deadline = "2026-12-01T10:01:00.000Z"
    static let created = "2026-12-01T10:00:00.000Z"

    static func keys(_ v: JSONValue) -> [String] { (v.objectValue ?? [:]).keys.sorted() }

    @Test func aTallyWithTradingVariablesShowsThemInMilliCHIPsAndPpm() throws {
        var t = try ViewTests().openTally()
        t.trade = try TradingVariables(target: 1_500, bound: 20_000, reward: -250, clutch: 250, limit: 25_500)
        let v = TallyView.json(t)
        #expect(Self.keys(v).contains("trade"))
        #expect(v["trade"] == ["target": 1_500, "bound": 20_000, "reward": -250, "clutch": 250])
        t.trade = nil
        #expect(TallyView.json(t)["trade"] == nil)
    }

    @Test func listFieldNames() {
        let l = LiftOverview(
            id: Self.h, kind: .circ, role: .relay, state: "part", units: 2_500, deadline: Self.deadline, referee: Self.referee,
            tallies: ["t1", "t2"], created: Self.created)
        let v = LiftView.json(l)
        #expect(Self.keys(v) == ["created", "deadline", "id", "kind", "referee", "role", "state", "tallies", "units"])
        #expect(v["id"] == .string(Self.h))
        #expect(v["kind"] == "circ")
        #expect(v["role"] == "relay")
        #expect(v["state"] == "part")
        #expect(v["units"] == 2_500)
        #expect(v["deadline"] == .string(Self.deadline))
        #expect(v["referee"] == .string(Self.referee))
        #expect(v["tallies"] == ["t1", "t2"])
    }

    @Test func aRefereeRowWithoutAHeaderHasNulls() {
        let l = LiftOverview(
            id: Self.h, kind: nil, role: .referee, state: "void", units: nil, deadline: Self.deadline, referee: Self.referee, tallies: [],
            created: Self.created)
        let v = LiftView.json(l)
        #expect(v["role"] == "referee" && v["state"] == "void")
        #expect(v["kind"] == .null && v["units"] == .null)
        #expect(v["tallies"] == .array([]))
        #expect(v["chits"] == nil && v["decisions"] == nil)
    }

    @Test func showAddsChitsAndDecisions() {
        let decision: JSONValue = [
            "decision": ["lift": .string(Self.h), "result": "good", "date": .string(Self.created), "referee": .string(Self.referee), "commit": "c"],
            "sign": "s"
        ]
        let l = LiftOverview(
            id: Self.h, kind: .line, role: .origin, state: "good", units: 7, deadline: Self.deadline, referee: Self.referee,
            tallies: ["t1"], created: Self.created,
            chits: [LiftChitEntry(uuid: "c1", tally: "t1", by: .foil, units: 7, state: "chained")],
            decisions: [LiftDecisionEntry(result: .good, applied: true, asReferee: false, decision: decision, created: Self.created)])
        let v = LiftView.json(l, detail: true)
        #expect(Self.keys(v) == ["chits", "created", "deadline", "decisions", "id", "kind", "referee", "role", "state", "tallies", "units"])
        let chits = v["chits"]?.arrayValue ?? []
        #expect(chits.count == 1)
        #expect(Self.keys(chits.first ?? .null) == ["by", "state", "tally", "units", "uuid"])
        #expect(chits.first == ["uuid": "c1", "tally": "t1", "by": "foil", "units": 7, "state": "chained"])
        let decisions = v["decisions"]?.arrayValue ?? []
        #expect(Self.keys(decisions.first ?? .null) == ["applied", "created", "decision", "referee", "result"])
        #expect(decisions.first?["result"] == "good" && decisions.first?["applied"] == true && decisions.first?["referee"] == false)
        #expect(decisions.first?["decision"] == decision)
    }
}
