import ChipModel
import Testing
@testable import ChipProtocol

@Suite struct TradingVariablesTests {
    @Test func rangesAndDefaults() throws {
        let d = TradingVariables.defaults(limit: 1000)
        #expect(d == (try TradingVariables(target: 0, bound: 1000, reward: 0, clutch: 0, limit: 1000)))
        #expect((try? TradingVariables(target: 1000, bound: 1000, reward: 1_000_000, clutch: -1_000_000, limit: 1000)) != nil)
        let bad: [(Int64, Int64, Int64, Int64)] = [
            (-1, 10, 0, 0), (11, 10, 0, 0), (0, 1001, 0, 0), (0, 10, 1_000_001, 0),
            (0, 10, 0, -1_000_001), (0, 10, -1, 0), (0, 10, 5, -6)
        ]
        for (t, b, r, c) in bad {
            #expect(throws: LiftError.self, "\(t) \(b) \(r) \(c)") { try TradingVariables(target: t, bound: b, reward: r, clutch: c, limit: 1000) }
        }
    }
}

@Suite struct LiftCapacityTests {
    // Alice holds the stock, bob the foil; alice grants 1000, bob 500. Balance
    // -300: alice owes bob 300 (her holding -300, his +300).
    func half(_ side: TallySide, balance: Int64 = -300, held: [HeldChit] = [], trade: TradingVariables? = nil) -> LiftHalf {
        LiftHalf(tally: Fx.tallyUUID, side: side, stockLimit: 1000, foilLimit: 500, balance: balance, held: held, trade: trade)
    }

    func lift(_ n: Int, by: TallySide, units: Int64, referee: Int = 9) -> HeldChit {
        HeldChit(uuid: "lift-\(n)", kind: .lift, by: by, units: units, referee: Fx.site(referee).agent)
    }

    @Test func payeeCheck() throws {
        // Circular, target 0: clears alice's debt back to zero, not a unit more.
        #expect(LiftCapacity.payee(half(.stock), kind: .circ) == 300)
        #expect(LiftCapacity.payeeRefusal(half(.stock), units: 300, kind: .circ, referee: Fx.site(9).agent, withPartner: 0) == nil)
        #expect(LiftCapacity.payeeRefusal(half(.stock), units: 301, kind: .circ, referee: Fx.site(9).agent, withPartner: 0) == .capacity)
        // Linear: up to bound (the limit by default).
        #expect(LiftCapacity.payee(half(.stock), kind: .line) == 1300)
        // reward > 0: only up to target.
        let priced = try TradingVariables(target: 100, bound: 1000, reward: 1, clutch: 0, limit: 1000)
        #expect(LiftCapacity.payee(half(.stock, trade: priced), kind: .line) == 400)
        // Bob is owed already: nothing to clear into his half.
        #expect(LiftCapacity.payee(half(.foil), kind: .circ) == 0)
        // A pending chit raising alice's holding counts, except the promise's own.
        let h = half(.stock, held: [lift(1, by: .foil, units: 200)])
        #expect(LiftCapacity.payee(h, kind: .circ) == 100)
        #expect(LiftCapacity.payee(h, kind: .circ, excluding: "lift-1") == 300)
    }

    @Test func payerCheckExactlyAtTheLimit() throws {
        // Bob pays alice: her holding may rise to her limit, 1000, from -300.
        let bob = half(.foil)
        #expect(LiftCapacity.payer(bob) == 1300)
        #expect(LiftCapacity.payerRefusal(bob, units: 1300, referee: Fx.site(9).agent, withPartner: 0) == nil)
        #expect(LiftCapacity.payerRefusal(bob, units: 1301, referee: Fx.site(9).agent, withPartner: 0) == .capacity)
        // clutch > 0: it never pays.
        let clutched = try TradingVariables(target: 0, bound: 500, reward: 0, clutch: 1, limit: 500)
        #expect(LiftCapacity.payer(half(.foil, trade: clutched)) == 0)
        // Chits that lower alice's holding count as void: no more room from them.
        #expect(LiftCapacity.payer(half(.foil, held: [lift(1, by: .stock, units: 400)])) == 1300)
    }

    @Test func aReservationAndADirectPaymentNeverPassALimitTogether() {
        // A lift chit of 1000 by bob is pending: 300 is left for a tran by bob.
        let reserved = half(.foil, held: [lift(1, by: .foil, units: 1000)])
        #expect(LiftCapacity.limitAllows(units: 300, by: .foil, on: reserved))
        #expect(!LiftCapacity.limitAllows(units: 301, by: .foil, on: reserved))
        #expect(LiftCapacity.limitAllows(units: 1300, by: .foil, on: half(.foil)))
        #expect(!LiftCapacity.limitAllows(units: 1301, by: .foil, on: half(.foil)))
        // A pending tran of 1000 by bob leaves a lift 300.
        let paying = half(.foil, held: [HeldChit(uuid: "tran-1", kind: .tran, by: .foil, units: 1000)])
        #expect(LiftCapacity.payer(paying) == 300)
        #expect(LiftCapacity.payerRefusal(paying, units: 301, referee: Fx.site(9).agent, withPartner: 0) == .capacity)
        // Chits the other way count as void: they do not make room.
        let both = half(.foil, held: [lift(1, by: .foil, units: 1000), lift(2, by: .stock, units: 1000)])
        #expect(!LiftCapacity.limitAllows(units: 301, by: .foil, on: both))
        // The other limit: alice may owe bob at most 500 (balance ≥ -500), -300 now.
        #expect(LiftCapacity.limitAllows(units: 200, by: .stock, on: half(.stock)))
        #expect(!LiftCapacity.limitAllows(units: 201, by: .stock, on: half(.stock)))
    }

    @Test func caps() {
        let r = Fx.site(9).agent
        let fifteen = half(.foil, held: (0..<15).map { lift($0, by: .foil, units: 1, referee: 20 + $0) })
        #expect(LiftCapacity.withinCaps(fifteen, referee: r, withPartner: 0))
        let sixteen = half(.foil, held: (0..<16).map { lift($0, by: .foil, units: 1, referee: 20 + $0) })
        #expect(!LiftCapacity.withinCaps(sixteen, referee: r, withPartner: 0))
        #expect(LiftCapacity.payerRefusal(sixteen, units: 1, referee: r, withPartner: 0) == .busy)
        // Pending trans are not lifts in progress.
        let trans = half(.foil, held: (0..<20).map { HeldChit(uuid: "t\($0)", kind: .tran, by: .foil, units: 1) })
        #expect(LiftCapacity.withinCaps(trans, referee: r, withPartner: 0))
        // Four per referee per tally.
        let three = half(.foil, held: (0..<3).map { lift($0, by: .foil, units: 1) })
        #expect(LiftCapacity.withinCaps(three, referee: r, withPartner: 0))
        let four = half(.foil, held: (0..<4).map { lift($0, by: .foil, units: 1) })
        #expect(!LiftCapacity.withinCaps(four, referee: r, withPartner: 0))
        #expect(LiftCapacity.withinCaps(four, referee: Fx.site(8).agent, withPartner: 0))
        #expect(LiftCapacity.withinCaps(four, referee: r, withPartner: 0, excluding: "lift-0"))
        // 64 per partner.
        #expect(LiftCapacity.withinCaps(half(.foil), referee: r, withPartner: 63))
        #expect(!LiftCapacity.withinCaps(half(.foil), referee: r, withPartner: 64))
        #expect(LiftCapacity.payeeRefusal(half(.stock), units: 1, kind: .circ, referee: r, withPartner: 64) == .busy)
    }
}
