import BenchSupport
import ChipDaemon
import ChipModel
import ChipProtocol
import ChipStore
import Dispatch
import Foundation
import GRDB
import Synchronization

/// Issue 13, benchmark 2: lifts per second through one relay site.
///
/// Real `chipsite serve` processes on 127.0.0.1: originators o0…o(N−1),
/// each the foil of a tally to the relay `relay` (so it pays the relay),
/// and the relay the foil of a tally to each payee site p0…p(M−1). Each
/// originator runs a closed loop on its own thread: a linear lift of one
/// CHIP to the payee p(i mod M) over 2 foreign hops (o → relay → p), the
/// request committed with SiteStore.requestPay (what `chipsite lift pay`
/// writes) and serve poked, then polled until `good` in its file; then the
/// next. Counted for `seconds` after one lift per originator to warm up the
/// channels. Beside it, the raw ceiling measured in the same run on the
/// same disk: single-row INSERT + COMMIT transactions per second (WAL,
/// synchronous=FULL), as chit-bench measures it (before and after the
/// load, the better counts).
enum Throughput {
    struct Result {
        var lifts: Int
        var failed: [String: Int]
        var seconds: Double
        var latencies: [Double]
        var raw: Double
        var serveCPU: Double
        var relayCPU: Double
        var benchCPU: Double
        var load: String
        var originators: Int
        var payees: Int
    }

    static func run(binary: String, originators n: Int, payees m: Int, seconds: Double, cleanup: Cleanup) throws -> Result {
        let dir = try TempDir(prefix: "lift-bench")
        cleanup.track(dir: dir.path)
        let load = loadAverage()
        let relay = try ServeSite(dir: dir, name: "relay")
        let origins = try (0..<n).map { try ServeSite(dir: dir, name: "o\($0)") }
        let payees = try (0..<m).map { try ServeSite(dir: dir, name: "p\($0)") }
        let all = [relay] + origins + payees
        for s in all { try s.start(binary: binary, cleanup: cleanup) }
        defer { for s in all { _ = s.stop(cleanup: cleanup) } }
        for o in origins { _ = try openTally(foil: o, stock: relay) }
        for p in payees { _ = try openTally(foil: relay, stock: p) }
        print(
            "lift-bench throughput: \(all.count) chipsite serve processes on 127.0.0.1: \(n) originators → 1 relay → \(m) payees;"
                + " \(n) concurrent closed-loop `lift pay` requests of 1 CHIP, 2 foreign hops each; load average before: \(load)")
        let rawBefore = try rawCeiling(dir: dir.path, count: 2000, name: "raw1")

        let unit: Int64 = 1000
        let links = try payees.map { try PayLink(cuid: $0.user, agent: $0.agent, units: unit) }
        // Warm-up: one lift per originator (dials the channels).
        for (i, o) in origins.enumerated() {
            guard case .success = try liftOnce(o, link: links[i % m], units: unit, timeout: 30) else {
                throw BenchError("the warm-up lift from \(o.name) failed")
            }
        }
        let cpu0 = all.compactMap { $0.serve?.cpuSeconds() }.reduce(0, +), relay0 = relay.serve?.cpuSeconds() ?? 0
        let own0 = ownCPUSeconds()
        let results = Mutex<(ok: [Double], failed: [String: Int])>(([], [:]))
        let start = now()
        let end = start + seconds
        let sites = origins
        // One thread per originator (concurrentPerform would run only as many as there are cores).
        let done = DispatchGroup()
        for i in 0..<n {
            done.enter()
            Thread.detachNewThread {
                defer { done.leave() }
                while now() < end {
                    let t0 = now()
                    let r = (try? liftOnce(sites[i], link: links[i % m], units: unit, timeout: 30)) ?? .failure(BenchError("site file error"))
                    let t = (now() - t0) * 1000
                    results.withLock { s in
                        switch r {
                        case .success: s.ok.append(t)
                        case .failure(let e): s.failed[e.description, default: 0] += 1
                        }
                    }
                }
            }
        }
        done.wait()
        let elapsed = now() - start
        let cpu = all.compactMap { $0.serve?.cpuSeconds() }.reduce(0, +) - cpu0, relayCPU = (relay.serve?.cpuSeconds() ?? 0) - relay0
        let own = ownCPUSeconds() - own0
        let rawAfter = try rawCeiling(dir: dir.path, count: 2000, name: "raw2")
        let (ok, failed) = results.withLock { $0 }
        return Result(
            lifts: ok.count, failed: failed, seconds: elapsed, latencies: ok.sorted(), raw: max(rawBefore, rawAfter), serveCPU: cpu,
            relayCPU: relayCPU, benchCPU: own, load: load, originators: n, payees: m)
    }

    /// One linear lift from `o`'s user to `link`: the request committed,
    /// serve poked, the file polled every 5 ms until good or void (8 threads
    /// polling every 0.5 ms took a core of the 2 from the serves).
    static func liftOnce(_ o: ServeSite, link: PayLink, units: Int64, timeout: Double) throws -> Swift.Result<Void, BenchError> {
        let id = try o.store.requestPay(payor: o.user, link: link, units: units, memo: nil)
        o.poke()
        let deadline = now() + timeout
        while now() < deadline {
            if let r = try o.store.liftRequest(id), r.state == .done {
                guard let lift = r.lifts.first else { return .failure(BenchError("no lift: \(r.note ?? "?")")) }
                switch try o.store.liftState(lift) {
                case .good: return .success(())
                case .void: return .failure(BenchError("void"))
                default: break
                }
            }
            usleep(5000)
        }
        return .failure(BenchError("not good within \(Int(timeout)) s"))
    }

    static func report(_ r: Result) -> [String: Any] {
        let rate = Double(r.lifts) / r.seconds
        print("")
        print("                                          figure      ceiling   ratio")
        print(
            "lifts/s through one relay             " + fmt(rate, 10, decimals: 1) + "   " + fmt(r.raw, 10) + "  "
                + fmt(rate / r.raw, 6, decimals: 4) + "   ceiling = raw SQLite INSERT+COMMIT/s on the same disk")
        print(
            "  \(r.lifts) lifts good in \(fmt(r.seconds, 0, decimals: 1)) s; latency under load p50 \(ms(percentile(r.latencies, 0.5))) ms,"
                + " p99 \(ms(percentile(r.latencies, 0.99))) ms")
        let failures = r.failed.values.reduce(0, +)
        print(
            "  failed: \(failures)"
                + (r.failed.isEmpty ? "" : " (" + r.failed.map { "\($0.value) × \($0.key)" }.sorted().joined(separator: "; ") + ")"))
        print(
            "  serve CPU per lift: \(fmt(r.serveCPU / Double(max(r.lifts, 1)) * 1000, 0, decimals: 1)) ms over all \(r.originators + r.payees + 1) processes,"
                + " \(fmt(r.relayCPU / Double(max(r.lifts, 1)) * 1000, 0, decimals: 1)) ms of it the relay's;"
                + " relay busy \(fmt(r.relayCPU / r.seconds, 0, decimals: 2)) cores, all serves \(fmt(r.serveCPU / r.seconds, 0, decimals: 2)) cores,"
                + " this bench (requests and polling) \(fmt(r.benchCPU / r.seconds, 0, decimals: 2)) cores")
        return [
            "load_average": r.load, "lifts": r.lifts, "seconds": num(r.seconds), "lifts_per_second": num(rate), "raw_commits_per_second": num(r.raw),
            "ratio": rate / r.raw, "failed": r.failed, "latency_p50_ms": num(percentile(r.latencies, 0.5)),
            "latency_p99_ms": num(percentile(r.latencies, 0.99)), "serve_cpu_ms_per_lift": num(r.serveCPU / Double(max(r.lifts, 1)) * 1000),
            "relay_cpu_ms_per_lift": num(r.relayCPU / Double(max(r.lifts, 1)) * 1000), "originators": r.originators, "payees": r.payees
        ]
    }
}

/// Single-row INSERT + COMMIT per transaction: the most a site file can
/// commit durably per second on this disk (chit-bench's ceiling).
func rawCeiling(dir: String, count: Int, name: String) throws -> Double {
    var config = Configuration()
    config.prepareDatabase { db in try db.execute(sql: "PRAGMA synchronous = FULL") }
    let q = try DatabaseQueue(path: dir + "/\(name).db", configuration: config)
    try q.writeWithoutTransaction { db in
        try db.execute(sql: "PRAGMA journal_mode = WAL")
        try db.execute(sql: "CREATE TABLE t (id INTEGER PRIMARY KEY, payload TEXT NOT NULL)")
    }
    let payload = String(repeating: "x", count: 400)
    let start = now()
    for i in 0..<count {
        try q.write { db in try db.execute(sql: "INSERT INTO t (id, payload) VALUES (?, ?)", arguments: [i, payload]) }
    }
    return Double(count) / (now() - start)
}

/// CPU seconds (user plus system) this process has used.
func ownCPUSeconds() -> Double {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    func seconds(_ t: timeval) -> Double { Double(t.tv_sec) + Double(t.tv_usec) / 1e6 }
    return seconds(usage.ru_utime) + seconds(usage.ru_stime)
}
