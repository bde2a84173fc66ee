import ChipModel
import ChipProtocol

/// Fuzz target `tally_dialog`: the tally dialog's deciders (TallyDialog) on
/// real snapshots. Byte 0: bit 0 the site that receives (0 bob's, site B,
/// the stock of the fixed tally; 1 alice's, site A, the foil), bit 1 whether
/// a message about the tally waits in its outbox. Byte 1 chooses the
/// snapshot (`Dialogs.ticketSnapshot`, `Dialogs.tallySnapshot`). The rest is
/// the JSON message, parsed with `SiteMessage(json:)`. Properties: a decision
/// never both ignores and replies; replies and queued messages read back from
/// their own JSON; a new or opened tally is the message's (hash, both
/// signatures when open); a one-time ticket is consumed only when unused.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size >= 2 else { return 0 }
    let input = UnsafeBufferPointer(start: data, count: size)
    let side: TallySide = input[0] & 1 == 0 ? .stock : .foil
    guard let json = try? JSONValue(parsing: UnsafeBufferPointer(rebasing: input[2...])),
        case .tally(let m)? = try? SiteMessage(json: json)
    else { return 0 }
    let decision: Decision
    if m.action == .ticket {
        let s = Dialogs.ticketSnapshot(input[1])
        decision = TallyDialog.decideTicket(m, snapshot: s, now: Dialogs.now, uuid: Dialogs.newUUID, key: Fixed.bobKey)
        for effect in decision.effects {
            if case .consumeTicket = effect, s.ticket?.reuse != false || s.ticket?.used != nil { violated("a used or reusable ticket consumed") }
        }
        if decision.ignored == nil, !decision.effects.isEmpty, s.locked { violated("a ticket redeemed while locked") }
    } else {
        guard case .success(let a) = TallyDialog.address(m, peer: Dialogs.peer(side)) else { return 0 }
        var s = Dialogs.tallySnapshot(a.mySide, input[1], waiting: input[0] & 2 != 0)
        // The store loads the tally with the message's uuid.
        if s.existing?.uuid != a.core.uuid { s.existing = nil }
        decision = TallyDialog.decide(m.action, a, snapshot: s, now: Dialogs.now)
    }
    check(decision)
    return 0
}

private func check(_ d: Decision) {
    if d.ignored != nil, !d.replies.isEmpty { violated("a decision both ignores and replies") }
    var queued = d.replies
    for effect in d.effects {
        switch effect {
        case .enqueue(_, _, let message, _): queued.append(message)
        case .insertTally(let r):
            guard let core = r.core, let sign = r.sign, sign.hash == core.hash, r.uuid == core.uuid else {
                violated("a tally inserted without its own core and hash")
            }
            if r.state == .open, !r.signaturesValid { violated("a tally inserted open without both signatures") }
        case .setTallyState(_, .open, let sign?):
            guard sign.stock != nil, sign.foil != nil else { violated("a tally opened without both signatures") }
        case .setTallyState(_, .open, nil):
            violated("a tally opened without its signatures")
        default: break
        }
    }
    for message in queued {
        guard (try? SiteMessage(json: message.json)) == message else { violated("a message does not read back from its JSON") }
    }
}
