import ChipModel

/// The chain consensus of a tally (protocol section 8) as pure decisions.
///
/// The foil's site orders the chain: on `tran` it chains the stock's pending
/// chits that are signed and within the limits and refuses the others (`nak`
/// with the refusals); its entries go to the stock as `upd`. The stock's site
/// conforms: on `upd` it takes the entries that extend its chain (every
/// chit, link and limit checked) and answers `ack` with its new head, or `nak`
/// with its head where there is a gap or a mismatch. The foil moves its mark
/// to the head the stock confirms (a `nak` moves it back, so entries go again).
///
/// Balance convention (ChipModel `Chit.balanceEffect`): positive means the
/// foil owes the stock; a foil chit adds its units, a stock chit subtracts.
///
/// Lift chits (9.5): a good one is chained by the foil's site when it applies
/// the decision (ChipStore), and travels to the stock in `upd` with its header
/// and decision; the stock takes it under the chain checks but with no limit
/// check, whatever it holds of it. `tran` and `nak` never carry one (their
/// chits are `Chit`s, which are `tran` chits only). The foil's limit check on
/// `tran` counts the lift chits it holds as 9.2's reservation says.
public enum ChainDialog {
    /// A chit the site holds, as far as the chain dialog needs it.
    public struct StoredChit: Sendable, Equatable {
        public var hash: String
        public var tally: String
        /// A lift chit's state is `.chained` once chained and `.pending`
        /// before (`pend`, `good` or `void`: outside the chain either way).
        public var state: ChitRecord.State
        public var local: Bool
        public var note: String?
        /// H, when this is a lift chit.
        public var lift: String?
        public init(hash: String, tally: String, state: ChitRecord.State, local: Bool, note: String?, lift: String? = nil) {
            self.hash = hash
            self.tally = tally
            self.state = state
            self.local = local
            self.note = note
            self.lift = lift
        }
    }

    /// One of our open invoices: what it asks, and of whom.
    public struct AskedInvoice: Sendable, Equatable {
        public var units: Int64
        public var by: TallySide
        public init(units: Int64, by: TallySide) {
            self.units = units
            self.by = by
        }
    }

    /// What our site holds about one chain message.
    public struct Snapshot: Sendable {
        /// The open tally the message names, shared with the peer that sent it.
        public var tally: TallyRecord?
        /// The site is locked down or our user locked.
        public var locked: Bool
        /// Chits we hold among those the message names, by uuid.
        public var chits: [String: StoredChit]
        /// Our chain's entry hashes at the indices the message names.
        public var hashes: [Int64: String]
        /// Our open invoices on the tally, by uuid (a chit may settle one).
        public var asked: [String: AskedInvoice]
        /// Incoming invoices our user paid, by the paying chit's uuid.
        public var paidBy: [String: String]
        /// For `tran` (foil side): the chits on the tally that 9.2's
        /// reservation counts beside the chain: the lift chits `pend` or
        /// `good` and not chained (the foil holds no pending payment of its own).
        public var held: [HeldChit]

        public init(
            tally: TallyRecord?, locked: Bool = false, chits: [String: StoredChit] = [:], hashes: [Int64: String] = [:],
            asked: [String: AskedInvoice] = [:], paidBy: [String: String] = [:], held: [HeldChit] = []
        ) {
            self.tally = tally
            self.locked = locked
            self.chits = chits
            self.hashes = hashes
            self.asked = asked
            self.paidBy = paidBy
            self.held = held
        }
    }

    /// What the store must load for `m`: chits by uuid, chain hashes by index.
    public static func wants(_ m: ChitMessage) -> (chits: Set<String>, indices: Set<Int64>) {
        switch m.body {
        case .tran(_, let chits): (Set(chits.map(\.uuid)), [])
        case .upd(_, let entries, _): (Set(entries.map(\.chit.uuid)), Set(entries.map(\.index)))
        case .answer(_, let index, _, let refused): (Set((refused ?? []).map(\.uuid)), index.map { [$0] } ?? [])
        case .invoice, .refuse: ([], [])
        }
    }

    /// Decides `tran`, `upd`, `ack` or `nak`.
    public static func decide(_ m: ChitMessage, snapshot s: Snapshot) -> Decision {
        switch m.body {
        case .tran(let tally, let chits): transfer(tally: tally, chits: chits, s)
        case .upd(let tally, let entries, let last): update(tally: tally, entries: entries, last: last, s)
        case .answer(let tally, let index, let hash, let refused): answer(tally: tally, index: index, hash: hash, refused: refused, s)
        case .invoice, .refuse: .ignore("not a chain message")
        }
    }

    /// The chain as a decision goes along it.
    struct Head {
        var length: Int64
        var head: String
        var balance: Int64
        init(_ t: TallyRecord, _ core: TallyCore) {
            length = t.chainLength
            head = t.chainHead ?? core.hash
            balance = t.balance
        }
    }

    /// Foil side, on `tran`.
    static func transfer(tally uuid: String, chits: [Chit], _ s: Snapshot) -> Decision {
        guard let t = s.tally, t.uuid == uuid, t.side == .foil, let core = t.core else {
            return .ignore("tran for a tally we do not order with this peer")
        }
        var chain = Head(t, core)
        let start = chain.length
        var known = s.chits
        var effects = [Effect](), refused = [ChitRefusal](), chained = [Chit]()
        for chit in chits {
            guard chit.tally == uuid, chit.by == .stock else { continue }
            if let have = known[chit.uuid] {
                // A repeat: already chained (it goes out in upd) or refused (say so again).
                if have.state == .refused, have.lift == nil { refused.append(ChitRefusal(uuid: chit.uuid, reason: have.note ?? "refused")) }
                continue
            }
            // A chit its user did not sign is answered but not stored: a
            // partner's site cannot fill our file with junk.
            guard chit.verify(in: core) else {
                refused.append(ChitRefusal(uuid: chit.uuid, reason: "the signature does not verify"))
                continue
            }
            let reason: String?
            if s.locked {
                reason = "the partner's user is locked"
            } else if !withinLimits(chit, chain.balance, core, held: s.held) {
                reason = "the payment would exceed the tally's limit"
            } else {
                reason = nil
            }
            effects.append(.insertChit(chit, local: false))
            if let reason {
                effects.append(.refuseChit(uuid: chit.uuid, reason: reason))
                refused.append(ChitRefusal(uuid: chit.uuid, reason: reason))
                known[chit.uuid] = StoredChit(hash: chit.hash, tally: uuid, state: .refused, local: false, note: reason)
            } else {
                let index = chain.length + 1
                let hash = Chain.entryHash(index: index, prior: chain.head, chitHash: chit.hash)
                effects.append(.chainChit(uuid: chit.uuid, index: index, prior: chain.head, hash: hash))
                chain.length = index
                chain.head = hash
                chain.balance += chit.balanceEffect
                chained.append(chit)
                known[chit.uuid] = StoredChit(hash: chit.hash, tally: uuid, state: .chained, local: false, note: nil)
            }
        }
        if chain.length > start {
            effects.append(.setChainHead(tally: uuid, length: chain.length, head: chain.head, balance: chain.balance))
        }
        effects += settle(chained, asked: s.asked)
        let replies: [SiteMessage] =
            refused.isEmpty
            ? [] : [.chit(.on(t, .nak, .answer(tally: uuid, index: nil, hash: nil, refused: refused)))]
        return .apply(effects, replies: replies)
    }

    /// Section 8's limit check with 9.2's reservation: the balance after
    /// `chit`, plus every held lift chit moving the balance the same way (the
    /// others count as void), stays within both limits.
    static func withinLimits(_ chit: Chit, _ balance: Int64, _ core: TallyCore, held: [HeldChit]) -> Bool {
        let half = LiftHalf(
            tally: core.uuid, side: .foil, stockLimit: core.limit(.stock), foilLimit: core.limit(.foil), balance: balance,
            held: held)
        return LiftCapacity.limitAllows(units: chit.units, by: chit.by, on: half)
    }

    /// Stock side, on `upd`. A payment's entry is checked against the limits
    /// (section 8's plain check: the chain is the foil's order, which
    /// counted the reservations it holds); a good lift chit's is not (9.5),
    /// and chaining it applies its decision to all our chits for its lift.
    static func update(tally uuid: String, entries: [ChainEntry], last: Int64, _ s: Snapshot) -> Decision {
        guard let t = s.tally, t.uuid == uuid, t.side == .stock, let core = t.core else {
            return .ignore("upd for a tally this peer does not order")
        }
        var chain = Head(t, core)
        let start = chain.length
        var known = s.chits, hashes = s.hashes
        var effects = [Effect](), chained = [Chit]()
        var decided = Set<String>()
        entries: for entry in entries {
            guard entry.chit.tally == uuid else { break }
            if entry.index <= chain.length {
                // Already ours: it must be the same entry, or the chains forked.
                guard hashes[entry.index] == entry.hash else { break }
                continue
            }
            guard entry.index == chain.length + 1, entry.prior == chain.head,
                Chain.entryHash(index: entry.index, prior: entry.prior, chitHash: entry.chit.hash) == entry.hash
            else { break }
            let have = known[entry.chit.uuid]
            switch entry.chit {
            case .tran(let chit):
                guard chit.verify(in: core),
                    Chit.withinLimits(chain.balance + chit.balanceEffect, stockLimit: core.limit(.stock), foilLimit: core.limit(.foil))
                else { break entries }
                if let have {
                    // Only our own chit still waiting to be ordered may be chained
                    // now: one already chained (at another index) or refused would
                    // count twice or come back, so the chain stops here (a fork).
                    guard have.lift == nil, have.hash == chit.hash, have.tally == uuid, have.state == .pending, have.local else { break entries }
                } else {
                    effects.append(.insertChit(chit, local: false))
                }
                chained.append(chit)
            case .lift(let lift):
                // Header, chit and decision must belong together and to this
                // tally; then whatever we hold of the chit (even nothing, or
                // void) it is good, unless it is chained already elsewhere.
                guard lift.problem(in: core) == nil else { break entries }
                if let have {
                    guard have.lift == lift.chit.lift, have.hash == lift.chit.hash, have.tally == uuid, have.state != .chained else { break entries }
                } else {
                    effects.append(.insertLiftChit(lift.chit, header: lift.header, local: false))
                }
                if decided.insert(lift.header.hash).inserted { effects.append(.applyLiftDecision(lift.decision)) }
            }
            effects.append(.chainChit(uuid: entry.chit.uuid, index: entry.index, prior: entry.prior, hash: entry.hash))
            var lift: String?
            if case .lift(let l) = entry.chit { lift = l.chit.lift }
            known[entry.chit.uuid] = StoredChit(
                hash: entry.chit.hash, tally: uuid, state: .chained, local: have?.local ?? false, note: nil, lift: lift)
            hashes[entry.index] = entry.hash
            chain.length = entry.index
            chain.head = entry.hash
            chain.balance += entry.chit.balanceEffect
        }
        if chain.length > start {
            effects.append(.setChainHead(tally: uuid, length: chain.length, head: chain.head, balance: chain.balance))
        }
        effects += settle(chained, asked: s.asked)
        let action: ChitMessage.Action = chain.length >= last ? .ack : .nak
        return .apply(effects, replies: [.chit(.on(t, action, .answer(tally: uuid, index: chain.length, hash: chain.head, refused: nil)))])
    }

    /// Foil side, on `ack`/`nak` with a head: the stock holds our chain up to
    /// `index` (when its hash is ours there). Stock side, on `nak` with
    /// refusals: those pending chits of ours are refused, and an invoice one
    /// of them was paying is open again.
    static func answer(tally uuid: String, index: Int64?, hash: String?, refused: [ChitRefusal]?, _ s: Snapshot) -> Decision {
        guard let t = s.tally, t.uuid == uuid, let core = t.core else { return .ignore("answer about a tally not shared with this peer") }
        if t.side == .foil, let index, let hash {
            let ours = index == 0 ? core.hash : s.hashes[index]
            guard ours == hash else { return .ignore("answer with a head we do not have") }
            return .apply([.setAcked(tally: uuid, index: index)])
        }
        if t.side == .stock, let refused {
            var known = s.chits
            var effects = [Effect]()
            for r in refused {
                guard let have = known[r.uuid], have.lift == nil, have.tally == uuid, have.state == .pending, have.local else { continue }
                effects.append(.refuseChit(uuid: r.uuid, reason: r.reason))
                known[r.uuid]?.state = .refused
                if let invoice = s.paidBy[r.uuid] { effects.append(.reopenInvoice(uuid: invoice)) }
            }
            return .apply(effects)
        }
        return .ignore("answer that fits neither side")
    }

    /// Our open invoices that newly chained chits pay: a chit settles an
    /// invoice only if the side asked to pay signed it and it pays at least
    /// the amount asked.
    static func settle(_ chained: [Chit], asked: [String: AskedInvoice]) -> [Effect] {
        var open = asked
        var effects = [Effect]()
        for chit in chained {
            guard let invoice = chit.core["ref"]?["invoice"]?.stringValue, let a = open[invoice], a.by == chit.by,
                chit.units >= a.units
            else { continue }
            open[invoice] = nil
            effects.append(.settleInvoice(uuid: invoice, chit: chit.uuid))
            effects.append(.dropOutbox(topic: OutboxTopic.invoice(invoice)))
        }
        return effects
    }

    // MARK: What we send

    /// The `upd` carrying our chain `entries` (foil side), cut to one message.
    public static func update(_ t: TallyRecord, entries: [ChainEntry]) -> SiteMessage? {
        let batch = MessageLimits.sizedBatch(entries.map(\.json))
        guard !batch.isEmpty else { return nil }
        return .chit(.on(t, .upd, .upd(tally: t.uuid, entries: Array(entries.prefix(batch.count)), last: entries[batch.count - 1].index)))
    }

    /// The `tran` carrying our pending `chits` (stock side), cut to one message.
    public static func transfer(_ t: TallyRecord, chits: [Chit]) -> (message: SiteMessage, uuids: [String])? {
        let batch = MessageLimits.sizedBatch(chits.map(\.json))
        guard !batch.isEmpty else { return nil }
        let sent = Array(chits.prefix(batch.count))
        return (.chit(.on(t, .tran, .tran(tally: t.uuid, chits: sent))), sent.map(\.uuid))
    }
}
