import BenchSupport
// user-bench: the user port (issue 14), each figure beside a ceiling
// measured in the same run (doc/performance.md, "User port (issue 14)").
//
//   swift build -c release --product chipsite && swift build -c release --product user-bench
//   .build/release/user-bench [--binary PATH] [--seconds S | --count N] [--sessions N] [--no-idle] [--json]
//   .build/release/user-bench idle [--devices N] [--sessions N] [--pings N] [--json]   (part 4 alone)
//
// Two real `chipsite serve` processes on 127.0.0.1 (sites a and b), set up
// with the CLI: users on a, each with an open tally to bob on b (bob's
// ticket grants a large limit) and a device registered with a user ticket
// (`UserPortClient.register`), whose sessions (`UserPortClient.connect`)
// the bench drives:
// 1. `ping` round trip p50/p99 over one session, beside a raw Noise
//    transport round trip over loopback TCP with the same frame sizes.
// 2. `chit.pay` from one session, one at a time: payments/s beside the raw
//    SQLite commit ceiling (single-row INSERT + COMMIT, WAL, synchronous=FULL).
// 3. `chit.pay` from --sessions (16) concurrent sessions, one user each,
//    each one payment at a time: payments/s and p99 latency beside 2 × the
//    single-commit ceiling (the issue's target for group commit).
// 4. (Idle.swift) On a third site of its own: --devices (1000) devices
//    registered, --idle-sessions (200) of them with a session open and
//    idle: serve's VmRSS before, with and after them, and a fresh session's
//    ping round trip beside the same with no idle session.
// Figure and ceiling are measured in 5 interleaved blocks, so a change in
// the machine's load falls on both. The children and the temporary
// directory are removed on exit, on error and on SIGINT/SIGTERM.
import ChipModel
import Foundation
import Noise

struct Options {
    var binary = ".build/release/chipsite"
    var seconds = 5.0
    var count: Int?
    var sessions = 16
    var json = false
    var timeout = 30.0
    /// Part 4 only (`user-bench idle`), or the default run without it (`--no-idle`).
    var idleOnly = false, noIdle = false
    var devices = 1000, idleSessions = 200, pings = 1000

    init(_ args: [String]) throws {
        var rest = args.dropFirst()
        if rest.first == "idle" {
            idleOnly = true
            rest = rest.dropFirst()
        }
        var it = rest.makeIterator()
        func value(_ flag: String) throws -> String {
            guard let v = it.next() else { throw BenchError("\(flag) needs a value") }
            return v
        }
        while let a = it.next() {
            switch a {
            case "--binary": binary = try value(a)
            case "--seconds":
                guard let v = Double(try value(a)), v > 0, v <= 3600 else { throw BenchError("--seconds must be more than 0 and at most 3600") }
                seconds = v
            case "--count":
                guard let v = Int(try value(a)), (10...10_000_000).contains(v) else { throw BenchError("--count must be 10 to 10000000") }
                count = v
            case "--sessions" where idleOnly, "--idle-sessions":
                guard let v = Int(try value(a)), (0...1000).contains(v) else { throw BenchError("\(a) (idle sessions) must be 0 to 1000") }
                idleSessions = v
            case "--sessions":
                guard let v = Int(try value(a)), (2...64).contains(v) else { throw BenchError("--sessions must be 2 to 64") }
                sessions = v
            case "--devices":
                guard let v = Int(try value(a)), (2...10_000).contains(v) else { throw BenchError("--devices must be 2 to 10000") }
                devices = v
            case "--pings":
                guard let v = Int(try value(a)), (10...100_000).contains(v) else { throw BenchError("--pings must be 10 to 100000") }
                pings = v
            case "--no-idle": noIdle = true
            case "--json": json = true
            case "-h", "--help":
                print(
                    """
                    usage: user-bench [--binary PATH] [--seconds S | --count N] [--sessions N] [--no-idle]
                                      [--devices N] [--idle-sessions N] [--pings N] [--json]
                           user-bench idle [--binary PATH] [--devices N] [--sessions N] [--pings N] [--json]
                      --binary    the chipsite binary serve runs from (default .build/release/chipsite)
                      --seconds   seconds per figure, its ceiling as long again (default 5)
                      --count     round trips or payments per figure instead (ceilings: as many)
                      --sessions  concurrent sessions of figure 3, one user each (default 16);
                                  with idle: the sessions held open and idle (as --idle-sessions)
                      --no-idle   leave out part 4 (registered devices, idle sessions)
                      --devices   devices registered for part 4 (default 1000)
                      --idle-sessions  sessions of those held open and idle (default 200)
                      --pings     a fresh session's timed pings in part 4, per case (default 1000)
                      --json      also print the figures as one JSON object at the end
                    """)
                exit(0)
            default: throw BenchError("unknown argument \(a)")
            }
        }
        guard idleSessions < devices else { throw BenchError("the idle sessions must be fewer than the devices (one more pings)") }
    }
}

@main
enum UserBench {
    static func main() async {
        let options: Options
        do { options = try Options(CommandLine.arguments) } catch {
            FileHandle.standardError.write(Data("user-bench: error: \(error)\n".utf8))
            exit(2)
        }
        let cleanup = Cleanup(name: "user-bench", keepVariable: "USER_BENCH_KEEP")
        let signals = cleanup.onStopSignals()
        defer {
            signals.forEach { $0.cancel() }
            cleanup.run()
        }
        do {
            let out = try await options.idleOnly ? runIdle(options, cleanup: cleanup) : run(options, cleanup: cleanup)
            if options.json, let json = try? JSONSerialization.data(withJSONObject: out, options: [.sortedKeys, .prettyPrinted]) {
                print(String(decoding: json, as: UTF8.self))
            }
        } catch {
            cleanup.run()
            FileHandle.standardError.write(Data("user-bench: error: \(error)\n".utf8))
            exit(1)
        }
    }

    static let blocks = 5

    static func run(_ o: Options, cleanup: Cleanup) async throws -> [String: Any] {
        let dir = try TempDir(prefix: "user-bench")
        cleanup.track(dir: dir.path)
        let load = loadAverage()
        let setupStart = now()
        let sites = Sites(binary: o.binary, dir: dir)
        try sites.start(cleanup: cleanup)
        defer { sites.stop(cleanup: cleanup) }
        let names = ["alice"] + (2...o.sessions).map { String(format: "user%02d", $0) }
        for name in names { try await sites.addUser(name, limit: "1000000000", timeout: o.timeout) }
        print(
            "user-bench: 2 chipsite serve processes on 127.0.0.1 (a: \(names.count) users, each with an open tally to bob on b and one device); "
                + "set up with the CLI in \(String(format: "%.1f", now() - setupStart)) s; load average before: \(load)")
        print(
            o.count.map { "  \($0) per figure" }
                ?? "  \(String(format: "%g", o.seconds)) s per figure and as long for its ceiling, in \(blocks) interleaved blocks")
        var out: [String: Any] = ["load_average_before": load, "sessions": o.sessions]

        let alice = try await sites.session(0, timeout: o.timeout)
        let ping = try await Figures.ping(alice, sites: sites, o)
        let one = try await Figures.payOne(alice, sites: sites, dir: dir, o)
        var sessions = [alice]
        for i in 1..<names.count { sessions.append(try await sites.session(i, timeout: o.timeout)) }
        let many = try await Figures.payMany(sessions, sites: sites, dir: dir, ceiling: one.ceiling, o)
        for s in sessions { await s.close() }
        let chains = try await Figures.chained(sites: sites, timeout: o.timeout)

        print("")
        print(pad("", 44) + "     figure      ceiling   ratio   target")
        let pingTarget = ping.ratio50 >= 0.5 ? "≥ 0.5 met" : "≥ 0.5 NOT met"
        print(
            pad("ping round trip p50 (µs)", 44) + fmt(ping.p50 * 1e6, 11, decimals: 0) + fmt(ping.raw50 * 1e6, 13) + fmt(ping.ratio50, 8, decimals: 2)
                + "   " + pingTarget + "   ceiling = raw Noise + loopback TCP, same frame sizes; ratio = ceiling / figure")
        print(
            pad("ping round trip p99 (µs)", 44) + fmt(ping.p99 * 1e6, 11) + fmt(ping.raw99 * 1e6, 13) + fmt(ping.raw99 / ping.p99, 8, decimals: 2))
        let oneTarget = one.ratio >= 0.6 ? "≥ 0.6 met" : "≥ 0.6 NOT met"
        print(
            pad("chit.pay, 1 session, payments/s", 44) + fmt(one.rate, 11) + fmt(one.ceiling, 13) + fmt(one.ratio, 8, decimals: 2) + "   "
                + oneTarget + "   ceiling = raw SQLite INSERT+COMMIT/s (WAL, synchronous=FULL), same disk")
        let manyTarget = many.ratio >= 1 ? "≥ 1 met" : "≥ 1 NOT met"
        print(
            pad("chit.pay, \(o.sessions) sessions, payments/s", 44) + fmt(many.rate, 11) + fmt(2 * many.ceiling, 13)
                + fmt(many.ratio, 8, decimals: 2) + "   " + manyTarget + "     ceiling = 2 × the single-commit ceiling (the target of group commit)")
        print("")
        print(
            "  ping: \(ping.count) round trips, raw: \(ping.rawCount); request \(ping.requestBytes) B, reply \(ping.replyBytes) B of JSON "
                + "(frames \(ping.requestBytes + 21) B and \(ping.replyBytes + 21) B); CPU per ping: serve \(us(ping.serveCPU)) µs, "
                + "this process (the device's side) \(us(ping.clientCPU)) µs")
        print(
            "  chit.pay, 1 session: \(one.paid) payments, latency p50 \(ms(one.p50)) ms, p99 \(ms(one.p99)) ms; raw: \(one.commits) commits"
                + failures(one.failures, one.firstFailure))
        print(
            "  chit.pay, \(o.sessions) sessions: \(many.paid) payments in \(String(format: "%.1f", many.seconds)) s, latency p50 \(ms(many.p50)) ms, "
                + "p99 \(ms(many.p99)) ms; single-commit ceiling \(fmt(many.ceiling, 0)) /s (the better of figure 2's and one after)"
                + failures(many.failures, many.firstFailure))
        print(
            "  serve CPU per payment: a \(ms(one.cpuA * 1000)) ms, b \(ms(one.cpuB * 1000)) ms (1 session); a \(ms(many.cpuA * 1000)) ms, "
                + "b \(ms(many.cpuB * 1000)) ms (\(o.sessions) sessions)")
        print("  chits in a's chains after the runs: \(chains.chained) (payments answered ok, warm-ups included: \(chains.expected))")
        print("  load average after: \(loadAverage())")

        out["ping"] = [
            "count": ping.count, "raw_count": ping.rawCount, "p50_us": num(ping.p50 * 1e6), "p99_us": num(ping.p99 * 1e6),
            "raw_p50_us": num(ping.raw50 * 1e6), "raw_p99_us": num(ping.raw99 * 1e6), "ratio_p50": num(ping.ratio50),
            "ratio_p99": num(ping.raw99 / ping.p99), "request_bytes": ping.requestBytes, "reply_bytes": ping.replyBytes,
            "serve_cpu_us": num(ping.serveCPU * 1e6), "client_cpu_us": num(ping.clientCPU * 1e6)
        ]
        out["pay_one_session"] = [
            "payments": one.paid, "per_second": num(one.rate), "ceiling_per_second": num(one.ceiling), "ratio": num(one.ratio),
            "p50_ms": num(one.p50), "p99_ms": num(one.p99), "failures": one.failures, "serve_cpu_ms_a": num(one.cpuA * 1000),
            "serve_cpu_ms_b": num(one.cpuB * 1000)
        ]
        out["pay_concurrent"] = [
            "sessions": o.sessions, "payments": many.paid, "per_second": num(many.rate), "ceiling_per_second": num(many.ceiling),
            "target_per_second": num(2 * many.ceiling), "ratio": num(many.ratio), "p50_ms": num(many.p50), "p99_ms": num(many.p99),
            "failures": many.failures, "serve_cpu_ms_a": num(many.cpuA * 1000), "serve_cpu_ms_b": num(many.cpuB * 1000)
        ]
        out["chits_chained"] = chains.chained
        out["payments_ok"] = chains.expected
        if !o.noIdle {
            sites.stop(cleanup: cleanup)
            let idle = try await Idle.run(
                binary: o.binary, dir: dir, cleanup: cleanup, devices: o.devices, sessions: o.idleSessions, pings: o.pings, timeout: o.timeout)
            Idle.report(idle, pings: o.pings)
            print("  load average after part 4: \(loadAverage())")
            out["idle"] = Idle.json(idle)
        }
        out["load_average_after"] = loadAverage()
        return out
    }

    /// `user-bench idle`: part 4 alone, on a site of its own.
    static func runIdle(_ o: Options, cleanup: Cleanup) async throws -> [String: Any] {
        let dir = try TempDir(prefix: "user-bench")
        cleanup.track(dir: dir.path)
        let load = loadAverage()
        print("user-bench idle: part 4 alone; load average before: \(load)")
        let idle = try await Idle.run(
            binary: o.binary, dir: dir, cleanup: cleanup, devices: o.devices, sessions: o.idleSessions, pings: o.pings, timeout: o.timeout)
        Idle.report(idle, pings: o.pings)
        let after = loadAverage()
        print("  load average after: \(after)")
        return ["load_average_before": load, "idle": Idle.json(idle), "load_average_after": after]
    }

    static func failures(_ n: Int, _ first: String?) -> String {
        n == 0 ? "; no failures" : "; \(n) failed, first: \(first ?? "?")"
    }
}

// MARK: Formatting

/// Prints one line and flushes, so a run written to a pipe or a file can be followed (tee, tail -f).
func print(_ line: String) {
    Swift.print(line)
    fflush(nil)
}

/// `x` right-aligned in `width`, with thousands separators when `decimals` is 0.
func fmt(_ x: Double, _ width: Int, decimals: Int = 0) -> String {
    var s: String
    if !x.isFinite {
        s = "-"
    } else if decimals == 0 {
        let digits = String(Int(x.rounded()))
        var out = ""
        for (i, ch) in digits.reversed().enumerated() {
            if i > 0, i % 3 == 0, ch != "-" { out.append(",") }
            out.append(ch)
        }
        s = String(out.reversed())
    } else {
        s = String(format: "%.\(decimals)f", x)
    }
    return String(repeating: " ", count: max(0, width - s.count)) + s
}

func pad(_ s: String, _ width: Int) -> String { s + String(repeating: " ", count: max(0, width - s.count)) }

func us(_ seconds: Double) -> String { seconds.isFinite ? String(format: "%.0f", seconds * 1e6) : "-" }

func ms(_ v: Double) -> String { v.isFinite ? String(format: "%.2f", v) : "-" }

/// A figure in --json output, rounded to 0.01 (null when there is none).
func num(_ v: Double) -> Any { v.isFinite ? (v * 100).rounded() / 100 : NSNull() }
