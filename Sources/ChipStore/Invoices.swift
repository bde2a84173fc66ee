import ChipModel
import ChipProtocol
import Foundation
import GRDB

extension SiteStore {
    static func invoiceRecord(_ row: Row) -> InvoiceRecord? {
        let dir: String = row["direction"], state: String = row["state"]
        guard let d = InvoiceRecord.Direction(rawValue: dir), let s = InvoiceRecord.State(rawValue: state) else { return nil }
        return InvoiceRecord(
            uuid: row["uuid"], tally: row["tally"], direction: d, units: row["units"], memo: row["memo"],
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
            return try Row.fetchAll(cached: db, sql: sql, arguments: StatementArguments(args)).compactMap(Self.invoiceRecord)
        }
    }

    /// The invoice whose uuid is `id` or starts with it (4+ characters).
    public func invoice(_ id: String) throws -> InvoiceRecord {
        try byUUIDPrefix(id, table: .invoices, record: Self.invoiceRecord)
    }

    /// Our user asks the partner for `units` on tally `id`: the invoice is
    /// stored and queued; it goes again on every new channel until answered.
    public func createInvoice(tally id: String, units: Int64, memo: String?, ref: JSONValue?) throws -> InvoiceRecord {
        let t = try tally(id)
        guard t.state == .open else { throw ModelError.invalid("tally \(t.uuid) is \(t.state.rawValue), not open") }
        let uuid = TallyCore.newUUID()
        let now = Self.now()
        let invoice = InvoiceObject(tally: t.uuid, uuid: uuid, units: units, date: now, by: t.side.other, memo: memo, ref: ref)
        let objectJSON = invoice.json
        let message = InvoiceDialog.invoice(t, invoice).json
        return try guardedWrite { db in
            try Self.checkNotLocked(db, t.cuid)
            try db.execute(
                cached: """
                    INSERT INTO invoices (uuid, tally, direction, units, memo, object, state, created, updated)
                    VALUES (?, ?, 'out', ?, ?, ?, 'open', ?, ?)
                    """, arguments: [uuid, t.uuid, units, memo, objectJSON.canonicalString, now, now])
            try Self.enqueue(db, to: t.partner, topic: OutboxTopic.invoice(uuid), message: message)
            guard let row = try Row.fetchOne(cached: db, sql: "SELECT * FROM invoices WHERE uuid = ?", arguments: [uuid]),
                let record = Self.invoiceRecord(row)
            else { throw StoreError.damaged("invoice vanished") }
            return record
        }
    }

    /// Our user pays an invoice the partner sent: a chit whose `ref` names it.
    public func payInvoice(_ id: String, key: (CUID) throws -> SigningKey) throws -> ChitRecord {
        let inv = try invoice(id)
        guard inv.direction == .in, inv.state == .open else {
            throw ModelError.invalid("invoice \(inv.uuid) is \(inv.direction == .out ? "one your user sent" : inv.state.rawValue), not one to pay")
        }
        let object = try guardedRead { db in try String.fetchOne(cached: db, sql: "SELECT object FROM invoices WHERE uuid = ?", arguments: [inv.uuid])
        }
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
            try db.execute(
                cached: "UPDATE invoices SET state = 'refused', note = ?, updated = ? WHERE uuid = ? AND state = 'open'",
                arguments: [reason ?? "refused", now, inv.uuid])
            guard db.changesCount == 1 else { throw ModelError.invalid("invoice \(inv.uuid) was answered meanwhile; look again") }
            guard let row = try Row.fetchOne(cached: db, sql: "SELECT * FROM invoices WHERE uuid = ?", arguments: [inv.uuid]),
                let record = Self.invoiceRecord(row)
            else { throw StoreError.damaged("invoice vanished") }
            return record
        }
    }

    /// Refusals our users made, as messages per partner (sent on open channels).
    public func invoiceRefusals() throws -> [(agent: AgentID, message: JSONValue, uuid: String)] {
        try guardedRead { db in
            let since = Timestamp.format(millisecondsSince1970: Int64(Date().timeIntervalSince1970 * 1000) - Self.refusalWindow)
            return try Row.fetchAll(
                cached: db,
                sql: """
                    SELECT uuid, note, tally FROM invoices WHERE direction = 'in' AND state = 'refused' AND updated > ?
                    """, arguments: [since]
            ).compactMap { row in
                let uuid: String = row["uuid"], note: String? = row["note"], tally: String = row["tally"]
                guard let t = try Self.fetchTally(db, uuid: tally) else { return nil }
                return (t.partner.agent, InvoiceDialog.refusal(t, uuid: uuid, reason: note).json, uuid)
            }
        }
    }

    /// How long a refusal is pushed on new channels (ms); a repeated invoice
    /// is answered at any time.
    static let refusalWindow: Int64 = 86_400_000
}
