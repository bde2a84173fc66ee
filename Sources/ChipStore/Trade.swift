import ChipModel
import ChipProtocol
import Foundation
import GRDB

// A tally half's trading variables (protocol 9.2): kept on our tally's row
// (`trade_target`, `trade_bound`, `trade_reward`, `trade_clutch`), set by the
// admin (`chipsite tally trade`), never sent to the partner.

extension SiteStore {
    // MARK: Trading variables

    /// Our half's trading variables for `tally`, for the lift engine's
    /// snapshots: read from its row inside the caller's transaction and
    /// checked against our half's limit in the tally terms. A NULL bound is
    /// that limit; a stored bound or target above it (the terms of an open
    /// tally do not change, so only a file edited by hand has one) counts as
    /// the limit, so no lift ever passes it. A tally without a core (a
    /// request) has the defaults of a zero limit.
    public static func tradingVariables(_ db: Database, tally: TallyRecord) throws -> TradingVariables {
        guard let row = try Row.fetchOne(cached: db, sql: "SELECT * FROM tallies WHERE uuid = ?", arguments: [tally.uuid]) else {
            throw StoreError.notFound("no tally \(tally.uuid)")
        }
        return try trade(row, limit: tally.core?.limit(tally.side) ?? 0)
    }

    /// The trading variables of a tally row whose half has `limit`.
    static func trade(_ row: Row, limit: Int64) throws -> TradingVariables {
        let limit = max(0, limit)
        let storedBound: Int64? = row["trade_bound"]
        let bound = min(storedBound ?? limit, limit)
        let target = min((row["trade_target"] as Int64?) ?? 0, bound)
        let reward = (row["trade_reward"] as Int64?) ?? 0, clutch = (row["trade_clutch"] as Int64?) ?? 0
        do {
            return try TradingVariables(target: target, bound: bound, reward: reward, clutch: clutch, limit: limit)
        } catch {
            let uuid: String = row["uuid"] ?? "?"
            throw StoreError.damaged("trading variables of tally \(uuid): \(Self.tradeReason(error))")
        }
    }

    /// Changes our half's trading variables on an open tally of ours; a
    /// field left nil keeps its value. `bound: .some(nil)` makes the bound
    /// follow the half's limit again (the default). Amounts are milliCHIPs,
    /// rates parts per million; the result is checked as 9.2 says against
    /// our half's limit (what our user grants in the tally terms) before
    /// anything is written. Returns the tally as stored.
    @discardableResult
    public func setTrade(
        tally id: String, target: Int64? = nil, bound: Int64?? = nil, reward: Int64? = nil, clutch: Int64? = nil, date: String? = nil
    )
        throws -> TallyRecord
    {
        let t = try tally(id)
        let now = Self.now()
        return try guardedWrite { db in
            guard let row = try Row.fetchOne(cached: db, sql: "SELECT * FROM tallies WHERE uuid = ?", arguments: [t.uuid]) else {
                throw StoreError.notFound("no tally \(t.uuid)")
            }
            let current = try Self.tallyRecord(row)
            guard current.state == .open, let core = current.core else {
                throw ModelError.invalid("tally \(t.uuid) is \(current.state.rawValue): trading variables are set on open tallies only")
            }
            let limit = max(0, core.limit(current.side))
            let storedBound: Int64? = row["trade_bound"]
            let newBound: Int64? = bound ?? storedBound
            let newTarget = target ?? ((row["trade_target"] as Int64?) ?? 0)
            let newReward = reward ?? ((row["trade_reward"] as Int64?) ?? 0)
            let newClutch = clutch ?? ((row["trade_clutch"] as Int64?) ?? 0)
            let whose = "\(current.cuid) grants on this tally (\(Amount.format(limit)) CHIPs)"
            if let b = newBound, b > limit { throw StoreError.overLimit("the bound (\(Amount.format(b)) CHIPs) must be at most the credit \(whose)") }
            if newTarget > (newBound ?? limit) {
                throw ModelError.invalid(
                    "the target (\(Amount.format(newTarget)) CHIPs) must be at most the bound (\(Amount.format(newBound ?? limit)) CHIPs)")
            }
            do {
                _ = try TradingVariables(target: newTarget, bound: newBound ?? limit, reward: newReward, clutch: newClutch, limit: limit)
            } catch {
                throw ModelError.invalid(Self.tradeReason(error))
            }
            // A device's signed variables must be newer than the last ones it set (10.5).
            let storedDate: String? = row["trade_date"]
            if let date, let stored = storedDate.flatMap(Timestamp.parse), let asked = Timestamp.parse(date), asked <= stored {
                throw ModelError.invalid("trading variables as new as these (\(storedDate ?? "")) are already set")
            }
            try db.execute(
                cached: """
                    UPDATE tallies SET trade_target = ?, trade_bound = ?, trade_reward = ?, trade_clutch = ?, trade_date = ?, updated = ?
                    WHERE uuid = ? AND state = ?
                    """, arguments: [newTarget, newBound, newReward, newClutch, date ?? storedDate, now, t.uuid, TallyState.open.rawValue])
            guard db.changesCount == 1, let updated = try Self.fetchTally(db, uuid: t.uuid) else {
                throw ModelError.invalid("tally \(t.uuid) changed meanwhile; look again")
            }
            return updated
        }
    }

    /// A `LiftError` from `TradingVariables` as one line for a person.
    static func tradeReason(_ error: any Error) -> String {
        guard let lift = error as? LiftError else { return "\(error)" }
        switch lift {
        case .outOfRange(let why), .malformed(let why), .invalid(let why): return why
        }
    }
}
