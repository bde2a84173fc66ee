import ChipModel
import ChipProtocol
import Foundation
import GRDB

// The lift settings as typed values, the accept list (9.8), and the lifts
// the site holds as `chipsite lift list|show` shows them. Reads only: the
// records are written by the lift engine.

extension SiteStore {
    // MARK: Lift settings

    /// The `lift.*` settings, each its stored value or its default. A stored
    /// value that fails its key's validator is `badSetting`: no consumer acts on it.
    public func liftSettings() throws -> LiftSettings {
        try guardedRead { db in try Self.liftSettings(db) }
    }

    /// `liftSettings()` inside the caller's transaction.
    public static func liftSettings(_ db: Database) throws -> LiftSettings {
        func value(_ key: ConfigKey) throws -> String {
            let v = try config(db, key) ?? key.defaultValue ?? ""
            do { try key.validate(v) } catch { throw StoreError.badSetting(key: key.name, reason: error.description) }
            return v
        }
        return LiftSettings(
            interval: Int64(try value(.liftInterval)) ?? LiftSettings.defaultInterval,
            refereeOn: try value(.liftReferee) == "on",
            referees: try RefereePolicy(text: try value(.liftReferees)),
            life: Int64(try value(.liftLife)) ?? LiftSettings.defaultLife,
            min: try Amount.parse(try value(.liftMin)))
    }

    /// Whether the site accepts `referee` for a lift (9.8's accept list):
    /// `lift.referees`, where `partners` is this site and every partner
    /// agent of an open tally, and never a referee in `referees_dropped`
    /// (caught equivocating, 9.7). For the deciders' snapshots (`acceptsReferee`).
    public static func acceptsReferee(_ db: Database, _ referee: AgentID) throws -> Bool {
        let policy = try liftSettings(db).referees
        let dropped: Set<AgentID> =
            try Bool.fetchOne(cached: db, sql: "SELECT 1 FROM referees_dropped WHERE agent = ?", arguments: [referee.description]) != nil
            ? [referee] : []
        var partners = Set<AgentID>()
        if policy == .partners,
            try Bool.fetchOne(
                cached: db, sql: "SELECT 1 FROM tallies WHERE partner_agent = ? AND state = ? LIMIT 1",
                arguments: [referee.description, TallyState.open.rawValue]) != nil
        {
            partners.insert(referee)
        }
        return policy.accepts(referee, site: try agent(db), partners: partners, dropped: dropped)
    }

    // MARK: Lifts held

    /// The lifts of which the site holds a record, newest first, then those
    /// it decided as referee without a record of its own (role `referee`,
    /// state its decision's result). `state` keeps only lifts in that state.
    public func lifts(state: String? = nil) throws -> [LiftOverview] {
        try guardedRead { db in
            let tallies = try Self.liftTallies(db, lift: nil)
            var all = try Row.fetchAll(
                cached: db,
                sql: """
                    SELECT l.lift, l.role, l.state, l.created, h.kind, h.units, h.deadline, h.referee
                    FROM lifts l LEFT JOIN lift_headers h ON h.lift = l.lift
                    """
            ).map { row in try Self.recordOverview(row, tallies: tallies[row["lift"] as String] ?? []) }
            all += try Row.fetchAll(
                cached: db,
                sql: """
                    SELECT r.lift, r.result, r.decision, r.deadline, r.created, h.kind, h.units
                    FROM referee_decisions r LEFT JOIN lift_headers h ON h.lift = r.lift
                    WHERE r.lift NOT IN (SELECT lift FROM lifts)
                    """
            ).map { row in try Self.refereeOverview(row, tallies: tallies[row["lift"] as String] ?? []) }
            return
                all
                .filter { state == nil || $0.state == state }
                .sorted { ($0.created, $1.id) > ($1.created, $0.id) }
        }
    }

    /// One lift by H or a prefix of it (at least 4 characters): the site's
    /// record (else its referee decision, else what it holds: header,
    /// chits), with its chits and every decision the site holds for it.
    public func lift(_ id: String) throws -> LiftOverview {
        guard (4...AgentID.textLength).contains(id.utf8.count), id.utf8.allSatisfy(Self.isBase64URL) else {
            throw ModelError.invalid("a lift id is its hash H (43 characters) or at least its first 4 characters")
        }
        return try guardedRead { db in
            let matches = try String.fetchAll(
                cached: db,
                sql: """
                    SELECT lift FROM lifts WHERE substr(lift, 1, ?1) = ?2
                    UNION SELECT lift FROM referee_decisions WHERE substr(lift, 1, ?1) = ?2
                    UNION SELECT lift FROM lift_headers WHERE substr(lift, 1, ?1) = ?2
                    UNION SELECT lift FROM chits WHERE lift IS NOT NULL AND substr(lift, 1, ?1) = ?2
                    LIMIT 2
                    """, arguments: [id.utf8.count, id])
            guard let h = matches.first else { throw StoreError.notFound("no lift \(id) on this site") }
            guard matches.count == 1 else { throw ModelError.invalid("\(id) matches more than one lift; give more of its id") }
            let tallies = try Self.liftTallies(db, lift: h)[h] ?? []
            var o: LiftOverview
            if let row = try Row.fetchOne(
                cached: db,
                sql: """
                    SELECT l.lift, l.role, l.state, l.created, h.kind, h.units, h.deadline, h.referee
                    FROM lifts l LEFT JOIN lift_headers h ON h.lift = l.lift WHERE l.lift = ?
                    """, arguments: [h])
            {
                o = try Self.recordOverview(row, tallies: tallies)
            } else if let row = try Row.fetchOne(
                cached: db,
                sql: """
                    SELECT r.lift, r.result, r.decision, r.deadline, r.created, h.kind, h.units
                    FROM referee_decisions r LEFT JOIN lift_headers h ON h.lift = r.lift WHERE r.lift = ?
                    """, arguments: [h])
            {
                o = try Self.refereeOverview(row, tallies: tallies)
            } else if let row = try Row.fetchOne(
                cached: db, sql: "SELECT lift, kind, units, deadline, referee, created FROM lift_headers WHERE lift = ?", arguments: [h])
            {
                o = LiftOverview(
                    id: h, kind: try Self.liftKind(row), role: nil, state: nil, units: row["units"], deadline: row["deadline"],
                    referee: row["referee"], tallies: tallies, created: row["created"])
            } else {
                let created = try String.fetchOne(cached: db, sql: "SELECT min(created) FROM chits WHERE lift = ?", arguments: [h]) ?? ""
                o = LiftOverview(
                    id: h, kind: nil, role: nil, state: nil, units: nil, deadline: nil, referee: nil, tallies: tallies, created: created)
            }
            o.chits = try Row.fetchAll(
                cached: db, sql: "SELECT uuid, tally, by, units, state FROM chits WHERE lift = ? ORDER BY created, uuid", arguments: [h]
            ).map { row in
                guard let by = TallySide(rawValue: row["by"]) else { throw StoreError.damaged("lift chit side") }
                return LiftChitEntry(uuid: row["uuid"], tally: row["tally"], by: by, units: row["units"], state: row["state"])
            }
            o.decisions =
                try Row.fetchAll(
                    cached: db, sql: "SELECT result, decision, applied, created FROM lift_decisions WHERE lift = ? ORDER BY applied DESC, created",
                    arguments: [h]
                ).map { row in try Self.decisionEntry(row, applied: row["applied"], asReferee: false) }
                + Row.fetchAll(cached: db, sql: "SELECT result, decision, created FROM referee_decisions WHERE lift = ?", arguments: [h]).map {
                    row in try Self.decisionEntry(row, applied: true, asReferee: true)
                }
            return o
        }
    }

    static func isBase64URL(_ c: UInt8) -> Bool {
        (0x30...0x39).contains(c) || (0x41...0x5A).contains(c) || (0x61...0x7A).contains(c) || c == UInt8(ascii: "-")
            || c == UInt8(ascii: "_")
    }

    /// This site's tallies with a chit of each lift (of `lift` alone when given), ordered.
    static func liftTallies(_ db: Database, lift: String?) throws -> [String: [String]] {
        let rows =
            try lift.map { h in
                try Row.fetchAll(cached: db, sql: "SELECT DISTINCT lift, tally FROM chits WHERE lift = ? ORDER BY tally", arguments: [h])
            } ?? Row.fetchAll(cached: db, sql: "SELECT DISTINCT lift, tally FROM chits WHERE lift IS NOT NULL ORDER BY lift, tally")
        var out = [String: [String]]()
        for row in rows { out[row["lift"] as String, default: []].append(row["tally"]) }
        return out
    }

    static func liftKind(_ row: Row) throws -> LiftKind? {
        guard let text = row["kind"] as String? else { return nil }
        guard let kind = LiftKind(rawValue: text) else { throw StoreError.damaged("lift kind \(Printable.clip(text))") }
        return kind
    }

    /// A row of `lifts` joined with its header.
    static func recordOverview(_ row: Row, tallies: [String]) throws -> LiftOverview {
        let role: String = row["role"], state: String = row["state"]
        guard let r = LiftRecord.Role(rawValue: role), LiftRecord.State(rawValue: state) != nil else {
            throw StoreError.damaged("lift record role or state")
        }
        return LiftOverview(
            id: row["lift"], kind: try liftKind(row), role: r, state: state, units: row["units"], deadline: row["deadline"],
            referee: row["referee"], tallies: tallies, created: row["created"])
    }

    /// A row of `referee_decisions` (with the header's kind and units when held): role `referee`.
    static func refereeOverview(_ row: Row, tallies: [String]) throws -> LiftOverview {
        let text: String = row["decision"]
        let referee = (try? JSONValue(parsing: text))?["decision"]?["referee"]?.stringValue
        return LiftOverview(
            id: row["lift"], kind: try liftKind(row), role: .referee, state: row["result"], units: row["units"],
            deadline: row["deadline"], referee: referee, tallies: tallies, created: row["created"])
    }

    static func decisionEntry(_ row: Row, applied: Bool, asReferee: Bool) throws -> LiftDecisionEntry {
        let result: String = row["result"], text: String = row["decision"]
        guard let r = LiftResult(rawValue: result) else { throw StoreError.damaged("lift decision result") }
        let decision: JSONValue
        do { decision = try JSONValue(parsing: text) } catch { throw StoreError.damaged("a stored lift decision is not JSON") }
        return LiftDecisionEntry(result: r, applied: applied, asReferee: asReferee, decision: decision, created: row["created"])
    }
}
