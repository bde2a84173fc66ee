import ChipModel
import ChipProtocol
import Testing
import TestSupport

/// Property (c): invoices on an open tally between two memory sites. Both
/// users send invoices; the partner's user pays or refuses them at random
/// moments; the chains sync; the wire loses, duplicates, reorders and
/// replays; the foil's user is locked now and then (a stock's payment is
/// then refused and its invoice open again, to be paid anew). An invoice
/// is paid at most once: at most one live chit pays it, and once settled
/// both sides agree on which.
@Suite struct InvoiceProperties {
    @Test func anInvoiceIsPaidAtMostOnceUnderInterleavings() throws {
        var seen: [String: Int] = [:]
        for seed in propertySeeds(1...120) {
            do {
                var run = try InvoiceRun(seed: seed)
                try run.run()
                for (uuid, issuer) in run.made {
                    seen[run.d.sites[issuer].invoices[uuid]?.record.state.rawValue ?? "?", default: 0] += 1
                    let payments = InvoiceRun.payments(run.d.sites[issuer.other], uuid)
                    if payments.contains(where: { $0.state == .refused }) {
                        seen[payments.contains { $0.state == .chained } ? "paid again" : "payment refused", default: 0] += 1
                    }
                }
            } catch {
                Issue.record("seed \(seed) (PROPERTY_SEED=\(seed) to replay): \(error)")
            }
        }
        // The runs paid, refused, and paid again after a refused payment.
        if allSeeds {
            for what in ["paid", "refused", "payment refused", "paid again"] { #expect(seen[what, default: 0] >= 3, "\(what): \(seen)") }
        }
    }
}

struct InvoiceRun {
    let seed: UInt64
    var d: ChainDriver
    /// Every invoice made: by whom (the payer is the other side).
    var made: [String: Side] = [:]

    init(seed: UInt64) throws {
        self.seed = seed
        d = try ChainDriver(seed: seed, limits: 20_000...200_000)
    }

    /// What a new channel from `side` sends besides the chain: its outbox
    /// (our invoices until answered) and our users' refusals.
    static func channelMessages(_ sites: MemoryPair, _ side: Side) -> [Packet] {
        sites.outbox(side) + sites[side].invoiceRefusals(to: sites.agent(side.other)).map { Packet(to: side.other, json: $0.json) }
    }

    mutating func run() throws {
        for step in 0..<d.rng.pick(20...100) {
            switch d.rng.choose([3, 4, 2, 2, 2, 2, 1, 6, 2, 2, 2, 1]) {
            case 0:  // an invoice from either user
                let side: Side = d.rng.coin(0.5) ? .a : .b
                // (A locked user sends none.)
                if let uuid = try? d.sites[side].createInvoice(tally: d.id, units: Int64(d.rng.pick(1...5_000))) {
                    made[uuid] = side
                    d.wire.note("\(side) invoices")
                }
            case 1: try payOne()
            case 2: try refuseOne()
            case 3:
                let side: Side = d.rng.coin(0.5) ? .a : .b
                d.wire.send(Self.channelMessages(d.sites, side))
                d.wire.note("channel from \(side)")
            case 4: d.stockSends()
            case 5: d.foilSends()
            case 6: d.newChannel()
            case 7: try d.deliverOne(keep: false)
            case 8: try d.deliverOne(keep: true)
            case 9: d.wire.lose(&d.rng)
            case 10: try d.replayOne()
            default:
                let cuid = d.sites[d.foil].users.keys.first!
                if d.sites[d.foil].lockedUsers.remove(cuid) == nil { d.sites[d.foil].lockedUsers.insert(cuid) }
                d.wire.note("foil user \(d.sites[d.foil].lockedUsers.isEmpty ? "unlocked" : "locked")")
            }
            try check(d, "step \(step)")
        }
        // The foil's user unlocked, every invoice still open answered, then everything arrives.
        d.sites[d.foil].lockedUsers = []
        try settle()
        for _ in 0..<3 {
            for (uuid, issuer) in made.sorted(by: { $0.key < $1.key }) where d.sites[issuer.other].invoices[uuid]?.record.state == .open {
                if d.rng.coin(0.5) {
                    if let chit = try? d.sites[issuer.other].payInvoice(uuid) { d.paid[chit.uuid] = issuer.other }
                } else {
                    try d.sites[issuer.other].refuseInvoice(uuid, reason: "no")
                }
            }
            try settle()
        }
        try checkFinal()
        let before = snapshot()
        for p in d.wire.history.shuffled(using: &d.rng) {
            try d.deliver(p)
            try check(d, "replay \(p.summary)")
        }
        try settle()
        try checkFinal()
        guard snapshot() == before else { throw d.fail("replays changed an invoice") }
    }

    mutating func settle() throws {
        try d.settle(extra: { Self.channelMessages($0, .a) + Self.channelMessages($0, .b) }, check: check)
    }

    /// The payer of one open incoming invoice pays it (maybe twice: the second must fail).
    mutating func payOne() throws {
        let open = made.keys.sorted().filter { d.sites[made[$0]!.other].invoices[$0]?.record.state == .open }
        guard !open.isEmpty else { return }
        let uuid = open[d.rng.pick(0...open.count - 1)], payer = made[uuid]!.other
        do {
            let chit = try d.sites[payer].payInvoice(uuid)
            d.paid[chit.uuid] = payer
            d.wire.note("\(payer) pays an invoice")
        } catch is Refused {}
        if d.rng.coin(0.3), let chit = try? d.sites[payer].payInvoice(uuid) {
            throw d.fail("invoice \(uuid.prefix(8)) was paid a second time by chit \(chit.uuid.prefix(8))")
        }
    }

    mutating func refuseOne() throws {
        let open = made.keys.sorted().filter { d.sites[made[$0]!.other].invoices[$0]?.record.state == .open }
        guard !open.isEmpty else { return }
        let uuid = open[d.rng.pick(0...open.count - 1)], payer = made[uuid]!.other
        try d.sites[payer].refuseInvoice(uuid, reason: "not mine")
        d.wire.note("\(payer) refuses an invoice")
    }

    /// The chits on `side` that pay invoice `uuid`.
    static func payments(_ site: MemorySite, _ uuid: String) -> [ChitRecord] {
        site.chits.values.filter { $0.chit.core["ref"]?["invoice"]?.stringValue == uuid }
    }

    /// After every step, on both sides: at most one chit that is not refused
    /// pays an invoice; a paid invoice names a live chit that pays it.
    func check(_ d: ChainDriver, _ when: String) throws {
        try d.checkChains(when, full: false)
        for (uuid, issuer) in made {
            for side in [issuer, issuer.other] {
                let site = d.sites[side]
                let live = Self.payments(site, uuid).filter { $0.state != .refused }
                guard live.count <= 1 else { throw d.fail("\(when): invoice \(uuid.prefix(8)) has \(live.count) live payments on \(side)") }
                guard let i = site.invoices[uuid] else { continue }
                if i.record.state == .paid {
                    guard let chit = i.record.chit, let c = site.chits[chit], c.state != .refused,
                        c.chit.core["ref"]?["invoice"]?.stringValue == uuid, c.chit.units >= i.record.units
                    else {
                        throw d.fail("\(when): invoice \(uuid.prefix(8)) is paid on \(side) by no live chit that pays it")
                    }
                    if side == issuer, c.state != .chained { throw d.fail("\(when): the issuer holds an invoice paid by an unchained chit") }
                }
            }
            let out = d.sites[issuer].invoices[uuid]?.record, inn = d.sites[issuer.other].invoices[uuid]?.record
            if out?.state == .paid, inn?.state != .paid {
                throw d.fail("\(when): invoice paid for the issuer, \(inn?.state.rawValue ?? "absent") for the payer")
            }
            if out?.state == .refused, inn?.state != .refused { throw d.fail("\(when): invoice refused for the issuer only") }
            if out?.state == .paid, inn?.state == .paid, out?.chit != inn?.chit { throw d.fail("\(when): the two sides name different chits") }
        }
    }

    /// Once everything arrived: every invoice answered is answered the same
    /// way on both sides, its payment chained on both, and no answered
    /// invoice waits in an outbox.
    func checkFinal() throws {
        try check(d, "settled")
        try d.checkSettledChains()
        for (uuid, issuer) in made {
            guard let out = d.sites[issuer].invoices[uuid]?.record, let inn = d.sites[issuer.other].invoices[uuid]?.record else {
                throw d.fail("invoice \(uuid.prefix(8)) is not on both sides")
            }
            guard out.state == inn.state else {
                throw d.fail("invoice \(uuid.prefix(8)) settled \(out.state.rawValue) for the issuer, \(inn.state.rawValue) for the payer")
            }
            if out.state == .paid {
                guard let chit = out.chit, d.sites[.a].chits[chit]?.state == .chained, d.sites[.b].chits[chit]?.state == .chained else {
                    throw d.fail("invoice \(uuid.prefix(8)) paid by a chit not chained on both sides")
                }
            }
            let chained = Self.payments(d.sites[issuer], uuid).filter { $0.state == .chained }
            guard chained.count == (out.state == .paid ? 1 : 0) else {
                throw d.fail("invoice \(uuid.prefix(8)) (\(out.state.rawValue)) has \(chained.count) chained payments")
            }
            if out.state != .open, d.sites[issuer].outbox.contains(where: { $0.topic == OutboxTopic.invoice(uuid) }) {
                throw d.fail("answered invoice \(uuid.prefix(8)) still waits in the outbox")
            }
        }
    }

    func snapshot() -> [String] {
        [Side.a, .b].flatMap { side in
            d.sites[side].invoices.values.map { "\(side) \($0.record.uuid) \($0.record.state.rawValue) \($0.record.chit ?? "-")" }.sorted()
        }
    }
}
