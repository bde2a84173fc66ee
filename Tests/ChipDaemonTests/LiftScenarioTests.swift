import ChipModel
import ChipProtocol
import Foundation
import GRDB
import NIOConcurrencyHelpers
import Testing
import TestSupport
@testable import ChipDaemon
@testable import ChipStore

/// The larger in-process scenarios, each ending with the auditor.
@Suite(.serialized) struct LiftScenarioTests {
    /// Five sites in a ring with a chord (b - d), two users on each: a site
    /// refusing every referee (c) leaves only the circle over the chord,
    /// which clears; then two originators on opposite sides of the ring
    /// clear what is left at once, and reservations keep them from
    /// lifting one debt twice.
    @Test func aRingWithAChordTwoRoutesAndOppositeLifts() async throws {
        let net = try LiftNetwork(["a", "b", "c", "d", "e"])
        for name in ["a", "b", "c", "d", "e"] { try net.addUser(name, name + "2") }
        try await net.start()
        // payer -> payee: each tally's foil is the payer, who owes the stock.
        func owe(_ payer: String, _ payee: String, _ units: Int64, users: (String, String)? = nil) throws -> String {
            let t = try net.openTally(stock: payee, foil: payer, stockUser: users?.1, foilUser: users?.0)
            try net[payer].store.pay(tally: t, units: units, memo: nil, ref: nil, key: { try net[payer].store.userKey($0, sealingKey: nil) })
            net[payer].daemon?.poke()
            return t
        }
        let ab = try owe("a", "b", 10_000), bc = try owe("b", "c", 10_000), cd = try owe("c", "d", 10_000)
        let de = try owe("d", "e", 10_000), ea = try owe("e", "a", 10_000), bd = try owe("b", "d", 5000)
        // The second users: a debt with no circle (it must stay as it is).
        let other = try owe("a", "c", 3000, users: ("a2", "c2"))
        let all = [(ab, "a", "b"), (bc, "b", "c"), (cd, "c", "d"), (de, "d", "e"), (ea, "e", "a"), (bd, "b", "d"), (other, "a", "c")]
        #expect(try await eventually(20) { try all.allSatisfy { try net.agree($0.1, $0.2, $0.0) } })

        // c accepts no referee: the ring is closed to lifts there.
        try net["c"].store.setConfigValue(.liftReferees, "none")
        let first = try net.clear("a")
        let lift = try await net.finished("a", first)
        #expect(lift?.state == .good)
        #expect(try await net.quietAudit() == [])
        #expect(try net.tally("b", bd).balance == 0, "the chord's circle a-b-d-e-a cleared 5")
        #expect(try net.tally("a", ab).balance == 5000 && net.tally("b", bc).balance == 10_000)

        // c takes referees again; a and c both clear what is left, at once.
        try net["c"].store.setConfigValue(.liftReferees, "any")
        let fromA = try net.clear("a"), fromC = try net.clear("c")
        let ra = try await net.finished("a", fromA), rc = try await net.finished("c", fromC)
        // Each may hold the credit the other needs (both can end void: 9.10
        // allows it, never an overlift); the next pass clears what is left.
        #expect(try await net.quietAudit() == [])
        var cleared = ra?.state == .good || rc?.state == .good
        for _ in 0..<3 where !cleared {
            let again = try await net.finished("a", try net.clear("a"))
            cleared = again?.state == .good
        }
        #expect(cleared, "the ring is cleared")
        #expect(try await net.quietAudit() == [])
        for (t, x, _) in all where t != other { #expect(try net.tally(x, t).balance == (t == bc || t == cd ? 5000 : 0), "tally \(x)") }
        #expect(try net.tally("a", other).balance == 3000)
        await net.stop()
    }

    /// Ten sites on a seeded degree-3 graph; eight originators pay random
    /// payees by linear lifts at once, `LIFT_SCENARIO_LIFTS` in all
    /// (default 24; the 1,000 is a documented long run): every lift
    /// ends good or void, the auditor finds nothing, and what each site's
    /// users hold moved by exactly the good lifts.
    @Test func tenSitesEightOriginatorsManyLifts() async throws {
        let names = (0..<10).map { "s\($0)" }
        let net = try LiftNetwork(names)
        try await net.start()
        var rng = SplitMix64(seed: UInt64(ProcessInfo.processInfo.environment["PROPERTY_SEED"] ?? "") ?? 13)
        // A ring plus chords, so every site has degree about 3.
        var edges = Set<[Int]>()
        for i in 0..<10 { edges.insert([i, (i + 1) % 10].sorted()) }
        while edges.count < 15 {
            let a = Int(rng.next() % 10), b = Int(rng.next() % 10)
            if a != b { edges.insert([a, b].sorted()) }
        }
        // Each tally both ways: a pair of tallies per edge so value can go either way.
        for e in edges.sorted(by: { $0.lexicographicallyPrecedes($1) }) {
            try net.openTally(stock: names[e[0]], foil: names[e[1]], limit: 100_000_000)
            try net.openTally(stock: names[e[1]], foil: names[e[0]], limit: 100_000_000)
        }
        let total = Int(ProcessInfo.processInfo.environment["LIFT_SCENARIO_LIFTS"] ?? "") ?? 24
        let originators = Array(names.prefix(8))
        var requests = [(site: String, id: Int64)]()
        for i in 0..<total {
            let from = originators[i % 8]
            var to = names[Int(rng.next() % 10)]
            while to == from { to = names[Int(rng.next() % 10)] }
            let link = try PayLink(cuid: try CUID(to), agent: net[to].agent)
            requests.append(
                (from, try net[from].store.requestPay(payor: try CUID(from), link: link, units: 1000 + Int64(rng.next() % 5000), memo: nil)))
            net[from].daemon?.poke()
            if ProcessInfo.processInfo.environment["LIFT_SEQUENTIAL"] != nil, let last = requests.last {
                _ = try await net.finished(last.site, last.id, seconds: 60)
            }
        }
        var good = 0
        var why = [String: Int]()
        for r in requests {
            let end = try await net.finished(r.site, r.id, seconds: 120)
            if end?.state == .good { good += 1 }
            let note = try net[r.site].store.liftRequest(r.id)?.note ?? "?"
            why[end.map { $0.state.rawValue } ?? note, default: 0] += 1
        }
        #expect(good > total / 2, "most lifts find a route (\(good) of \(total): \(why))")
        let problems = try await net.quietAudit(60)
        #expect(problems.isEmpty, "\(problems)")
        await net.stop()
    }
}
