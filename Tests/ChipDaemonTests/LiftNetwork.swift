import ChipModel
import ChipProtocol
import Foundation
import GRDB
import Testing
import TestSupport
@testable import ChipDaemon
@testable import ChipStore

/// N sites in this process for lifts: each its own site file, key and
/// loopback port (written in its users' certificates, so partners dial
/// what the tallies say), one user per site named after it.
final class LiftNetwork: @unchecked Sendable {
    let dir: TempDir
    var sites: [String: TestSite] = [:]

    init(_ names: [String]) throws {
        dir = try TempDir()
        for name in names { sites[name] = try TestSite(dir: dir, name: name, port: freePort()) }
    }

    subscript(_ name: String) -> TestSite {
        guard let s = sites[name] else { fatalError("no site \(name) in the test network") }
        return s
    }

    /// `skew`: seconds each named site's clock is off (±), for clock-skew runs.
    func start(skew: [String: Double] = [:]) async throws {
        for (name, s) in sites.sorted(by: { $0.key < $1.key }) {
            let port = try await s.store.database.read { db in try SiteStore.address(db).port }
            try await s.start(port: port, clock: SkewedClock(offset: skew[name] ?? 0))
            await s.daemon?.engine.setLiftSettings(LiftEngineSettings(interval: 0, min: 1))
        }
    }

    func stop() async {
        for s in sites.values { await s.stop() }
    }

    /// An open tally between `stock`'s user and `foil`'s user, each granting
    /// `limit` milliCHIPs: signed by both users and stored on both sites.
    @discardableResult
    func openTally(stock: String, foil: String, stockUser: String? = nil, foilUser: String? = nil, limit: Int64 = 1_000_000) throws -> String {
        let s = self[stock], f = self[foil]
        let sc = try CUID(stockUser ?? stock), fc = try CUID(foilUser ?? foil)
        let sCert = try #require(try s.store.database.read { db in try SiteStore.userCert(db, sc) })
        let fCert = try #require(try f.store.database.read { db in try SiteStore.userCert(db, fc) })
        let now = Timestamp.format(millisecondsSince1970: wallClockMilliseconds())
        let core = try TallyCore(
            uuid: UUID().uuidString.lowercased(), date: now, memo: nil, stock: (cert: sCert, terms: ["limit": .integer(limit)]),
            foil: (cert: fCert, terms: ["limit": .integer(limit)]))
        let sign = TallySignatures(
            stock: core.sign(with: try s.store.userKey(sc, sealingKey: nil)), foil: core.sign(with: try f.store.userKey(fc, sealingKey: nil)),
            hash: core.hash)
        try s.store.database.write { db in
            try SiteStore.insertTally(
                db, core: core, sign: sign, cuid: sc, side: .stock, partner: core.foilCert.chad, state: .open, token: nil, now: now)
        }
        try f.store.database.write { db in
            try SiteStore.insertTally(
                db, core: core, sign: sign, cuid: fc, side: .foil, partner: core.stockCert.chad, state: .open, token: nil, now: now)
        }
        return core.uuid
    }

    /// Another user on `site`.
    func addUser(_ site: String, _ cuid: String) throws {
        _ = try self[site].store.addUser(cuid: try CUID(cuid), name: cuid.capitalized, email: nil, sealingKey: nil)
    }

    /// Asks `site` to look for circular lifts now; returns the request.
    func clear(_ site: String) throws -> Int64 {
        let id = try self[site].store.requestClear(user: nil)
        self[site].daemon?.poke()
        return id
    }

    /// The request's lift once it ended good or void (nil: it started none).
    func finished(_ site: String, _ request: Int64, seconds: Double = 30) async throws -> (lift: String, state: LiftRecord.State)? {
        var out: (String, LiftRecord.State)?
        _ = try await eventually(seconds) {
            guard let r = try self[site].store.liftRequest(request), r.state == .done else { return false }
            guard let lift = r.lifts.first else { return true }
            guard let state = try self[site].store.liftState(lift), state == .good || state == .void else { return false }
            out = (lift, state)
            return true
        }
        return out
    }

    /// `payer`'s user pays `units` on `tally` (the payer owes that much more).
    func pay(_ payer: String, tally: String, units: Int64) throws {
        let store = self[payer].store
        _ = try store.pay(tally: tally, units: units, memo: nil, ref: nil, key: { try store.userKey($0, sealingKey: nil) })
        self[payer].daemon?.poke()
    }

    /// The tally as `site` holds it.
    func tally(_ site: String, _ uuid: String) throws -> TallyRecord { try self[site].store.tally(uuid) }

    /// Both halves of `uuid` hold the same chain (length, head, balance).
    func agree(_ a: String, _ b: String, _ uuid: String) throws -> Bool {
        let x = try tally(a, uuid), y = try tally(b, uuid)
        return x.chainLength == y.chainLength && x.chainHead == y.chainHead && x.balance == y.balance
    }
}

extension LiftNetwork {
    /// The auditor (issue 13), run after every lift scenario: what must
    /// hold on every site once the network is quiet. Returns the problems.
    func audit() throws -> [String] {
        var problems = [String]()
        var refereeResults = [String: String]()  // H -> R's result
        var byAgent = [AgentID: String]()
        for (name, s) in sites { byAgent[s.agent] = name }
        for (_, s) in sites {
            for row in try s.store.database.read({ db in try Row.fetchAll(db, sql: "SELECT lift, result FROM referee_decisions") }) {
                refereeResults[row["lift"]] = row["result"]
            }
        }
        var tallyViews = [String: [(site: String, length: Int64, head: String?, balance: Int64, chits: [String])]]()
        for (name, s) in sites.sorted(by: { $0.key < $1.key }) {
            try s.store.database.read { db in
                // Every lift terminated, and as its referee decided.
                for row in try Row.fetchAll(db, sql: "SELECT l.lift, l.state, l.role, h.header FROM lifts l JOIN lift_headers h USING (lift)") {
                    let lift: String = row["lift"], state: String = row["state"], role: String = row["role"]
                    guard state == "good" || state == "void" else {
                        problems.append("\(name): lift \(lift.prefix(8)) (\(role)) still \(state)")
                        continue
                    }
                    if let r = refereeResults[lift], r != state {
                        problems.append("\(name): lift \(lift.prefix(8)) is \(state) but its referee decided \(r)")
                    }
                    // No void (and no good) without the referee's signed decision.
                    let header = try LiftHeader(json: try JSONValue(parsing: row["header"] as String))
                    let decisions = try String.fetchAll(
                        db, sql: "SELECT decision FROM lift_decisions WHERE lift = ? AND applied = 1", arguments: [lift]
                    ).compactMap { try? SignedDecision(json: try JSONValue(parsing: $0)) }
                    if !decisions.contains(where: { $0.result.rawValue == state && $0.problem(for: header) == nil }) {
                        problems.append("\(name): lift \(lift.prefix(8)) is \(state) without the referee's signed \(state)")
                    }
                }
                // Lift chits: none left pending; each as its lift's referee decided.
                for row in try Row.fetchAll(db, sql: "SELECT uuid, lift, state FROM chits WHERE type = 'lift'") {
                    let lift: String = row["lift"], state: String = row["state"]
                    let r = refereeResults[lift]
                    let fits = (r == "good" && (state == "chained" || state == "good")) || (r == "void" && state == "void")
                    if !fits {
                        problems.append("\(name): lift chit \((row["uuid"] as String).prefix(8)) is \(state), its referee said \(r ?? "nothing")")
                    }
                }
                // Each relay's users net zero on every lift; a circle nets zero for everyone.
                for row in try Row.fetchAll(
                    db,
                    sql: """
                        SELECT l.lift, l.role, h.kind, t.cuid, sum(CASE WHEN c.by = t.side THEN -c.units ELSE c.units END) AS net
                        FROM lifts l JOIN lift_headers h USING (lift) JOIN chits c ON c.lift = l.lift JOIN tallies t ON t.uuid = c.tally
                        WHERE l.state = 'good' GROUP BY l.lift, t.cuid
                        """)
                {
                    let role: String = row["role"], kind: String = row["kind"], net: Int64 = row["net"]
                    if role == "relay" || kind == "circ", net != 0 {
                        problems.append("\(name): user \(row["cuid"] as String) nets \(net) on lift \((row["lift"] as String).prefix(8)) as \(role)")
                    }
                }
                // Limits, and each tally as this half holds it.
                for row in try Row.fetchAll(db, sql: "SELECT * FROM tallies WHERE state = 'open'") {
                    let t = try SiteStore.tallyRecord(row)
                    guard let core = t.core else { continue }
                    if !Chit.withinLimits(t.balance, stockLimit: core.limit(.stock), foilLimit: core.limit(.foil)) {
                        problems.append("\(name): tally \(t.uuid.prefix(8)) balance \(t.balance) is past a limit")
                    }
                    let chits = try String.fetchAll(
                        db, sql: "SELECT hash FROM chits WHERE tally = ? AND state = 'chained' ORDER BY idx", arguments: [t.uuid])
                    tallyViews[t.uuid, default: []].append((name, t.chainLength, t.chainHead, t.balance, chits))
                }
            }
        }
        // Both halves of every tally hold the same chits and chain hash.
        for (uuid, views) in tallyViews where views.count == 2 {
            let (x, y) = (views[0], views[1])
            if x.length != y.length || x.head != y.head || x.balance != y.balance || x.chits != y.chits {
                problems.append(
                    "tally \(uuid.prefix(8)): \(x.site) holds \(x.length) entries, balance \(x.balance); \(y.site) \(y.length), \(y.balance)")
            }
        }
        return problems
    }

    /// Waits (bounded) until the audit finds nothing, then returns what it finds.
    func quietAudit(_ seconds: Double = 20) async throws -> [String] {
        _ = try await eventually(seconds) { try self.audit().isEmpty }
        return try audit()
    }
}

/// A clock `offset` seconds off the machine's (a site whose clock is wrong).
struct SkewedClock: SiteClock {
    let offset: TimeInterval
    var now: Date { Date().addingTimeInterval(offset) }
    func sleep(until deadline: Date) async throws { try await SystemClock().sleep(until: deadline.addingTimeInterval(-offset)) }
}
