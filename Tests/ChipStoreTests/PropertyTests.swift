import ChipModel
import Foundation
import GRDB
import Testing
import TestSupport
import ChipProtocol
@testable import ChipStore

/// Property tests of the protocol logic between two site files, with no
/// network: every message either store produces is put on a simulated wire,
/// and a seeded generator decides what arrives, in which order, how often
/// (duplicates), what is lost, and which old messages are replayed. After
/// every step and at the end of every run the invariants are checked.
///
/// Runs are deterministic: the seeds are listed below. `PROPERTY_SEED=N`
/// (environment) runs that one seed alone; every failure names its seed.
@Suite(.serialized) struct PropertyTests {
    static let negotiationSeeds: [UInt64] = Array(1...120)
    static let chainSeeds: [UInt64] = Array(1001...1080)

    static func seeds(_ fixed: [UInt64]) -> [UInt64] {
        if let text = ProcessInfo.processInfo.environment["PROPERTY_SEED"], let seed = UInt64(text) { return [seed] }
        return fixed
    }

    // MARK: (a) tally negotiation

    @Test func tallyNegotiationConvergesUnderReorderingDuplicatesLossAndReplays() throws {
        var known: [NegotiationRun.KnownBug: [UInt64]] = [:]
        for seed in Self.seeds(Self.negotiationSeeds) {
            do {
                var run = try NegotiationRun(seed: seed)
                for bug in try run.run() { known[bug, default: []].append(seed) }
            } catch {
                Issue.record("seed \(seed): \(error)")
            }
        }
        // The two bugs these runs found in Sources/ChipStore/Tallies.swift (a
        // repeated open looped, a repeated void went unanswered) are fixed:
        // no run may meet them again.
        for bug in NegotiationRun.KnownBug.allCases {
            let seeds = known[bug] ?? []
            #expect(seeds.isEmpty, "\(bug.rawValue): seeds \(seeds.prefix(10)) (\(seeds.count) runs)")
        }
    }

    // MARK: (b) chit chain consensus

    @Test func chitChainsConvergeUnderReorderingDuplicatesLossAndReplays() throws {
        for seed in Self.seeds(Self.chainSeeds) {
            do {
                var run = try ChainRun(seed: seed)
                try run.run()
            } catch {
                Issue.record("seed \(seed): \(error)")
            }
        }
    }
}

// MARK: - Generator

typealias PropertyRNG = SplitMix64

extension SplitMix64 {
    mutating func chance(_ p: Double) -> Bool { Double.random(in: 0..<1, using: &self) < p }
    mutating func int(_ range: ClosedRange<Int>) -> Int { Int.random(in: range, using: &self) }
    /// Picks an index by weight.
    mutating func weighted(_ weights: [Int]) -> Int {
        var r = Int.random(in: 0..<weights.reduce(0, +), using: &self)
        for (i, w) in weights.enumerated() {
            if r < w { return i }
            r -= w
        }
        return weights.count - 1
    }
}

/// A property that did not hold (the run's seed is added by the caller).
struct PropertyViolation: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

func ensure(_ condition: Bool, _ message: @autoclosure () -> String) throws {
    if !condition { throw PropertyViolation(message()) }
}

// MARK: - Two sites and a wire

/// A directory in /dev/shm when there is one (no fsync cost), removed at the end.
final class PScratchDir {
    let path: String
    init() throws {
        let base = FileManager.default.isWritableFile(atPath: "/dev/shm") ? "/dev/shm/" : NSTemporaryDirectory() + "/"
        var template = Array((base + "chipstore-prop-XXXXXX").utf8CString)
        guard let p = mkdtemp(&template) else { throw StoreError.database("mkdtemp failed") }
        path = String(cString: p)
    }
    func file(_ name: String) -> String { path + "/" + name }
    deinit { try? FileManager.default.removeItem(atPath: path) }
}

enum PSite: String, CustomStringConvertible {
    case a, b
    var other: PSite { self == .a ? .b : .a }
    var description: String { rawValue }
}

/// One message on its way to `to`.
struct PPacket {
    let to: PSite
    let message: JSONValue
    var summary: String {
        let target = message["target"]?.stringValue ?? "?", action = message["action"]?.stringValue ?? "?"
        return "\(target).\(action)→\(to)"
    }
}

/// Site a (user alice) asks site b (user bob) for tallies; b issues tickets.
struct PTwoSites {
    let dir: PScratchDir
    let a: SiteStore, b: SiteStore
    let alice: CUID, bob: CUID
    let agentA: AgentID, agentB: AgentID

    init() throws {
        dir = try PScratchDir()
        a = try SiteStore.create(at: dir.file("a.db"), address: try SiteAddress(host: "a.example", port: 1), passphrase: nil)
        b = try SiteStore.create(at: dir.file("b.db"), address: try SiteAddress(host: "b.example", port: 2), passphrase: nil)
        alice = try CUID("alice")
        bob = try CUID("bob")
        try a.addUser(cuid: alice, name: "Alice", email: nil, sealingKey: nil)
        try b.addUser(cuid: bob, name: "Bob", email: nil, sealingKey: nil)
        agentA = try a.agent()
        agentB = try b.agent()
    }

    func store(_ s: PSite) -> SiteStore { s == .a ? a : b }
    func agent(_ s: PSite) -> AgentID { s == .a ? agentA : agentB }
    func user(_ s: PSite) -> CUID { s == .a ? alice : bob }
    func key(_ s: PSite) -> (CUID) throws -> SigningKey {
        let store = self.store(s)
        return { try store.userKey($0, sealingKey: nil) }
    }

    /// A ticket of bob's (one-time unless `reuse`): bob takes `side` and
    /// grants `limit` (no limit term when nil).
    func ticket(side: TallySide = .stock, limit: Int64? = 5000, reuse: Bool = false) throws -> TallyTicket {
        var terms: [String: JSONValue] = ["side": .string(side.rawValue)]
        if let limit { terms["limit"] = .integer(limit) }
        let info = try b.issueTicket(
            cuid: bob, expiresAt: Int64(Date().timeIntervalSince1970 * 1000) + 600_000, reuse: reuse,
            bound: nil, terms: .object(terms))
        return try TallyTicket(
            token: info.token, expires: info.expires,
            chad: CHAD(cuid: bob, agent: agentB, address: try SiteAddress(host: "b.example", port: 2)))
    }

    /// What the outbox of `s` holds for the other site.
    func outbox(_ s: PSite) throws -> [PPacket] {
        try store(s).outbox(for: agent(s.other)).map { PPacket(to: s.other, message: $0.message) }
    }

    /// Hands `p` to its site the way the engine does; returns the replies to send back.
    func deliver(_ p: PPacket) throws -> [PPacket] {
        let store = self.store(p.to), from = agent(p.to.other)
        let target = p.message["target"]?.stringValue, action = p.message["action"]?.stringValue ?? ""
        let outcome: TallyOutcome
        switch (target, action) {
        case ("tally", "ticket"):
            // The engine flushes the outbox, which holds the offer, on `.offer`.
            guard case .offer(let offer) = try store.redeemTicket(p.message, userKey: key(p.to)) else { return [] }
            return [PPacket(to: p.to.other, message: offer)]
        case ("tally", _):
            let key = self.key(p.to)
            outcome = try store.receiveTally(p.message, from: from, autoAcceptKey: { try? key($0) })
        case ("chit", "tran"): outcome = try store.receiveTransfer(p.message, from: from)
        case ("chit", "upd"): outcome = try store.receiveChainUpdate(p.message, from: from)
        case ("chit", "ack"), ("chit", "nak"): outcome = try store.receiveChainAnswer(p.message, from: from)
        case ("chit", "invoice"): outcome = try store.receiveInvoice(p.message, from: from)
        case ("chit", "refuse"): outcome = try store.receiveRefusal(p.message, from: from)
        default: throw PropertyViolation("unexpected message \(p.summary)")
        }
        guard case .applied(let replies) = outcome else { return [] }
        return replies.map { PPacket(to: p.to.other, message: $0) }
    }
}

/// The messages in flight and every distinct message ever sent (for replays).
struct PWire {
    var inFlight: [PPacket] = []
    var history: [PPacket] = []
    private var seen: Set<String> = []
    var log: [String] = []

    mutating func send(_ packets: [PPacket]) {
        inFlight += packets
        for p in packets where seen.insert("\(p.to) \(p.message.canonicalString)").inserted { history.append(p) }
    }

    mutating func note(_ s: String) {
        log.append(s)
        if log.count > 40 { log.removeFirst() }
    }
}

// MARK: - (a) Tally negotiation runs

/// One randomized run of the tally dialog: alice (site a) redeems bob's ticket;
/// alice accepts or refuses the offer at a random moment (or accepts at once
/// with `--accept` when the offer asks no credit of her).
struct NegotiationRun {
    /// Known bugs of the tally dialog (Sources/ChipStore/Tallies.swift),
    /// found by these runs; a run that meets one records it and goes on.
    enum KnownBug: String, CaseIterable, Hashable {
        /// receiveOpen, case .open: with nothing queued, BOTH sides answer a
        /// repeated `open` (the requester's tally has a token too), so one
        /// stray `open` ping-pongs for ever. Fix: answer only on the issuer's
        /// side (the ticket's token is in its `tickets` table).
        case openPingPong = "a repeated tally open is answered by both sides, so the two sites exchange `open` for ever"
        /// receiveVoid, case .void: a repeated `void` is never answered, so
        /// when the issuer's echo is lost the requester's `void` stays in its
        /// outbox for ever (sent on every channel). Fix: the issuer answers a
        /// repeated `void` with `void`, as it does `open`.
        case voidNeverAnswered = "a lost echo of a tally void leaves the void in the requester's outbox for ever"
    }

    let seed: UInt64
    var rng: PropertyRNG
    let sites: PTwoSites
    var wire = PWire()
    let decision: Bool?  // accept (true), refuse (false), or nil: auto-accept at the offer
    var decided = false
    var tallyID: String?

    init(seed: UInt64) throws {
        self.seed = seed
        rng = PropertyRNG(seed: seed)
        sites = try PTwoSites()
        let auto = rng.chance(0.25)
        decision = auto ? nil : rng.chance(0.7)
        let side: TallySide = rng.chance(0.5) ? .stock : .foil
        let limit: Int64 = auto ? 0 : Int64(rng.int(1...100_000))
        let ticket = try sites.ticket(side: side, limit: limit)
        _ = try sites.a.requestTally(cuid: sites.alice, ticket: ticket, accept: auto)
    }

    /// Runs the seed's steps; returns the known bugs met on the way.
    mutating func run() throws -> Set<KnownBug> {
        let steps = rng.int(5...60)
        for step in 0..<steps {
            switch rng.weighted([3, 6, 2, 2, 2, 2]) {
            case 0:  // a new channel: each side sends its whole outbox again
                let side: PSite = rng.chance(0.5) ? .a : .b
                wire.send(try sites.outbox(side))
                wire.note("\(step): outbox of \(side)")
            case 1: try deliverOne(keep: false)
            case 2: try deliverOne(keep: true)  // duplicate
            case 3:  // loss
                if !wire.inFlight.isEmpty {
                    let p = wire.inFlight.remove(at: rng.int(0...wire.inFlight.count - 1))
                    wire.note("\(step): lost \(p.summary)")
                }
            case 4:  // replay of any old message
                if !wire.history.isEmpty {
                    let p = wire.history[rng.int(0...wire.history.count - 1)]
                    wire.note("\(step): replay \(p.summary)")
                    wire.send(try sites.deliver(p))
                }
            default: try decide()
            }
            try checkInvariants("step \(step)")
        }
        // Everything from now on arrives: the dialog must settle. (A loop is
        // broken off and reported; the states are checked all the same.)
        var found = Set<KnownBug>()
        if try !settle() { found.insert(.openPingPong) }
        try checkFinal(&found)
        let before = try snapshot()
        // Replays of every old message, in random order, change nothing.
        for p in wire.history.shuffled(using: &rng) {
            wire.inFlight += try sites.deliver(p)
            try checkInvariants("replay \(p.summary)")
        }
        if try !settle() { found.insert(.openPingPong) }
        try checkFinal(&found)
        let after = try snapshot()
        try ensure(after == before, "replaying old messages changed a tally: \(before) → \(after)")
        return found
    }

    mutating func deliverOne(keep: Bool) throws {
        guard !wire.inFlight.isEmpty else { return }
        let i = rng.int(0...wire.inFlight.count - 1)
        let p = keep ? wire.inFlight[i] : wire.inFlight.remove(at: i)
        wire.note("\(keep ? "dup" : "deliver") \(p.summary)")
        wire.send(try sites.deliver(p))
    }

    /// Alice answers the offer once it is there.
    mutating func decide() throws {
        guard !decided, let decision, let offer = try sites.a.tallies().first(where: { $0.state == .peerOffer }) else { return }
        decided = true
        wire.note("alice \(decision ? "accepts" : "refuses")")
        if decision {
            _ = try sites.a.acceptTally(offer.uuid, key: sites.key(.a))
        } else {
            _ = try sites.a.refuseTally(offer.uuid)
        }
    }

    /// Delivers everything (new channels resend the outboxes) until nothing
    /// moves; false when messages still flow after a bounded number of rounds.
    mutating func settle() throws -> Bool {
        // The dialog needs about five rounds; twelve means messages loop.
        for _ in 0..<12 {
            try decide()
            var resent = false
            if wire.inFlight.isEmpty {
                wire.send(try sites.outbox(.a) + sites.outbox(.b))
                if wire.inFlight.isEmpty { return true }
                resent = true
            }
            let before = try snapshot()
            let batch = wire.inFlight
            wire.inFlight = []
            for p in batch {
                wire.send(try sites.deliver(p))
                try checkInvariants("settling: \(p.summary)")
            }
            // Sending what waits again changed nothing: settled (checkFinal judges what still waits).
            if resent, wire.inFlight.isEmpty, try snapshot() == before { return true }
        }
        wire.note("still in flight: \(wire.inFlight.prefix(4).map(\.summary))")
        wire.inFlight = []
        return false
    }

    func snapshot() throws -> [TallyRow] { try Self.rows(sites.a) + Self.rows(sites.b) }

    func fail(_ what: String) -> PropertyViolation {
        PropertyViolation("\(what)\n  recent: \(wire.log.suffix(12).joined(separator: "; "))")
    }

    /// A tally row as the invariants need it (read with SQL: cheap enough for every step).
    struct TallyRow: Equatable, Sendable {
        let uuid: String, side: String, state: String, hash: String?, signs: String, core: String
    }

    static func rows(_ store: SiteStore) throws -> [TallyRow] {
        try store.guardedRead { db in
            try Row.fetchAll(db, sql: "SELECT uuid, side, state, hash, sign_stock, sign_foil, core FROM tallies ORDER BY uuid").map {
                TallyRow(
                    uuid: $0["uuid"], side: $0["side"], state: $0["state"], hash: $0["hash"],
                    signs: "\(($0["sign_stock"] as String?) ?? "-") \(($0["sign_foil"] as String?) ?? "-")", core: $0["core"])
            }
        }
    }

    /// At every step: the two sides never disagree in a way that cannot heal.
    func checkInvariants(_ when: String) throws {
        let ta = try Self.rows(sites.a), tb = try Self.rows(sites.b)
        guard tb.count <= 1 else { throw fail("\(when): b made \(tb.count) tallies from one one-time ticket") }
        guard ta.filter({ $0.state != "void" }).count <= 1 else { throw fail("\(when): a holds \(ta.count) live tallies for one request") }
        for x in ta {
            guard let y = tb.first(where: { $0.uuid == x.uuid }) else { continue }
            let allowed: Set<String> = ["P.offer H.offer", "open H.offer", "void H.offer", "open open", "void void"]
            guard allowed.contains("\(x.state) \(y.state)") else { throw fail("\(when): a's tally is \(x.state) while b's is \(y.state)") }
            guard x.core == y.core, x.hash == y.hash, x.side != y.side else { throw fail("\(when): the two sides hold different cores") }
            if x.state == "open", y.state == "open", x.signs != y.signs { throw fail("\(when): open tallies with different signatures") }
        }
    }

    /// Once everything has arrived: both sides agree, nothing waits to be sent.
    func checkFinal(_ found: inout Set<KnownBug>) throws {
        let ta = try sites.a.tallies(), tb = try sites.b.tallies()
        let queuedA = try sites.outbox(.a).map(\.summary), queuedB = try sites.outbox(.b).map(\.summary)
        if queuedA == ["tally.void→b"], queuedB.isEmpty, decision == false, ta.first?.state == .void, tb.first?.state == .void {
            found.insert(.voidNeverAnswered)
        } else if !queuedA.isEmpty || !queuedB.isEmpty {
            throw fail("settled with messages in an outbox: a \(queuedA), b \(queuedB)")
        }
        guard ta.count == 1, tb.count == 1, let x = ta.first, let y = tb.first, x.uuid == y.uuid else {
            throw fail("settled with tallies a \(ta.map(\.state.rawValue)), b \(tb.map(\.state.rawValue))")
        }
        let expected: TallyState = decision == false ? .void : .open
        guard x.state == expected, y.state == expected else {
            throw fail("settled as a \(x.state.rawValue), b \(y.state.rawValue); expected both \(expected.rawValue)")
        }
        if expected == .open {
            guard x.sign == y.sign, x.signaturesValid, y.signaturesValid else { throw fail("open on both sides but signatures differ") }
        }
    }
}

// MARK: - (b) Chit chain runs

/// One randomized run of chain consensus on an open tally: both users pay at
/// random moments; the stock's site sends its pending chits (`tran`), the
/// foil's site orders them and sends chain entries (`upd`); the answers
/// (`ack`/`nak`) come back; the wire reorders, duplicates, loses and replays.
struct ChainRun {
    let seed: UInt64
    var rng: PropertyRNG
    let sites: PTwoSites
    var wire = PWire()
    let id: String
    let foil: PSite, stock: PSite
    let stockLimit: Int64, foilLimit: Int64
    /// Per "channel", as the engine keeps them: chits the stock sent, and
    /// how far the foil sent its chain; a new channel forgets both.
    var stockSent = Set<String>()
    var foilMark: Int64?
    /// Every chit made, by whom.
    var paid: [String: PSite] = [:]

    init(seed: UInt64) throws {
        self.seed = seed
        rng = PropertyRNG(seed: seed)
        sites = try PTwoSites()
        let issuerSide: TallySide = rng.chance(0.5) ? .stock : .foil
        let limit = Int64(rng.int(1_000...50_000))
        id = try Self.openTally(sites, issuerSide: issuerSide, limit: limit)
        (stock, foil) = issuerSide == .stock ? (.b, .a) : (.a, .b)
        guard let core = try sites.a.tally(id).core else { throw PropertyViolation("the tally has no core") }
        (stockLimit, foilLimit) = (core.limit(.stock), core.limit(.foil))
    }

    /// Opens a tally with the dialog delivered in order (tested above).
    static func openTally(_ s: PTwoSites, issuerSide: TallySide, limit: Int64) throws -> String {
        let ticket = try s.ticket(side: issuerSide, limit: limit)
        let request = try s.a.requestTally(cuid: s.alice, ticket: ticket, accept: false)
        guard let ticketMessage = try s.a.outbox(for: s.agentB).first(where: { $0.topic == request })?.message,
            case .offer(let offer) = try s.b.redeemTicket(ticketMessage, userKey: s.key(.b))
        else { throw PropertyViolation("no offer") }
        _ = try s.deliver(PPacket(to: .a, message: offer))
        guard let offered = try s.a.tallies().first else { throw PropertyViolation("the offer was not taken") }
        _ = try s.a.acceptTally(offered.uuid, key: s.key(.a))
        guard let open = try s.a.outbox(for: s.agentB).first?.message else { throw PropertyViolation("no open queued") }
        for reply in try s.deliver(PPacket(to: .b, message: open)) { _ = try s.deliver(reply) }
        guard try s.a.tally(offered.uuid).state == .open, try s.b.tally(offered.uuid).state == .open else {
            throw PropertyViolation("the tally did not open")
        }
        return offered.uuid
    }

    mutating func run() throws {
        let steps = rng.int(20...100)
        for step in 0..<steps {
            switch rng.weighted([4, 4, 3, 3, 1, 8, 2, 2, 2]) {
            case 0: try pay(foil)
            case 1: try pay(stock)
            case 2: try stockSends()
            case 3: try foilSends()
            case 4:  // the channel drops: per-channel marks are forgotten, maybe what was in flight too
                stockSent = []
                foilMark = nil
                if rng.chance(0.5) { wire.inFlight = [] }
                wire.note("\(step): new channel")
            case 5: try deliverOne(keep: false)
            case 6: try deliverOne(keep: true)
            case 7:
                if !wire.inFlight.isEmpty {
                    let p = wire.inFlight.remove(at: rng.int(0...wire.inFlight.count - 1))
                    wire.note("\(step): lost \(p.summary)")
                }
            default:
                if !wire.history.isEmpty {
                    let p = wire.history[rng.int(0...wire.history.count - 1)]
                    wire.note("\(step): replay \(p.summary)")
                    try deliver(p)
                }
            }
            try checkInvariants("step \(step)", full: step % 40 == 39)
        }
        try settle()
        try checkFinal()
        let before = try sites.store(foil).chainHead(of: id)
        // Replays of every old message, then everything settles again: no change.
        for p in wire.history.shuffled(using: &rng) {
            try deliver(p)
            try checkInvariants("replay \(p.summary)", full: false)
        }
        try settle()
        try checkFinal()
        let after = try sites.store(foil).chainHead(of: id)
        try ensure(after == before, "seed \(seed): replays changed the chain: \(before) → \(after)")
    }

    mutating func pay(_ side: PSite) throws {
        let units = Int64(rng.int(1...Int(max(stockLimit, foilLimit) / 3 + 1)))
        do {
            let chit = try sites.store(side).pay(tally: id, units: units, memo: nil, ref: nil, key: sites.key(side))
            paid[chit.chit.uuid] = side
            wire.note("\(side) pays \(units)")
        } catch StoreError.overLimit {
            // Over the limit as this site sees it: refused before anything is signed away.
        }
    }

    /// The stock's site sends the pending chits not yet sent on this channel.
    mutating func stockSends() throws {
        guard let (message, uuids) = try sites.store(stock).pendingTransfer(tally: id, excluding: stockSent) else { return }
        stockSent.formUnion(uuids)
        wire.send([PPacket(to: foil, message: message)])
        wire.note("\(stock) sends tran ×\(uuids.count)")
    }

    /// The foil's site sends chain entries past what the stock confirmed or
    /// what went on this channel already (SiteEngine.syncChains).
    mutating func foilSends() throws {
        guard let work = try sites.store(foil).chainWork().first(where: { $0.tally == id }) else { return }
        var after = max(work.acked, foilMark ?? work.acked)
        for _ in 0..<2 where after < work.length {
            guard let upd = try sites.store(foil).chainUpdate(tally: id, after: after) else { break }
            wire.send([PPacket(to: stock, message: upd)])
            after = upd["object"]?["entries"]?.arrayValue?.last?["index"]?.integerValue ?? work.length
            foilMark = after
            wire.note("\(foil) sends upd to \(after)")
        }
    }

    mutating func deliverOne(keep: Bool) throws {
        guard !wire.inFlight.isEmpty else { return }
        let i = rng.int(0...wire.inFlight.count - 1)
        let p = keep ? wire.inFlight[i] : wire.inFlight.remove(at: i)
        wire.note("\(keep ? "dup" : "deliver") \(p.summary)")
        try deliver(p)
    }

    mutating func deliver(_ p: PPacket) throws {
        let replies = try sites.deliver(p)
        // The engine sends again from where the stock says it is on a nak.
        if p.to == foil, p.message["action"] == "nak", let index = p.message["object"]?["index"]?.integerValue { foilMark = index }
        wire.send(replies)
    }

    /// New channels and reliable delivery until nothing is left to send.
    mutating func settle() throws {
        for _ in 0..<100 {
            if wire.inFlight.isEmpty {
                stockSent = []
                foilMark = nil
                try stockSends()
                try foilSends()
                if wire.inFlight.isEmpty {
                    let work = try sites.a.chainWork() + sites.b.chainWork()
                    try ensure(work.isEmpty, "seed \(seed): settled with chain work left: \(work)")
                    return
                }
            }
            let batch = wire.inFlight
            wire.inFlight = []
            for p in batch {
                try deliver(p)
                try checkInvariants("settling \(p.summary)", full: false)
            }
        }
        throw fail("the chains did not settle in 100 rounds")
    }

    func fail(_ what: String) -> PropertyViolation {
        PropertyViolation("\(what)\n  recent: \(wire.log.suffix(12).joined(separator: "; "))")
    }

    /// The state of every chit of the tally on one side.
    func states(_ site: PSite) throws -> [String: ChitRecord.State] {
        Dictionary(uniqueKeysWithValues: try sites.store(site).chits(tally: id, limit: 100_000).map { ($0.chit.uuid, $0.state) })
    }

    /// One side's chain as the invariants need it, read with SQL (no JSON).
    struct ChainView: Sendable {
        var hashes: [String] = []
        var sum: Int64 = 0
        var balance: Int64 = 0
        var length: Int64 = 0
        var head: String?
    }

    func view(_ site: PSite) throws -> ChainView {
        let id = self.id
        return try sites.store(site).guardedRead { db in
            var v = ChainView()
            for row in try Row.fetchAll(
                db, sql: "SELECT chain_hash, by, units FROM chits WHERE tally = ? AND state = 'chained' ORDER BY idx",
                arguments: [id])
            {
                v.hashes.append(row["chain_hash"])
                let units: Int64 = row["units"], by: String = row["by"]
                v.sum += by == "foil" ? units : -units
            }
            if let t = try Row.fetchOne(db, sql: "SELECT balance, chain_length, chain_head FROM tallies WHERE uuid = ?", arguments: [id]) {
                (v.balance, v.length, v.head) = (t["balance"], t["chain_length"], t["chain_head"])
            }
            return v
        }
    }

    /// At every step: the stock's chain is a prefix of the foil's; each
    /// side's balance is the sum of its chain and within the limits.
    func checkInvariants(_ when: String, full: Bool) throws {
        let f = try view(foil), s = try view(stock)
        guard s.hashes.count <= f.hashes.count, Array(f.hashes.prefix(s.hashes.count)) == s.hashes else {
            throw fail("\(when): the chains forked (stock \(s.hashes.count) entries, foil \(f.hashes.count))")
        }
        for (site, v) in [(foil, f), (stock, s)] {
            guard v.balance == v.sum else { throw fail("\(when): \(site)'s balance \(v.balance) is not its chain's sum \(v.sum)") }
            guard Chit.withinLimits(v.balance, stockLimit: stockLimit, foilLimit: foilLimit) else {
                throw fail("\(when): \(site)'s balance \(v.balance) exceeds a limit (stock \(stockLimit), foil \(foilLimit))")
            }
            guard v.length == Int64(v.hashes.count), v.head == v.hashes.last else {
                throw fail("\(when): \(site)'s tally row says \(v.length) entries, its chain has \(v.hashes.count)")
            }
            if full {
                let problems = try sites.store(site).verifyTally(id)
                guard problems.isEmpty else { throw fail("\(when): verify on \(site): \(problems)") }
            }
        }
    }

    /// Once everything has arrived: the same chain and balance on both sides,
    /// clean verification, and every chit made is chained once or refused.
    func checkFinal() throws {
        try checkInvariants("settled", full: true)
        let chainF = try sites.store(foil).chain(of: id), chainS = try sites.store(stock).chain(of: id)
        guard chainF.map(\.chainHash) == chainS.map(\.chainHash) else {
            throw fail("settled with different chains: foil \(chainF.count), stock \(chainS.count)")
        }
        guard try sites.a.tally(id).balance == (try sites.b.tally(id).balance) else { throw fail("settled with different balances") }
        let chained = chainF.map(\.chit.uuid)
        guard Set(chained).count == chained.count else { throw fail("a chit is chained twice") }
        let onStock = try states(stock), onFoil = try states(foil)
        for (uuid, payer) in paid {
            switch (onFoil[uuid], onStock[uuid]) {
            case (.chained?, .chained?): continue
            case (.refused?, .refused?) where payer == stock: continue
            default:
                throw fail(
                    "chit \(uuid.prefix(8)) by \(payer) ended \(onFoil[uuid]?.rawValue ?? "absent") on the foil, "
                        + "\(onStock[uuid]?.rawValue ?? "absent") on the stock")
            }
        }
        guard Set(chained).isSubset(of: Set(paid.keys)) else { throw fail("the chain holds a chit nobody made") }
    }
}
