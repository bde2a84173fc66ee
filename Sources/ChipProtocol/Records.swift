import ChipModel

// The records of the site's dialogs as plain values: what the store loads,
// what the deciders read, and what the views print. No I/O here.

/// A tally as the site file holds it.
public struct TallyRecord: Sendable, Equatable {
    public var uuid: String
    public var cuid: CUID
    public var side: TallySide
    public var partner: CHAD
    public var state: TallyState
    public var revision: Int64
    /// The signed core, once there is one (a request has none yet).
    public var core: TallyCore?
    public var sign: TallySignatures?
    public var token: String?
    public var balance: Int64
    public var created: String
    public var updated: String
    /// Why a request ended void, when it did.
    public var note: String?
    /// Chits in the chain, and the last entry's hash (nil while empty).
    public var chainLength: Int64 = 0
    public var chainHead: String?
    /// Our half's trading variables (9.2), once there is a core (the
    /// store's `tradingVariables`); nil for a request.
    public var trade: TradingVariables?

    public init(
        uuid: String, cuid: CUID, side: TallySide, partner: CHAD, state: TallyState, revision: Int64, core: TallyCore?,
        sign: TallySignatures?, token: String?, balance: Int64, created: String, updated: String, note: String? = nil,
        chainLength: Int64 = 0, chainHead: String? = nil, trade: TradingVariables? = nil
    ) {
        self.uuid = uuid; self.cuid = cuid; self.side = side; self.partner = partner; self.state = state
        self.revision = revision; self.core = core; self.sign = sign; self.token = token; self.balance = balance
        self.created = created; self.updated = updated; self.note = note; self.chainLength = chainLength; self.chainHead = chainHead
        self.trade = trade
    }

    /// Whether both signatures verify against the certificates' keys.
    public var signaturesValid: Bool {
        guard let core, let sign else { return false }
        return core.verify(sign.stock, by: .stock) && core.verify(sign.foil, by: .foil)
    }
}

/// A chit as the site file holds it.
public struct ChitRecord: Sendable, Equatable {
    public enum State: String, Sendable { case pending, chained, refused }
    public var chit: Chit
    public var state: State
    public var index: Int64?
    public var chainHash: String?
    /// Made by one of our users (not received).
    public var local: Bool
    public var note: String?
    public var created: String

    public init(chit: Chit, state: State, index: Int64?, chainHash: String?, local: Bool, note: String?, created: String) {
        self.chit = chit; self.state = state; self.index = index; self.chainHash = chainHash
        self.local = local; self.note = note; self.created = created
    }
}

/// An invoice as the site file holds it.
public struct InvoiceRecord: Sendable, Equatable {
    public enum Direction: String, Sendable { case out, `in` }
    public enum State: String, Sendable { case open, paid, refused }
    public var uuid: String
    public var tally: String
    public var direction: Direction
    public var units: Int64
    public var memo: String?
    public var state: State
    public var chit: String?
    public var note: String?
    public var created: String

    public init(
        uuid: String, tally: String, direction: Direction, units: Int64, memo: String?, state: State, chit: String?,
        note: String?, created: String
    ) {
        self.uuid = uuid; self.tally = tally; self.direction = direction; self.units = units; self.memo = memo
        self.state = state; self.chit = chit; self.note = note; self.created = created
    }
}

/// A ticket as the site file holds it.
public struct TicketInfo: Sendable, Equatable {
    public var token: String
    public var cuid: CUID
    public var expires: String
    public var reuse: Bool
    public var bound: String?
    public var terms: JSONValue
    public var used: String?
    public var created: String

    public init(
        token: String, cuid: CUID, expires: String, reuse: Bool, bound: String?, terms: JSONValue, used: String?,
        created: String
    ) {
        self.token = token; self.cuid = cuid; self.expires = expires; self.reuse = reuse; self.bound = bound
        self.terms = terms; self.used = used; self.created = created
    }
}
