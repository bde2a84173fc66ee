import ChipModel
import ChipProtocol
import Foundation
import GRDB

// The lift effects of section 9, one statement (or one small group) each.
// Chits and decisions: LiftChain.swift; records: LiftDialogs.swift.

extension SiteStore {
    static func applyLift(_ effect: Effect, _ db: Database, now: String) throws {
        switch effect {
        case .insertLiftChit(let chit, let header, let local):
            try insertLiftChit(db, chit, header: header, local: local, now: now)
        case .applyLiftDecision(let d):
            try applyLiftDecision(db, d, now: now)
        case .storeDecisionProof(let d):
            try storeDecisionProof(db, d, now: now)
        case .storeRefereeDecision(let d, let deadline):
            // Insert only: the snapshot read in this transaction had none, so
            // a conflict means the file changed under us (and rolls it back).
            try db.execute(
                cached: "INSERT INTO referee_decisions (lift, result, decision, deadline, created) VALUES (?, ?, ?, ?, ?)",
                arguments: [d.lift, d.result.rawValue, d.json.canonicalString, deadline, now])
        case .setDecisionPassed(let lift):
            try db.execute(cached: "UPDATE lift_decisions SET passed = 1 WHERE lift = ? AND applied = 1", arguments: [lift])
        case .refereeEquivocated(let referee, let lift):
            try db.execute(
                cached: "INSERT OR IGNORE INTO referees_dropped (agent, lift, created) VALUES (?, ?, ?)",
                arguments: [referee.description, lift, now])
        case .insertLiftRecord(let r):
            try insertLiftRecord(db, r, now: now)
        case .setLiftState(let lift, let state, let call):
            try db.execute(
                cached: "UPDATE lifts SET state = ?, call = coalesce(?, call), updated = ? WHERE lift = ?",
                arguments: [state.rawValue, call?.rawValue, now, lift])
        case .setPromiseAnswer(let lift, _, let answer):
            try db.execute(
                cached: "UPDATE lifts SET promise_answer = ?, updated = ? WHERE lift = ? AND promise_answer IS NULL",
                arguments: [answerText(answer), now, lift])
        case .enqueueToReferee(let referee, let topic, let message):
            try db.execute(
                cached: """
                    INSERT INTO outbox (agent, host, port, first_contact, topic, message, created) VALUES (?, ?, ?, 0, ?, ?, ?)
                    """,
                arguments: [
                    referee.agent.description, referee.address.host, referee.address.port, topic, message.json.canonicalString, now
                ])
        default:
            throw StoreError.damaged("not a lift effect")
        }
    }
}
