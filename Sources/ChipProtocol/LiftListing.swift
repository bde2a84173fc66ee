import ChipModel

// The lifts a site holds, as plain values for `chipsite lift list|show` and
// their views: read from its records (`lifts`), the decisions it took as a
// referee, its lift chits and the decisions it holds. No I/O here.

/// One lift as the site holds it.
public struct LiftOverview: Sendable, Equatable {
    /// H.
    public var id: String
    /// nil when the site holds no header for H (a referee that kept only its decision).
    public var kind: LiftKind?
    /// The site's record's role, `referee` when the site only decided it as
    /// referee, nil when it holds neither (only chits or a header).
    public var role: LiftRecord.Role?
    /// The record's state; for a referee row its decision's result; nil without either.
    public var state: String?
    public var units: Int64?
    public var deadline: String?
    /// R's agent.
    public var referee: String?
    /// This site's tallies with a chit of this lift, ordered.
    public var tallies: [String]
    public var created: String
    /// Filled by `lift show` only.
    public var chits: [LiftChitEntry]
    public var decisions: [LiftDecisionEntry]

    public init(
        id: String, kind: LiftKind?, role: LiftRecord.Role?, state: String?, units: Int64?, deadline: String?,
        referee: String?, tallies: [String], created: String, chits: [LiftChitEntry] = [], decisions: [LiftDecisionEntry] = []
    ) {
        self.id = id; self.kind = kind; self.role = role; self.state = state; self.units = units
        self.deadline = deadline; self.referee = referee; self.tallies = tallies; self.created = created
        self.chits = chits; self.decisions = decisions
    }
}

/// A lift chit on one of the site's tallies.
public struct LiftChitEntry: Sendable, Equatable {
    public var uuid: String
    public var tally: String
    /// The paying side.
    public var by: TallySide
    public var units: Int64
    /// `pend`, `good`, `void` or `chained`.
    public var state: String

    public init(uuid: String, tally: String, by: TallySide, units: Int64, state: String) {
        self.uuid = uuid; self.tally = tally; self.by = by; self.units = units; self.state = state
    }
}

/// A referee's decision the site holds for a lift.
public struct LiftDecisionEntry: Sendable, Equatable {
    public var result: LiftResult
    /// Applied to the site's record and chits (false: kept as proof of an equivocation).
    public var applied: Bool
    /// The site took it itself, as the lift's referee.
    public var asReferee: Bool
    /// `{"decision","sign"}` as stored.
    public var decision: JSONValue
    public var created: String

    public init(result: LiftResult, applied: Bool, asReferee: Bool, decision: JSONValue, created: String) {
        self.result = result; self.applied = applied; self.asReferee = asReferee; self.decision = decision
        self.created = created
    }
}
