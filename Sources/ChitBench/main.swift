// chit-bench: sustained durable chits per second between two sites on
// loopback, and the latency from a payment's commit on the payer's site to
// the partner's commit, beside a raw SQLite insert+commit ceiling measured in
// the same run (same disk, WAL, synchronous=FULL).
//
// Both sites run in this process: two site files, two SiteDaemons (the same
// engine `chipsite serve` runs), real TCP on 127.0.0.1. Payments are made
// through SiteStore.pay, as `chipsite pay` does, without the process start.
import ChipModel
import ChipPeer
import ChipDaemon
import ChipProtocol
import ChipStore
import Foundation
import GRDB
import Logging

struct Options {
    var payments = 3000
    var rawCommits = 3000
    var batch = 1

    init(_ args: [String]) throws {
        var it = args.dropFirst().makeIterator()
        while let a = it.next() {
            switch a {
            case "--payments": payments = Int(it.next() ?? "") ?? payments
            case "--raw": rawCommits = Int(it.next() ?? "") ?? rawCommits
            case "--batch": batch = Int(it.next() ?? "") ?? batch
            case "-h", "--help":
                print("usage: chit-bench [--payments N] [--raw N] [--batch N]   (--batch: payments committed per transaction)")
                exit(0)
            default: throw BenchError("unknown argument \(a)")
            }
        }
        guard payments > 0, payments <= 1_000_000, rawCommits > 0, (1...1000).contains(batch) else { throw BenchError("counts must be positive") }
    }
}

struct BenchError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

func now() -> Double { Date().timeIntervalSince1970 }

func percentile(_ sorted: [Double], _ p: Double) -> Double {
    guard !sorted.isEmpty else { return 0 }
    return sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))]
}

/// Single-row INSERT + COMMIT per transaction: the most a site file can
/// commit durably per second on this disk.
func rawCeiling(dir: String, count: Int) throws -> Double {
    var config = Configuration()
    config.prepareDatabase { db in try db.execute(sql: "PRAGMA synchronous = FULL") }
    let q = try DatabaseQueue(path: dir + "/raw.db", configuration: config)
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

@main
enum ChitBench {
    static func main() async {
        do { try await run(try Options(CommandLine.arguments)) } catch {
            FileHandle.standardError.write(Data("chit-bench: error: \(error)\n".utf8))
            exit(1)
        }
    }

    static func run(_ o: Options) async throws {
        let dir = NSTemporaryDirectory() + "chit-bench-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }

        var logger = Logger(label: "chit-bench")
        logger.logLevel = .critical
        let localhost = try SiteAddress(host: "127.0.0.1", port: 1)
        let a = try SiteStore.create(at: dir + "/a.db", address: localhost, passphrase: nil)
        let b = try SiteStore.create(at: dir + "/b.db", address: localhost, passphrase: nil)
        let alice = try CUID("alice"), bob = try CUID("bob")
        try a.addUser(cuid: alice, name: "Alice", email: nil, sealingKey: nil)
        try b.addUser(cuid: bob, name: "Bob", email: nil, sealingKey: nil)
        let da = try SiteDaemon(store: a, siteKey: try a.siteKey(sealingKey: nil), sealingKey: nil, limits: PeerLimits(), logger: logger)
        let db = try SiteDaemon(store: b, siteKey: try b.siteKey(sealingKey: nil), sealingKey: nil, limits: PeerLimits(), logger: logger)
        let pa = try await da.start(host: "127.0.0.1", port: 0).port ?? 0
        let pb = try await db.start(host: "127.0.0.1", port: 0).port ?? 0
        // As `chipsite serve` does: pokes and the site file watch.
        da.watchSiteFile(dir + "/a.db")
        db.watchSiteFile(dir + "/b.db")
        let runA = Task { await da.run() }, runB = Task { await db.run() }
        defer { runA.cancel(); runB.cancel() }
        // Both sites learn their real ports (certificates name them).
        try a.setConfigValue(.sitePort, String(pa))
        try b.setConfigValue(.sitePort, String(pb))

        // Open a tally the real way: ticket, request, offer, accept.
        let info = try b.issueTicket(
            cuid: bob, expiresAt: Int64(now() * 1000) + 600_000, reuse: false, bound: nil,
            terms: ["side": "stock", "limit": .integer(Amount.maxMilli)])
        let ticket = try TallyTicket(
            token: info.token, expires: info.expires,
            chad: CHAD(cuid: bob, agent: try b.agent(), address: try SiteAddress(host: "127.0.0.1", port: pb)))
        _ = try a.requestTally(cuid: alice, ticket: ticket, accept: true)
        da.poke()
        var tally: TallyRecord?
        for _ in 0..<500 {
            if let t = try b.tallies().first, t.state == .open { tally = t; break }
            try await Task.sleep(for: .milliseconds(20))
        }
        guard let tally else { throw BenchError("the tally did not open") }
        let key = try a.userKey(alice, sealingKey: nil)
        // Like `chipsite pay` and a reader of the partner's file, the payer and
        // the watcher use connections of their own, not the daemons'.
        let payer = try SiteStore.open(at: dir + "/a.db")
        let partnerView = try SiteStore.open(at: dir + "/b.db")

        print(
            "chit-bench: two sites in one process, loopback TCP, WAL + synchronous=FULL, \(o.payments) payments foil → stock, \(o.batch) per commit")
        let raw = try rawCeiling(dir: dir, count: o.rawCommits)

        // Pay as fast as the payer's site commits; the daemon batches chain
        // entries (up to 100 per upd) and the partner commits each batch once.
        var committedAt = [Double](repeating: 0, count: o.payments + 1)
        let start = now()
        let watcher = Task.detached { () -> [Double] in
            var seen = [Double](repeating: 0, count: o.payments + 1)
            var last: Int64 = 0
            let deadline = now() + 300
            while last < Int64(o.payments), now() < deadline {
                let length = (try? partnerView.chainHead(of: tally.uuid).length) ?? last
                if length > last {
                    let t = now()
                    for i in (last + 1)...length { seen[Int(i)] = t }
                    last = length
                }
                try? await Task.sleep(for: .milliseconds(1))
            }
            return seen
        }
        var i = 1
        while i <= o.payments {
            let n = min(o.batch, o.payments - i + 1)
            _ = try payer.payBatch(tally: tally.uuid, payments: Array(repeating: (1, nil, nil), count: n)) { _ in key }
            let t = now()
            for j in i..<(i + n) { committedAt[j] = t }
            i += n
            da.poke()
        }
        da.poke()
        let paidIn = now() - start
        let seenAt = await watcher.value
        let done = seenAt.dropFirst().max() ?? now()
        guard seenAt.dropFirst().allSatisfy({ $0 > 0 }) else { throw BenchError("not every chit reached the partner") }
        let total = done - start
        let rate = Double(o.payments) / total

        // Latency at a paced rate (one payment every 20 ms, not saturating):
        // from the payer's commit to the partner's commit of that entry.
        let paced = 200
        var latencies = [Double]()
        let base = try partnerView.chainHead(of: tally.uuid).length
        for n in 1...paced {
            _ = try payer.pay(tally: tally.uuid, units: 1, memo: nil, ref: nil) { _ in key }
            let committed = now()
            da.poke()
            let deadline = committed + 10
            while now() < deadline, (try partnerView.chainHead(of: tally.uuid).length) < base + Int64(n) {
                try await Task.sleep(for: .microseconds(200))
            }
            latencies.append((now() - committed) * 1000)
            try await Task.sleep(for: .milliseconds(20))
        }
        latencies.sort()
        let problemsA = try a.verifyTally(tally.uuid), problemsB = try b.verifyTally(tally.uuid)

        func f(_ v: Double) -> String { String(format: "%10.0f", v) }
        print("")
        print("                                        figure      ceiling   ratio")
        print(
            "payer commits (pay), chits/s        \(f(Double(o.payments) / paidIn))   \(f(raw))    \(String(format: "%.2f", Double(o.payments) / paidIn / raw))   ceiling = raw SQLite INSERT+COMMIT/s"
        )
        print("sustained, payer → partner commit   \(f(rate))   \(f(raw))    \(String(format: "%.2f", rate / raw))")
        print(
            String(
                format: "latency pay commit → partner commit  p50 %.1f ms, p99 %.1f ms (one payment every 20 ms, %d payments)",
                percentile(latencies, 0.5), percentile(latencies, 0.99), paced))
        let sameHead = try a.chainHead(of: tally.uuid).head == b.chainHead(of: tally.uuid).head
        print("chains equal and verify: \(problemsA.isEmpty && problemsB.isEmpty && sameHead)")
        print("delivery passes: payer's site \(da.passCount), partner's site \(db.passCount)")
        await da.stop()
        await db.stop()
    }
}
