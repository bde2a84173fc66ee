import ChipModel
import ChipProtocol

/// Fuzz target `lift_message`: `lift` messages (9.6, 9.7) through
/// `LiftMessage(json:)` and the decider site B runs for each action, on real
/// snapshots (`Lifts`: two open foreign tallies, three real headers, real
/// chits and decisions; R's key and clock fixed). Byte 0 chooses what the
/// site holds (the snapshot builders in Fuzz/Support/LiftFixtures.swift);
/// the rest is the JSON message. Properties: a parsed message's JSON parses
/// to an equal message with the same JSON; the header, chit, decision and
/// seal objects inside read back from their JSON; a decision never both
/// ignores and replies; replies and queued messages read back from their
/// JSON; what is stored or applied verifies (chits with their tally, R's
/// decisions with the header, `good` only before the deadline).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size >= 1 else { return 0 }
    let input = UnsafeBufferPointer(start: data, count: size)
    let v = input[0]
    guard let json = try? JSONValue(parsing: UnsafeBufferPointer(rebasing: input[1...])) else { return 0 }
    parts(json["object"])
    guard let m = try? LiftMessage(json: json) else { return 0 }
    guard let again = try? LiftMessage(json: m.json), again == m, again.json == m.json else {
        violated("a lift message does not read back from its JSON")
    }
    let d: Decision
    switch m.action {
    case .promise:
        let s = Lifts.promiseSnapshot(m, v)
        d = PromiseDialog.decide(m, snapshot: s, now: Lifts.now, key: Fixed.siteB.key)
        checkPromise(d, m, s)
    case .refuse, .arrive:
        d = LiftCall.decide(m, snapshot: Lifts.callSnapshot(m, v), now: Lifts.now)
    case .ack:
        d = LiftAck.decide(m, snapshot: Lifts.ackSnapshot(m, v))
    case .good, .void:
        let s = Lifts.decisionSnapshot(m, v)
        d = DecisionApply.decide(m, snapshot: s)
        for case .applyLiftDecision(let x) in d.effects {
            guard let h = s.header, x.problem(for: h) == nil else { violated("a decision applied that does not verify") }
        }
    case .status:
        d = DecisionApply.status(m, held: Lifts.held(m.lift, v))
        if d.replies.count != 1 { violated("a status not answered once") }
    case .commit, .abort, .query:
        let now = Lifts.refereeNow(v)
        d = Referee.decide(
            m, snapshot: Referee.Snapshot(site: Lifts.referee, stored: v & 4 != 0 ? Lifts.held(m.lift, v >> 3).first : nil), now: now,
            key: Lifts.siteR.key)
        checkReferee(d, m, now: now)
    case .pending:
        return 0
    }
    check(d)
    return 0
}

/// The sub-objects a message may hold, each read alone and back from its JSON.
private func parts(_ object: JSONValue?) {
    guard let o = object?.objectValue else { return }
    if let l = o["lift"], let h = try? LiftHeader(json: l) {
        guard (try? LiftHeader(json: h.json)) == h else { violated("a header does not read back from its JSON") }
    }
    if let c = o["chit"], let chit = try? LiftChit(json: c) {
        guard (try? LiftChit(json: chit.json)) == chit else { violated("a lift chit does not read back from its JSON") }
    }
    var signed = o
    signed["hop"] = nil
    if let d = try? SignedDecision(json: .object(signed)) {
        guard (try? SignedDecision(json: d.json)) == d else { violated("a decision does not read back from its JSON") }
    }
    for candidate in [object, o["seal"]] {
        if let c = candidate, let s = try? SealContents(json: c) {
            guard (try? SealContents(json: s.json)) == s else { violated("seal contents do not read back from their JSON") }
        }
    }
}

private func check(_ d: Decision) {
    if d.ignored != nil, !d.replies.isEmpty, !isInvalidPromise(d) { violated("a decision both ignores and replies") }
    var queued = d.replies
    for effect in d.effects {
        switch effect {
        case .enqueue(_, _, let message, _), .enqueueToReferee(_, _, let message): queued.append(message)
        default: break
        }
    }
    for message in queued {
        guard (try? SiteMessage(json: message.json)) == message else { violated("a message does not read back from its JSON") }
    }
}

/// A promise that fails the stateless checks is refused and nothing is stored (9.6 step 2).
private func isInvalidPromise(_ d: Decision) -> Bool {
    d.effects.isEmpty && d.replies.allSatisfy { if case .lift(let m) = $0, case .refuse = m.body { true } else { false } }
}

private func checkPromise(_ d: Decision, _ m: LiftMessage, _ s: PromiseDialog.Snapshot) {
    for effect in d.effects {
        guard case .insertLiftChit(let chit, let header, let local) = effect else { continue }
        guard case .promise(let h, _, _) = m.body, header == h, chit.mismatch(h) == nil else {
            violated("a lift chit stored that is not the promise's lift's")
        }
        if local {
            let core = chit.tally == Lifts.tallyBC ? Lifts.coreBC : chit.tally == Fixed.tallyUUID ? Fixed.tallyCore : nil
            if chit.tally != Lifts.tallyBD, core.map({ !chit.verify(in: $0) }) ?? true { violated("our lift chit does not verify") }
        } else {
            guard case .promise(_, _, let c) = m.body, c == chit, s.tallies.contains(where: { chit.verify(in: $0.core) }) else {
                violated("a promise's chit stored that does not verify in its tally")
            }
        }
    }
}

private func checkReferee(_ d: Decision, _ m: LiftMessage, now: Int64) {
    let header: LiftHeader, act: LiftAct?
    switch m.body {
    case .call(let a, let h, _): (header, act) = (h, a)
    case .query(let h): (header, act) = (h, nil)
    default:
        if !d.effects.isEmpty { violated("R applied something for a message it does not take") }
        return
    }
    for case .storeRefereeDecision(let x, _) in d.effects {
        if x.problem(for: header) != nil { violated("R stored a decision that does not verify") }
        if x.result == .good, act != .commit || now >= header.deadlineMs { violated("R decided good without a commit before the deadline") }
    }
}
