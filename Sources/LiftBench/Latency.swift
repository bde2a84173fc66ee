import BenchSupport
import ChipDaemon
import ChipModel
import ChipProtocol
import ChipStore
import Foundation

/// Issue 13, benchmark 1: lift latency over real `chipsite serve` processes
/// on loopback, beside the chit round trip between two of the same sites.
///
/// Sites: a ring r0 → r1 → r2 → r0 (each foil of the tally to the next, so
/// each owes the next after paying) and a line s0 → s1 → … → s6. Each run,
/// interleaved:
/// - chit round trip: s0 pays s1 one CHIP through its site file and pokes
///   serve (as `chipsite pay` does); from the commit until s1's chain holds
///   it (chit-bench's latency);
/// - circular: r0, r1, r2 each pay the next one CHIP (the circle of debt is
///   made again), the chains settle, then r0's request (SiteStore.requestClear,
///   what `chipsite lift clear` writes) is committed and serve poked;
/// - linear over 2, 4, 6 foreign hops: s0's request to pay s2's, s4's or
///   s6's user one CHIP (SiteStore.requestPay with a pay link, what
///   `chipsite lift pay` writes), committed and serve poked.
/// Timed from the request's commit to the lift `good` in the originator's
/// file, and to `good` on every other site of the path; the bench polls the
/// files every 0.25 ms through connections of its own (the CLI's --wait
/// polls every 50 ms, and its process start would be part of the figure).
enum Latency {
    struct Sample {
        /// Request committed → the lift chosen and started (`exec`): route discovery.
        var discovered: Double
        /// → `good` in the originator's record.
        var good: Double
        /// → `good` on every site of the path.
        var everywhere: Double
    }

    struct Scenario {
        let name: String
        let hops: Int
        var samples: [Sample] = []
        var failures: [String] = []
    }

    struct Result {
        var scenarios: [Scenario]
        var chit: [Double]
        var serveCPU: Double
        var seconds: Double
        var load: String
        var processes: Int
    }

    static func run(binary: String, runs: Int, cleanup: Cleanup, verbose: Bool) throws -> Result {
        let dir = try TempDir(prefix: "lift-bench")
        cleanup.track(dir: dir.path)
        let load = loadAverage()
        let ring = try (0..<3).map { try ServeSite(dir: dir, name: "r\($0)") }
        let line = try (0...6).map { try ServeSite(dir: dir, name: "s\($0)") }
        let all = ring + line
        for s in all { try s.start(binary: binary, cleanup: cleanup) }
        defer { for s in all { _ = s.stop(cleanup: cleanup) } }
        let ringTallies = try (0..<3).map { try openTally(foil: ring[$0], stock: ring[($0 + 1) % 3]) }
        let lineTallies = try (0..<6).map { try openTally(foil: line[$0], stock: line[$0 + 1]) }
        let cpu0 = all.compactMap { $0.serve?.cpuSeconds() }.reduce(0, +)
        let start = now()
        print(
            "lift-bench latency: \(all.count) chipsite serve processes on 127.0.0.1 (a ring of 3, a line of 7), \(runs) runs; load average before: \(load)"
        )

        var scenarios = [Scenario(name: "circular, ring of 3", hops: 3)] + [2, 4, 6].map { Scenario(name: "linear, \($0) hops", hops: $0) }
        var chit = [Double]()
        let unit: Int64 = 1000
        for run in 0..<runs {
            // Chit round trip s0 → s1.
            let base = line[1].chainLength(lineTallies[0])
            try line[0].pay(lineTallies[0], units: unit)
            let paid = now()
            if waitFor(10, every: 0.0002, { line[1].chainLength(lineTallies[0]) > base }) { chit.append((now() - paid) * 1000) }
            guard waitFor(20, { agree(line[0], line[1], lineTallies[0]) }) else { throw BenchError("s0-s1 did not settle") }

            // Circular: make the circle of debt again, then clear it.
            for i in 0..<3 { try ring[i].pay(ringTallies[i], units: unit) }
            guard waitFor(20, { (0..<3).allSatisfy { agree(ring[$0], ring[($0 + 1) % 3], ringTallies[$0]) } }) else {
                throw BenchError("the ring did not settle after the payments")
            }
            let circ = try timeLift(origin: ring[0], path: Array(ring.dropFirst())) { try ring[0].store.requestClear(user: nil) }
            record(circ, into: &scenarios[0])
            guard waitFor(20, { (0..<3).allSatisfy { agree(ring[$0], ring[($0 + 1) % 3], ringTallies[$0]) } }) else {
                throw BenchError("the ring did not settle after the lift")
            }

            // Linear over 2, 4, 6 hops.
            for (k, hops) in [2, 4, 6].enumerated() {
                let payee = line[hops]
                let link = try PayLink(cuid: payee.user, agent: payee.agent, units: unit)
                let lin = try timeLift(origin: line[0], path: Array(line[1...hops])) {
                    try line[0].store.requestPay(payor: line[0].user, link: link, units: unit, memo: nil)
                }
                record(lin, into: &scenarios[k + 1])
                guard waitFor(20, { (0..<hops).allSatisfy { agree(line[$0], line[$0 + 1], lineTallies[$0]) } }) else {
                    throw BenchError("the line did not settle after the lift")
                }
            }
            if verbose {
                let last = scenarios.map { s in s.samples.last.map { String(format: "%.1f", $0.good) } ?? "-" }.joined(separator: " ")
                print("  run \(run + 1): chit \(chit.last.map { String(format: "%.1f", $0) } ?? "-") ms; lifts \(last) ms")
            }
        }
        let cpu = all.compactMap { $0.serve?.cpuSeconds() }.reduce(0, +) - cpu0
        return Result(scenarios: scenarios, chit: chit, serveCPU: cpu, seconds: now() - start, load: load, processes: all.count)
    }

    static func record(_ r: Swift.Result<Sample, BenchError>, into s: inout Scenario) {
        switch r {
        case .success(let x): s.samples.append(x)
        case .failure(let e): s.failures.append(e.description)
        }
    }

    /// Commits the request, pokes the originator's serve and follows the
    /// lift in the files until it is good on the originator and on every
    /// site of `path` (bounded: 30 s).
    static func timeLift(origin: ServeSite, path: [ServeSite], request: () throws -> Int64) throws -> Swift.Result<Sample, BenchError> {
        let id = try request()
        let t0 = now()
        origin.poke()
        var lift: String?
        var discovered = 0.0, good: Double?
        var goodAt = [Double?](repeating: nil, count: path.count)
        let deadline = t0 + 30
        while now() < deadline {
            if lift == nil, let r = try origin.store.liftRequest(id), r.state == .done {
                guard let l = r.lifts.first else { return .failure(BenchError("no lift: \(r.note ?? "?")")) }
                lift = l
                discovered = now()
            }
            if let lift {
                if good == nil {
                    switch try origin.store.liftState(lift) {
                    case .good: good = now()
                    case .void: return .failure(BenchError("the lift ended void"))
                    default: break
                    }
                }
                for (i, s) in path.enumerated() where goodAt[i] == nil {
                    if try s.store.liftState(lift) == .good { goodAt[i] = now() }
                }
                if let good, goodAt.allSatisfy({ $0 != nil }) {
                    let last = max(good, goodAt.compactMap { $0 }.max() ?? good)
                    return .success(Sample(discovered: (discovered - t0) * 1000, good: (good - t0) * 1000, everywhere: (last - t0) * 1000))
                }
            }
            usleep(250)
        }
        return .failure(BenchError("not good everywhere within 30 s (lift \(lift ?? "none"))"))
    }

    static func report(_ r: Result) -> [String: Any] {
        let chit = r.chit.sorted()
        let c50 = percentile(chit, 0.5), c99 = percentile(chit, 0.99)
        print("")
        print(
            "chit round trip s0 → s1 (pay committed → in the partner's chain): p50 \(ms(c50)) ms, p99 \(ms(c99)) ms (\(chit.count) payments)")
        print("")
        print(
            pad("", 22) + "  hops   discovery p50     lift good at O p50    p99    good everywhere p50    p99"
                + "   ratio p50 (p99) = lift / (hops × chit round trip)")
        var rows = [[String: Any]]()
        for s in r.scenarios {
            let d = s.samples.map(\.discovered).sorted(), g = s.samples.map(\.good).sorted(), e = s.samples.map(\.everywhere).sorted()
            let g50 = percentile(g, 0.5), g99 = percentile(g, 0.99)
            let ratio50 = g50 / (Double(s.hops) * c50), ratio99 = g99 / (Double(s.hops) * c99)
            print(
                pad("  " + s.name, 22) + fmt(Double(s.hops), 6) + fmt(percentile(d, 0.5), 13, decimals: 1) + " ms"
                    + fmt(g50, 19, decimals: 1) + fmt(g99, 7, decimals: 1) + " ms" + fmt(percentile(e, 0.5), 19, decimals: 1)
                    + fmt(percentile(e, 0.99), 7, decimals: 1) + " ms" + fmt(ratio50, 10, decimals: 2) + " (" + fmt(ratio99, 0, decimals: 2) + ")"
                    + (ratio50 <= 3 ? "  target ≤ 3 met" : "  target ≤ 3 NOT met"))
            if !s.failures.isEmpty { print("    \(s.failures.count) of \(s.failures.count + s.samples.count) failed; first: \(s.failures[0])") }
            rows.append([
                "name": s.name, "hops": s.hops, "runs": s.samples.count, "failures": s.failures.count, "discovery_p50_ms": num(percentile(d, 0.5)),
                "good_p50_ms": num(g50), "good_p99_ms": num(g99), "everywhere_p50_ms": num(percentile(e, 0.5)),
                "everywhere_p99_ms": num(percentile(e, 0.99)), "ratio_p50": num(ratio50), "ratio_p99": num(ratio99)
            ])
        }
        print("")
        print(
            "  serve CPU over the runs (all \(r.processes) processes): \(fmt(r.serveCPU, 0, decimals: 1)) s in \(fmt(r.seconds, 0, decimals: 1)) s of wall time"
        )
        return [
            "load_average": r.load, "chit_p50_ms": num(c50), "chit_p99_ms": num(c99), "chit_runs": chit.count, "lifts": rows
        ]
    }
}

func percentile(_ sorted: [Double], _ p: Double) -> Double {
    guard !sorted.isEmpty else { return .nan }
    return sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))]
}

func ms(_ v: Double) -> String { String(format: "%.1f", v) }

/// A figure in --json output, rounded to 0.01 (null when there is none).
func num(_ v: Double) -> Any { v.isFinite ? (v * 100).rounded() / 100 : NSNull() }
