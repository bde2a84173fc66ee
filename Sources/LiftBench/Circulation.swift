import BenchSupport
/// What a central clearer could clear on a debt graph: the bench's yardstick
/// for the circular lifts (Clearing.swift).
///
/// The graph: one node per user, one edge u → v of capacity c > 0 per tally
/// on which u owes v c milliCHIPs. A set of circular lifts clears f(e) ≤ c(e)
/// on each edge, and f is a circulation (every user inside a lift is paid as
/// much as it pays), so the debt cleared, Σ f(e), is at most the maximum of
/// Σ f(e) over circulations 0 ≤ f ≤ c. Any such circulation is a sum of
/// cycles (flow decomposition), so that maximum is reachable by lifts if
/// lifts could be any length.
enum Circulation {
    struct Edge {
        let from: Int
        let to: Int
        let capacity: Int64
    }

    /// The maximum of Σ f(e) over circulations 0 ≤ f ≤ c, and a certificate.
    ///
    /// Algorithm: a min-cost circulation with cost −1 on every edge, by cycle
    /// cancelling (Klein 1967). The residual graph has, for each edge, a
    /// forward arc of residual c − f and cost −1 and a backward arc of
    /// residual f and cost +1. While Bellman-Ford finds a negative-cost cycle
    /// in it, push the cycle's smallest residual around it: the cost drops by
    /// at least 1 (integer capacities), so it ends. A circulation is of least
    /// cost, here of most Σ f, exactly when its residual graph has no negative
    /// cycle (the negative-cycle optimality condition).
    ///
    /// To make sure, the result is checked by LP duality: for node prices π,
    /// D(π) = Σ_e c(e)·max(0, 1 + π(from) − π(to)) bounds Σ f(e) from above
    /// for every feasible f (weak duality of max Σ f s.t. conservation and
    /// f ≤ c). With π = −(shortest distances in the final residual graph),
    /// complementary slackness holds, so D(π) equals Σ f(e): `dualBound ==
    /// value` proves `value` optimal.
    static func maximum(nodes n: Int, edges: [Edge]) -> (value: Int64, dualBound: Int64, flow: [Int64]) {
        var flow = [Int64](repeating: 0, count: edges.count)
        // Residual arcs: 2k forward (cost −1), 2k+1 backward (cost +1).
        func residual(_ a: Int) -> Int64 { a % 2 == 0 ? edges[a / 2].capacity - flow[a / 2] : flow[a / 2] }
        func tail(_ a: Int) -> Int { a % 2 == 0 ? edges[a / 2].from : edges[a / 2].to }
        func head(_ a: Int) -> Int { a % 2 == 0 ? edges[a / 2].to : edges[a / 2].from }
        func cost(_ a: Int) -> Int64 { a % 2 == 0 ? -1 : 1 }
        var dist = [Int64](repeating: 0, count: n)
        while true {
            // Bellman-Ford from a virtual source joined to every node at cost 0.
            dist = [Int64](repeating: 0, count: n)
            var pred = [Int](repeating: -1, count: n)
            var changed = -1
            for _ in 0..<n {
                changed = -1
                for a in 0..<(2 * edges.count) where residual(a) > 0 {
                    let u = tail(a), v = head(a)
                    if dist[u] + cost(a) < dist[v] {
                        dist[v] = dist[u] + cost(a)
                        pred[v] = a
                        changed = v
                    }
                }
                if changed < 0 { break }
            }
            guard changed >= 0 else { break }
            // A relaxation in round n: walk back n arcs to be on the cycle.
            var v = changed
            for _ in 0..<n { v = tail(pred[v]) }
            var cycle = [Int]()
            var x = v
            repeat {
                cycle.append(pred[x])
                x = tail(pred[x])
            } while x != v
            let push = cycle.map(residual).min() ?? 0
            for a in cycle { flow[a / 2] += a % 2 == 0 ? push : -push }
        }
        let value = flow.reduce(0, +)
        var bound: Int64 = 0
        for e in edges { bound += e.capacity * max(0, 1 - dist[e.from] + dist[e.to]) }
        return (value, bound, flow)
    }

    /// The simple directed cycles of at most `maxLength` edges (each once,
    /// from its smallest node), as edge indices; nil if there are more than
    /// `cap`, or the search takes more than `steps` steps.
    static func cycles(nodes n: Int, edges: [Edge], maxLength: Int, cap: Int = 200_000, steps: Int = 20_000_000) -> [[Int]]? {
        var out = [Int: [Int]]()
        for (i, e) in edges.enumerated() { out[e.from, default: []].append(i) }
        var found = [[Int]]()
        var onPath = [Bool](repeating: false, count: n)
        var path = [Int]()
        var overflow = false
        var taken = 0
        func dfs(_ start: Int, _ u: Int) {
            taken += 1
            if taken > steps { overflow = true }
            guard !overflow else { return }
            for i in out[u] ?? [] {
                let v = edges[i].to
                if v == start {
                    found.append(path + [i])
                    if found.count > cap { overflow = true; return }
                } else if v > start, !onPath[v], path.count + 1 < maxLength {
                    onPath[v] = true
                    path.append(i)
                    dfs(start, v)
                    path.removeLast()
                    onPath[v] = false
                }
            }
        }
        for s in 0..<n {
            onPath[s] = true
            dfs(s, s)
            onPath[s] = false
        }
        return overflow ? nil : found
    }

    /// The most debt cycles from `cycles` clear together: the LP
    /// max Σ_C |C|·x_C s.t. Σ_{C ∋ e} x_C ≤ c(e), x ≥ 0 (lifts carry
    /// milliCHIPs, so the LP's fractions are as good as reachable).
    static func bestOf(_ cycles: [[Int]], edges: [Edge]) -> Double {
        guard !cycles.isEmpty else { return 0 }
        // Only the edges some cycle uses are constraints.
        var row = [Int: Int]()
        for c in cycles { for e in c where row[e] == nil { row[e] = row.count } }
        var a = [[Double]](repeating: [Double](repeating: 0, count: cycles.count), count: row.count)
        var b = [Double](repeating: 0, count: row.count)
        for (e, r) in row { b[r] = Double(edges[e].capacity) }
        for (j, c) in cycles.enumerated() { for e in c { a[row[e]!][j] += 1 } }
        return Simplex.maximize(c: cycles.map { Double($0.count) }, a: a, b: b)
    }
}

/// A dense tableau simplex for max c·x s.t. A x ≤ b, x ≥ 0 with b ≥ 0 (so the
/// slack basis is feasible and no first phase is needed), Bland's rule
/// (no cycling). Small problems only: a few hundred rows.
enum Simplex {
    static func maximize(c: [Double], a: [[Double]], b: [Double]) -> Double {
        let m = b.count, n = c.count
        let width = n + m + 1
        var t = [[Double]](repeating: [Double](repeating: 0, count: width), count: m + 1)
        for i in 0..<m {
            for j in 0..<n { t[i][j] = a[i][j] }
            t[i][n + i] = 1
            t[i][width - 1] = b[i]
        }
        // Objective row: reduced costs −c (we pivot while any is negative).
        for j in 0..<n { t[m][j] = -c[j] }
        var basis = (0..<m).map { n + $0 }
        let eps = 1e-9
        for _ in 0..<100_000 {
            guard let enter = (0..<(n + m)).first(where: { t[m][$0] < -eps }) else { break }
            var leave = -1
            var best = Double.infinity
            for i in 0..<m where t[i][enter] > eps {
                let ratio = t[i][width - 1] / t[i][enter]
                if ratio < best - eps || (abs(ratio - best) <= eps && leave >= 0 && basis[i] < basis[leave]) {
                    best = ratio
                    leave = i
                }
            }
            guard leave >= 0 else { return .infinity }
            let p = t[leave][enter]
            for j in 0..<width { t[leave][j] /= p }
            for i in 0...m where i != leave && t[i][enter] != 0 {
                let f = t[i][enter]
                for j in 0..<width where t[leave][j] != 0 { t[i][j] -= f * t[leave][j] }
            }
            basis[leave] = enter
        }
        return t[m][width - 1]
    }
}
