import ChipModel
import ChipProtocol
import Testing
import TestSupport

/// Property (a): the tally dialog (ticket → offer → open/void) between two
/// memory sites, every message duplicated, lost, reordered and replayed at
/// random, on both sides. Exactly one tally opens, or both sides end void;
/// the two sides never hold states that contradict each other; a replayed
/// ticket never makes a second tally. `PROPERTY_SEED=N` replays one seed.
@Suite struct TallyDialogProperties {
    @Test func oneTallyOpensOrBothEndVoidUnderDuplicatesLossReorderingAndReplays() throws {
        var ends: [String: Int] = [:]
        for seed in propertySeeds(1...200) {
            do {
                var run = try TallyRun(seed: seed)
                try run.run()
                let state = run.sites.a.tallies.values.first?.state.rawValue ?? "?"
                ends["\(state) \(run.decision.map { $0 ? "accepted" : "refused" } ?? "at once")", default: 0] += 1
                if run.replayedTicket { ends["ticket replayed", default: 0] += 1 }
            } catch {
                Issue.record("seed \(seed) (PROPERTY_SEED=\(seed) to replay): \(error)")
            }
        }
        // The runs met every ending (not a property that holds for want of cases).
        if allSeeds {
            for end in ["open accepted", "void refused", "open at once", "ticket replayed"] {
                #expect(ends[end, default: 0] >= 5, "\(end): \(ends)")
            }
        }
    }
}

/// One run: alice (site a) redeems a ticket of bob's (site b); alice
/// accepts or refuses the offer at a random moment, or accepts at once.
struct TallyRun {
    let seed: UInt64
    var rng: SplitMix64
    var sites: MemoryPair
    var wire = Wire()
    /// Accept (true), refuse (false), or nil: accept at once (`--accept`).
    let decision: Bool?
    var decided = false
    let ticket: TallyTicket
    /// The ticket message reached bob's site again after it made the tally.
    var replayedTicket = false

    init(seed: UInt64) throws {
        self.seed = seed
        rng = SplitMix64(seed: seed)
        sites = try MemoryPair(seed: seed)
        let auto = rng.coin(0.25)
        decision = auto ? nil : rng.coin(0.7)
        let side: TallySide = rng.coin(0.5) ? .stock : .foil
        ticket = try sites.bobsTicket(side: side, limit: Int64(rng.pick(0...100_000)), reuse: rng.coin(0.3))
        try sites.a.requestTally(sites.alice, ticket: ticket, accept: auto)
    }

    mutating func run() throws {
        for step in 0..<rng.pick(5...60) {
            switch rng.choose([3, 6, 2, 2, 2, 2]) {
            case 0:  // a new channel: one side sends its whole outbox again
                let side: Side = rng.coin(0.5) ? .a : .b
                wire.send(sites.outbox(side))
                wire.note("\(step): outbox of \(side)")
            case 1: try deliverOne(keep: false)
            case 2: try deliverOne(keep: true)
            case 3: wire.lose(&rng)
            case 4:
                if !wire.history.isEmpty {
                    let p = wire.history[rng.pick(0...wire.history.count - 1)]
                    wire.note("\(step): replay \(p.summary)")
                    if p.json["action"] == "ticket", !sites.b.tallies.isEmpty { replayedTicket = true }
                    wire.send(try sites.deliver(p))
                }
            default: try decide()
            }
            try checkInvariants("step \(step)")
        }
        try settle()
        try checkFinal()
        let before = state()
        // Every old message again, in random order: nothing changes.
        for p in wire.history.shuffled(using: &rng) {
            wire.inFlight += try sites.deliver(p)
            try checkInvariants("replay \(p.summary)")
        }
        try settle()
        try checkFinal()
        let after = state()
        guard after == before else { throw fail("replaying old messages changed a tally: \(before) → \(after)") }
    }

    mutating func deliverOne(keep: Bool) throws {
        guard let p = wire.take(&rng, keep: keep) else { return }
        wire.note("\(keep ? "dup" : "deliver") \(p.summary)")
        wire.send(try sites.deliver(p))
    }

    /// Alice answers the offer once it is there.
    mutating func decide() throws {
        guard !decided, let decision, let offer = sites.a.tallies.values.first(where: { $0.state == .peerOffer }) else { return }
        decided = true
        wire.note("alice \(decision ? "accepts" : "refuses")")
        if decision { try sites.a.acceptTally(offer.uuid) } else { try sites.a.refuseTally(offer.uuid) }
    }

    /// Everything arrives from now on (new channels send the outboxes again)
    /// until nothing moves; the dialog needs about five rounds.
    mutating func settle() throws {
        for _ in 0..<12 {
            try decide()
            if wire.inFlight.isEmpty {
                wire.send(sites.outbox(.a) + sites.outbox(.b))
                if wire.inFlight.isEmpty { return }
            }
            let batch = wire.inFlight
            wire.inFlight = []
            for p in batch {
                wire.send(try sites.deliver(p))
                try checkInvariants("settling: \(p.summary)")
            }
        }
        throw fail("messages still flow after 12 rounds: \(wire.inFlight.prefix(4).map(\.summary))")
    }

    /// Both sites' tallies and outboxes.
    struct State: Equatable, CustomStringConvertible {
        var tallies: [String]
        var outboxes: [String]
        var description: String { "\(tallies) \(outboxes)" }
    }

    func state() -> State {
        func rows(_ s: MemorySite) -> [String] {
            s.tallies.values.map { "\(s.name) \($0.uuid) \($0.state.rawValue) \($0.sign?.json.canonicalString ?? "-")" }.sorted()
        }
        return State(tallies: rows(sites.a) + rows(sites.b), outboxes: (sites.outbox(.a) + sites.outbox(.b)).map(\.summary))
    }

    func fail(_ what: String) -> Violation { Violation("\(what)\n  recent: \(wire.recent())") }

    /// After every step: b holds at most one tally from the ticket for alice
    /// (a replayed ticket makes none), a at most one live tally, and where
    /// both hold the tally their states fit together.
    func checkInvariants(_ when: String) throws {
        let ta = Array(sites.a.tallies.values), tb = Array(sites.b.tallies.values)
        guard tb.filter({ $0.token == ticket.token }).count <= 1 else {
            throw fail("\(when): b made \(tb.count) tallies from one ticket for one requester")
        }
        guard ta.filter({ $0.state != .void }).count <= 1 else { throw fail("\(when): a holds \(ta.count) live tallies for one request") }
        let allowed: Set<String> = ["P.offer H.offer", "open H.offer", "void H.offer", "open open", "void void"]
        for x in ta {
            guard let y = sites.b.tallies[x.uuid] else { continue }
            guard allowed.contains("\(x.state.rawValue) \(y.state.rawValue)") else {
                throw fail("\(when): a's tally is \(x.state.rawValue) while b's is \(y.state.rawValue)")
            }
            guard let cx = x.core, let cy = y.core, cx.json == cy.json, x.side != y.side, x.sign?.hash == y.sign?.hash else {
                throw fail("\(when): the two sides hold different cores")
            }
            if x.state == .open, y.state == .open, x.sign != y.sign { throw fail("\(when): open tallies with different signatures") }
        }
    }

    /// Once everything arrived: one tally each, the same, open (accepted) or
    /// void (refused) on both sides, and nothing waits to be sent.
    func checkFinal() throws {
        let queued = sites.outbox(.a).map(\.summary) + sites.outbox(.b).map(\.summary)
        guard queued.isEmpty else { throw fail("settled with messages in an outbox: \(queued)") }
        let ta = Array(sites.a.tallies.values), tb = Array(sites.b.tallies.values)
        guard ta.count == 1, tb.count == 1, let x = ta.first, let y = tb.first, x.uuid == y.uuid else {
            throw fail("settled with tallies a \(ta.map(\.state.rawValue)), b \(tb.map(\.state.rawValue))")
        }
        let expected: TallyState = decision == false ? .void : .open
        guard x.state == expected, y.state == expected else {
            throw fail("settled as a \(x.state.rawValue), b \(y.state.rawValue); expected both \(expected.rawValue)")
        }
        if expected == .open {
            guard x.sign == y.sign, x.signaturesValid, y.signaturesValid else { throw fail("open on both sides but the signatures differ") }
        }
    }
}
