import ChipModel
import ChipProtocol
import Foundation
import GRDB

// Lift chits in the site file and in the chain (9.5, 9.7): stored `pend`
// and reserved, set good or void by a decision, chained by the foil's side
// with no limit check.

/// Why a stored chain row does not read back as the chit it holds.
struct ChainRowProblem: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

extension SiteStore {
    /// A lift chit, stored `pend` with its header (kept once per H). A repeat
    /// of a chit uuid the site holds changes nothing.
    static func insertLiftChit(_ db: Database, _ chit: LiftChit, header: LiftHeader, local: Bool, now: String) throws {
        guard chit.lift == header.hash else { throw StoreError.damaged("lift chit \(chit.uuid) is not of header \(header.hash)") }
        // ON CONFLICT … DO NOTHING rather than INSERT OR IGNORE: only the key
        // may make it a repeat; a row that breaks a CHECK still fails.
        try db.execute(
            cached: """
                INSERT INTO lift_headers (lift, header, kind, units, deadline, referee, created) VALUES (?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT (lift) DO NOTHING
                """,
            arguments: [
                header.hash, header.json.canonicalString, header.kind.rawValue, header.units, header.deadline,
                header.referee.agent.description, now
            ])
        try db.execute(
            cached: """
                INSERT INTO chits (uuid, tally, by, type, units, core, sign, hash, state, local, created, lift)
                VALUES (?, ?, ?, 'lift', ?, ?, ?, ?, 'pend', ?, ?, ?)
                ON CONFLICT (uuid) DO NOTHING
                """,
            arguments: [
                chit.uuid, chit.tally, chit.by.rawValue, chit.units, chit.core.canonicalString, chit.sign, chit.hash, local, now,
                chit.lift
            ])
    }

    /// A valid decision applied to the site's record of H and to every chit
    /// whose `lift` is H: void ones kept as evidence, good ones chained on
    /// the tallies where this site is the foil (the stock's wait for `upd`).
    /// A chained chit never changes. After an applied `void`, a `good` is the
    /// upgrade of 9.7 (the void stays as proof); a `void` after an applied
    /// `good` is only kept as proof (a good is never undone).
    static func applyLiftDecision(_ db: Database, _ d: SignedDecision, now: String) throws {
        let other: LiftResult = d.result == .good ? .void : .good
        let otherApplied =
            try Bool.fetchOne(
                cached: db, sql: "SELECT applied FROM lift_decisions WHERE lift = ? AND result = ?", arguments: [d.lift, other.rawValue]) ?? false
        if d.result == .void, otherApplied {
            try storeDecisionProof(db, d, now: now)
            return
        }
        if otherApplied {
            try db.execute(
                cached: "UPDATE lift_decisions SET applied = 0 WHERE lift = ? AND result = ?", arguments: [d.lift, other.rawValue])
        }
        // A repeat keeps the bytes first stored (9.7: a different date alone is a repeat).
        try db.execute(
            cached: """
                INSERT INTO lift_decisions (lift, result, decision, applied, created) VALUES (?, ?, ?, 1, ?)
                ON CONFLICT (lift, result) DO UPDATE SET applied = 1
                """, arguments: [d.lift, d.result.rawValue, d.json.canonicalString, now])
        // Whether this changes the lift's result here (a repeat does not): then
        // each of our users with a tally in it hears of it (10.5).
        let before = try String.fetchOne(cached: db, sql: "SELECT state FROM lifts WHERE lift = ?", arguments: [d.lift])
        let unsettled =
            try Bool.fetchOne(
                cached: db, sql: "SELECT 1 FROM chits WHERE lift = ? AND state IN ('pend', 'good', 'void') AND state <> ? LIMIT 1",
                arguments: [d.lift, d.result.rawValue]) ?? false
        if before.map({ $0 != d.result.rawValue }) ?? unsettled {
            try appendLiftUserEvents(db, lift: d.lift, result: d.result, now: now)
        }
        try db.execute(
            cached: "UPDATE lifts SET state = ?, origin_secret = NULL, updated = ? WHERE lift = ?",
            arguments: [d.result.rawValue, now, d.lift])
        switch d.result {
        case .void:
            try db.execute(cached: "UPDATE chits SET state = 'void' WHERE lift = ? AND state IN ('pend', 'good')", arguments: [d.lift])
        case .good:
            // The stock's side of a tally waits for the foil's upd (9.5).
            try db.execute(
                cached: """
                    UPDATE chits SET state = 'good' WHERE lift = ? AND state IN ('pend', 'void')
                    AND tally IN (SELECT uuid FROM tallies WHERE side = 'stock')
                    """, arguments: [d.lift])
            // The foil's side chains each as the tally's next entry, with no limit check.
            let rows = try Row.fetchAll(
                cached: db,
                sql: """
                    SELECT c.uuid, c.tally, c.by, c.units, c.hash FROM chits c JOIN tallies t ON t.uuid = c.tally
                    WHERE c.lift = ? AND c.state IN ('pend', 'good', 'void') AND t.side = 'foil' ORDER BY c.tally, c.uuid
                    """, arguments: [d.lift])
            for row in rows {
                let tally: String = row["tally"], uuid: String = row["uuid"], units: Int64 = row["units"]
                guard let by = TallySide(rawValue: row["by"]) else { throw StoreError.damaged("lift chit \(uuid) has no side") }
                try chainLiftChit(db, uuid: uuid, tally: tally, chitHash: row["hash"], effect: by == .foil ? units : -units, now: now)
            }
        }
    }

    /// A `lift` event `{"lift","state","tallies"}` for each of our users with a tally in lift `lift`.
    static func appendLiftUserEvents(_ db: Database, lift: String, result: LiftResult, now: String) throws {
        var byUser: [String: [String]] = [:]
        for row in try Row.fetchAll(
            cached: db,
            sql: "SELECT DISTINCT t.cuid, t.uuid FROM chits c JOIN tallies t ON t.uuid = c.tally WHERE c.lift = ? ORDER BY t.cuid, t.uuid",
            arguments: [lift])
        {
            byUser[row["cuid"], default: []].append(row["uuid"])
        }
        let ms = Timestamp.parse(now) ?? 0
        for (cuid, tallies) in byUser.sorted(by: { $0.key < $1.key }) {
            try appendUserEvent(
                db, cuid: cuid, topic: .lift,
                data: ["lift": .string(lift), "state": .string(result.rawValue), "tallies": .array(tallies.map(JSONValue.string))], now: ms)
        }
    }

    /// Appends a lift chit to its tally's chain (section 8's entry hash): the
    /// foil's side, applying a good decision.
    static func chainLiftChit(_ db: Database, uuid: String, tally: String, chitHash: String, effect: Int64, now: String) throws {
        guard let (length, prior) = try chainHead(db, tally) else { throw StoreError.damaged("tally \(tally) vanished") }
        let index = length + 1
        let entry = Chain.entryHash(index: index, prior: prior, chitHash: chitHash)
        try db.execute(
            cached: "UPDATE chits SET state = 'chained', idx = ?, prior = ?, chain_hash = ? WHERE uuid = ? AND state <> 'chained'",
            arguments: [index, prior, entry, uuid])
        guard db.changesCount == 1 else { throw StoreError.damaged("lift chit \(uuid) could not be chained") }
        try db.execute(
            cached: "UPDATE tallies SET chain_length = ?, chain_head = ?, balance = balance + ?, updated = ? WHERE uuid = ?",
            arguments: [index, entry, effect, now, tally])
    }

    /// The other result's decision for H, kept as proof of an equivocation.
    static func storeDecisionProof(_ db: Database, _ d: SignedDecision, now: String) throws {
        try db.execute(
            cached: """
                INSERT INTO lift_decisions (lift, result, decision, applied, created) VALUES (?, ?, ?, 0, ?)
                ON CONFLICT (lift, result) DO NOTHING
                """, arguments: [d.lift, d.result.rawValue, d.json.canonicalString, now])
    }

    // MARK: Reading the chain

    /// One entry of a stored chain, read back.
    struct ChainRow: Sendable {
        var uuid: String
        var tally: String
        var index: Int64?
        var chainHash: String?
        /// The chit hash stored with the row, and what its `by` and `units`
        /// columns did to the balance.
        var hash: String
        var effect: Int64
        var chit: Result<ChainChit, ChainRowProblem>
    }

    /// The chain entries of `tally` after index `after`, in order (at most `limit`).
    static func chainRows(_ db: Database, tally: String, after: Int64, limit: Int? = nil) throws -> [ChainRow] {
        let sql = chainRowsSQL + " ORDER BY c.idx" + (limit == nil ? "" : " LIMIT ?")
        var args: [any DatabaseValueConvertible] = [tally, after]
        if let limit { args.append(limit) }
        return try Row.fetchAll(cached: db, sql: sql, arguments: StatementArguments(args)).map { row in
            let units: Int64 = row["units"], by: String = row["by"]
            return ChainRow(
                uuid: row["uuid"], tally: row["tally"], index: row["idx"], chainHash: row["chain_hash"], hash: row["hash"],
                effect: by == TallySide.foil.rawValue ? units : -units, chit: chainChit(row))
        }
    }

    /// The chain rows of a tally after an index (arguments: tally, index),
    /// each with, for a lift chit, its header and the good decision applied.
    static let chainRowsSQL = """
        SELECT c.uuid, c.tally, c.by, c.units, c.type, c.core, c.sign, c.hash, c.idx, c.chain_hash,
               h.header AS lift_header, d.decision AS lift_decision
        FROM chits c
        LEFT JOIN lift_headers h ON h.lift = c.lift
        LEFT JOIN lift_decisions d ON d.lift = c.lift AND d.result = 'good' AND d.applied = 1
        WHERE c.tally = ? AND c.state = 'chained' AND c.idx > ?
        """

    /// The chit a chain row holds: a payment, or a lift chit with its header
    /// and decision (as it travels in `upd`). Only reads: whether they belong
    /// together is `GoodLiftChit.problem(in:)`.
    static func chainChit(_ row: Row) -> Result<ChainChit, ChainRowProblem> {
        let coreText: String = row["core"], sign: String = row["sign"], type: String = row["type"]
        guard let core = try? JSONValue(parsing: coreText) else { return .failure(ChainRowProblem("the stored chit is not JSON")) }
        guard type == "lift" else {
            do { return .success(.tran(try Chit(core: core, sign: sign))) } catch { return .failure(ChainRowProblem("the chit: \(error)")) }
        }
        let chit: LiftChit
        do {
            chit = try LiftChit(json: core.with("sign", .string(sign)).with("hash", .string(row["hash"])))
        } catch { return .failure(ChainRowProblem("the lift chit: \(error)")) }
        guard let headerText = row["lift_header"] as String? else { return .failure(ChainRowProblem("no header is stored for its lift")) }
        let header: LiftHeader
        do {
            header = try LiftHeader(json: try JSONValue(parsing: headerText))
        } catch { return .failure(ChainRowProblem("its lift header: \(error)")) }
        guard let decisionText = row["lift_decision"] as String? else {
            return .failure(ChainRowProblem("no good decision is applied for its lift"))
        }
        let decision: SignedDecision
        do {
            decision = try SignedDecision(json: try JSONValue(parsing: decisionText))
        } catch { return .failure(ChainRowProblem("its decision: \(error)")) }
        return .success(.lift(GoodLiftChit(chit: chit, header: header, decision: decision)))
    }
}

extension JSONValue {
    /// This object with `key` set.
    fileprivate func with(_ key: String, _ value: JSONValue) -> JSONValue {
        var o = objectValue ?? [:]
        o[key] = value
        return .object(o)
    }
}
