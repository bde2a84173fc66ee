import Foundation
import Testing
import TestSupport

/// kill -9 of real `chipsite serve` processes during a linear lift (issue
/// 13; sections 9.7, 9.10 (5)): alice on site a pays carol on site c through
/// bob on site b. A serve started with `CHIPSITE_TEST_KILL_AT` sends itself
/// SIGKILL at that moment of the lift; a long absence is
/// `CHIPSITE_TEST_CLOCK_OFFSET_MS` on every site's next serve, so no test
/// waits for it (doc/testing.md). chipsite's originator is its own lift's
/// referee (9.8), so "the referee down" is site a down after it called.
/// After every case the auditor below: the lift ended on every site that
/// holds it, as its referee decided, with the referee's signed decision;
/// bob nets zero; both halves of each tally agree and verify.
@Suite(.serialized) struct LiftKillTests {
    static let long = ProcessInfo.processInfo.environment["CHIPSITE_LONG"] != nil

    /// Where the relay dies (ChipDaemon `TestKill`).
    enum Moment: String, CaseIterable, Sendable {
        /// The promise reached b and nothing of it is stored.
        case promise
        /// b handled the promise: its chits pending, credit reserved, its own promise queued, no answer out.
        case reserved
        /// a (the referee) decided, the decision reached b and is not applied.
        case decision
    }

    struct Case: Sendable, CustomTestStringConvertible {
        var moment: Moment
        /// Seconds b is down (0: restarted at once; else every site's clock moves on that far).
        var down: Int
        var testDescription: String { "\(moment.rawValue), back after \(down) s" }
    }

    /// Default: each moment back at once, and one back after 300 s. With
    /// `CHIPSITE_LONG=1`: every moment after 0, 30 and 300 s.
    static let relayCases: [Case] =
        long
        ? Moment.allCases.flatMap { m in [0, 30, 300].map { Case(moment: m, down: $0) } }
        : Moment.allCases.map { Case(moment: $0, down: 0) } + [Case(moment: .reserved, down: 300)]

    /// b dies at `moment` and comes back after `down` seconds: the lift ends
    /// good if b is back within its life (60 s), and if not, good only when
    /// the referee had already decided good (moment `decision`), else void
    /// (a aborts at its deadline; nobody else voids).
    @Test(arguments: LiftKillTests.relayCases) func aRelayKilledMidLift(_ c: Case) throws {
        let line = try LiftLine(kill: ["b": c.moment.rawValue])
        defer { line.stopAll() }
        let lift = try line.pay()
        #expect(line.serves["b"]?.waitForExit(timeout: 30) == true, "b was not killed at \(c.moment.rawValue)")
        #expect(line.serves["b"]?.killed == true)
        #expect(line.log("b").contains("test: killed at \(c.moment.rawValue)"))
        if c.down == 0 {
            try line.start("b")
        } else {
            // Past the deadline, meanwhile a ends the lift (it aborts, or it
            // had decided) and c, if it holds the lift, asks a for it; within
            // the lift's life nothing is due.
            try line.restart("b", after: c.down) {
                try c.down < 60 || (line.ended("a", lift) && (line.state("c", lift) == nil || line.ended("c", lift)))
            }
        }
        let expected = c.down < 60 || c.moment == .decision ? "good" : "void"
        try line.audit(lift, expect: expected)
    }

    /// Default: back before the deadline (at once), after it (300 s), and
    /// never. With `CHIPSITE_LONG=1` also back after 30 s.
    static let refereeDowns: [Int] = long ? [0, 30, 300] : [0, 300]

    /// a, the originator and its lift's referee, died when the `arrive`
    /// that makes it call came in (its call, its decision and applying it
    /// are one transaction, so nothing of it was stored: a is still `exec`).
    /// b keeps the arrive in its outbox until a acknowledges it. Back before
    /// the deadline, a decides good; after it, its clock is past the deadline
    /// and it aborts and decides void (9.6 step 4, 9.7); every site takes
    /// what it decides.
    @Test(arguments: LiftKillTests.refereeDowns) func theRefereeDownDuringTheCommit(_ down: Int) throws {
        let line = try LiftLine(kill: ["a": "commit"])
        defer { line.stopAll() }
        let lift = try line.pay()
        #expect(line.serves["a"]?.waitForExit(timeout: 30) == true, "a was not killed at its commit")
        #expect(line.serves["a"]?.killed == true)
        #expect(try line.state("a", lift) == "exec")
        if down == 0 {
            try line.start("a")
        } else {
            // Meanwhile b and c ask the referee (timeout queries past the
            // deadline), get no answer, and keep the lift pending.
            let asked = try ["b", "c"].map { try line.queries($0, lift) }
            try line.restart(
                "a", after: down,
                meanwhile: { try down < 60 || (line.queries("b", lift) > asked[0] && line.queries("c", lift) > asked[1]) },
                check: { () throws -> Void in
                    for s in ["b", "c"] {
                        let st = try line.state(s, lift)
                        #expect(st == "part", "\(s) keeps the lift pending while a is down")
                    }
                })
        }
        try line.audit(lift, expect: down < 60 ? "good" : "void")
    }

    /// The referee never comes back: across ten lift lives the lift stays
    /// pending on b and c (they keep asking, keep the credit reserved and
    /// never void on their own timer), and an hour past the deadline
    /// `doctor` names the referee they wait for.
    @Test func theRefereeDownForever() throws {
        let line = try LiftLine(kill: ["a": "commit"])
        defer { line.stopAll() }
        let lift = try line.pay()
        #expect(line.serves["a"]?.waitForExit(timeout: 30) == true, "a was not killed at its commit")
        for s in ["b", "c"] { #expect(try line.state(s, lift) == "part") }
        let referee = try line.sites["a"]!.agent()
        for s in ["b", "c"] {
            let d = try json(try line.sites[s]!.cli(["doctor", "--json"]).stdout)
            #expect((d["checks"] as? [[String: Any]])?.contains { $0["check"] as? String == "lifts" && $0["ok"] as? Bool == false } != true)
        }
        // Ten lives later (a stays down): b and c ask a again and again.
        for s in ["b", "c"] { line.serves[s]?.stop() }
        line.offsetMs += 600_000
        let asked = try ["b", "c"].map { try line.queries($0, lift) }
        for s in ["b", "c"] { try line.start(s) }
        #expect(try eventually(30) { try line.queries("b", lift) >= asked[0] + 2 && line.queries("c", lift) >= asked[1] + 2 })
        for s in ["b", "c"] { #expect(try line.state(s, lift) == "part", "\(s) keeps the lift pending") }
        #expect(try line.state("a", lift) == "exec")
        #expect(try line.decisions("a", lift).isEmpty, "a never decided")
        for s in ["b", "c"] {
            #expect(try line.decisions(s, lift).isEmpty, "\(s) holds no decision")
            let chits = try line.show(s, lift)?["chits"] as? [[String: Any]] ?? []
            #expect(!chits.isEmpty && chits.allSatisfy { $0["state"] as? String == "pend" }, "\(s) keeps its lift chits pending: \(chits)")
        }
        // An hour past the deadline, doctor reports the lift and its referee.
        for s in ["b", "c"] {
            let r = try line.sites[s]!.cli(["doctor"], environment: ["CHIPSITE_TEST_CLOCK_OFFSET_MS": "3700000"])
            #expect(r.code == 1)
            #expect(r.stdout.contains("FAIL 1 lift(s) wait for referee \(referee)") && r.stdout.contains("over an hour"), "\(r.stdout)")
        }
        try line.checkTallies()
        #expect(try line.holding("b") == 0, "bob nets zero")
    }
}

/// Three sites a - b - c on loopback, alice owing bob owing carol through
/// two open tallies, each serve a real process.
final class LiftLine {
    let dir: TempDir
    var sites: [String: E2ESite] = [:]
    var serves: [String: ServeProcess] = [:]
    /// The clock offset every serve starts with now (ms).
    var offsetMs: Int64 = 0
    var ab = "", bc = ""
    /// `kill`: the CHIPSITE_TEST_KILL_AT of each site's first serve.
    init(kill: [String: String]) throws {
        dir = try TempDir()
        for (name, user) in [("a", "alice"), ("b", "bob"), ("c", "carol")] {
            let s = try E2ESite(dir: dir, name: name, user: user, port: freePort())
            guard try s.cli(["config", "set", "lift.interval", "0"]).code == 0 else { throw RunError("config set") }
            sites[name] = s
            serves[name] = try s.serve(kill[name].map { ["CHIPSITE_TEST_KILL_AT": $0] } ?? [:])
        }
        ab = try open("a", "b")
        bc = try open("b", "c")
    }

    /// An open tally: `from`'s user asks `to`'s for one and gets 100 CHIPs of credit.
    private func open(_ from: String, _ to: String) throws -> String {
        let f = sites[from]!, t = sites[to]!
        let r = try cli(from, ["tally", "request", f.user, try t.ticket(["--limit", "100"]), "--accept"])
        guard let id = r["id"] as? String else { throw RunError("tally request: \(r)") }
        guard try eventually(20, { try (t.tally(id)["state"] as? String) == "open" && (f.tally(id)["state"] as? String) == "open" }) else {
            throw RunError("tally \(from)-\(to) did not open")
        }
        return id
    }

    func stopAll() { for s in serves.values { s.stop() } }

    func log(_ site: String) -> String { (try? String(contentsOfFile: sites[site]!.db + ".log", encoding: .utf8)) ?? "" }

    /// Starts `site`'s serve again (after a crash or a stop), with the current offset.
    func start(_ site: String) throws {
        serves[site]?.stop()
        serves[site] = try sites[site]!.serve(offsetMs == 0 ? [:] : ["CHIPSITE_TEST_CLOCK_OFFSET_MS": "\(offsetMs)"])
    }

    /// `down` was away `seconds`: the running serves stop and start again
    /// with their clocks that much further on, and live through the absence
    /// (until `meanwhile` holds: what they do without `down`, bounded) before
    /// `down` starts again, as far on.
    /// `check` runs just before `down` starts.
    func restart(_ down: String, after seconds: Int, meanwhile: () throws -> Bool, check: () throws -> Void = {}) throws {
        for s in serves.values { s.stop() }
        offsetMs += Int64(seconds) * 1000
        for name in ["a", "b", "c"] where name != down { try start(name) }
        #expect(try eventually(30, meanwhile), "the sites did what was due while \(down) was away")
        try check()
        try start(down)
    }

    func ended(_ site: String, _ lift: String) throws -> Bool { ["good", "void"].contains(try state(site, lift)) }

    /// alice pays carol 5 CHIPs by a lift (no --wait); returns H once a started it.
    func pay() throws -> String {
        let c = sites["c"]!
        let r = try sites["a"]!.cli(["lift", "pay", "alice", "carol:\(try c.agent())", "5", "--json"])
        guard r.code == 0 else { throw RunError("lift pay: \(r.stderr)") }
        var lift: String?
        _ = try eventually(20) {
            lift = try lifts("a").first?["id"] as? String
            return lift != nil
        }
        guard let lift else { throw RunError("a started no lift: \(log("a").suffix(2000))") }
        return lift
    }

    /// A command that must succeed (its --json output parsed).
    func cli(_ site: String, _ args: [String]) throws -> [String: Any] {
        let r = try sites[site]!.cli(args + ["--json"])
        guard r.code == 0 else { throw RunError("\(site): chipsite \(args.joined(separator: " ")) failed (\(r.code)): \(r.stderr)") }
        return try json(r.stdout)
    }

    func lifts(_ site: String) throws -> [[String: Any]] { try cli(site, ["lift", "list"])["lifts"] as? [[String: Any]] ?? [] }

    /// `site`'s record of the lift: its state, nil without one.
    func state(_ site: String, _ lift: String) throws -> String? {
        try lifts(site).first { $0["id"] as? String == lift && $0["role"] as? String != "referee" }?["state"] as? String
    }

    /// `lift show`, with `--` before H: one lift in 64 has an H that starts with `-`.
    func show(_ site: String, _ lift: String) throws -> [String: Any]? {
        let r = try chipsite(["lift", "show", "--json", "--db", sites[site]!.db, "--", lift])
        guard r.code == 0 else { throw RunError("\(site): chipsite lift show \(lift) failed (\(r.code)): \(r.stderr)") }
        return try json(r.stdout)
    }

    func decisions(_ site: String, _ lift: String) throws -> [[String: Any]] {
        try show(site, lift)?["decisions"] as? [[String: Any]] ?? []
    }

    /// 9.7's timeout queries `site` sent for the lift (the record's count).
    func queries(_ site: String, _ lift: String) throws -> Int {
        let r = try run(
            "/usr/bin/python3",
            [
                "-c",
                "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); print(c.execute('select queries from lifts where lift=?', (sys.argv[2],)).fetchone()[0])",
                sites[site]!.db, lift
            ])
        guard r.code == 0, let n = Int(r.stdout.trimmingCharacters(in: .whitespacesAndNewlines)) else { throw RunError("queries: \(r.stderr)") }
        return n
    }

    /// What `site`'s user is owed on all its tallies (9.1's holding: the
    /// balance for the stock, minus it for the foil).
    func holding(_ site: String) throws -> Int {
        try sites[site]!.tallies().reduce(0) { sum, t in
            let balance = t["balance"] as? Int ?? 0
            return sum + (t["side"] as? String == "stock" ? balance : -balance)
        }
    }

    /// Both halves of each tally hold the same chain and balance, and `tally verify` passes on each.
    func checkTallies(sourceLocation: SourceLocation = #_sourceLocation) throws {
        func agree(_ x: String, _ y: String, _ id: String) throws -> Bool {
            let tx = try sites[x]!.tally(id), ty = try sites[y]!.tally(id)
            return tx["chain_head"] as? String != nil && tx["chain_head"] as? String == ty["chain_head"] as? String
                && tx["balance"] as? Int == ty["balance"] as? Int
        }
        #expect(try eventually(30) { try agree("a", "b", ab) && agree("b", "c", bc) }, "both halves agree", sourceLocation: sourceLocation)
        for (s, id) in [("a", ab), ("b", ab), ("b", bc), ("c", bc)] {
            let v = try sites[s]!.cli(["tally", "verify", id])
            #expect(v.code == 0, "tally verify \(id.prefix(8)) on \(s): \(v.stdout)\(v.stderr)", sourceLocation: sourceLocation)
        }
    }

    /// The auditor: waits (bounded) until every site holding the lift has
    /// ended it, then checks it ended as the referee (a) decided, `expect`.
    func audit(_ lift: String, expect expected: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let names = ["a", "b", "c"]
        let ended = try eventually(90) {
            try names.allSatisfy { s in
                let st = try state(s, lift)
                return s == "a" ? (st == "good" || st == "void") : (st == nil || st == "good" || st == "void")
            }
        }
        let states = try names.map { try state($0, lift) ?? "-" }
        #expect(ended, "the lift did not end everywhere: \(states)", sourceLocation: sourceLocation)
        let referee = try sites["a"]!.agent()
        let decided = try decisions("a", lift).filter { $0["referee"] as? Bool == true }
        #expect(decided.count == 1, "the referee holds one decision: \(decided)", sourceLocation: sourceLocation)
        let result = decided.first?["result"] as? String
        #expect(result == expected, "the referee decided \(result ?? "nothing"), states \(states)", sourceLocation: sourceLocation)
        for s in names {
            guard let st = try state(s, lift) else { continue }
            #expect(st == result, "\(s): \(st), the referee decided \(result ?? "nothing")", sourceLocation: sourceLocation)
            let shown = try show(s, lift) ?? [:]
            // Its chits as the decision says; no result without the referee's signed decision.
            for chit in shown["chits"] as? [[String: Any]] ?? [] {
                let cs = chit["state"] as? String
                let fits = result == "good" ? (cs == "good" || cs == "chained") : cs == "void"
                #expect(fits, "\(s): a lift chit is \(cs ?? "?") on a \(result ?? "?") lift", sourceLocation: sourceLocation)
            }
            let applied = (shown["decisions"] as? [[String: Any]] ?? []).filter {
                $0["applied"] as? Bool == true && $0["result"] as? String == st
                    && (($0["decision"] as? [String: Any])?["decision"] as? [String: Any])?["referee"] as? String == referee
            }
            #expect(!applied.isEmpty, "\(s) is \(st) without the referee's signed \(st)", sourceLocation: sourceLocation)
        }
        try checkTallies(sourceLocation: sourceLocation)
        #expect(try holding("b") == 0, "bob nets zero", sourceLocation: sourceLocation)
        let paid = result == "good" ? 5000 : 0
        #expect(try holding("a") == -paid && holding("c") == paid, "alice paid carol \(paid)", sourceLocation: sourceLocation)
        // The crash point fired once: no later serve has it.
        for s in names { #expect(log(s).components(separatedBy: "test: killed at").count <= 2, sourceLocation: sourceLocation) }
    }
}
