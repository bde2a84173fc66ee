import ChipModel
import TestSupport
import Testing
@testable import ChipProtocol

/// Seeded mutations of valid route and lift messages: a mutated message is
/// refused, or it parses to a value whose wire form is exactly the mutated
/// bytes (nothing is normalised away, so what is signed is what was read).
@Suite struct LiftMutationTests {
    static func messages() -> [JSONValue] {
        let v = MessageValidatorTests()
        let lift = v.liftMessages.map(\.json)
        let route: [JSONValue] = [
            v.route(.query(v.query)).json,
            v.route(
                .query(
                    RouteQuery(
                        qid: Fx.qid, kind: .line, units: 9, min: 9, ttl: 5, wait: 5000, referee: Fx.site(9),
                        find: .payee(LiftFind(agent: Fx.site(3).agent, seal: "c2VhbGVk")), path: [Fx.nonce(Fx.tallyUUID)]))
            ).json,
            v.route(.good(qid: Fx.qid, routes: [FoundRoute(path: [Fx.nonce(Fx.tallyUUID)], max: 7)])).json,
            v.route(.noRoute(qid: Fx.qid, reason: .time)).json
        ]
        return lift + route
    }

    /// One random change somewhere in `value`.
    static func mutate(_ value: JSONValue, _ rng: inout SplitMix64, depth: Int = 0) -> JSONValue {
        switch value {
        case .object(var o) where !o.isEmpty:
            let keys = o.keys.sorted()
            let key = keys[Int.random(in: 0..<keys.count, using: &rng)]
            switch Int.random(in: 0..<6, using: &rng) {
            case 0: o[key] = nil
            case 1: o["x" + key] = o[key]
            case 2: o[key] = .null
            default: o[key] = mutate(o[key] ?? .null, &rng, depth: depth + 1)
            }
            return .object(o)
        case .array(var a) where !a.isEmpty:
            let i = Int.random(in: 0..<a.count, using: &rng)
            switch Int.random(in: 0..<4, using: &rng) {
            case 0: a.remove(at: i)
            case 1: a.append(a[i])
            default: a[i] = mutate(a[i], &rng, depth: depth + 1)
            }
            return .array(a)
        case .string(let s):
            var b = Array(s.utf8)
            if b.isEmpty || Int.random(in: 0..<4, using: &rng) == 0 { return .integer(Int64(b.count)) }
            let i = Int.random(in: 0..<b.count, using: &rng)
            b[i] = [UInt8(ascii: "A"), UInt8(ascii: "_"), UInt8(ascii: "-"), UInt8(ascii: "z"), UInt8(ascii: "0")][Int.random(in: 0..<5, using: &rng)]
            return .string(String(decoding: b, as: UTF8.self))
        case .integer(let n):
            return .integer([n + 1, n - 1, 0, -n, Amount.maxMilli + 1][Int.random(in: 0..<5, using: &rng)])
        default:
            return .string("?")
        }
    }

    @Test(arguments: 1...40) func mutatedMessagesAreRefusedOrReadExactly(seed: Int) {
        var rng = SplitMix64(seed: UInt64(seed))
        var read = 0, refused = 0
        for original in Self.messages() {
            for _ in 0..<25 {
                let mutated = Self.mutate(original, &rng)
                guard let parsed = try? SiteMessage(json: mutated) else {
                    refused += 1
                    continue
                }
                read += 1
                #expect(
                    parsed.json.canonicalBytes == mutated.canonicalBytes,
                    "seed \(seed): \(mutated.canonicalString) read as \(parsed.json.canonicalString)")
            }
        }
        // Both outcomes happen: the run is not vacuous.
        #expect(read > 0 && refused > read, "seed \(seed): \(read) read, \(refused) refused")
    }
}
