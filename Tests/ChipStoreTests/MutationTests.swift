import ChipModel
import Foundation
import Testing
import ChipProtocol
@testable import ChipStore

/// The store's message handlers are not fuzzed (the fuzz targets link only
/// the pure modules), so these seeded runs do the next best thing: two
/// honest sites pay, invoice, refuse and sync over a simulated wire while a
/// hostile partner keeps delivering mutated copies of real messages (numbers
/// changed, strings swapped for others seen on the wire, fields dropped or
/// added, array items duplicated, dropped, reordered). After every step, on
/// both sites: `tally verify` is clean (signatures, links, balance = sum of
/// the chain, limits) and one chain is a prefix of the other; at the end the
/// site files pass `PRAGMA integrity_check`. A lie can stall a chain, never
/// corrupt one. `PROPERTY_SEED=N` runs one seed.
@Suite(.serialized) struct MutationTests {
    /// 15 seeds; 40 with `CHIPSITE_LONG=1`.
    static let seeds: [UInt64] = Array(7001...(ProcessInfo.processInfo.environment["CHIPSITE_LONG"] != nil ? 7040 : 7015))

    @Test func mutatedPartnerMessagesNeverCorruptASite() throws {
        for seed in PropertyTests.seeds(Self.seeds) {
            do {
                var run = try MutationRun(seed: seed)
                try run.run()
            } catch {
                Issue.record("seed \(seed): \(error)")
            }
        }
    }
}

struct MutationRun {
    let seed: UInt64
    var rng: PropertyRNG
    let sites: PTwoSites
    let id: String
    let foil: PSite, stock: PSite
    /// Every honest message sent, and every string seen in them (the
    /// mutator's vocabulary: uuids, hashes, signatures, CHAD parts).
    var history: [PPacket] = []
    var strings: [String] = []
    /// The same, by kind: uuids (of tallies, chits, invoices) and 43-character
    /// hashes, so that swaps often land on something the site knows.
    var uuids: [String] = []
    var hashes: [String] = []
    var seen: Set<String> = []
    /// Short words: actions, targets, sides ("nak", "chit", "stock", …).
    var names: Set<String> = []
    var mutationsDelivered = 0

    init(seed: UInt64) throws {
        self.seed = seed
        rng = PropertyRNG(seed: seed)
        sites = try PTwoSites()
        let issuerSide: TallySide = seed % 2 == 0 ? .stock : .foil
        id = try ChainRun.openTally(sites, issuerSide: issuerSide, limit: 50_000)
        (stock, foil) = issuerSide == .stock ? (.b, .a) : (.a, .b)
    }

    mutating func run() throws {
        for step in 0..<rng.int(60...120) {
            switch rng.weighted([3, 3, 1, 1, 4, 8]) {
            case 0: try pay(foil)
            case 1: try pay(stock)
            case 2: try invoice()
            case 3: try answerInvoice()
            case 4: try sync()
            default: try hostile()
            }
            try check("step \(step)")
        }
        try ensure(mutationsDelivered > 0, "no mutation was delivered")
        for store in [sites.a, sites.b] {
            try ensure(try SiteBackup.integrityProblem(store.path) == nil, "integrity check failed")
        }
    }

    // MARK: Honest moves

    mutating func pay(_ side: PSite) throws {
        let units = Int64(rng.int(1...20_000))
        do { _ = try sites.store(side).pay(tally: id, units: units, memo: nil, ref: nil, key: sites.key(side)) } catch StoreError.overLimit
        { /* over a limit as this site sees it */  }
    }

    mutating func invoice() throws {
        let side: PSite = rng.chance(0.5) ? .a : .b
        _ = try sites.store(side).createInvoice(tally: id, units: Int64(rng.int(1...5_000)), memo: "for \(rng.int(1...99))", ref: nil)
    }

    mutating func answerInvoice() throws {
        let side: PSite = rng.chance(0.5) ? .a : .b
        guard let open = try sites.store(side).invoices(tally: id).first(where: { $0.direction == .in && $0.state == .open }) else { return }
        do {
            if rng.chance(0.6) {
                _ = try sites.store(side).payInvoice(open.uuid, key: sites.key(side))
            } else {
                _ = try sites.store(side).refuseInvoice(open.uuid, reason: "no")
            }
        } catch is ModelError, StoreError.overLimit { /* a limit, or answered meanwhile */  }
    }

    /// Everything each site would send now, delivered in order (replies too).
    mutating func sync() throws {
        var packets = [PPacket]()
        if let (tran, _) = try sites.store(stock).pendingTransfer(tally: id, excluding: []) { packets.append(PPacket(to: foil, message: tran)) }
        if let work = try sites.store(foil).chainWork().first(where: { $0.tally == id }),
            let upd = try sites.store(foil).chainUpdate(tally: id, after: work.acked)
        {
            packets.append(PPacket(to: stock, message: upd))
        }
        for side in [PSite.a, .b] {
            packets += try sites.outbox(side).filter { $0.message["target"]?.stringValue == "chit" }
            packets += try sites.store(side).invoiceRefusals().map { PPacket(to: side.other, message: $0.message) }
        }
        for _ in 0..<20 where !packets.isEmpty {
            var replies = [PPacket]()
            for p in packets {
                record(p)
                replies += try sites.deliver(p)
            }
            packets = replies
        }
    }

    mutating func record(_ p: PPacket) {
        history.append(p)
        collectStrings(p.message)
    }

    mutating func collectStrings(_ v: JSONValue) {
        switch v {
        case .string(let s) where strings.count < 5_000 && !seen.contains(s):
            seen.insert(s)  // each distinct string once: the tally's uuid is in every message
            strings.append(s)
            if TallyCore.isUUID(s) { uuids.append(s) } else if s.utf8.count == 43 { hashes.append(s) } else if s.utf8.count <= 8 { names.insert(s) }
        case .array(let items): items.forEach { collectStrings($0) }
        case .object(let o): o.values.forEach { collectStrings($0) }
        default: break
        }
    }

    // MARK: The hostile partner

    mutating func hostile() throws {
        // An old message, or one about to be sent (a lie about what is new
        // reaches further than a replay of what both sites hold already).
        var fresh = [PPacket]()
        if let (tran, _) = try sites.store(stock).pendingTransfer(tally: id, excluding: []) { fresh.append(PPacket(to: foil, message: tran)) }
        let stockLength = try sites.store(stock).chainHead(of: id).length
        if let upd = try sites.store(foil).chainUpdate(tally: id, after: stockLength) { fresh.append(PPacket(to: stock, message: upd)) }
        let pool = !fresh.isEmpty && rng.chance(0.5) ? fresh : history
        guard !pool.isEmpty else { return }
        let original = pool[rng.int(0...pool.count - 1)]
        var message = original.message
        switch rng.weighted([4, 2, 3, 3, 3]) {
        case 4:
            // What a hostile site can compute but not sign: a chit with other
            // units or payer, its hash (and chain link) recomputed, the old signature.
            message = forgeChit(in: message)
        case 3:
            // A forged answer on the same tally: a refusal of some chit or
            // invoice, or an ack/nak of some position.
            let body: JSONValue
            let action: String
            switch rng.int(0...2) {
            case 0: (action, body) = ("nak", ["tally": .string(id), "refused": .array([["uuid": .string(pick(uuids)), "reason": "x"]])])
            case 1:
                (action, body) = (
                    rng.chance(0.5) ? "ack" : "nak",
                    ["tally": .string(id), "index": .integer(Int64(rng.int(0...12))), "hash": .string(pick(hashes))]
                )
            default: (action, body) = ("refuse", ["tally": .string(id), "uuid": .string(pick(uuids)), "reason": "x"])
            }
            message = replacing("object", in: replacing("action", in: message, with: .string(action)), with: body)
        case 0:
            for _ in 0..<rng.int(1...3) { message = mutate(message, depth: 0) }
        case 1:
            // The same body under another action: an ack read as a nak, an upd as a tran, …
            message = replacing("action", in: message, with: .string(Self.actions[rng.int(0...Self.actions.count - 1)]))
        default:
            // A claim grafted onto the body: a refusal list, a chain position, another tally.
            message = replacing("object", in: message, with: graft(message["object"] ?? .object([:])))
        }
        mutationsDelivered += 1
        // A mutated target or action has no handler (the engine drops it); a
        // refusal by throwing is fine: what matters is the state after.
        do { _ = try sites.deliver(PPacket(to: original.to, message: message)) } catch let error as PropertyViolation
            where !error.description.hasPrefix("unexpected message")
        { throw error } catch {}

    }

    static let actions = ["ack", "nak", "upd", "tran", "invoice", "refuse"]

    mutating func forged(_ chitJSON: JSONValue) -> (json: JSONValue, hash: String)? {
        guard let chit = try? Chit(json: chitJSON), case .object(var core) = chit.core else { return nil }
        if rng.chance(0.5) {
            core["units"] = .integer(Int64(rng.int(1...60_000)))
        } else {
            core["by"] = .string(chit.by == .stock ? "foil" : "stock")
        }
        guard let fake = try? Chit(core: .object(core), sign: chit.sign) else { return nil }
        return (fake.json, fake.hash)
    }

    mutating func forgeChit(in message: JSONValue) -> JSONValue {
        guard case .object(var body)? = message["object"] else { return message }
        if case .array(var chits)? = body["chits"], !chits.isEmpty {
            let i = rng.int(0...chits.count - 1)
            guard let fake = forged(chits[i]) else { return message }
            chits[i] = fake.json
            body["chits"] = .array(chits)
        } else if case .array(var entries)? = body["entries"], !entries.isEmpty {
            let i = rng.int(0...entries.count - 1)
            guard case .object(var entry) = entries[i], let chit = entry["chit"], let index = entry["index"]?.integerValue,
                let prior = entry["prior"]?.stringValue, let fake = forged(chit)
            else { return message }
            entry["chit"] = fake.json
            entry["hash"] = .string(Chain.entryHash(index: index, prior: prior, chitHash: fake.hash))
            entries[i] = .object(entry)
            body["entries"] = .array(entries)
        } else {
            return message
        }
        return replacing("object", in: message, with: .object(body))
    }

    func replacing(_ key: String, in v: JSONValue, with value: JSONValue) -> JSONValue {
        guard case .object(var o) = v else { return v }
        o[key] = value
        return .object(o)
    }

    mutating func graft(_ body: JSONValue) -> JSONValue {
        let value: JSONValue
        switch rng.int(0...5) {
        case 0: value = .array([["uuid": .string(pick(uuids)), "reason": "x"]])
        case 1: value = .integer(Int64(rng.int(0...12)))
        case 2: value = .string(pick(hashes))
        case 3: value = .string(pick(uuids))
        case 4: value = .integer(Int64(rng.int(1...60_000)))
        default: value = .string(["stock", "foil"][rng.int(0...1)])
        }
        let keys = ["refused", "index", "hash", "uuid", "tally", "units", "by"]
        return replacing(keys[rng.int(0...keys.count - 1)], in: body, with: value)
    }

    /// One random change somewhere in `v`.
    mutating func mutate(_ v: JSONValue, depth: Int) -> JSONValue {
        switch v {
        case .object(var o) where !o.isEmpty:
            let keys = o.keys.sorted()
            let key = keys[rng.int(0...keys.count - 1)]
            switch rng.weighted([6, 1, 1, 1, 1]) {
            case 0: o[key] = mutate(o[key] ?? .null, depth: depth + 1)
            case 1: o[key] = nil
            case 2: o["extra\(rng.int(0...9))"] = .string(word())
            case 3:
                // Claims of other messages grafted on: a refusal list, a chain position.
                o[["refused", "index", "hash", "uuid"][rng.int(0...3)]] =
                    rng.chance(0.5)
                    ? .array([["uuid": .string(pick(uuids)), "reason": "x"]])
                    : rng.chance(0.5) ? .integer(Int64(rng.int(0...8))) : .string(pick(rng.chance(0.5) ? uuids : hashes))
            default: o[key] = .string(word())
            }
            return .object(o)
        case .array(var items) where !items.isEmpty:
            let i = rng.int(0...items.count - 1)
            switch rng.weighted([5, 2, 2, 2]) {
            case 0: items[i] = mutate(items[i], depth: depth + 1)
            case 1: items.append(items[i])
            case 2: items.remove(at: i)
            default: items.swapAt(i, rng.int(0...items.count - 1))
            }
            return .array(items)
        case .integer(let n):
            let choices: [Int64] = [0, -1, 1, n &+ 1, n &- 1, n &* 2, -n, Int64.max, Amount.maxMilli, Amount.maxMilli + 1]
            return .integer(choices[rng.int(0...choices.count - 1)])
        case .string(let s) where s.utf8.count <= 8 && rng.chance(0.7):
            return .string(pick(names.sorted()))
        case .string(let s) where TallyCore.isUUID(s) && !uuids.isEmpty && rng.chance(0.7):
            return .string(pick(uuids))
        case .string(let s) where s.utf8.count == 43 && !hashes.isEmpty && rng.chance(0.7):
            return .string(pick(hashes))
        case .string(let s):
            switch rng.weighted([4, 1, 1]) {
            case 0: return .string(word())
            case 1: return .string(String(s.prefix(rng.int(0...max(0, s.count)))))
            default: return .integer(Int64(rng.int(-5...5)))
            }
        case .bool(let b): return .bool(!b)
        default: return rng.chance(0.5) ? .string(word()) : .integer(1)
        }
    }

    mutating func word() -> String { pick(strings) }

    mutating func pick(_ pool: [String]) -> String {
        pool.isEmpty ? "x" : pool[rng.int(0...pool.count - 1)]
    }

    // MARK: Invariants

    func check(_ when: String) throws {
        for side in [PSite.a, .b] {
            let problems = try sites.store(side).verifyTally(id)
            try ensure(problems.isEmpty, "\(when): site \(side): \(problems)")
        }
        let stockChain = try sites.store(stock).chain(of: id).map(\.chainHash)
        let foilChain = try sites.store(foil).chain(of: id).map(\.chainHash)
        try ensure(
            stockChain.count <= foilChain.count && Array(foilChain.prefix(stockChain.count)) == stockChain,
            "\(when): the chains forked (stock \(stockChain.count), foil \(foilChain.count))")
        for side in [PSite.a, .b] {
            let waiting = try sites.store(side).invoices(tally: id).filter { $0.direction == .in && $0.state == .open }.count
            try ensure(waiting <= SiteStore.maxOpenIncomingInvoices, "\(when): \(waiting) open invoices on site \(side)")
        }
    }
}
