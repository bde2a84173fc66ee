import ChipModel
import ChipProtocol

/// Fuzz target `chain_dialog`: the chain consensus (ChainDialog) on real
/// snapshots. Byte 0: bit 0 the site that receives (0 the stock's, site B;
/// 1 the foil's, site A), the other bits choose what it holds
/// (`Dialogs.chainSite`: chain length 0-5 of a real chain, pending and
/// refused chits, a lock, open invoices). The rest is the JSON message,
/// parsed with `SiteMessage(json:)`; the snapshot is loaded for it as
/// ChipStore loads it. Properties: a decision never both ignores and
/// replies; chained entries are consecutive from our chain length, each
/// hash is `Chain.entryHash(index, prior, chit hash)` linked to the one
/// before; the new head, length and balance are those entries' and the
/// balance stays within the tally's limits; nothing is chained or stored
/// twice, and no chained chit is refused; replies read back from their JSON.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size >= 1 else { return 0 }
    let input = UnsafeBufferPointer(start: data, count: size)
    let side: TallySide = input[0] & 1 == 0 ? .stock : .foil
    guard let json = try? JSONValue(parsing: UnsafeBufferPointer(rebasing: input[1...])),
        case .chit(let m)? = try? SiteMessage(json: json)
    else { return 0 }
    let site = Dialogs.chainSite(side, input[0] >> 1)
    let s = site.snapshot(m, peer: Dialogs.peer(side))
    let d = ChainDialog.decide(m, snapshot: s)
    check(d, m, s)
    return 0
}

private func check(_ d: Decision, _ m: ChitMessage, _ s: ChainDialog.Snapshot) {
    if d.ignored != nil, !d.replies.isEmpty { violated("a decision both ignores and replies") }
    for reply in d.replies {
        guard (try? SiteMessage(json: reply.json)) == reply else { violated("a reply does not read back from its JSON") }
    }
    guard let t = s.tally, let core = t.core else {
        if !d.effects.isEmpty { violated("effects without a tally") }
        return
    }
    // The chits the message carries, by uuid (what a chained entry must be):
    // of several with one uuid, the first that is signed (a later one is a repeat).
    // A lift chit (only in upd) counts when it is a good one of this tally (9.5).
    var carried: [String: ChainChit] = [:]
    let chits: [ChainChit]
    switch m.body {
    case .tran(_, let list): chits = list.map(ChainChit.tran)
    case .upd(_, let entries, _): chits = entries.map(\.chit)
    default: chits = []
    }
    func valid(_ c: ChainChit) -> Bool {
        switch c {
        case .tran(let chit): chit.verify(in: core)
        case .lift(let lift): lift.problem(in: core) == nil
        }
    }
    for c in chits where carried[c.uuid] == nil && valid(c) { carried[c.uuid] = c }
    var overLimit = false
    var length = t.chainLength, head = t.chainHead ?? core.hash, balance = t.balance
    var inserted = Set<String>(), chained = Set<String>(), refused = Set<String>()
    for effect in d.effects {
        switch effect {
        case .insertChit(let chit, _):
            if s.chits[chit.uuid] != nil || !inserted.insert(chit.uuid).inserted { violated("a chit stored twice") }
            if !chit.verify(in: core) { violated("a chit stored whose signature does not verify") }
        case .chainChit(let uuid, let index, let prior, let hash):
            guard let chit = carried[uuid], s.chits[uuid].map({ $0.state == .pending && $0.hash == chit.hash }) ?? true else {
                violated("a chit chained that the message does not carry or that is not pending")
            }
            guard index == length + 1, prior == head, hash == Chain.entryHash(index: index, prior: prior, chitHash: chit.hash) else {
                violated("chain entry \(index) is not the next link after \(length)")
            }
            guard chained.insert(uuid).inserted, !refused.contains(uuid) else { violated("a chit chained twice or chained and refused") }
            length = index
            head = hash
            balance += chit.balanceEffect
            // A good lift chit is chained with no limit check (9.5); a payment never passes a limit.
            if !Chit.withinLimits(balance, stockLimit: core.limit(.stock), foilLimit: core.limit(.foil)) {
                if chit.tran != nil { violated("entry \(index) takes the balance past a limit") }
                overLimit = true
            }
        case .refuseChit(let uuid, _):
            if s.chits[uuid]?.state == .chained || chained.contains(uuid) { violated("a chained chit refused") }
            refused.insert(uuid)
        case .setChainHead(let tally, let l, let h, let b):
            guard tally == t.uuid, l == length, h == head, b == balance else { violated("the chain head is not the last entry's") }
            if !overLimit, !Chit.withinLimits(b, stockLimit: core.limit(.stock), foilLimit: core.limit(.foil)) {
                violated("a balance past a limit")
            }
        case .setAcked(let tally, let index):
            guard tally == t.uuid, t.side == .foil, index >= 0, index <= t.chainLength else { violated("acked past our chain") }
        case .settleInvoice(let uuid, let chit):
            guard s.asked[uuid] != nil, chained.contains(chit) else { violated("an invoice settled by no chit chained now") }
        case .insertLiftChit(let chit, _, _):
            guard case .lift? = carried[chit.uuid], s.chits[chit.uuid] == nil, inserted.insert(chit.uuid).inserted else {
                violated("a lift chit stored that is not a good one carried, or twice")
            }
        case .applyLiftDecision(let decision):
            guard chits.contains(where: { if case .lift(let l) = $0 { l.decision == decision } else { false } }) else {
                violated("a decision applied that no entry carries")
            }
        case .dropOutbox, .reopenInvoice: break
        default: violated("an effect the chain dialog never makes: \(effect)")
        }
    }
    if length > t.chainLength, !d.effects.contains(where: { if case .setChainHead = $0 { true } else { false } }) {
        violated("entries chained without a new chain head")
    }
}
