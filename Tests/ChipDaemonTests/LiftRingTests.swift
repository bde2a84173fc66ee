import ChipModel
import ChipProtocol
import Foundation
import Testing
import TestSupport
@testable import ChipDaemon
@testable import ChipStore

/// Lifts across real sites in one process: site files, serve's engine,
/// Noise channels on loopback (section 9).
@Suite(.serialized) struct LiftRingTests {
    /// Three sites in a ring, a owes b, b owes c, c owes a: one circular lift
    /// started by a (its own referee) clears the circle on every tally, both
    /// halves of each agree, and the relays net zero.
    @Test func aCircularLiftClearsARingOfThreeSites() async throws {
        let net = try LiftNetwork(["a", "b", "c"])
        try await net.start()
        let ab = try net.openTally(stock: "b", foil: "a")
        let bc = try net.openTally(stock: "c", foil: "b")
        let ca = try net.openTally(stock: "a", foil: "c")
        try net.pay("a", tally: ab, units: 10_000)
        try net.pay("b", tally: bc, units: 10_000)
        try net.pay("c", tally: ca, units: 10_000)
        #expect(
            try await eventually(20) {
                try net.agree("a", "b", ab) && net.agree("b", "c", bc) && net.agree("c", "a", ca)
                    && net.tally("a", ab).balance == 10_000
            })
        let request = try net["a"].store.requestClear(user: nil)
        net["a"].daemon?.poke()
        #expect(
            try await eventually(30) {
                let r = try net["a"].store.liftRequest(request)
                guard let lift = r?.lifts.first else { return false }
                return try net["a"].store.liftState(lift) == .good && net["b"].store.liftState(lift) == .good
                    && net["c"].store.liftState(lift) == .good
            }, "the lift ends good on every site")
        let r = try net["a"].store.liftRequest(request)
        #expect(r?.note == nil, "no lift: \(r?.note ?? "")")
        #expect(
            try await eventually(20) {
                try net.agree("a", "b", ab) && net.agree("b", "c", bc) && net.agree("c", "a", ca) && net.tally("a", ab).balance == 0
                    && net.tally("b", bc).balance == 0 && net.tally("c", ca).balance == 0
            }, "every tally is cleared and both halves agree")
        #expect(try await net.quietAudit() == [])
        await net.stop()
    }

    /// A balance that crosses its target starts a circular pass at once:
    /// with an hour between automatic passes, the site whose payment closes
    /// the circle of debt finds and clears it without waiting (issue 13).
    @Test func aBalanceCrossingItsTargetStartsACircularPassAtOnce() async throws {
        let net = try LiftNetwork(["a", "b", "c"])
        try await net.start()
        for name in ["a", "b", "c"] {
            await net[name].daemon?.engine.setLiftSettings(LiftEngineSettings(interval: 3600, min: 1))
        }
        let ab = try net.openTally(stock: "b", foil: "a")
        let bc = try net.openTally(stock: "c", foil: "b")
        let ca = try net.openTally(stock: "a", foil: "c")
        // Each site's pass has looked once (what is past its target at the
        // first look is left to the interval's pass).
        for name in ["a", "b", "c"] { net[name].daemon?.poke() }
        #expect(
            await eventually(20) {
                for name in ["a", "b", "c"] { guard await net[name].daemon?.engine.hasLookedForCrossings() == true else { return false } }
                return true
            })
        try net.pay("a", tally: ab, units: 10_000)
        try net.pay("b", tally: bc, units: 10_000)
        try net.pay("c", tally: ca, units: 10_000)
        for name in ["a", "b", "c"] { net[name].daemon?.poke() }
        #expect(
            try await eventually(30) {
                try net.agree("a", "b", ab) && net.agree("b", "c", bc) && net.agree("c", "a", ca) && net.tally("a", ab).balance == 0
                    && net.tally("b", bc).balance == 0 && net.tally("c", ca).balance == 0
            }, "the circle is cleared on every tally without a request or the hourly pass")
        #expect(try await net.quietAudit() == [])
        await net.stop()
    }

    /// Four sites in a line, a - b - c - d: a's user pays d's, with whom it
    /// shares no tally, by a linear lift over three foreign hops; b and c
    /// net zero and every tally's halves agree.
    @Test func aLinearLiftPaysAcrossThreeHops() async throws {
        let net = try LiftNetwork(["a", "b", "c", "d"])
        try await net.start()
        let ab = try net.openTally(stock: "b", foil: "a")
        let bc = try net.openTally(stock: "c", foil: "b")
        let cd = try net.openTally(stock: "d", foil: "c")
        let link = try PayLink(cuid: try CUID("d"), agent: net["d"].agent, units: 5000, memo: "rent")
        let request = try net["a"].store.requestPay(payor: try CUID("a"), link: try PayLink(text: link.text), units: 5000, memo: nil)
        net["a"].daemon?.poke()
        #expect(
            try await eventually(30) {
                guard let lift = try net["a"].store.liftRequest(request)?.lifts.first else { return false }
                return try ["a", "b", "c", "d"].allSatisfy { try net[$0].store.liftState(lift) == .good }
            }, "the lift ends good on every site")
        let r = try net["a"].store.liftRequest(request)
        #expect(r?.note == nil, "no lift: \(r?.note ?? "")")
        #expect(
            try await eventually(20) {
                try net.agree("a", "b", ab) && net.agree("b", "c", bc) && net.agree("c", "d", cd)
                    && net.tally("a", ab).balance == 5000 && net.tally("b", bc).balance == 5000 && net.tally("c", cd).balance == 5000
            }, "a owes b, b owes c, c owes d: 5 CHIPs each, so b and c net zero")
        #expect(try await net.quietAudit() == [])
        await net.stop()
    }

    /// `lift clear --user`: a circle is looked for only through that user;
    /// one with no part in the circle starts no lift.
    @Test func clearingForOneUserLooksOnlyThroughThatUser() async throws {
        let net = try LiftNetwork(["a", "b", "c"])
        try net.addUser("a", "a2")
        try await net.start()
        let ab = try net.openTally(stock: "b", foil: "a")
        let bc = try net.openTally(stock: "c", foil: "b")
        let ca = try net.openTally(stock: "a", foil: "c")
        for (payer, t) in [("a", ab), ("b", bc), ("c", ca)] { try net.pay(payer, tally: t, units: 4000) }
        #expect(try await eventually(20) { try net.agree("a", "b", ab) && net.agree("b", "c", bc) && net.agree("c", "a", ca) })
        let other = try net["a"].store.requestClear(user: try CUID("a2"))
        net["a"].daemon?.poke()
        #expect(try await net.finished("a", other) == nil, "a2 is on no circle")
        #expect(try net["a"].store.liftRequest(other)?.note != nil)
        let mine = try net["a"].store.requestClear(user: try CUID("a"))
        net["a"].daemon?.poke()
        #expect(try await net.finished("a", mine)?.state == .good)
        #expect(try await net.quietAudit() == [])
        await net.stop()
    }
}
