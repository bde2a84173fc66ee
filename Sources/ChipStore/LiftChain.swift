import ChipModel
import ChipProtocol
import Foundation
import GRDB

// Lift chits in the site file and in the chain (9.5, 9.7): stored `pend`
// and reserved, set good or void by a decision, chained by the foil's side
// with no limit check.

extension SiteStore {
    /// A lift chit, stored `pend` with its header (kept once per H).
    static func insertLiftChit(_ db: Database, _ chit: LiftChit, header: LiftHeader, local: Bool, now: String) throws {
        throw StoreError.damaged("lift chits are not stored yet")
    }

    /// A valid decision applied to the site's record of H and to every chit
    /// whose `lift` is H: void ones kept as evidence, good ones chained on
    /// the tallies where this site is the foil (the stock's wait for `upd`).
    static func applyLiftDecision(_ db: Database, _ d: SignedDecision, now: String) throws {
        throw StoreError.damaged("lift decisions are not applied yet")
    }

    /// The other result's decision for H, kept as proof of an equivocation.
    static func storeDecisionProof(_ db: Database, _ d: SignedDecision, now: String) throws {
        throw StoreError.damaged("lift decisions are not stored yet")
    }
}
