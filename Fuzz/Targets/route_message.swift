import ChipModel
import ChipProtocol

/// Fuzz target `route_message`: `route` messages (9.4) through
/// `RouteMessage(json:)`; a query is decided by `RouteDiscovery.decide` at
/// site B (`Lifts.routeSnapshot`: two open foreign tallies, bob's with alice
/// and with carol), and every message is folded by `RouteDiscovery.answer`
/// as the reply to the forwards B made for a real circular query. Byte 0:
/// bits 0-4 the snapshot (seen, over a limit, R not accepted, an internal
/// tally, low capacities), bits 5-6 the time since the query arrived; the
/// rest is the JSON message. Properties: a parsed message's JSON parses to an
/// equal message with the same JSON; answers and forwards read back from
/// their JSON; a forward goes on another of B's tallies, ttl one less, path
/// one nonce longer, at most 4; an answer holds 1 to 3 routes, each extending
/// what B sent, carrying `min` to `units`.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size >= 1 else { return 0 }
    let input = UnsafeBufferPointer(start: data, count: size)
    let v = input[0]
    guard let json = try? JSONValue(parsing: UnsafeBufferPointer(rebasing: input[1...])),
        let m = try? RouteMessage(json: json)
    else { return 0 }
    guard let again = try? RouteMessage(json: m.json), again == m, again.json == m.json else {
        violated("a route message does not read back from its JSON")
    }
    if case .query(let q) = m.body {
        let elapsed: Int64 = [0, 1000, 3800, 6000][Int(v >> 5 & 3)]
        switch RouteDiscovery.decide(m, snapshot: Lifts.routeSnapshot(m, v), elapsed: elapsed) {
        case .drop: break
        case .answer(let a):
            readsBack(a)
            if a.qid != q.qid || a.to != m.from || a.from != m.to { violated("an answer to another query or party") }
        case .forward(let forwards, let inbound, let within):
            if forwards.isEmpty || forwards.count > LiftLimits.fanOut || within < 0 || within > q.wait { violated("forwards out of bounds") }
            for f in forwards {
                guard f.tally != inbound, case .query(let next) = f.message.body, next.ttl == q.ttl - 1, next.path.count == q.path.count + 1,
                    Array(next.path.prefix(q.path.count)) == q.path, next.path.last == HopNonce.nonce(qid: q.qid, tally: f.tally),
                    f.capacity >= q.min
                else { violated("a forward that does not extend the query") }
                readsBack(f.message)
            }
            // No answer yet: none; the message itself as every reply (a query is no answer).
            check(RouteDiscovery.answer(m, forwards: forwards, replies: [:]), m)
            check(RouteDiscovery.answer(m, forwards: forwards, replies: Dictionary(forwards.map { ($0.tally, m) }) { a, _ in a }), m)
        }
    }
    // The message as carol's answer to B's forward of a real query.
    let q = Lifts.circQuery
    let replies = Dictionary(Lifts.circForwards.map { ($0.tally, m) }) { a, _ in a }
    check(RouteDiscovery.answer(q, forwards: Lifts.circForwards, replies: replies), q)
    return 0
}

private func readsBack(_ m: RouteMessage) {
    guard (try? SiteMessage(json: SiteMessage.route(m).json)) == .route(m) else { violated("a route message B sends does not read back") }
}

/// S's answer to query `m`: to its sender, ≤ 3 routes of `min` to `units`.
private func check(_ a: RouteMessage?, _ m: RouteMessage) {
    guard case .query(let q) = m.body else {
        if a != nil { violated("an answer to no query") }
        return
    }
    guard let a, a.to == m.from, a.from == m.to, a.qid == q.qid else { violated("no answer, or one to another query") }
    readsBack(a)
    if case .good(_, let routes) = a.body {
        guard (1...LiftLimits.maxRoutes).contains(routes.count) else { violated("an answer with \(routes.count) routes") }
        for r in routes where r.max < q.min || r.max > q.units { violated("a route carrying \(r.max), not \(q.min) to \(q.units)") }
    }
}
