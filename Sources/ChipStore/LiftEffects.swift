import ChipModel
import ChipProtocol
import Foundation
import GRDB

// The lift effects of section 9, one statement (or one small group) each.
// Chits and decisions: LiftChain.swift.

extension SiteStore {
    static func applyLift(_ effect: Effect, _ db: Database, now: String) throws {
        switch effect {
        case .insertLiftChit(let chit, let header, let local):
            try insertLiftChit(db, chit, header: header, local: local, now: now)
        case .applyLiftDecision(let d):
            try applyLiftDecision(db, d, now: now)
        case .storeDecisionProof(let d):
            try storeDecisionProof(db, d, now: now)
        case .storeRefereeDecision, .refereeEquivocated, .insertLiftRecord, .setLiftState, .setPromiseAnswer, .enqueueToReferee:
            throw StoreError.damaged("lift records are not stored yet")
        default:
            throw StoreError.damaged("not a lift effect")
        }
    }
}
