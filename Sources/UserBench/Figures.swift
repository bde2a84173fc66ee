import BenchSupport
import ChipModel
import Dispatch
import Foundation
import Noise
import Synchronization

/// The three figures; each ceiling is measured in the same run.
enum Figures {
    /// Payments answered `ok`, warm-ups included (the chains must hold as many).
    static let okPayments = Atomic<Int>(0)

    static func seconds(since t0: UInt64) -> Double { Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9 }

    /// What one block of a figure does: `count` operations, or until `deadline`.
    static func block(_ o: Options) -> (count: Int?, deadline: Double) {
        (o.count.map { max(1, $0 / UserBench.blocks) }, now() + o.seconds / Double(UserBench.blocks))
    }

    // MARK: 1. ping

    struct Ping {
        var p50 = 0.0, p99 = 0.0, raw50 = 0.0, raw99 = 0.0
        var count = 0, rawCount = 0, requestBytes = 0, replyBytes = 0
        /// CPU seconds per ping: serve (a), and this process (the device's side) during the ping blocks.
        var serveCPU = 0.0, clientCPU = 0.0
        var ratio50: Double { raw50 / p50 }
    }

    static func ping(_ s: BenchSession, sites: Sites, _ o: Options) async throws -> Ping {
        var reply: JSONValue = .null
        for _ in 0..<50 { reply = try await s.call("ping").ok("ping") }
        var r = Ping()
        // The request as the session sends it (an id of this run's length), and the reply as received.
        r.requestBytes = JSONValue.object(["id": .string(await s.nextID()), "cmd": "ping"]).canonicalBytes.count
        r.replyBytes = reply.canonicalBytes.count
        let (requestBytes, replyBytes) = (r.requestBytes, r.replyBytes)
        let raw = try await onThread { try RawNoiseEcho(requestBytes: requestBytes, replyBytes: replyBytes) }
        defer { raw.finish() }
        _ = try await onThread { try raw.roundTrips(count: 50, until: 0) }
        var pings = [Double](), raws = [Double]()
        var serveCPU = 0.0, clientCPU = 0.0
        for _ in 0..<UserBench.blocks {
            let b = block(o)
            var n = 0
            let serve0 = sites.a?.cpuSeconds() ?? .nan, client0 = processCPU()
            while b.count.map({ n < $0 }) ?? (now() < b.deadline) {
                let t0 = DispatchTime.now().uptimeNanoseconds
                _ = try await s.call("ping").ok("ping")
                pings.append(seconds(since: t0))
                n += 1
            }
            serveCPU += (sites.a?.cpuSeconds() ?? .nan) - serve0
            clientCPU += processCPU() - client0
            let c = block(o)
            raws += try await onThread { try raw.roundTrips(count: c.count, until: c.deadline) }
        }
        pings.sort()
        raws.sort()
        r.p50 = percentile(pings, 0.5)
        r.p99 = percentile(pings, 0.99)
        r.raw50 = percentile(raws, 0.5)
        r.raw99 = percentile(raws, 0.99)
        r.count = pings.count
        r.rawCount = raws.count
        r.serveCPU = serveCPU / Double(max(1, pings.count))
        r.clientCPU = clientCPU / Double(max(1, pings.count))
        return r
    }

    // MARK: 2. chit.pay from one session

    /// One payment of 1 milliCHIP by user `i` on its tally (site custody:
    /// no `sign`), as `client pay` builds it; its latency in seconds.
    static func pay(_ s: BenchSession, _ user: (name: String, tally: String, side: String, key: KeyPair)) async -> (Outcome, Double) {
        let core: JSONValue = [
            "tally": .string(user.tally), "by": .string(user.side), "type": "tran", "uuid": .string(TallyCore.newUUID()),
            "date": .string(Timestamp.format(millisecondsSince1970: Int64(now() * 1000))), "units": 1
        ]
        let t0 = DispatchTime.now().uptimeNanoseconds
        let r = await s.call("chit.pay", args: ["chit": core])
        return (r, seconds(since: t0))
    }

    /// Failures counted; a closed or silent session ends the bench.
    struct Tally {
        var latencies = [Double]()
        var failures = 0
        var first: String?

        mutating func record(_ r: (Outcome, Double)) throws {
            switch r.0 {
            case .reply(let reply) where reply["ok"]?.boolValue == true:
                latencies.append(r.1)
                okPayments.add(1, ordering: .relaxed)
            case .reply(let reply):
                failures += 1
                if first == nil { first = reply["error"]?.canonicalString ?? reply.canonicalString }
                if failures > 100 { throw BenchError("more than 100 payments failed; first: \(first ?? "?")") }
            case .closed: throw BenchError("chit.pay: the session closed")
            case .timedOut: throw BenchError("chit.pay: no reply in time")
            }
        }
    }

    struct PayOne {
        var rate = 0.0, ceiling = 0.0, p50 = 0.0, p99 = 0.0, cpuA = 0.0, cpuB = 0.0
        var paid = 0, commits = 0, failures = 0
        var firstFailure: String?
        var ratio: Double { rate / ceiling }
    }

    /// User plus system CPU seconds of this process so far.
    static func processCPU() -> Double {
        var u = rusage()
        getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &u)
        return Double(u.ru_utime.tv_sec) + Double(u.ru_utime.tv_usec) / 1e6 + Double(u.ru_stime.tv_sec) + Double(u.ru_stime.tv_usec) / 1e6
    }

    static func serveCPU(_ sites: Sites) -> (Double, Double) { (sites.a?.cpuSeconds() ?? .nan, sites.b?.cpuSeconds() ?? .nan) }

    static func payOne(_ s: BenchSession, sites: Sites, dir: TempDir, _ o: Options) async throws -> PayOne {
        let user = sites.users[0]
        var warm = Tally()
        for _ in 0..<10 { try warm.record(await pay(s, user)) }
        var t = Tally()
        var payTime = 0.0, rawTime = 0.0, commits = 0
        var cpuA = 0.0, cpuB = 0.0
        let path = dir.file("raw.db")
        for _ in 0..<UserBench.blocks {
            let b = block(o)
            let start = now(), (ca, cb) = serveCPU(sites)
            var n = 0
            while b.count.map({ n < $0 }) ?? (now() < b.deadline) {
                try t.record(await pay(s, user))
                n += 1
            }
            payTime += now() - start
            let (ca1, cb1) = serveCPU(sites)
            cpuA += ca1 - ca
            cpuB += cb1 - cb
            let c = block(o)
            let remaining = c.deadline - now()
            let raw = try await onThread { try rawCommitCeiling(path: path, count: c.count, seconds: remaining) }
            rawTime += Double(raw.commits) / raw.rate
            commits += raw.commits
        }
        var r = PayOne()
        r.paid = t.latencies.count
        r.failures = t.failures
        r.firstFailure = t.first
        r.rate = Double(r.paid) / payTime
        r.ceiling = Double(commits) / rawTime
        r.commits = commits
        t.latencies.sort()
        r.p50 = percentile(t.latencies, 0.5) * 1000
        r.p99 = percentile(t.latencies, 0.99) * 1000
        r.cpuA = cpuA / Double(max(1, r.paid))
        r.cpuB = cpuB / Double(max(1, r.paid))
        return r
    }

    // MARK: 3. chit.pay from concurrent sessions

    struct PayMany {
        var rate = 0.0, ceiling = 0.0, p50 = 0.0, p99 = 0.0, cpuA = 0.0, cpuB = 0.0, seconds = 0.0
        var paid = 0, failures = 0
        var firstFailure: String?
        var ratio: Double { rate / (2 * ceiling) }
    }

    static func payMany(_ sessions: [BenchSession], sites: Sites, dir: TempDir, ceiling: Double, _ o: Options) async throws -> PayMany {
        // Warm-up: every session pays a few times, all at once.
        let users = sites.users
        try await withThrowingTaskGroup(of: Void.self) { g in
            for (i, s) in sessions.enumerated() {
                g.addTask {
                    var warm = Tally()
                    for _ in 0..<5 { try warm.record(await pay(s, users[i])) }
                }
            }
            try await g.waitForAll()
        }
        let (a0, b0) = serveCPU(sites)
        let start = now()
        let deadline = start + o.seconds
        let quota = o.count.map { max(1, $0 / sessions.count) }
        let parts = try await withThrowingTaskGroup(of: Tally.self) { g in
            for (i, s) in sessions.enumerated() {
                g.addTask {
                    var t = Tally()
                    while quota.map({ t.latencies.count + t.failures < $0 }) ?? (now() < deadline) { try t.record(await pay(s, users[i])) }
                    return t
                }
            }
            var all = [Tally]()
            for try await t in g { all.append(t) }
            return all
        }
        let elapsed = now() - start
        let (a1, b1) = serveCPU(sites)
        // The single-commit ceiling again, right after (the better of the two counts).
        let path = dir.file("raw-after.db"), seconds = o.seconds
        let after = try await onThread { try rawCommitCeiling(path: path, count: o.count, seconds: seconds) }
        var r = PayMany()
        let latencies = parts.flatMap(\.latencies).sorted()
        r.paid = latencies.count
        r.failures = parts.map(\.failures).reduce(0, +)
        r.firstFailure = parts.compactMap(\.first).first
        r.seconds = elapsed
        r.rate = Double(r.paid) / elapsed
        r.ceiling = max(ceiling, after.rate)
        r.p50 = percentile(latencies, 0.5) * 1000
        r.p99 = percentile(latencies, 0.99) * 1000
        r.cpuA = (a1 - a0) / Double(max(1, r.paid))
        r.cpuB = (b1 - b0) / Double(max(1, r.paid))
        return r
    }

    /// The chits in a's chains (`tally list --json`), once they hold every
    /// payment answered `ok` or after `timeout` seconds.
    static func chained(sites: Sites, timeout: Double) async throws -> (chained: Int, expected: Int) {
        let expected = okPayments.load(ordering: .relaxed)
        let deadline = now() + timeout
        var total = 0
        repeat {
            let list = try sites.json(try sites.cli(sites.aDB, ["tally", "list", "--json"]), "tally list")
            total = Int((list["tallies"]?.arrayValue ?? []).compactMap { $0["chain_length"]?.integerValue }.reduce(0, +))
            if total >= expected { break }
            try await Task.sleep(nanoseconds: 200_000_000)
        } while now() < deadline
        return (total, expected)
    }
}
