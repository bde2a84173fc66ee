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
    /// Most chain entries or chits in one message.
    public static let chainBatch = 100
    /// Most entries, chits or refusals taken from one incoming message: a
    /// partner's batches may be larger than ours, within reason.
    static let maxIncomingBatch = chainBatch * 2
    /// Most bytes of entries or chits in one message: a `T` message holds
    /// 65519 bytes, and a chit with a long memo and ref is several kB, so
    /// batches are cut by size as well as by count (at least one goes).
    public static let chainBatchBytes = 48_000

    /// The longest prefix of `items` within `chainBatchBytes` (at least one).
    static func sizedBatch(_ items: [JSONValue]) -> [JSONValue] {
        var total = 0
        var batch = [JSONValue]()
        for item in items {
            total += item.canonicalBytes.count
            if !batch.isEmpty, total > chainBatchBytes { break }
            batch.append(item)
        }
        return batch
    }

    // MARK: Paying

    /// Makes a payment by our user on tally `id`: checks it is open, the user
    /// may act, and the limits (counting our chits not yet chained), signs it,
    /// and commits it: chained at once on the foil's site, pending (for the
    /// foil's site to order) on the stock's. Returns the committed chit.
    public func pay(tally id: String, units: Int64, memo: String?, ref: JSONValue?, key: (CUID) throws -> SigningKey) throws -> ChitRecord {
        try pay(tally: id, units: units, memo: memo, ref: ref, settling: nil, key: key)
    }

    /// `pay`, marking the incoming invoice `settling` paid in the same
    /// transaction: an invoice is never paid twice, nor paid and left open.
    func pay(tally id: String, units: Int64, memo: String?, ref: JSONValue?, settling invoice: String?,
             key: (CUID) throws -> SigningKey) throws -> ChitRecord {
        guard let record = try payBatch(tally: id, payments: [(units, memo, ref)], settling: invoice, key: key).first else {
            throw StoreError.damaged("payment vanished")
        }
        return record
    }

    /// Several payments by our user on one tally, committed in one
    /// transaction (all or none): the same checks as `pay`, one fsync.
    public func payBatch(tally id: String, payments: [(units: Int64, memo: String?, ref: JSONValue?)],
                         key: (CUID) throws -> SigningKey) throws -> [ChitRecord] {
        try payBatch(tally: id, payments: payments, settling: nil, key: key)
    }

    func payBatch(tally id: String, payments: [(units: Int64, memo: String?, ref: JSONValue?)], settling invoice: String?,
                  key: (CUID) throws -> SigningKey) throws -> [ChitRecord] {
        let t = try tally(id)
        guard t.state == .open, let core = t.core else { throw ModelError.invalid("tally \(t.uuid) is \(t.state.rawValue), not open") }
        guard payments.allSatisfy({ $0.units > 0 && $0.units <= Amount.maxMilli }) else { throw ModelError.invalid("the amount must be more than 0") }
        let signing = try key(t.cuid)
        let date = Self.now()
        let chits = try payments.map { p in
            try Chit(tally: t.uuid, by: t.side, uuid: TallyCore.newUUID(), date: date, units: p.units, memo: p.memo, ref: p.ref, key: signing)
        }
        return try guardedWrite { db in
            try Self.checkNotLocked(db, t.cuid)
            guard let row = try Row.fetchOne(db, sql: "SELECT state, balance FROM tallies WHERE uuid = ?", arguments: [t.uuid]),
                  (row["state"] as String) == "open" else { throw ModelError.invalid("tally \(t.uuid) is not open") }
            let balance: Int64 = row["balance"]
            let pending = try Int64.fetchOne(db, sql: """
                SELECT coalesce(sum(CASE by WHEN 'foil' THEN units ELSE -units END), 0) FROM chits
                WHERE tally = ? AND state = 'pending' AND local = 1
                """, arguments: [t.uuid]) ?? 0
            let projected = balance + pending + chits.reduce(0) { $0 + $1.balanceEffect }
            guard Chit.withinLimits(projected, stockLimit: core.limit(.stock), foilLimit: core.limit(.foil)) else {
                let room = t.side == .foil ? core.limit(.stock) - balance - pending : balance + pending + core.limit(.foil)
                throw ModelError.invalid("the payment would exceed the tally's limit: \(Amount.format(max(0, room))) CHIPs can be paid now")
            }
            if let invoice, let first = chits.first {
                try db.execute(sql: """
                    UPDATE invoices SET state = 'paid', chit = ?, updated = ? WHERE uuid = ? AND tally = ? AND direction = 'in' AND state = 'open'
                    """, arguments: [first.uuid, date, invoice, t.uuid])
                guard db.changesCount == 1 else { throw ModelError.invalid("invoice \(invoice) is no longer open (answered meanwhile)") }
            }
            var records = [ChitRecord]()
            for chit in chits {
                try Self.insertChit(db, chit, local: true, now: date)
                if t.side == .foil { try Self.chain(db, chit, tally: t.uuid) }
                records.append(try Self.chitRecord(db, chit.uuid))
            }
            return records
        }
    }

    static func insertChit(_ db: Database, _ chit: Chit, local: Bool, now: String) throws {
        try db.execute(sql: """
            INSERT INTO chits (uuid, tally, by, type, units, core, sign, hash, state, local, created)
            VALUES (?, ?, ?, 'tran', ?, ?, ?, ?, 'pending', ?, ?)
            """, arguments: [chit.uuid, chit.tally, chit.by.rawValue, chit.units, chit.core.canonicalString, chit.sign,
                             chit.hash, local, now])
    }

    /// Appends a (pending) chit to the tally's chain: index, prior, hash, balance.
    static func chain(_ db: Database, _ chit: Chit, tally: String) throws {
        guard let row = try Row.fetchOne(db, sql: "SELECT chain_length, chain_head, hash FROM tallies WHERE uuid = ?", arguments: [tally])
        else { throw StoreError.damaged("tally \(tally) vanished") }
        let length: Int64 = row["chain_length"]
        let prior: String = (row["chain_head"] as String?) ?? row["hash"]
        let index = length + 1
        let entry = Chain.entryHash(index: index, prior: prior, chitHash: chit.hash)
        try db.execute(sql: "UPDATE chits SET state = 'chained', idx = ?, prior = ?, chain_hash = ? WHERE uuid = ?",
                       arguments: [index, prior, entry, chit.uuid])
        try db.execute(sql: """
            UPDATE tallies SET chain_length = ?, chain_head = ?, balance = balance + ?, updated = ? WHERE uuid = ?
            """, arguments: [index, entry, chit.balanceEffect, now(), tally])
    }

    static func chitRecord(_ db: Database, _ uuid: String) throws -> ChitRecord {
        guard let row = try Row.fetchOne(db, sql: "SELECT * FROM chits WHERE uuid = ?", arguments: [uuid]) else {
            throw StoreError.damaged("chit \(uuid) vanished")
        }
        return try chitRecord(row)
    }

    static func chitRecord(_ row: Row) throws -> ChitRecord {
        let core: String = row["core"], sign: String = row["sign"], state: String = row["state"]
        return ChitRecord(chit: try Chit(core: try JSONValue(parsing: core), sign: sign),
                          state: ChitRecord.State(rawValue: state) ?? .refused, index: row["idx"], chainHash: row["chain_hash"],
                          local: row["local"], note: row["note"], created: row["created"])
    }

    // MARK: Reading

    /// Chits, newest first, of one tally or one user or all.
    public func chits(tally: String? = nil, user: CUID? = nil, limit: Int = 1000) throws -> [ChitRecord] {
        try guardedRead { db in
            var sql = "SELECT c.* FROM chits c JOIN tallies t ON t.uuid = c.tally WHERE 1"
            var args: [(any DatabaseValueConvertible)?] = []
            if let tally { sql += " AND c.tally = ?"; args.append(tally) }
            if let user { sql += " AND t.cuid = ?"; args.append(user.value) }
            sql += " ORDER BY c.created DESC, c.idx DESC LIMIT ?"
            args.append(limit)
            return try Row.fetchAll(db, sql: sql, arguments: StatementArguments(args)).map(Self.chitRecord)
        }
    }

    /// The chain of a tally in order.
    public func chain(of tally: String) throws -> [ChitRecord] {
        try guardedRead { db in
            try Row.fetchAll(db, sql: "SELECT * FROM chits WHERE tally = ? AND state = 'chained' ORDER BY idx", arguments: [tally])
                .map(Self.chitRecord)
        }
    }

    /// Chain length and head of a tally.
    public func chainHead(of tally: String) throws -> (length: Int64, head: String?) {
        try guardedRead { db in
            guard let row = try Row.fetchOne(db, sql: "SELECT chain_length, chain_head, hash FROM tallies WHERE uuid = ?", arguments: [tally])
            else { return (0, nil) }
            return (row["chain_length"], (row["chain_head"] as String?) ?? row["hash"])
        }
    }

    /// Re-checks a tally: both tally signatures, every chit signature, every
    /// chain link, and the balance. Empty when all is well; else where it breaks.
    public func verifyTally(_ id: String) throws -> [String] {
        let t = try tally(id)
        var problems = [String]()
        guard let core = t.core, let sign = t.sign else { return ["tally \(t.uuid) has no signed core yet"] }
        if !core.verify(sign.stock, by: .stock) { problems.append("the stock's tally signature does not verify") }
        if !core.verify(sign.foil, by: .foil) { problems.append("the foil's tally signature does not verify") }
        if sign.hash != core.hash { problems.append("the tally hash does not match its core") }
        var prior = core.hash
        var balance: Int64 = 0
        let entries = try chain(of: t.uuid)
        for (n, e) in entries.enumerated() {
            let index = Int64(n + 1)
            if e.index != index { problems.append("chain entry \(index) is missing"); break }
            if e.chit.tally != t.uuid { problems.append("chit \(index) belongs to another tally") }
            if !e.chit.verify(in: core) { problems.append("chit \(index) (\(e.chit.uuid)): the signature does not verify") }
            let expected = Chain.entryHash(index: index, prior: prior, chitHash: e.chit.hash)
            if e.chainHash != expected { problems.append("chain entry \(index): the link hash is wrong"); break }
            prior = expected
            balance += e.chit.balanceEffect
            if !Chit.withinLimits(balance, stockLimit: core.limit(.stock), foilLimit: core.limit(.foil)) {
                problems.append("chit \(index) takes the balance past a limit")
            }
        }
        let head = try chainHead(of: t.uuid)
        if head.length != Int64(entries.count) { problems.append("the tally says \(head.length) entries, the chain has \(entries.count)") }
        if head.head != prior { problems.append("the tally's chain head is not the last entry's hash") }
        if balance != t.balance { problems.append("the balance is \(t.balance) but the chits add up to \(balance)") }
        return problems
    }

    // MARK: What to send

    /// Tallies whose partner still needs something from us: chain entries it
    /// has not confirmed (we are the foil) or our pending chits (we are the stock).
    public func chainWork() throws -> [ChainWork] {
        try guardedRead { db in
            try Row.fetchAll(db, sql: """
                SELECT * FROM tallies t WHERE state = 'open' AND (
                    (side = 'foil' AND chain_length > acked_length)
                    OR (side = 'stock' AND EXISTS (SELECT 1 FROM chits c WHERE c.tally = t.uuid AND c.state = 'pending' AND c.local = 1)))
                """).map { row in
                let r = try Self.tallyRecord(row)
                return ChainWork(tally: r.uuid, partner: r.partner, side: r.side, length: row["chain_length"], acked: row["acked_length"])
            }
        }
    }

    /// The `upd` message for `tally` with chain entries after `after` (foil side), nil if none.
    public func chainUpdate(tally id: String, after: Int64) throws -> JSONValue? {
        let t = try tally(id)
        let entries = try guardedRead { db in
            try Row.fetchAll(db, sql: "SELECT * FROM chits WHERE tally = ? AND state = 'chained' AND idx > ? ORDER BY idx LIMIT ?",
                             arguments: [t.uuid, after, Self.chainBatch]).map(Self.chitRecord)
        }
        guard !entries.isEmpty, let core = t.core else { return nil }
        let list: [JSONValue] = entries.map { e in
            ["index": .integer(e.index ?? 0), "prior": .string(""), "hash": .string(e.chainHash ?? ""), "chit": e.chit.json]
        }
        // prior of each entry: the hash before it (entry 0: the tally hash).
        var withPrior = [JSONValue]()
        var prior = try guardedRead { db in
            try String.fetchOne(db, sql: "SELECT chain_hash FROM chits WHERE tally = ? AND idx = ?", arguments: [t.uuid, after])
        } ?? core.hash
        for case .object(var o) in list {
            o["prior"] = .string(prior)
            prior = o["hash"]?.stringValue ?? ""
            withPrior.append(.object(o))
        }
        return Self.chitMessage("upd", t, ["tally": .string(t.uuid), "entries": .array(Self.sizedBatch(withPrior))])
    }

    /// The `tran` message carrying our pending chits on `tally` (stock side), nil if none.
    public func pendingTransfer(tally id: String, excluding sent: Set<String>) throws -> (message: JSONValue, uuids: [String])? {
        let t = try tally(id)
        let pending = try guardedRead { db in
            try Row.fetchAll(db, sql: "SELECT * FROM chits WHERE tally = ? AND state = 'pending' AND local = 1 ORDER BY created LIMIT ?",
                             arguments: [t.uuid, Self.chainBatch + sent.count]).map(Self.chitRecord)
        }.filter { !sent.contains($0.chit.uuid) }.prefix(Self.chainBatch)
        let chits = Self.sizedBatch(pending.map(\.chit.json))
        guard !chits.isEmpty else { return nil }
        return (Self.chitMessage("tran", t, ["tally": .string(t.uuid), "chits": .array(chits)]),
                pending.prefix(chits.count).map(\.chit.uuid))
    }

    static func chitMessage(_ action: String, _ t: TallyRecord, _ object: JSONValue) -> JSONValue {
        let me = t.core?.cert(t.side).chad.json ?? .null
        return ["target": "chit", "action": .string(action), "to": t.partner.json, "from": me, "object": object]
    }

    // MARK: Receiving

    /// The open tally `uuid` shared with `peer`, or nil: a chit message about
    /// any other tally is ignored.
    static func partnerTally(_ db: Database, _ uuid: String, peer: AgentID) throws -> TallyRecord? {
        guard let t = try Row.fetchOne(db, sql: "SELECT * FROM tallies WHERE uuid = ? AND state = 'open' AND partner_agent = ?",
                                       arguments: [uuid, peer.description]).map(tallyRecord), t.core != nil else { return nil }
        return t
    }

    /// Foil side, on `tran`: chains the stock's pending chits that are valid and
    /// within the limits; the others are refused. Replies: a `nak` listing
    /// refusals (the new entries go out as `upd`).
    public func receiveTransfer(_ message: JSONValue, from peer: AgentID) throws -> TallyOutcome {
        guard let object = message["object"], let uuid = object["tally"]?.stringValue, let list = object["chits"]?.arrayValue,
              list.count <= Self.maxIncomingBatch else { return .ignored("malformed tran") }
        let now = Self.now()
        return try guardedWrite { db in
            guard let t = try Self.partnerTally(db, uuid, peer: peer), t.side == .foil, let core = t.core else {
                return .ignored("tran for a tally we do not order with this peer")
            }
            let locked = try Self.isLockedDown(db) || Self.isUserLocked(db, t.cuid)
            var refused = [JSONValue]()
            for item in list {
                guard let chit = try? Chit(json: item), chit.tally == uuid, chit.by == .stock else { continue }
                if let state = try String.fetchOne(db, sql: "SELECT state FROM chits WHERE uuid = ?", arguments: [chit.uuid]) {
                    if state == "refused" {
                        refused.append(["uuid": .string(chit.uuid), "reason": .string((try String.fetchOne(db, sql: "SELECT note FROM chits WHERE uuid = ?", arguments: [chit.uuid])) ?? "refused")])
                    }
                    continue  // a repeat: already chained (it goes out in upd) or refused
                }
                // A chit its user did not sign is answered but not stored: a
                // partner's site cannot fill our file with junk.
                guard chit.verify(in: core) else {
                    refused.append(["uuid": .string(chit.uuid), "reason": "the signature does not verify"])
                    continue
                }
                var reason: String?
                let balance = try Int64.fetchOne(db, sql: "SELECT balance FROM tallies WHERE uuid = ?", arguments: [uuid]) ?? 0
                if locked { reason = "the partner's user is locked" }
                else if !Chit.withinLimits(balance + chit.balanceEffect, stockLimit: core.limit(.stock), foilLimit: core.limit(.foil)) {
                    reason = "the payment would exceed the tally's limit"
                }
                try Self.insertChit(db, chit, local: false, now: now)
                if let reason {
                    try db.execute(sql: "UPDATE chits SET state = 'refused', note = ? WHERE uuid = ?", arguments: [reason, chit.uuid])
                    refused.append(["uuid": .string(chit.uuid), "reason": .string(reason)])
                } else {
                    try Self.chain(db, chit, tally: uuid)
                }
            }
            try Self.settleInvoices(db, tally: uuid)
            return .applied(replies: refused.isEmpty ? [] : [Self.chitMessage("nak", t, ["tally": .string(uuid), "refused": .array(refused)])])
        }
    }

    /// Stock side, on `upd`: takes the foil's chain entries that extend ours
    /// (verifying every chit, link and limit) and answers `ack` with our new
    /// head, or `nak` with our head when there is a gap or a mismatch.
    public func receiveChainUpdate(_ message: JSONValue, from peer: AgentID) throws -> TallyOutcome {
        guard let object = message["object"], let uuid = object["tally"]?.stringValue, let entries = object["entries"]?.arrayValue,
              entries.count <= Self.maxIncomingBatch else { return .ignored("malformed upd") }
        let now = Self.now()
        return try guardedWrite { db in
            guard let t = try Self.partnerTally(db, uuid, peer: peer), t.side == .stock, let core = t.core else {
                return .ignored("upd for a tally this peer does not order")
            }
            guard let row = try Row.fetchOne(db, sql: "SELECT chain_length, chain_head, hash, balance FROM tallies WHERE uuid = ?",
                                             arguments: [uuid]) else { return .ignored("tally vanished") }
            var length: Int64 = row["chain_length"], balance: Int64 = row["balance"]
            var head: String = (row["chain_head"] as String?) ?? row["hash"]
            let startLength = length
            for entry in entries {
                guard let index = entry["index"]?.integerValue, let prior = entry["prior"]?.stringValue, Base64URL.isDigest(prior),
                      let hash = entry["hash"]?.stringValue, Base64URL.isDigest(hash), let chitJSON = entry["chit"],
                      let chit = try? Chit(json: chitJSON),
                      chit.tally == uuid else { break }
                if index <= length {
                    // Already ours: it must be the same entry, or the chains forked.
                    let have = try String.fetchOne(db, sql: "SELECT chain_hash FROM chits WHERE tally = ? AND idx = ?", arguments: [uuid, index])
                    if have != hash { break }
                    continue
                }
                guard index == length + 1, prior == head, Chain.entryHash(index: index, prior: prior, chitHash: chit.hash) == hash,
                      chit.verify(in: core),
                      Chit.withinLimits(balance + chit.balanceEffect, stockLimit: core.limit(.stock), foilLimit: core.limit(.foil))
                else { break }
                if let existing = try Row.fetchOne(db, sql: "SELECT hash, tally, state, local FROM chits WHERE uuid = ?", arguments: [chit.uuid]) {
                    // Only our own chit still waiting to be ordered may be chained
                    // now: one already chained (at another index) or refused would
                    // count twice or come back, so the chain stops here (a fork).
                    guard (existing["hash"] as String) == chit.hash, (existing["tally"] as String) == uuid,
                          (existing["state"] as String) == "pending", (existing["local"] as Bool) else { break }
                } else {
                    try Self.insertChit(db, chit, local: false, now: now)
                }
                try db.execute(sql: "UPDATE chits SET state = 'chained', idx = ?, prior = ?, chain_hash = ? WHERE uuid = ?",
                               arguments: [index, prior, hash, chit.uuid])
                length = index
                head = hash
                balance += chit.balanceEffect
            }
            if length > startLength {
                try db.execute(sql: "UPDATE tallies SET chain_length = ?, chain_head = ?, balance = ?, updated = ? WHERE uuid = ?",
                               arguments: [length, head, balance, now, uuid])
            }
            try Self.settleInvoices(db, tally: uuid)
            let last = entries.last?["index"]?.integerValue ?? 0
            let action = length >= last ? "ack" : "nak"
            return .applied(replies: [Self.chitMessage(action, t, ["tally": .string(uuid), "index": .integer(length), "hash": .string(head)])])
        }
    }

    static func chainHeadRow(_ db: Database, _ uuid: String) throws -> (length: Int64, head: String) {
        guard let row = try Row.fetchOne(db, sql: "SELECT chain_length, chain_head, hash FROM tallies WHERE uuid = ?", arguments: [uuid])
        else { return (0, "") }
        return (row["chain_length"], (row["chain_head"] as String?) ?? row["hash"])
    }

    /// Foil side, on `ack`/`nak` with a head: the stock holds our chain up to
    /// `index` (when its hash is ours there). Stock side, on `nak` with
    /// refusals: those pending chits are refused.
    public func receiveChainAnswer(_ message: JSONValue, from peer: AgentID) throws -> TallyOutcome {
        guard let object = message["object"], let uuid = object["tally"]?.stringValue else { return .ignored("malformed answer") }
        return try guardedWrite { db in
            guard let t = try Self.partnerTally(db, uuid, peer: peer) else { return .ignored("answer about a tally not shared with this peer") }
            if t.side == .foil, let index = object["index"]?.integerValue, let hash = object["hash"]?.stringValue, Base64URL.isDigest(hash) {
                let ours = index == 0 ? t.core?.hash : try String.fetchOne(db, sql: "SELECT chain_hash FROM chits WHERE tally = ? AND idx = ?", arguments: [uuid, index])
                guard ours == hash else { return .ignored("answer with a head we do not have") }
                // A nak moves the mark back so the missing entries go again.
                try db.execute(sql: "UPDATE tallies SET acked_length = ? WHERE uuid = ?", arguments: [index, uuid])
                return .applied(replies: [])
            }
            if t.side == .stock, let refused = object["refused"]?.arrayValue {
                for r in refused.prefix(Self.maxIncomingBatch) {
                    guard let id = r["uuid"]?.stringValue else { continue }
                    let reason = r["reason"]?.stringValue.map { String($0.prefix(Chit.maxReason)) } ?? "refused by the partner"
                    try db.execute(sql: "UPDATE chits SET state = 'refused', note = ? WHERE uuid = ? AND tally = ? AND state = 'pending' AND local = 1",
                                   arguments: [reason, id, uuid])
                    // An invoice this chit was paying is open again: our user may pay or refuse it anew.
                    if db.changesCount == 1 {
                        try db.execute(sql: """
                            UPDATE invoices SET state = 'open', chit = NULL, updated = ? WHERE chit = ? AND tally = ? AND direction = 'in' AND state = 'paid'
                            """, arguments: [Self.now(), id, uuid])
                    }
                }
                return .applied(replies: [])
            }
            return .ignored("answer that fits neither side")
        }
    }
}
