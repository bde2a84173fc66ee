import ChipModel
import ChipProtocol

// Real snapshots for the decider targets (tally_dialog, chain_dialog) and the
// seeds that feed them, built once from the fixed sites, users, tally and
// keys of FuzzSupport.swift. The first byte of an input chooses a snapshot
// (`Dialogs.tallySnapshot`, `Dialogs.chainSite`); the rest is a message.

enum Dialogs {
    static let alice = Fixed.siteA.chad("alice"), bob = Fixed.siteB.chad("bob")
    static let now = "2026-11-25T12:00:00.000Z"
    static let token = String(repeating: "5e", count: 16)
    static let newUUID = "6a1b2c3d-4e5f-4a6b-8c7d-8e9f0a1b2c3e"
    static let requestUUID = "7b1b2c3d-4e5f-4a6b-8c7d-8e9f0a1b2c3f"

    static let bothSigned = TallySignatures(
        stock: Fixed.tallyCore.sign(with: Fixed.bobKey), foil: Fixed.tallyCore.sign(with: Fixed.aliceKey),
        hash: Fixed.tallyCore.hash)

    /// Our side of the fixed tally: bob's (stock, site B) or alice's (foil, site A).
    static func record(_ side: TallySide, state: TallyState, sign: TallySignatures, token: String? = token) -> TallyRecord {
        TallyRecord(
            uuid: Fixed.tallyUUID, cuid: (side == .stock ? bob : alice).cuid, side: side, partner: side == .stock ? alice : bob,
            state: state, revision: 1, core: Fixed.tallyCore, sign: sign, token: token, balance: 0, created: Fixed.date,
            updated: Fixed.date)
    }

    /// The signatures a tally in `state` holds on `side`'s site.
    static func signatures(_ side: TallySide, _ state: TallyState) -> TallySignatures {
        var s = TallySignatures(stock: nil, foil: nil, hash: Fixed.tallyCore.hash)
        switch state {
        case .heldOffer: s[side] = bothSigned[side]
        case .peerOffer: s[side.other] = bothSigned[side.other]
        default: s = bothSigned
        }
        return s
    }

    /// A second tally whose foil (alice) grants nothing: her site may accept its offer at once (`--accept`).
    static let freeCore: TallyCore = {
        guard
            let core = try? TallyCore(
                uuid: "8c1b2c3d-4e5f-4a6b-8c7d-8e9f0a1b2c3d", date: Fixed.date, memo: nil,
                stock: (cert: Fixed.bobCert.json, terms: ["limit": 2_000]), foil: (cert: Fixed.aliceCert.json, terms: [:]))
        else { fatalError("fixed free tally is invalid") }
        return core
    }()

    static func key(_ side: TallySide) -> SigningKey { side == .stock ? Fixed.bobKey : Fixed.aliceKey }
    static func cert(_ side: TallySide) -> JSONValue { side == .stock ? Fixed.bobCert.json : Fixed.aliceCert.json }
    /// The peer of `side`'s site.
    static func peer(_ side: TallySide) -> AgentID { side == .stock ? Fixed.siteA.agent : Fixed.siteB.agent }

    // MARK: Tally dialog

    /// The ticket bob issued (site B), as its site holds it, in one of eight variants.
    static func ticketSnapshot(_ v: UInt8) -> TallyDialog.TicketSnapshot {
        let reuse = v & 1 != 0
        let used: String? = v & 2 != 0 ? Fixed.date : nil
        let expires = v & 4 != 0 ? Fixed.date : "2027-01-01T00:00:00.000Z"
        let ticket = TicketInfo(
            token: token, cuid: bob.cuid, expires: expires, reuse: reuse, bound: v & 8 != 0 ? alice.description : nil,
            terms: ["side": v & 16 != 0 ? "foil" : "stock", "limit": 5000, "memo": "fuzz"], used: used,
            created: Fixed.date)
        let existing: TallyRecord? =
            switch (v >> 5) & 3 {
            case 1: record(.stock, state: .heldOffer, sign: signatures(.stock, .heldOffer))
            case 2: record(.stock, state: .open, sign: bothSigned)
            default: nil
            }
        return TallyDialog.TicketSnapshot(ticket: ticket, existing: existing, locked: v & 128 != 0, inviterCert: Fixed.bobCert.json)
    }

    static let states: [TallyState?] = [nil, .heldOffer, .peerOffer, .open, .void, .draft, .closing]

    /// What `side`'s site holds about a tally message, from one selector byte.
    static func tallySnapshot(_ side: TallySide, _ v: UInt8, waiting: Bool) -> TallyDialog.Snapshot {
        let state = states[Int(v & 7) % states.count]
        let existing = state.map { record(side, state: $0, sign: signatures(side, $0)) }
        let request =
            v & 8 != 0
            ? TallyRecord(
                uuid: requestUUID, cuid: (side == .stock ? bob : alice).cuid, side: .foil, partner: side == .stock ? alice : bob,
                state: .draft, revision: 1, core: nil, sign: nil, token: token, balance: 0, created: Fixed.date, updated: Fixed.date)
            : nil
        return TallyDialog.Snapshot(
            existing: existing, locked: v & 16 != 0, request: request, requestAccepts: v & 32 != 0,
            userCert: v & 64 != 0 ? Fixed.aliceCert.json : cert(side), issued: v & 128 != 0,
            waiting: waiting, acceptKey: v & 32 != 0 ? key(side) : nil)
    }

    /// Real tally messages: the ticket, and offer, open, void of the fixed tally both ways.
    static var tallyMessages: [(String, JSONValue)] {
        func m(_ action: TallyMessage.Action, to: TallySide, _ sign: TallySignatures) -> JSONValue {
            TallyMessage.make(action, core: Fixed.tallyCore, sign: sign, to: to == .stock ? bob : alice, from: to == .stock ? alice : bob).json
        }
        return [
            ("ticket", Fixed.ticketMessage),
            ("offer-to-alice", m(.offer, to: .foil, signatures(.stock, .heldOffer))),
            ("offer-to-bob", m(.offer, to: .stock, signatures(.foil, .heldOffer))),
            (
                "offer-free-to-alice",
                TallyMessage.make(
                    .offer, core: freeCore,
                    sign: TallySignatures(
                        stock: freeCore.sign(with: Fixed.bobKey), foil: nil, hash: freeCore.hash), to: alice, from: bob
                ).json
            ),
            ("open-to-bob", m(.open, to: .stock, bothSigned)),
            ("open-to-alice", m(.open, to: .foil, bothSigned)),
            ("void-to-bob", m(.void, to: .stock, signatures(.stock, .heldOffer))),
            ("draft-to-bob", m(.draft, to: .stock, bothSigned))
        ]
    }

    // MARK: Chain dialog

    /// A chain of five chits on the fixed tally, alternating alice's and bob's,
    /// each with its entry (index, prior, hash), one pending chit of each, and
    /// a chit of bob's that no chain of these can take (past alice's limit).
    struct FixedChain {
        var entries: [ChainEntry] = []
        var pendingStock: Chit
        var pendingFoil: Chit
        var overLimit: Chit
        var balance: Int64 = 0
    }

    static let chain: FixedChain = {
        func chit(_ n: Int, _ by: TallySide, _ units: Int64) -> Chit {
            let uuid = "0a1b2c3d-4e5f-4a6b-8c7d-8e9f0a1b2c" + String(repeating: String(n), count: 2)
            guard
                let c = try? Chit(
                    tally: Fixed.tallyUUID, by: by, uuid: uuid, date: Fixed.date, units: units, memo: n == 1 ? "first" : nil,
                    ref: n == 2 ? ["invoice": "1c1b2c3d-4e5f-4a6b-8c7d-8e9f0a1b2c3d"] : nil, key: key(by))
            else { fatalError("fixed chit \(n) is invalid") }
            return c
        }
        var c = FixedChain(pendingStock: chit(8, .stock, 700), pendingFoil: chit(9, .foil, 40_000), overLimit: chit(7, .stock, 90_000))
        var prior = Fixed.tallyCore.hash
        for (n, (by, units)) in [(TallySide.foil, Int64(30_000)), (.stock, 10_000), (.foil, 2_500), (.stock, 500), (.foil, 1)].enumerated() {
            let x = chit(n + 1, by, units)
            let index = Int64(n + 1)
            let hash = Chain.entryHash(index: index, prior: prior, chitHash: x.hash)
            c.entries.append(ChainEntry(index: index, prior: prior, hash: hash, chit: x))
            c.balance += x.balanceEffect
            prior = hash
        }
        return c
    }()

    /// A site holding the fixed tally on `side` with the first `length`
    /// entries of `chain` (and some pending chits), as ChipStore holds it: the
    /// chain snapshot for a message is loaded from it as the store loads it.
    struct ChainSite {
        var tally: TallyRecord
        var chits: [String: ChainDialog.StoredChit] = [:]
        var hashes: [Int64: String] = [:]
        var locked: Bool
        var asked: [String: ChainDialog.AskedInvoice] = [:]
        var paidBy: [String: String] = [:]

        /// ChipStore.chainSnapshot for `m`.
        func snapshot(_ m: ChitMessage, peer: AgentID) -> ChainDialog.Snapshot {
            guard m.tally == tally.uuid, peer == Dialogs.peer(tally.side) else { return ChainDialog.Snapshot(tally: nil) }
            let (uuids, indices) = ChainDialog.wants(m)
            var s = ChainDialog.Snapshot(tally: tally)
            for u in uuids { s.chits[u] = chits[u] }
            for i in indices where i > 0 && i <= tally.chainLength { s.hashes[i] = hashes[i] }
            switch m.action {
            case .tran: s.locked = locked; s.asked = asked
            case .upd: s.asked = asked
            case .ack, .nak: s.paidBy = paidBy.filter { uuids.contains($0.key) }
            case .invoice, .refuse: break
            }
            return s
        }
    }

    /// `side`'s site from one selector byte: chain length 0…5, chits
    /// pending, refused or unknown, a lock, open invoices.
    static func chainSite(_ side: TallySide, _ v: UInt8) -> ChainSite {
        let length = Int(v & 7) % 6
        var t = record(side, state: .open, sign: bothSigned)
        var balance: Int64 = 0
        var site = ChainSite(tally: t, locked: v & 8 != 0)
        for e in chain.entries.prefix(length) {
            site.chits[e.chit.uuid] = ChainDialog.StoredChit(hash: e.chit.hash, tally: t.uuid, state: .chained, local: e.chit.by == side, note: nil)
            site.hashes[e.index] = e.hash
            balance += e.chit.balanceEffect
        }
        t.chainLength = Int64(length)
        t.chainHead = chain.entries.prefix(length).last?.hash
        t.balance = balance
        site.tally = t
        // Beyond our chain: the stock's own chits are pending there (not yet ordered).
        if side == .stock, v & 16 != 0 {
            for e in chain.entries.dropFirst(length) where e.chit.by == .stock {
                site.chits[e.chit.uuid] = ChainDialog.StoredChit(hash: e.chit.hash, tally: t.uuid, state: .pending, local: true, note: nil)
            }
            site.chits[chain.pendingStock.uuid] = ChainDialog.StoredChit(
                hash: chain.pendingStock.hash, tally: t.uuid, state: .pending,
                local: true, note: nil)
            site.paidBy[chain.pendingStock.uuid] = "2c1b2c3d-4e5f-4a6b-8c7d-8e9f0a1b2c3d"
        }
        if v & 32 != 0 {
            site.chits[chain.pendingStock.uuid] = ChainDialog.StoredChit(
                hash: chain.pendingStock.hash, tally: t.uuid, state: .refused,
                local: side == .stock, note: "refused earlier")
        }
        if v & 64 != 0 {
            site.asked["1c1b2c3d-4e5f-4a6b-8c7d-8e9f0a1b2c3d"] = ChainDialog.AskedInvoice(units: 10_000, by: .stock)
            site.asked["3c1b2c3d-4e5f-4a6b-8c7d-8e9f0a1b2c3d"] = ChainDialog.AskedInvoice(units: 1, by: side.other)
        }
        return site
    }

    /// Real chain messages on the fixed tally.
    static var chainMessages: [(String, JSONValue)] {
        let stock = record(.stock, state: .open, sign: bothSigned), foil = record(.foil, state: .open, sign: bothSigned)
        let stockChits = chain.entries.compactMap(\.chit.tran).filter { $0.by == .stock } + [chain.pendingStock, chain.overLimit]
        var out: [(String, JSONValue)] = []
        if let (m, _) = ChainDialog.transfer(stock, chits: stockChits) { out.append(("tran", m.json)) }
        if let m = ChainDialog.update(foil, entries: chain.entries) { out.append(("upd", m.json)) }
        if let m = ChainDialog.update(foil, entries: Array(chain.entries.suffix(2))) { out.append(("upd-tail", m.json)) }
        let head = chain.entries[2]
        out.append(("ack", SiteMessage.chit(.on(stock, .ack, .answer(tally: stock.uuid, index: head.index, hash: head.hash, refused: nil))).json))
        out.append(
            (
                "nak-refused",
                SiteMessage.chit(
                    .on(
                        foil, .nak,
                        .answer(
                            tally: foil.uuid, index: nil, hash: nil, refused: [ChitRefusal(uuid: chain.pendingStock.uuid, reason: "over the limit")]))
                ).json
            ))
        return out
    }
}
