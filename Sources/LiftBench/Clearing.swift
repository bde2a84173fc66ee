import BenchSupport
import ChipDaemon
import ChipModel
import ChipPeer
import ChipProtocol
import ChipStore
import Foundation
import Logging
import Synchronization

/// Issue 13, benchmark 3: how much debt the circular lifts clear.
///
/// In this process: `sites` site files in a temporary directory, each with
/// one user and its own SiteDaemon (serve's engine) on a loopback port,
/// Noise channels between them. Tallies are opened the real way (ticket,
/// request, offer, accept) on a seeded random graph: 1.5 × sites tallies
/// between distinct random pairs (degree about 3), each with a random foil
/// and stock; the stock grants 1,000 CHIPs. The foil then pays the stock a
/// random 1-100 CHIPs on every tally, so every tally holds a debt foil →
/// stock. Then `rounds` rounds: every site is asked for a circular pass at
/// once (SiteStore.requestClear, what `chipsite lift clear` writes, and a
/// poke), and the round ends when every request is done, every lift it
/// started is good or void, and both halves of every tally agree.
///
/// Cleared = debt before − debt after, summed over the tallies; beside it
/// the optimum of a central clearer on the same graph (Circulation.maximum)
/// and the optimum with cycles of at most 6 foreign hops (the protocol's
/// path limit; Circulation.bestOf over every such cycle). Every delivered
/// message is counted with SiteEngine.observe: `lift` messages per lift
/// started, `route` messages per discovery (qid).
enum Clearing {
    struct Round {
        var cleared: Int64
        var started: Int
        var good: Int
        var void: Int
        var seconds: Double
    }

    struct Result {
        var sites: Int
        var tallies: Int
        var debt: Int64
        var cleared: Int64
        var optimum: Int64
        var optimumCertified: Bool
        var restricted: Double
        var restrictedCycles: Int
        var named: Double
        var namedCycles: Int
        var allCycles: Int?
        var allCyclesLP: Double?
        var rounds: [Round]
        var liftMessages: Int
        var routeMessages: Int
        var otherMessages: Int
        var discoveries: Int
        var lifts: Int
        var goodLifts: Int
        var notes: [String: Int]
        var setupSeconds: Double
        var load: String
        var seed: UInt64
    }

    /// Counts what every engine delivers.
    final class Counter: Sendable {
        private let state = Mutex<(lift: Int, route: Int, other: Int, qids: Set<String>)>((0, 0, 0, []))
        /// Route and lift messages by action (and a none's or refuse's reason), for --verbose.
        let kinds = Mutex<[String: Int]>([:])
        /// --verbose: every route message, as "receiver: action object", while set.
        let trace = Mutex<[String]?>(nil)
        func add(_ m: JSONValue, at site: Int) {
            trace.withLock { t in
                if t != nil, m["target"]?.stringValue == "route" || m["target"]?.stringValue == "lift" {
                    t?.append("site\(site) ← \(m["action"]?.stringValue ?? "?") \(m["object"]?.canonicalString.prefix(300) ?? "")")
                }
            }
            let target = m["target"]?.stringValue ?? "?"
            if target == "route" || target == "lift" {
                let reason = m["object"]?["reason"]?.stringValue.map { " " + $0 } ?? ""
                kinds.withLock { $0["\(target) \(m["action"]?.stringValue ?? "?")\(reason)", default: 0] += 1 }
            }
            state.withLock { s in
                switch target {
                case "lift": s.lift += 1
                case "route":
                    s.route += 1
                    if let q = m["object"]?["qid"]?.stringValue ?? m["qid"]?.stringValue { s.qids.insert(q) }
                default: s.other += 1
                }
            }
        }
        func reset() {
            state.withLock { $0 = (0, 0, 0, []) }
            kinds.withLock { $0 = [:] }
        }
        var value: (lift: Int, route: Int, other: Int, qids: Int) { state.withLock { ($0.lift, $0.route, $0.other, $0.qids.count) } }
    }

    /// A site in this process.
    final class Site: Sendable {
        let store: SiteStore
        let daemon: SiteDaemon
        let user: CUID
        let agent: AgentID
        let port: Int
        init(store: SiteStore, daemon: SiteDaemon, user: CUID, agent: AgentID, port: Int) {
            self.store = store
            self.daemon = daemon
            self.user = user
            self.agent = agent
            self.port = port
        }
    }

    struct Tally {
        let uuid: String
        let foil: Int
        let stock: Int
    }

    static func run(sites n: Int, rounds: Int, seed: UInt64, oneAtATime: Bool, verbose: Bool) async throws -> Result {
        let dir = try TempDir(prefix: "lift-bench")
        defer { try? FileManager.default.removeItem(atPath: dir.path) }
        let load = loadAverage()
        let setupStart = now()
        var rng = SplitMix64(seed: seed &+ UInt64(n))
        var logger = Logger(label: "lift-bench")
        logger.logLevel = .critical
        var limits = PeerLimits()
        // Every site dials from 127.0.0.1: the per-address handshake limit is not what is measured.
        limits.handshakeRate = 100_000
        limits.handshakeBurst = 100_000
        let counter = Counter()
        var net = [Site]()
        var runs = [Task<Void, Never>]()
        for i in 0..<n {
            let port = freePort()
            let store = try SiteStore.create(at: dir.file("site\(i).db"), address: try SiteAddress(host: "127.0.0.1", port: port), passphrase: nil)
            let user = try CUID("u\(i)")
            try store.addUser(cuid: user, name: "User \(i)", email: nil, sealingKey: nil)
            let d = try SiteDaemon(store: store, siteKey: try store.siteKey(sealingKey: nil), sealingKey: nil, limits: limits, logger: logger)
            _ = try await d.start(host: "127.0.0.1", port: port)
            await d.engine.setLiftSettings(LiftEngineSettings(interval: 0, min: 1000, lifeMs: 20_000))
            await d.engine.observe { m, _ in counter.add(m, at: i) }
            runs.append(Task { await d.run() })
            net.append(Site(store: store, daemon: d, user: user, agent: try store.agent(), port: port))
        }
        defer { for r in runs { r.cancel() } }

        // The random graph: distinct unordered pairs, random orientation.
        var pairs = Set<[Int]>()
        var tallies = [Tally]()
        let wanted = n * 3 / 2
        while tallies.count < wanted {
            let a = Int(rng.next() % UInt64(n)), b = Int(rng.next() % UInt64(n))
            guard a != b, pairs.insert([min(a, b), max(a, b)]).inserted else { continue }
            let (foil, stock) = rng.next() % 2 == 0 ? (a, b) : (b, a)
            let s = net[stock]
            let info = try s.store.issueTicket(
                cuid: s.user, expiresAt: Int64(now() * 1000) + 600_000, reuse: false, bound: nil,
                terms: ["side": "stock", "limit": .integer(1_000_000)])
            let ticket = try TallyTicket(
                token: info.token, expires: info.expires,
                chad: CHAD(cuid: s.user, agent: s.agent, address: try SiteAddress(host: "127.0.0.1", port: s.port)))
            _ = try net[foil].store.requestTally(cuid: net[foil].user, ticket: ticket, accept: true)
            net[foil].daemon.poke()
            tallies.append(Tally(uuid: "", foil: foil, stock: stock))
        }
        // The uuids, once both halves are open (the foil's provisional id is replaced by the stock's).
        let deadline = now() + 120
        var opened = [Tally]()
        while now() < deadline {
            opened = []
            for t in tallies {
                guard let rec = try net[t.stock].store.tallies().first(where: { $0.partner.agent == net[t.foil].agent && $0.state == .open }),
                    (try? net[t.foil].store.tally(rec.uuid))?.state == .open
                else { break }
                opened.append(Tally(uuid: rec.uuid, foil: t.foil, stock: t.stock))
            }
            if opened.count == tallies.count { break }
            try await Task.sleep(for: .milliseconds(50))
        }
        guard opened.count == tallies.count else { throw BenchError("only \(opened.count) of \(tallies.count) tallies opened") }
        tallies = opened

        // The debts: the foil pays the stock 1-100 CHIPs on every tally.
        for t in tallies {
            let f = net[t.foil]
            let key = try f.store.userKey(f.user, sealingKey: nil)
            _ = try f.store.pay(tally: t.uuid, units: Int64(1 + rng.next() % 100) * 1000, memo: nil, ref: nil) { _ in key }
            f.daemon.poke()
        }
        try await settle(net, tallies, seconds: 60)
        let before = try balances(net, tallies)
        let debt = before.reduce(0, +)
        let indebted = zip(tallies, before).filter { $0.1 > 0 }
        let edges = indebted.map { t, b in Circulation.Edge(from: t.foil, to: t.stock, capacity: b) }
        let best = Circulation.maximum(nodes: n, edges: edges)
        let short = Circulation.cycles(nodes: n, edges: edges, maxLength: LiftLimits.maxForeignHops) ?? []
        let restricted = Circulation.bestOf(short, edges: edges)
        let named = short.filter { Self.named($0, edges: edges, uuids: indebted.map(\.0.uuid), all: tallies, debts: before) }
        let namedLP = Circulation.bestOf(named, edges: edges)
        // A cross-check of the two methods where every cycle can be listed.
        let every = Circulation.cycles(nodes: n, edges: edges, maxLength: n, cap: 3000)
        let everyLP = every.map { Circulation.bestOf($0, edges: edges) }
        let setupSeconds = now() - setupStart
        print(
            "lift-bench clearing: \(n) sites in this process (site files, SiteDaemons, loopback), \(tallies.count) tallies (seed \(seed)),"
                + " debt \(Amount.format(debt)) CHIPs; \(rounds) rounds of circular passes on every site; load average before: \(load)")

        // The rounds.
        counter.reset()
        var record = [Round]()
        var lifts = Set<String>(), good = 0
        var notes = [String: Int]()
        var last = debt
        var idle = 0
        for r in 0..<rounds {
            let t0 = now()
            // All sites at once, or (--one-at-a-time) each alone, waiting for its lift.
            let groups = oneAtATime ? net.indices.map { [$0] } : [Array(net.indices)]
            var started = [(Int, String)]()
            var g = 0, v = 0
            for group in groups {
                var requests = [(Int, Int64)]()
                var mine = [(Int, String)]()
                for i in group {
                    let s = net[i]
                    requests.append((i, try s.store.requestClear(user: nil)))
                    s.daemon.poke()
                }
                let end = now() + 60
                var pending = requests
                while !pending.isEmpty, now() < end {
                    pending = try pending.filter { i, id in
                        guard let req = try net[i].store.liftRequest(id), req.state == .done else { return true }
                        if let l = req.lifts.first { mine.append((i, l)) } else { notes[req.note ?? "?", default: 0] += 1 }
                        return false
                    }
                    if !pending.isEmpty { try await Task.sleep(for: .milliseconds(10)) }
                }
                started += mine
                for (i, l) in mine {
                    lifts.insert(l)
                    let final = now() + 60
                    while now() < final {
                        let state = try net[i].store.liftState(l)
                        if state == .good { g += 1; break }
                        if state == .void { v += 1; break }
                        try await Task.sleep(for: .milliseconds(10))
                    }
                }
                // Every site's record of these lifts final (the decision reached every tally).
                let everywhere = now() + 60
                while now() < everywhere {
                    let open = try mine.contains { _, l in try net.contains { [.exec, .call, .part].contains(try $0.store.liftState(l)) } }
                    if !open { break }
                    try await Task.sleep(for: .milliseconds(20))
                }
                if oneAtATime, !mine.isEmpty { try await settle(net, tallies, seconds: 60) }
            }
            good += g
            try await settle(net, tallies, seconds: 60)
            let after = try balances(net, tallies).reduce(0, +)
            record.append(Round(cleared: last - after, started: started.count, good: g, void: v, seconds: now() - t0))
            if verbose {
                print(
                    "  round \(r + 1): \(started.count) lifts started, \(g) good, \(v) void; cleared \(Amount.format(last - after)) CHIPs;"
                        + " \(fmt(now() - t0, 0, decimals: 1)) s")
            }
            last = after
            // Three rounds in a row with no lift: the later ones would find nothing either.
            idle = started.isEmpty ? idle + 1 : 0
            if idle == 3 { break }
        }
        let counts = counter.value
        if verbose { try await traceOneStuckCycle(net, tallies, edges: edges, short: short, counter: counter) }
        if verbose {
            print(
                "  messages by kind: "
                    + counter.kinds.withLock { $0 }.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }.joined(separator: ", "))
        }
        for s in net { await s.daemon.stop() }
        return Result(
            sites: n, tallies: tallies.count, debt: debt, cleared: debt - last, optimum: best.value, optimumCertified: best.value == best.dualBound,
            restricted: restricted, restrictedCycles: short.count, named: namedLP, namedCycles: named.count, allCycles: every?.count,
            allCyclesLP: everyLP, rounds: record,
            liftMessages: counts.lift, routeMessages: counts.route, otherMessages: counts.other, discoveries: counts.qids, lifts: lifts.count,
            goodLifts: good, notes: notes, setupSeconds: setupSeconds, load: load, seed: seed)
    }

    /// Whether some site on `cycle` (edge indices, debts before the rounds)
    /// would search it: as LiftStart.circular picks, O sends one query per
    /// outgoing tally t0 (at most 4, largest capacity first, then by uuid),
    /// each naming one closing tally tc in `find.hop`, the one with the
    /// largest min(debt on tc, capacity of t0) (the first by uuid on a tie).
    /// A circle through t0 that closes on another of O's debts is not
    /// looked for from O. (A diagnostic of discovery's reach, not a bound:
    /// later rounds start from other debts.)
    static func named(_ cycle: [Int], edges: [Circulation.Edge], uuids: [String], all: [Tally], debts: [Int64], only: Int? = nil) -> Bool {
        let limit: Int64 = 1_000_000, min: Int64 = 1000
        for (k, e) in cycle.enumerated() where only == nil || edges[e].from == only {
            // O = the debtor of edge e (its closing tc); t0 = the cycle's edge into O (O's debtor pays O... O pays it).
            let o = edges[e].from
            let into = cycle[(k + cycle.count - 1) % cycle.count]
            // O's tallies, by uuid, with O's payee capacity (its debt) and payer capacity.
            let mine = zip(all, debts).filter { $0.0.foil == o || $0.0.stock == o }.sorted { $0.0.uuid < $1.0.uuid }
            var best = [String: (tc: String, carried: Int64)]()
            for (tc, d) in mine where tc.foil == o && d >= min {
                for (t0, d0) in mine where t0.uuid != tc.uuid {
                    // O pays on t0: back to zero where O is owed, up to the stock's limit where O owes.
                    let payer = t0.stock == o ? d0 : limit - d0
                    let carried = Swift.min(d, payer)
                    if carried >= min, carried > (best[t0.uuid]?.carried ?? 0) { best[t0.uuid] = (tc.uuid, carried) }
                }
            }
            let ranked = best.sorted { $0.value.carried != $1.value.carried ? $0.value.carried > $1.value.carried : $0.key < $1.key }.prefix(4)
            if ranked.contains(where: { $0.key == uuids[into] && $0.value.tc == uuids[e] }) { return true }
        }
        return false
    }

    /// --verbose: a cycle of ≤ 6 hops on which every debt is left, asked for
    /// from a site on it that names it, alone, with every message printed.
    static func traceOneStuckCycle(_ net: [Site], _ tallies: [Tally], edges: [Circulation.Edge], short: [[Int]], counter: Counter) async throws {
        let now = try balances(net, tallies)
        let debtOf = Dictionary(uniqueKeysWithValues: zip(tallies, now).map { ("\($0.0.foil)>\($0.0.stock)", $0.1) })
        let current = edges.map { Circulation.Edge(from: $0.from, to: $0.to, capacity: debtOf["\($0.from)>\($0.to)"] ?? 0) }
        guard let cycle = short.first(where: { c in c.allSatisfy { current[$0].capacity >= 1000 } }) else {
            return print("  trace: no cycle of ≤ 6 hops is left with debt on every hop")
        }
        let uuids = current.map { e in tallies.first { $0.foil == e.from && $0.stock == e.to }!.uuid }
        print(
            "  trace: cycle "
                + cycle.map { "site\(current[$0].from) owes site\(current[$0].to) \(Amount.format(current[$0].capacity))" }.joined(separator: ", "))
        let o = cycle.map { current[$0].from }.first { o in
            named(cycle, edges: current, uuids: uuids, all: tallies, debts: now, only: o)
        }
        guard let o else { return print("  trace: no site on it names it now") }
        counter.trace.withLock { $0 = [] }
        let id = try net[o].store.requestClear(user: nil)
        net[o].daemon.poke()
        let end = Date().addingTimeInterval(10)
        while Date() < end, try net[o].store.liftRequest(id)?.state != .done { try await Task.sleep(for: .milliseconds(20)) }
        try await Task.sleep(for: .milliseconds(500))
        let r = try net[o].store.liftRequest(id)
        print("  trace: site\(o) asked alone: \(r?.lifts.first.map { "lift \($0)" } ?? "no lift: \(r?.note ?? "?")")")
        for line in counter.trace.withLock({ $0 ?? [] }) { print("    " + line) }
        counter.trace.withLock { $0 = nil }
    }

    /// What each foil owes its stock, from the stock's half.
    static func balances(_ net: [Site], _ tallies: [Tally]) throws -> [Int64] {
        try tallies.map { try net[$0.stock].store.tally($0.uuid).balance }
    }

    /// Waits until both halves of every tally hold the same chain.
    static func settle(_ net: [Site], _ tallies: [Tally], seconds: Double) async throws {
        let end = now() + seconds
        while now() < end {
            let same = try tallies.allSatisfy { t in
                let a = try net[t.foil].store.chainHead(of: t.uuid), b = try net[t.stock].store.chainHead(of: t.uuid)
                return a.length == b.length && a.head == b.head
            }
            if same { return }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw BenchError("the tallies did not settle within \(Int(seconds)) s")
    }

    static func report(_ r: Result) -> [String: Any] {
        let chips = { (v: Int64) in Amount.format(v) }
        print("")
        print("                                                  CHIPs   of the optimum")
        print(pad("  debt on \(r.tallies) tallies", 44) + fmt(Double(r.debt) / 1000, 12, decimals: 3))
        print(
            pad("  optimum, any cycle (max circulation)", 44) + fmt(Double(r.optimum) / 1000, 12, decimals: 3) + "        1.00"
                + (r.optimumCertified ? "   (certified: dual bound = primal)" : "   (NOT certified)"))
        print(
            pad("  optimum, cycles ≤ \(LiftLimits.maxForeignHops) foreign hops (LP)", 44) + fmt(r.restricted / 1000, 12, decimals: 3)
                + fmt(r.restricted / Double(max(r.optimum, 1)), 12, decimals: 2) + "   (\(r.restrictedCycles) such cycles)")
        print(
            pad("  of these, cycles a site on them names", 44) + fmt(r.named / 1000, 12, decimals: 3)
                + fmt(r.named / Double(max(r.optimum, 1)), 12, decimals: 2) + "   (\(r.namedCycles) cycles; see Clearing.named)")
        let ratio = Double(r.cleared) / Double(max(r.optimum, 1))
        print(
            pad("  cleared by the lifts", 44) + fmt(Double(r.cleared) / 1000, 12, decimals: 3) + fmt(ratio, 12, decimals: 2)
                + "   (\(fmt(Double(r.cleared) / max(r.restricted, 1), 0, decimals: 2)) of the ≤ \(LiftLimits.maxForeignHops)-hop optimum)"
                + (ratio >= 0.9 ? "  target ≥ 0.9 met" : "  target ≥ 0.9 NOT met"))
        if let all = r.allCycles, let lp = r.allCyclesLP {
            print("  cross-check: the LP over all \(all) simple cycles gives \(fmt(lp / 1000, 0, decimals: 3)) CHIPs")
        }
        print(
            "  rounds: \(r.rounds.count); lifts started \(r.lifts), good \(r.goodLifts); per round cleared "
                + r.rounds.map { chips($0.cleared) }.joined(separator: ", "))
        if !r.notes.isEmpty { print("  passes with no lift: " + r.notes.map { "\($0.value) × \($0.key)" }.sorted().joined(separator: "; ")) }
        let perLift = Double(r.liftMessages) / Double(max(r.lifts, 1)), perQuery = Double(r.routeMessages) / Double(max(r.discoveries, 1))
        print(
            "  messages delivered: \(r.liftMessages) lift (\(fmt(perLift, 0, decimals: 1)) per lift started),"
                + " \(r.routeMessages) route (\(fmt(perQuery, 0, decimals: 1)) per discovery, \(r.discoveries) discoveries), \(r.otherMessages) other"
        )
        print("  setup \(fmt(r.setupSeconds, 0, decimals: 1)) s, rounds \(fmt(r.rounds.map(\.seconds).reduce(0, +), 0, decimals: 1)) s")
        return [
            "sites": r.sites, "tallies": r.tallies, "seed": r.seed, "debt_chips": Double(r.debt) / 1000, "optimum_chips": Double(r.optimum) / 1000,
            "optimum_certified": r.optimumCertified, "optimum_6_hops_chips": num(r.restricted / 1000), "cleared_chips": Double(r.cleared) / 1000,
            "ratio": num(ratio), "rounds": r.rounds.count, "lifts": r.lifts, "good_lifts": r.goodLifts, "lift_messages_per_lift": num(perLift),
            "route_messages_per_discovery": num(perQuery), "load_average": r.load
        ]
    }
}

/// A seeded generator (SplitMix64): the same network for the same seed.
struct SplitMix64 {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
