import BenchSupport
// lift-bench: lifts (issue 13), each figure beside a ceiling measured in the
// same run (doc/performance.md, "Lifts (issue 13)").
//
//   swift build -c release --product lift-bench --product chipsite
//   .build/release/lift-bench [latency|throughput|clearing|all] [--binary PATH] [--runs N] [--seconds S]
//                             [--originators N] [--sites N] [--rounds N] [--seed N] [--json] [--verbose]
//
// latency:    real `chipsite serve` processes on 127.0.0.1: a circular lift
//             on a ring of 3 sites and linear lifts over 2, 4 and 6 foreign
//             hops, p50/p99 over --runs, beside the chit round trip between
//             two of the same sites (Latency.swift).
// throughput: lifts per second through one relay site from concurrent
//             originators, beside the raw SQLite commit ceiling (Throughput.swift).
// clearing:   an in-process network of --sites sites with random tallies and
//             debts; the debt the automatic circular lifts clear against the
//             optimum of a central clearer (Clearing.swift, Circulation.swift).
// The children and the temporary directory are removed on exit, on error
// and on SIGINT/SIGTERM.
import Foundation

struct Options {
    var mode = "all"
    var binary = ".build/release/chipsite"
    var runs = 30
    var seconds = 10.0
    var originators = 8
    var payees = 8
    var sites = [50]
    var rounds = 20
    var seed: UInt64 = 13
    var json = false
    var oneAtATime = false
    var verbose = false

    init(_ args: [String]) throws {
        var it = args.dropFirst().makeIterator()
        func value(_ flag: String) throws -> String {
            guard let v = it.next() else { throw BenchError("\(flag) needs a value") }
            return v
        }
        func int(_ flag: String, _ range: ClosedRange<Int>) throws -> Int {
            guard let v = Int(try value(flag)), range.contains(v) else {
                throw BenchError("\(flag) must be a whole number from \(range.lowerBound) to \(range.upperBound)")
            }
            return v
        }
        while let a = it.next() {
            switch a {
            case "latency", "throughput", "clearing", "all": mode = a
            case "--binary": binary = try value(a)
            case "--runs": runs = try int(a, 1...10_000)
            case "--seconds":
                guard let v = Double(try value(a)), v > 0, v <= 3600 else { throw BenchError("--seconds must be 0 to 3600") }
                seconds = v
            case "--originators": originators = try int(a, 1...64)
            case "--payees": payees = try int(a, 1...64)
            case "--sites":
                let list = try value(a).split(separator: ",").compactMap { Int($0) }
                guard !list.isEmpty, list.allSatisfy({ (3...500).contains($0) }) else {
                    throw BenchError("--sites: sizes from 3 to 500, comma-separated")
                }
                sites = list
            case "--rounds": rounds = try int(a, 1...1000)
            case "--seed":
                guard let v = UInt64(try value(a)) else { throw BenchError("--seed must be a whole number") }
                seed = v
            case "--json": json = true
            case "--one-at-a-time": oneAtATime = true
            case "--verbose": verbose = true
            case "-h", "--help":
                print(
                    """
                    usage: lift-bench [latency|throughput|clearing|all] [--binary PATH] [--runs N] [--seconds S]
                                      [--originators N] [--payees N] [--sites N[,N...]] [--rounds N] [--seed N] [--one-at-a-time] [--json] [--verbose]
                      latency     lift latency over real serve processes beside the chit round trip (--runs, default 30)
                      throughput  lifts/s through one relay from --originators (8) concurrent originators to --payees (8)
                                  payee sites for --seconds (10), beside the raw SQLite commit ceiling
                      clearing    in-process networks of --sites sites (default 50; e.g. 10,50,100): debt cleared by
                                  --rounds (20) rounds of circular lifts vs the optimum of a central clearer
                      --one-at-a-time  clearing: each round asks one site at a time (each lift done before the next)
                      --binary    the chipsite binary serve runs from (default .build/release/chipsite)
                      --json      also print the figures as one JSON object at the end
                    """)
                exit(0)
            default: throw BenchError("unknown argument \(a)")
            }
        }
    }
}

@main
enum LiftBench {
    static func main() async {
        let options: Options
        do { options = try Options(CommandLine.arguments) } catch {
            FileHandle.standardError.write(Data("lift-bench: error: \(error)\n".utf8))
            exit(2)
        }
        let cleanup = Cleanup(name: "lift-bench", keepVariable: "LIFT_BENCH_KEEP")
        let signals = cleanup.onStopSignals()
        defer {
            signals.forEach { $0.cancel() }
            cleanup.run()
        }
        var out = [String: Any]()
        do {
            if ["latency", "all"].contains(options.mode) {
                let r = try Latency.run(binary: options.binary, runs: options.runs, cleanup: cleanup, verbose: options.verbose)
                out["latency"] = Latency.report(r)
                cleanup.run()
                print("")
            }
            if ["throughput", "all"].contains(options.mode) {
                let r = try Throughput.run(
                    binary: options.binary, originators: options.originators, payees: options.payees, seconds: options.seconds, cleanup: cleanup)
                out["throughput"] = Throughput.report(r)
                cleanup.run()
                print("")
            }
            if ["clearing", "all"].contains(options.mode) {
                var runs = [[String: Any]]()
                for n in options.sites {
                    let r = try await Clearing.run(
                        sites: n, rounds: options.rounds, seed: options.seed, oneAtATime: options.oneAtATime, verbose: options.verbose)
                    runs.append(Clearing.report(r))
                    print("")
                }
                out["clearing"] = runs
            }
            if let json = try? JSONSerialization.data(withJSONObject: out, options: [.sortedKeys, .prettyPrinted]), options.json {
                print(String(decoding: json, as: UTF8.self))
            }
        } catch {
            cleanup.run()
            FileHandle.standardError.write(Data("lift-bench: error: \(error)\n".utf8))
            exit(1)
        }
    }
}

// MARK: Formatting

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
