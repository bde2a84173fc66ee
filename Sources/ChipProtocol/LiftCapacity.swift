import ChipModel

/// A tally half's trading variables (9.2): integer milliCHIPs and parts per
/// million, kept by its site and never sent to the partner.
public struct TradingVariables: Sendable, Equatable {
    /// A circular lift raises this half's holding at most to this.
    public var target: Int64
    /// A linear lift raises this half's holding at most to this.
    public var bound: Int64
    /// Price (ppm) of lifts taking the holding above `target`; > 0: none are taken.
    public var reward: Int64
    /// Price (ppm) of paying out of this half; > 0: it never pays.
    public var clutch: Int64

    /// `reward` and `clutch`: -10^6..10^6 (MyCHIPs' -1..1).
    public static let rateRange: ClosedRange<Int64> = -1_000_000...1_000_000

    /// Checks 9.2's ranges: 0 ≤ target ≤ bound ≤ `limit` (this half's limit in
    /// the tally terms), rates in range and `reward + clutch ≥ 0`.
    public init(target: Int64, bound: Int64, reward: Int64, clutch: Int64, limit: Int64) throws(LiftError) {
        guard target >= 0, target <= bound else { throw .outOfRange("target must be 0 to bound") }
        guard bound <= limit else { throw .outOfRange("bound must be at most the half's limit") }
        guard Self.rateRange.contains(reward), Self.rateRange.contains(clutch) else {
            throw .outOfRange("reward and clutch must be -10^6 to 10^6 ppm")
        }
        guard reward + clutch >= 0 else { throw .outOfRange("reward + clutch must not be negative") }
        self.target = target
        self.bound = bound
        self.reward = reward
        self.clutch = clutch
    }

    /// The defaults: target 0, bound the half's limit, reward and clutch 0.
    public static func defaults(limit: Int64) -> TradingVariables {
        TradingVariables(unchecked: 0, bound: max(0, limit), reward: 0, clutch: 0)
    }

    init(unchecked target: Int64, bound: Int64, reward: Int64, clutch: Int64) {
        self.target = target
        self.bound = bound
        self.reward = reward
        self.clutch = clutch
    }

    public var json: JSONValue { ["target": .integer(target), "bound": .integer(bound), "reward": .integer(reward), "clutch": .integer(clutch)] }
}

/// A chit a site holds on a tally that is not in its chain and neither void
/// nor refused: a pending `tran`, or a lift chit `pend` or `good` and not yet
/// chained. These are what 9.2 counts.
public struct HeldChit: Sendable, Equatable {
    public enum Kind: String, Sendable { case tran, lift }
    public var uuid: String
    public var kind: Kind
    public var by: TallySide
    public var units: Int64
    /// A lift chit's referee (9.9's per-referee cap).
    public var referee: AgentID?

    public init(uuid: String, kind: Kind, by: TallySide, units: Int64, referee: AgentID? = nil) {
        self.uuid = uuid
        self.kind = kind
        self.by = by
        self.units = units
        self.referee = referee
    }

    public var balanceEffect: Int64 { by == .foil ? units : -units }
}

/// One tally half as its site holds it, for 9.2's checks.
public struct LiftHalf: Sendable, Equatable {
    public var tally: String
    /// This half's side.
    public var side: TallySide
    /// The limits the tally terms allow each side (section 7).
    public var stockLimit: Int64
    public var foilLimit: Int64
    /// The chain's balance (positive: the foil owes the stock).
    public var balance: Int64
    /// The chits 9.2 counts.
    public var held: [HeldChit]
    /// This half's trading variables.
    public var trade: TradingVariables

    public init(
        tally: String, side: TallySide, stockLimit: Int64, foilLimit: Int64, balance: Int64, held: [HeldChit] = [],
        trade: TradingVariables? = nil
    ) {
        self.tally = tally
        self.side = side
        self.stockLimit = stockLimit
        self.foilLimit = foilLimit
        self.balance = balance
        self.held = held
        self.trade = trade ?? .defaults(limit: side == .stock ? stockLimit : foilLimit)
    }

    public func limit(_ s: TallySide) -> Int64 { s == .stock ? stockLimit : foilLimit }

    /// `h`: what the partner owes `s`'s user on the chain.
    public func holding(_ s: TallySide) -> Int64 { s == .stock ? balance : -balance }

    /// `h⁺`: `s`'s holding plus every held chit that raises it (by the other
    /// side), not counting `excluding` (the promise's own chit).
    public func holdingPlus(_ s: TallySide, excluding: String? = nil) -> Int64 {
        held.filter { $0.by == s.other && $0.uuid != excluding }.reduce(holding(s)) { $0 + $1.units }
    }
}

/// 9.2's capacity checks and 9.9's caps on lifts in progress.
public enum LiftCapacity {
    /// The most a lift may carry into this half as the payee's (the payee
    /// site's check): circular `target − h⁺`; linear `(reward ≤ 0 ? bound : target) − h⁺`.
    public static func payee(_ h: LiftHalf, kind: LiftKind, excluding: String? = nil) -> Int64 {
        let ceiling = kind == .circ || h.trade.reward > 0 ? h.trade.target : h.trade.bound
        return max(0, ceiling - h.holdingPlus(h.side, excluding: excluding))
    }

    /// The most a lift may carry out of this half as the payer's (the payer
    /// site's check): none when `clutch > 0`, else `limit − h⁺′`, `limit` the
    /// payee half's limit in the terms and `h⁺′` the payee's holding as this site counts it.
    public static func payer(_ h: LiftHalf, excluding: String? = nil) -> Int64 {
        guard h.trade.clutch <= 0 else { return 0 }
        let payee = h.side.other
        return max(0, h.limit(payee) - h.holdingPlus(payee, excluding: excluding))
    }

    /// 9.9's caps for one more lift chit on this tally with referee `referee`:
    /// ≤ 16 lift chits per tally (the new one counted), ≤ 4 per referee, and
    /// ≤ 64 lifts with the partner agent (`withPartner` in progress now).
    public static func withinCaps(_ h: LiftHalf, referee: AgentID, withPartner: Int, excluding: String? = nil) -> Bool {
        let lifts = h.held.filter { $0.kind == .lift && $0.uuid != excluding }
        return lifts.count + 1 <= LiftLimits.maxLiftChitsPerTally
            && lifts.filter { $0.referee == referee }.count + 1 <= LiftLimits.maxLiftsPerTallyPerReferee
            && withPartner + 1 <= LiftLimits.maxLiftsPerPartner
    }

    /// Whether a hop carries `units` at the payee's site: caps first (`busy`), then the payee check (`capacity`).
    public static func payeeRefusal(
        _ h: LiftHalf, units: Int64, kind: LiftKind, referee: AgentID, withPartner: Int,
        excluding: String? = nil
    ) -> LiftRefusal? {
        if !withinCaps(h, referee: referee, withPartner: withPartner, excluding: excluding) { return .busy }
        return units <= payee(h, kind: kind, excluding: excluding) ? nil : .capacity
    }

    /// Whether a hop carries `units` at the payer's site.
    public static func payerRefusal(_ h: LiftHalf, units: Int64, referee: AgentID, withPartner: Int, excluding: String? = nil) -> LiftRefusal? {
        if !withinCaps(h, referee: referee, withPartner: withPartner, excluding: excluding) { return .busy }
        return units <= payer(h, excluding: excluding) ? nil : .capacity
    }

    /// Section 8's limit check with 9.2's reservation: a new chit by `by` of
    /// `units` fits only if the chain balance plus every held chit moving the
    /// balance the same way (lift chits `pend` or good-not-chained, and
    /// pending `tran` chits) plus the new one stays within both limits; held
    /// chits moving it the other way count as void. So a direct payment and a
    /// lift never pass a limit together.
    public static func limitAllows(units: Int64, by: TallySide, on h: LiftHalf) -> Bool {
        let effect = by == .foil ? units : -units
        let sameWay = h.held.filter { $0.by == by }.reduce(Int64(0)) { $0 + $1.balanceEffect }
        return Chit.withinLimits(h.balance + sameWay + effect, stockLimit: h.stockLimit, foilLimit: h.foilLimit)
    }
}
