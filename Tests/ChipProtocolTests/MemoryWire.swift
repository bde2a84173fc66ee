import ChipModel
import ChipProtocol
import Foundation
import TestSupport

// Two memory sites and a simulated wire between them: what one site sends is
// put on the wire as JSON (as a partner's site would send it), and a seeded
// generator decides what arrives, in which order, how often, what is lost
// and which old messages come again.

extension SplitMix64 {
    mutating func coin(_ p: Double) -> Bool { Double.random(in: 0..<1, using: &self) < p }
    mutating func pick(_ range: ClosedRange<Int>) -> Int { Int.random(in: range, using: &self) }
    /// An index chosen by weight.
    mutating func choose(_ weights: [Int]) -> Int {
        var r = Int.random(in: 0..<weights.reduce(0, +), using: &self)
        for (i, w) in weights.enumerated() {
            if r < w { return i }
            r -= w
        }
        return weights.count - 1
    }
}

/// The seeds of a property: `PROPERTY_SEED=N` runs seed N alone.
func propertySeeds(_ fixed: ClosedRange<UInt64>) -> [UInt64] {
    if let text = ProcessInfo.processInfo.environment["PROPERTY_SEED"], let seed = UInt64(text) { return [seed] }
    return Array(fixed)
}

/// Whether the whole seed list runs (not one seed replayed): only then can
/// a property demand that its runs met every case it is about.
var allSeeds: Bool { ProcessInfo.processInfo.environment["PROPERTY_SEED"] == nil }

/// A property that did not hold; the caller adds the seed.
struct Violation: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

enum Side: String, CustomStringConvertible {
    case a, b
    var other: Side { self == .a ? .b : .a }
    var description: String { rawValue }
}

/// One message on its way to `to`, as JSON.
struct Packet {
    let to: Side
    let json: JSONValue
    var summary: String { "\(json["target"]?.stringValue ?? "?").\(json["action"]?.stringValue ?? "?")→\(to)" }
}

/// What is in flight, and every distinct message ever sent (for replays).
struct Wire {
    var inFlight: [Packet] = []
    var history: [Packet] = []
    private var seen: Set<String> = []
    private(set) var log: [String] = []

    mutating func send(_ packets: [Packet]) {
        inFlight += packets
        for p in packets where seen.insert("\(p.to) \(p.json.canonicalString)").inserted { history.append(p) }
    }

    mutating func note(_ s: String) {
        log.append(s)
        if log.count > 40 { log.removeFirst() }
    }

    /// Takes one packet in flight at random (`keep`: a duplicate stays behind).
    mutating func take(_ rng: inout SplitMix64, keep: Bool) -> Packet? {
        guard !inFlight.isEmpty else { return nil }
        let i = rng.pick(0...inFlight.count - 1)
        return keep ? inFlight[i] : inFlight.remove(at: i)
    }

    mutating func lose(_ rng: inout SplitMix64) {
        if let p = take(&rng, keep: false) { note("lost \(p.summary)") }
    }

    func recent() -> String { log.suffix(14).joined(separator: "; ") }
}

/// Site a (user alice) and site b (user bob).
struct MemoryPair {
    var a: MemorySite
    var b: MemorySite
    let alice: CUID, bob: CUID

    init(seed: UInt64) throws {
        a = try MemorySite(name: "a", seed: seed &* 2 &+ 1, port: 1)
        b = try MemorySite(name: "b", seed: seed &* 2 &+ 2, port: 2)
        alice = try a.addUser("alice", name: "Alice").cuid
        bob = try b.addUser("bob", name: "Bob").cuid
    }

    subscript(_ s: Side) -> MemorySite {
        get { s == .a ? a : b }
        set { if s == .a { a = newValue } else { b = newValue } }
    }

    func agent(_ s: Side) -> AgentID { self[s].agent }

    /// What site `s`'s outbox holds for the other site (sent again on every channel).
    func outbox(_ s: Side) -> [Packet] { self[s].outbox(for: agent(s.other)).map { Packet(to: s.other, json: $0.message.json) } }

    /// Hands `p` to its site as the engine does (SiteEngine.handleTally/handleChit):
    /// the decision's replies go back; after an applied tally message the
    /// site also flushes its outbox to the peer (an offer or open waits there).
    mutating func deliver(_ p: Packet) throws -> [Packet] {
        let from = agent(p.to.other)
        let decision = try self[p.to].receive(json: p.json, from: from)
        guard decision.ignored == nil else { return [] }
        var out = decision.replies.map { Packet(to: p.to.other, json: $0.json) }
        if p.json["target"]?.stringValue == "tally" { out += outbox(p.to) }
        return out
    }

    /// A ticket of bob's: bob takes `side` and grants `limit`.
    mutating func bobsTicket(side: TallySide, limit: Int64, reuse: Bool = false) throws -> TallyTicket {
        try b.issueTicket(bob, reuse: reuse, terms: ["side": .string(side.rawValue), "limit": .integer(limit)])
    }

    /// Opens a tally between alice and bob with every message delivered
    /// once, in order (alice accepts bob's offer as it is).
    mutating func openTally(bobSide: TallySide, limit: Int64) throws -> String {
        let ticket = try bobsTicket(side: bobSide, limit: limit)
        try a.requestTally(alice, ticket: ticket, accept: false)
        var flight = outbox(.a)
        var rounds = 0
        while !flight.isEmpty, rounds < 20 {
            rounds += 1
            var next = [Packet]()
            for p in flight { next += try deliver(p) }
            if let offer = a.tallies.values.first(where: { $0.state == .peerOffer }) { try a.acceptTally(offer.uuid); next += outbox(.a) }
            flight = next
        }
        guard let t = a.tallies.values.first(where: { $0.state == .open }), b.tallies[t.uuid]?.state == .open else {
            throw Violation("the tally did not open: a \(a.tallies.values.map(\.state.rawValue)), b \(b.tallies.values.map(\.state.rawValue))")
        }
        return t.uuid
    }
}
