import ChipModel
import ChipProtocol
import Foundation
import GRDB

extension SiteStore {
    static func invoiceRecord(_ row: Row) -> InvoiceRecord? {
        let dir: String = row["direction"], state: String = row["state"]
        guard let d = InvoiceRecord.Direction(rawValue: dir), let s = InvoiceRecord.State(rawValue: state) else { return nil }
        return InvoiceRecord(uuid: row["uuid"], tally: row["tally"], direction: d, units: row["units"], memo: row["memo"],
                             state: s, chit: row["chit"], note: row["note"], created: row["created"])
    }

    /// Invoices, newest first, of one tally or one user or all.
    public func invoices(tally: String? = nil, user: CUID? = nil) throws -> [InvoiceRecord] {
        try guardedRead { db in
            var sql = "SELECT i.* FROM invoices i JOIN tallies t ON t.uuid = i.tally WHERE 1"
            var args: [(any DatabaseValueConvertible)?] = []
            if let tally { sql += " AND i.tally = ?"; args.append(tally) }
            if let user { sql += " AND t.cuid = ?"; args.append(user.value) }
            sql += " ORDER BY i.created DESC"
            return try Row.fetchAll(db, sql: sql, arguments: StatementArguments(args)).compactMap(Self.invoiceRecord)
        }
    }

    /// The invoice whose uuid is `id` or starts with it (4+ characters).
    public func invoice(_ id: String) throws -> InvoiceRecord {
        let lowered = id.lowercased()
        guard lowered.utf8.count >= 4, lowered.utf8.count <= 36,
              lowered.utf8.allSatisfy({ (0x30...0x39).contains($0) || (0x61...0x66).contains($0) || $0 == UInt8(ascii: "-") })
        else { throw ModelError.invalid("an invoice id is a uuid or at least its first 4 characters") }
        let rows = try guardedRead { db in
            try Row.fetchAll(db, sql: "SELECT * FROM invoices WHERE uuid LIKE ? || '%' LIMIT 2", arguments: [lowered]).compactMap(Self.invoiceRecord)
        }
        guard let first = rows.first else { throw ModelError.invalid("no invoice \(lowered)") }
        guard rows.count == 1 else { throw ModelError.invalid("\(lowered) matches more than one invoice; give more of its id") }
        return first
    }

    /// Our user asks the partner for `units` on tally `id`: the invoice is
    /// stored and queued; it goes again on every new channel until answered.
    public func createInvoice(tally id: String, units: Int64, memo: String?, ref: JSONValue?) throws -> InvoiceRecord {
        let t = try tally(id)
        guard t.state == .open else { throw ModelError.invalid("tally \(t.uuid) is \(t.state.rawValue), not open") }
        let uuid = TallyCore.newUUID()
        let now = Self.now()
        var object: [String: JSONValue] = ["tally": .string(t.uuid), "uuid": .string(uuid), "units": .integer(units),
                                           "date": .string(now), "by": .string(t.side.other.rawValue)]
        if let memo { object["memo"] = .string(memo) }
        if let ref { object["ref"] = ref }
        let objectJSON = JSONValue.object(object)
        let message = Self.chitMessage("invoice", t, objectJSON)
        return try guardedWrite { db in
            try Self.checkNotLocked(db, t.cuid)
            try db.execute(sql: """
                INSERT INTO invoices (uuid, tally, direction, units, memo, object, state, created, updated)
                VALUES (?, ?, 'out', ?, ?, ?, 'open', ?, ?)
                """, arguments: [uuid, t.uuid, units, memo, objectJSON.canonicalString, now, now])
            try Self.enqueue(db, to: t.partner, topic: "invoice:" + uuid, message: message)
            guard let row = try Row.fetchOne(db, sql: "SELECT * FROM invoices WHERE uuid = ?", arguments: [uuid]),
                  let record = Self.invoiceRecord(row) else { throw StoreError.damaged("invoice vanished") }
            return record
        }
    }

    /// On `invoice` from the partner: stored once for our user to answer; a
    /// repeat is answered with `refuse` when our user refused it.
    public func receiveInvoice(_ message: JSONValue, from peer: AgentID) throws -> TallyOutcome {
        guard let o = message["object"], let tally = o["tally"]?.stringValue, let uuid = o["uuid"]?.stringValue, TallyCore.isUUID(uuid),
              let units = o["units"]?.integerValue, units > 0, units <= Amount.maxMilli,
              o["memo"].map({ $0.stringValue.map(Chit.memoFits) ?? false }) ?? true,
              (o["ref"]?.canonicalBytes.count ?? 0) <= Chit.maxRefBytes
        else { return .ignored("malformed invoice") }
        let now = Self.now()
        return try guardedWrite { db in
            guard let t = try Self.partnerTally(db, tally, peer: peer) else { return .ignored("invoice about a tally not shared with this peer") }
            guard o["by"]?.stringValue == t.side.rawValue else { return .ignored("invoice asks the wrong side to pay") }
            if let row = try Row.fetchOne(db, sql: "SELECT * FROM invoices WHERE uuid = ?", arguments: [uuid]), let existing = Self.invoiceRecord(row) {
                guard existing.direction == .in, existing.tally == tally else { return .ignored("invoice id clash") }
                if existing.state == .refused { return .applied(replies: [Self.refusal(t, uuid: uuid, reason: existing.note)]) }
                return .ignored("invoice repeated")
            }
            let waiting = try Int.fetchOne(db, sql: "SELECT count(*) FROM invoices WHERE tally = ? AND direction = 'in' AND state = 'open'",
                                           arguments: [tally]) ?? 0
            guard waiting < Self.maxOpenIncomingInvoices else { return .ignored("too many open invoices on this tally") }
            try db.execute(sql: """
                INSERT INTO invoices (uuid, tally, direction, units, memo, object, state, created, updated)
                VALUES (?, ?, 'in', ?, ?, ?, 'open', ?, ?)
                """, arguments: [uuid, tally, units, o["memo"]?.stringValue, o.canonicalString, now, now])
            return .applied(replies: [])
        }
    }

    /// Invoices from a partner waiting for our user's answer, per tally; more
    /// are not taken in (they stay in the partner's outbox) so that a
    /// partner cannot grow our file without bound.
    static let maxOpenIncomingInvoices = 100

    static func refusal(_ t: TallyRecord, uuid: String, reason: String?) -> JSONValue {
        chitMessage("refuse", t, ["tally": .string(t.uuid), "uuid": .string(uuid), "reason": .string(reason ?? "refused")])
    }

    /// Our user pays an invoice the partner sent: a chit whose `ref` names it.
    public func payInvoice(_ id: String, key: (CUID) throws -> SigningKey) throws -> ChitRecord {
        let inv = try invoice(id)
        guard inv.direction == .in, inv.state == .open else {
            throw ModelError.invalid("invoice \(inv.uuid) is \(inv.direction == .out ? "one your user sent" : inv.state.rawValue), not one to pay")
        }
        let object = try guardedRead { db in try String.fetchOne(db, sql: "SELECT object FROM invoices WHERE uuid = ?", arguments: [inv.uuid]) }
        var ref: [String: JSONValue] = ["invoice": .string(inv.uuid)]
        if let text = object, let original = try? JSONValue(parsing: text), let theirs = original["ref"] { ref["ref"] = theirs }
        return try pay(tally: inv.tally, units: inv.units, memo: inv.memo, ref: .object(ref), settling: inv.uuid, key: key)
    }

    /// Our user refuses an invoice the partner sent. The refusal goes out as
    /// the answer to the partner's invoice, on the open channel now and to
    /// every repeat of it.
    public func refuseInvoice(_ id: String, reason: String?) throws -> InvoiceRecord {
        let inv = try invoice(id)
        guard inv.direction == .in, inv.state == .open else { throw ModelError.invalid("invoice \(inv.uuid) is not one waiting for your answer") }
        let now = Self.now()
        return try guardedWrite { db in
            try db.execute(sql: "UPDATE invoices SET state = 'refused', note = ?, updated = ? WHERE uuid = ? AND state = 'open'",
                           arguments: [reason ?? "refused", now, inv.uuid])
            guard db.changesCount == 1 else { throw ModelError.invalid("invoice \(inv.uuid) was answered meanwhile; look again") }
            guard let row = try Row.fetchOne(db, sql: "SELECT * FROM invoices WHERE uuid = ?", arguments: [inv.uuid]),
                  let record = Self.invoiceRecord(row) else { throw StoreError.damaged("invoice vanished") }
            return record
        }
    }

    /// Refusals our users made, as messages per partner (sent on open channels).
    public func invoiceRefusals() throws -> [(agent: AgentID, message: JSONValue, uuid: String)] {
        try guardedRead { db in
            let since = Timestamp.format(millisecondsSince1970: Int64(Date().timeIntervalSince1970 * 1000) - Self.refusalWindow)
            return try Row.fetchAll(db, sql: """
                SELECT uuid, note, tally FROM invoices WHERE direction = 'in' AND state = 'refused' AND updated > ?
                """, arguments: [since]).compactMap { row in
                let uuid: String = row["uuid"], note: String? = row["note"], tally: String = row["tally"]
                guard let t = try Self.fetchTally(db, uuid: tally) else { return nil }
                return (t.partner.agent, Self.refusal(t, uuid: uuid, reason: note), uuid)
            }
        }
    }

    /// How long a refusal is pushed on new channels (ms); a repeated invoice
    /// is answered at any time.
    static let refusalWindow: Int64 = 86_400_000

    /// On `refuse` from the partner: our invoice is refused and leaves the outbox.
    public func receiveRefusal(_ message: JSONValue, from peer: AgentID) throws -> TallyOutcome {
        guard let o = message["object"], let tally = o["tally"]?.stringValue, let uuid = o["uuid"]?.stringValue else { return .ignored("malformed refuse") }
        let reason = o["reason"]?.stringValue.map { String($0.prefix(Chit.maxReason)) } ?? "refused"
        let now = Self.now()
        return try guardedWrite { db in
            guard try Self.partnerTally(db, tally, peer: peer) != nil else { return .ignored("refuse about a tally not shared with this peer") }
            try db.execute(sql: """
                UPDATE invoices SET state = 'refused', note = ?, updated = ? WHERE uuid = ? AND tally = ? AND direction = 'out' AND state = 'open'
                """, arguments: [reason, now, uuid, tally])
            // Only an invoice of ours on this tally leaves the outbox: a refusal
            // naming another tally's invoice cancels nothing.
            guard db.changesCount == 1 else { return .ignored("refuse of no open invoice of ours on this tally") }
            try db.execute(sql: "DELETE FROM outbox WHERE topic = ?", arguments: ["invoice:" + uuid])
            return .applied(replies: [])
        }
    }

    /// Marks our invoices paid by chits in the chain that name them (called
    /// after chain entries are taken in). A chit settles an invoice only if
    /// the side asked to pay signed it and it pays at least the amount asked.
    static func settleInvoices(_ db: Database, tally: String) throws {
        let open = try Row.fetchAll(db, sql: "SELECT uuid, units, object FROM invoices WHERE tally = ? AND direction = 'out' AND state = 'open'",
                                    arguments: [tally])
        guard !open.isEmpty else { return }
        var asked = [String: (units: Int64, by: String)]()
        for row in open {
            let uuid: String = row["uuid"], units: Int64 = row["units"], object: String = row["object"]
            guard let by = (try? JSONValue(parsing: object))?["by"]?.stringValue else { continue }
            asked[uuid] = (units, by)
        }
        let rows = try Row.fetchAll(db, sql: """
            SELECT uuid, by, units, core FROM chits WHERE tally = ? AND state = 'chained' AND core LIKE '%"invoice"%'
            """, arguments: [tally])
        for row in rows {
            let chitUUID: String = row["uuid"], core: String = row["core"], by: String = row["by"], units: Int64 = row["units"]
            guard let invoiceID = (try? JSONValue(parsing: core))?["ref"]?["invoice"]?.stringValue,
                  let invoice = asked[invoiceID], invoice.by == by, units >= invoice.units else { continue }
            try db.execute(sql: """
                UPDATE invoices SET state = 'paid', chit = ?, updated = ? WHERE uuid = ? AND tally = ? AND direction = 'out' AND state = 'open'
                """, arguments: [chitUUID, now(), invoiceID, tally])
            if db.changesCount > 0 { try db.execute(sql: "DELETE FROM outbox WHERE topic = ?", arguments: ["invoice:" + invoiceID]) }
        }
    }
}
