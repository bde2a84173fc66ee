import ChipModel
import ChipProtocol
import Foundation
import GRDB

/// What still has to go to a partner for the chains to agree.
public struct ChainWork: Sendable, Equatable {
    public var tally: String
    public var partner: CHAD
    /// Our side of the tally: the foil sends chain entries, the stock its pending chits.
    public var side: TallySide
    /// Chain length, and how far the partner confirmed it (foil side).
    public var length: Int64
    public var acked: Int64
}

extension SiteStore {
    /// Most chain entries or chits in one message (protocol module's limits).
    public static let chainBatch = MessageLimits.chainBatch

    // MARK: Paying

    /// Makes a payment by our user on tally `id`: checks it is open, the user
    /// may act, and the limits (counting our chits not yet chained and the
    /// lift chits reserved, 9.2), signs it,
    /// and commits it: chained at once on the foil's site, pending (for the
    /// foil's site to order) on the stock's. Returns the committed chit.
    public func pay(tally id: String, units: Int64, memo: String?, ref: JSONValue?, key: (CUID) throws -> SigningKey) throws -> ChitRecord {
        try pay(tally: id, units: units, memo: memo, ref: ref, settling: nil, key: key)
    }

    /// `pay`, marking the incoming invoice `settling` paid in the same
    /// transaction: an invoice is never paid twice, nor paid and left open.
    func pay(
        tally id: String, units: Int64, memo: String?, ref: JSONValue?, settling invoice: String?,
        key: (CUID) throws -> SigningKey
    ) throws -> ChitRecord {
        guard let record = try payBatch(tally: id, payments: [(units, memo, ref)], settling: invoice, key: key).first else {
            throw StoreError.damaged("payment vanished")
        }
        return record
    }

    /// Several payments by our user on one tally, committed in one
    /// transaction (all or none): the same checks as `pay`, one fsync.
    public func payBatch(
        tally id: String, payments: [(units: Int64, memo: String?, ref: JSONValue?)],
        key: (CUID) throws -> SigningKey
    ) throws -> [ChitRecord] {
        try payBatch(tally: id, payments: payments, settling: nil, key: key)
    }

    func payBatch(
        tally id: String, payments: [(units: Int64, memo: String?, ref: JSONValue?)], settling invoice: String?,
        key: (CUID) throws -> SigningKey
    ) throws -> [ChitRecord] {
        let t = try tally(id)
        guard t.state == .open else { throw ModelError.invalid("tally \(t.uuid) is \(t.state.rawValue), not open") }
        guard payments.allSatisfy({ $0.units > 0 && $0.units <= Amount.maxMilli }) else { throw ModelError.invalid("the amount must be more than 0") }
        let signing = try key(t.cuid)
        let date = Self.now()
        let chits = try payments.map { p in
            try Chit(tally: t.uuid, by: t.side, uuid: TallyCore.newUUID(), date: date, units: p.units, memo: p.memo, ref: p.ref, key: signing)
        }
        return try commitPayments(chits, on: t, settling: invoice, now: date)
    }

    /// Commits our user's chits on tally `t` in one transaction, after the
    /// lock, the tally's state and the limits (with 9.2's reservations).
    func commitPayments(_ chits: [Chit], on t: TallyRecord, settling invoice: String?, now date: String) throws -> [ChitRecord] {
        try guardedWrite { db in try Self.insertPayments(db, chits, on: t, settling: invoice, now: date) }
    }

    /// One device payment of a group commit (``payDeviceChits(_:now:)``).
    public struct DevicePaymentItem: Sendable {
        public var chit: Chit
        public var tally: TallyRecord
        /// What commits with it (its reply in the cache), in its savepoint.
        public var rider: TransactionRider?

        public init(chit: Chit, tally: TallyRecord, rider: TransactionRider?) {
            self.chit = chit
            self.tally = tally
            self.rider = rider
        }
    }

    /// Payments users' devices made (protocol 10.7), each chit signed by the
    /// device or (site custody, no signature) by the site for the user, after
    /// `DevicePayment.check`; committed together (group commit, 10.5's benchmark):
    /// one write transaction and one fsync for all of them, each in its own
    /// savepoint with its rider, so one refused (a limit, a lock) is refused
    /// alone and the others commit. A chit whose `ref` is
    /// `{"invoice":<uuid>,…}` settles that incoming invoice in its savepoint,
    /// as `payInvoice` (`chit accept`) does, or is refused
    /// (``InvoiceDialog/settlement(_:of:held:)``). Results in the items' order.
    public func payDeviceChits(_ items: [DevicePaymentItem], now: Int64) -> [Result<ChitRecord, any Error>] {
        let date = Timestamp.format(millisecondsSince1970: now)
        do {
            return try database.write { db in
                var results = [Result<ChitRecord, any Error>]()
                for item in items {
                    var record: ChitRecord?
                    do {
                        try db.inSavepoint {
                            // A chit whose ref names an invoice pays it, as `chit accept` does (10.6).
                            let settling = try InvoiceDialog.invoiceNamed(by: item.chit)
                            let made = try Self.insertPayments(db, [item.chit], on: item.tally, settling: settling, now: date)
                            try item.rider?.ride(db, made)
                            record = made.first
                            return .commit
                        }
                        if let record { results.append(.success(record)) } else { results.append(.failure(StoreError.damaged("payment vanished"))) }
                    } catch {
                        results.append(.failure(StoreError.from(error, path: path)))
                    }
                }
                return results
            }
        } catch {
            let failure = StoreError.from(error, path: path)
            return items.map { _ in .failure(failure) }
        }
    }

    /// Our user's chits on tally `t`, inside the open transaction: the lock,
    /// the tally's state and the limits (with 9.2's reservations), then the
    /// chits, chained at once on the foil's side, and their events.
    static func insertPayments(_ db: Database, _ chits: [Chit], on t: TallyRecord, settling invoice: String?, now date: String) throws
        -> [ChitRecord]
    {
        guard t.state == .open, let core = t.core else { throw ModelError.invalid("tally \(t.uuid) is \(t.state.rawValue), not open") }
        try Self.checkNotLocked(db, t.cuid)
        guard let row = try Row.fetchOne(cached: db, sql: "SELECT state, balance FROM tallies WHERE uuid = ?", arguments: [t.uuid]),
            (row["state"] as String) == TallyState.open.rawValue
        else { throw ModelError.invalid("tally \(t.uuid) is not open") }
        let balance: Int64 = row["balance"]
        // 9.2's reservation: our pending chits and the lift chits moving
        // the balance our way count as good, the others as void.
        let half = LiftHalf(
            tally: t.uuid, side: t.side, stockLimit: core.limit(.stock), foilLimit: core.limit(.foil), balance: balance,
            held: try Self.reservations(db, tally: t.uuid))
        let total = chits.reduce(Int64(0)) { $0 + $1.units }
        guard LiftCapacity.limitAllows(units: total, by: t.side, on: half) else {
            let reserved = half.held.filter { $0.by == t.side }.reduce(Int64(0)) { $0 + $1.balanceEffect }
            throw StoreError.overLimit(Self.limitProblem(t, core: core, balance: balance + reserved))
        }
        if let invoice, let first = chits.first {
            // The same decision for `chit accept` and a device's `chit.pay` (10.6).
            let held = try Row.fetchOne(cached: db, sql: "SELECT * FROM invoices WHERE uuid = ?", arguments: [invoice]).flatMap(Self.invoiceRecord)
            if let refusal = InvoiceDialog.settlement(first, of: invoice, held: held) { throw refusal }
            try db.execute(
                cached: """
                    UPDATE invoices SET state = 'paid', chit = ?, updated = ? WHERE uuid = ? AND tally = ? AND direction = 'in' AND state = 'open'
                    """, arguments: [first.uuid, date, invoice, t.uuid])
            guard db.changesCount == 1 else { throw StoreError.damaged("invoice \(invoice) changed under its payment") }
        }
        var records = [ChitRecord]()
        for chit in chits {
            try Self.insertChit(db, chit, local: true, now: date)
            if t.side == .foil { try Self.chain(db, chit, tally: t.uuid) }
            let record = try Self.chitRecord(db, chit.uuid)
            // Every device of the user hears of the payment (10.5).
            var extra: [String: JSONValue] = [:]
            if let index = record.index { extra["index"] = .integer(index) }
            try Self.appendChitUserEvent(db, chit.uuid, state: record.state.rawValue, extra: extra, now: date)
            records.append(record)
        }
        return records
    }

    /// Why our user's payment does not fit the tally: whose limit it is
    /// (the credit the partner grants our user), how much fits now, and how
    /// to get more.
    static func limitProblem(_ t: TallyRecord, core: TallyCore, balance: Int64) -> String {
        // A payment by the foil raises the balance up to the stock's limit; one
        // by the stock lowers it down to minus the foil's limit.
        let granted = core.limit(t.side.other)
        let room = t.side == .foil ? granted - balance : balance + granted
        let partner = t.partner.cuid.value
        let start = "the payment would exceed the credit \(partner) grants \(t.cuid) on this tally (\(Amount.format(granted)) CHIPs)"
        let fits = room > 0 ? "at most \(Amount.format(room)) CHIPs can be paid now" : "nothing can be paid now"
        return
            "\(start): \(fits); to pay more, \(partner) pays \(t.cuid) first or offers a new tally with a higher limit (`chipsite ticket tally --limit`)"
    }

    /// The chits on `tally` that a limit check counts beside the chain (9.2):
    /// our pending payments, and the lift chits `pend` or `good` and not yet
    /// chained (`pendingTransfer` takes the first only: a lift chit is never
    /// in `tran`).
    static func reservations(_ db: Database, tally: String) throws -> [HeldChit] {
        try Row.fetchAll(
            cached: db,
            sql: """
                SELECT uuid, type, by, units FROM chits
                WHERE tally = ? AND ((type = 'lift' AND state IN ('pend', 'good')) OR (type <> 'lift' AND state = 'pending' AND local = 1))
                """, arguments: [tally]
        ).compactMap { row in
            guard let by = TallySide(rawValue: row["by"]) else { return nil }
            let type: String = row["type"]
            return HeldChit(uuid: row["uuid"], kind: type == "lift" ? .lift : .tran, by: by, units: row["units"])
        }
    }

    static func insertChit(_ db: Database, _ chit: Chit, local: Bool, now: String) throws {
        try db.execute(
            cached: """
                INSERT INTO chits (uuid, tally, by, type, units, core, sign, hash, state, local, created)
                VALUES (?, ?, ?, 'tran', ?, ?, ?, ?, 'pending', ?, ?)
                """,
            arguments: [
                chit.uuid, chit.tally, chit.by.rawValue, chit.units, chit.core.canonicalString, chit.sign,
                chit.hash, local, now
            ])
    }

    /// Appends a (pending) chit to the tally's chain: index, prior, hash, balance.
    static func chain(_ db: Database, _ chit: Chit, tally: String) throws {
        guard let (length, prior) = try chainHead(db, tally) else { throw StoreError.damaged("tally \(tally) vanished") }
        let index = length + 1
        let entry = Chain.entryHash(index: index, prior: prior, chitHash: chit.hash)
        try db.execute(
            cached: "UPDATE chits SET state = 'chained', idx = ?, prior = ?, chain_hash = ? WHERE uuid = ?",
            arguments: [index, prior, entry, chit.uuid])
        try db.execute(
            cached: """
                UPDATE tallies SET chain_length = ?, chain_head = ?, balance = balance + ?, updated = ? WHERE uuid = ?
                """, arguments: [index, entry, chit.balanceEffect, now(), tally])
    }

    /// Chain length and head (entry 0: the tally hash) of `tally`, nil when there is no such tally.
    static func chainHead(_ db: Database, _ tally: String) throws -> (length: Int64, head: String)? {
        guard let row = try Row.fetchOne(cached: db, sql: "SELECT chain_length, chain_head, hash FROM tallies WHERE uuid = ?", arguments: [tally])
        else { return nil }
        return (row["chain_length"], (row["chain_head"] as String?) ?? row["hash"])
    }

    static func chitRecord(_ db: Database, _ uuid: String) throws -> ChitRecord {
        guard let row = try Row.fetchOne(cached: db, sql: "SELECT * FROM chits WHERE uuid = ?", arguments: [uuid]) else {
            throw StoreError.damaged("chit \(uuid) vanished")
        }
        return try chitRecord(row)
    }

    static func chitRecord(_ row: Row) throws -> ChitRecord {
        let core: String = row["core"], sign: String = row["sign"], state: String = row["state"]
        return ChitRecord(
            chit: try Chit(core: try JSONValue(parsing: core), sign: sign),
            state: ChitRecord.State(rawValue: state) ?? .refused, index: row["idx"], chainHash: row["chain_hash"],
            local: row["local"], note: row["note"], created: row["created"])
    }

    // MARK: Reading

    /// Payments (`tran` chits), newest first, of one tally or one user or all;
    /// lift chits are not `Chit`s and are left out.
    public func chits(tally: String? = nil, user: CUID? = nil, limit: Int = 1000) throws -> [ChitRecord] {
        try guardedRead { db in
            var sql = "SELECT c.* FROM chits c JOIN tallies t ON t.uuid = c.tally WHERE c.type <> 'lift'"
            var args: [(any DatabaseValueConvertible)?] = []
            if let tally { sql += " AND c.tally = ?"; args.append(tally) }
            if let user { sql += " AND t.cuid = ?"; args.append(user.value) }
            sql += " ORDER BY c.created DESC, c.idx DESC LIMIT ?"
            args.append(limit)
            return try Row.fetchAll(cached: db, sql: sql, arguments: StatementArguments(args)).map(Self.chitRecord)
        }
    }

    /// The payments of a tally's chain in order (its lift chits left out:
    /// `chainHead(of:)` and `verifyTally` see the whole chain).
    public func chain(of tally: String) throws -> [ChitRecord] {
        try guardedRead { db in
            try Row.fetchAll(
                cached: db, sql: "SELECT * FROM chits WHERE tally = ? AND state = 'chained' AND type <> 'lift' ORDER BY idx", arguments: [tally]
            )
            .map(Self.chitRecord)
        }
    }

    /// Chain length and head of a tally.
    public func chainHead(of tally: String) throws -> (length: Int64, head: String?) {
        try guardedRead { db in try Self.chainHead(db, tally).map { ($0.length, $0.head) } ?? (0, nil) }
    }

    /// Re-checks a tally: both tally signatures, every chit signature, every
    /// chain link, and the balance. A lift chit in the chain is checked as 9.5
    /// and 9.7 say: its header hashes to its `lift`, the payer half's agent
    /// signed it, and the applied decision is the lift's referee's valid `good`
    /// (with the origin's commit). Empty when all is well; else where it breaks.
    public func verifyTally(_ id: String) throws -> [String] {
        let t = try tally(id)
        var problems = [String]()
        guard let core = t.core, let sign = t.sign else { return ["tally \(t.uuid) has no signed core yet"] }
        if !core.verify(sign.stock, by: .stock) { problems.append("the stock's tally signature does not verify") }
        if !core.verify(sign.foil, by: .foil) { problems.append("the foil's tally signature does not verify") }
        if sign.hash != core.hash { problems.append("the tally hash does not match its core") }
        var prior = core.hash
        var balance: Int64 = 0
        let rows = try guardedRead { db in try Self.chainRows(db, tally: t.uuid, after: 0) }
        for (n, row) in rows.enumerated() {
            let index = Int64(n + 1)
            let uuid = row.uuid
            if row.index != index { problems.append("chain entry \(index) is missing"); break }
            if row.tally != t.uuid { problems.append("chit \(index) belongs to another tally") }
            // The chit hash the entry links and its effect: the parsed chit's, else the stored ones.
            var chitHash = row.hash
            var effect = row.effect
            var isLift = false
            switch row.chit {
            case .success(.tran(let chit)):
                chitHash = chit.hash
                effect = chit.balanceEffect
                if !chit.verify(in: core) { problems.append("chit \(index) (\(uuid)): the signature does not verify") }
            case .success(.lift(let lift)):
                chitHash = lift.chit.hash
                effect = lift.chit.balanceEffect
                isLift = true
                if let why = lift.problem(in: core) { problems.append("chit \(index) (\(uuid)): \(why)") }
            case .failure(let why):
                problems.append("chit \(index) (\(uuid)): \(why.description)")
            }
            let expected = Chain.entryHash(index: index, prior: prior, chitHash: chitHash)
            if row.chainHash != expected { problems.append("chain entry \(index): the link hash is wrong"); break }
            prior = expected
            balance += effect
            // A good lift chit is chained with no limit check (9.5).
            if !isLift, !Chit.withinLimits(balance, stockLimit: core.limit(.stock), foilLimit: core.limit(.foil)) {
                problems.append("chit \(index) takes the balance past a limit")
            }
        }
        let head = try chainHead(of: t.uuid)
        if head.length != Int64(rows.count) { problems.append("the tally says \(head.length) entries, the chain has \(rows.count)") }
        if head.head != prior { problems.append("the tally's chain head is not the last entry's hash") }
        if balance != t.balance { problems.append("the balance is \(t.balance) but the chits add up to \(balance)") }
        return problems
    }

    // MARK: What to send

    /// Tallies whose partner still needs something from us: chain entries it
    /// has not confirmed (we are the foil) or our pending chits (we are the stock).
    public func chainWork() throws -> [ChainWork] {
        try guardedRead { db in
            try Row.fetchAll(
                cached: db,
                sql: """
                    SELECT uuid, side, partner_agent, partner_cuid, partner_host, partner_port, chain_length, acked_length FROM tallies t WHERE state = ? AND (
                        (side = 'foil' AND chain_length > acked_length)
                        OR (side = 'stock' AND EXISTS (SELECT 1 FROM chits c WHERE c.tally = t.uuid AND c.state = 'pending' AND c.local = 1)))
                    """, arguments: [TallyState.open.rawValue]
            ).map { row in
                let side: String = row["side"], agent: String = row["partner_agent"], cuid: String = row["partner_cuid"]
                let host: String = row["partner_host"], port: Int = row["partner_port"]
                guard let s = TallySide(rawValue: side) else { throw StoreError.damaged("tally side") }
                return ChainWork(
                    tally: row["uuid"],
                    partner: CHAD(cuid: try CUID(cuid), agent: try AgentID(agent), address: try SiteAddress(host: host, port: port)),
                    side: s, length: row["chain_length"], acked: row["acked_length"])
            }
        }
    }

    /// The `upd` message for `tally` with chain entries after `after` (foil side), nil if none.
    public func chainUpdate(tally id: String, after: Int64) throws -> JSONValue? {
        let t = try tally(id)
        guard let core = t.core else { return nil }
        let (rows, start) = try guardedRead { db in
            let rows = try Self.chainRows(db, tally: t.uuid, after: after, limit: Self.chainBatch)
            // prior of the first entry: the hash before it (entry 0: the tally hash).
            let start = try String.fetchOne(cached: db, sql: "SELECT chain_hash FROM chits WHERE tally = ? AND idx = ?", arguments: [t.uuid, after])
            return (rows, start)
        }
        var prior = start ?? core.hash
        var chain = [ChainEntry]()
        for row in rows {
            guard let index = row.index, let hash = row.chainHash else { break }
            // A lift chit goes with its header and the good decision applied (9.5).
            switch row.chit {
            case .success(let chit): chain.append(ChainEntry(index: index, prior: prior, hash: hash, chit: chit))
            case .failure(let why): throw StoreError.damaged("chain entry \(index) of tally \(t.uuid): \(why.description)")
            }
            prior = hash
        }
        return ChainDialog.update(t, entries: chain)?.json
    }

    /// The `tran` message carrying our pending chits on `tally` (stock side), nil if none.
    public func pendingTransfer(tally id: String, excluding sent: Set<String>) throws -> (message: JSONValue, uuids: [String])? {
        let t = try tally(id)
        let pending = try guardedRead { db in
            try Row.fetchAll(
                cached: db, sql: "SELECT * FROM chits WHERE tally = ? AND state = 'pending' AND local = 1 ORDER BY created LIMIT ?",
                arguments: [t.uuid, Self.chainBatch + sent.count]
            ).map(Self.chitRecord)
        }.filter { !sent.contains($0.chit.uuid) }.prefix(Self.chainBatch)
        guard let (message, uuids) = ChainDialog.transfer(t, chits: pending.map(\.chit)) else { return nil }
        return (message.json, uuids)
    }
}
