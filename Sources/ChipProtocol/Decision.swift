import ChipModel

/// What a dialog decided about one message: the changes to the site file
/// (applied by the store in one transaction, in order), the replies to send
/// once they are committed, and, when the message asked for nothing that
/// applies, why (for the log; the peer is never told).
///
/// A decision may carry effects and still say `ignored`: a bad offer is not
/// taken, but it ends the request it answered.
public struct Decision: Sendable, Equatable {
    public var effects: [Effect]
    public var replies: [SiteMessage]
    public var ignored: String?

    public init(effects: [Effect] = [], replies: [SiteMessage] = [], ignored: String? = nil) {
        self.effects = effects
        self.replies = replies
        self.ignored = ignored
    }

    /// Nothing to do: a repeat, or a message to ignore.
    public static func ignore(_ why: String, effects: [Effect] = []) -> Decision {
        Decision(effects: effects, ignored: why)
    }

    /// Apply these effects, then send these replies.
    public static func apply(_ effects: [Effect], replies: [SiteMessage] = []) -> Decision {
        Decision(effects: effects, replies: replies)
    }

    /// What the engine sees once the decision is committed.
    public var outcome: Outcome {
        if let ignored { return .ignored(ignored) }
        return .applied(replies: replies)
    }
}

/// What handling a message (or a user's command) came to, once committed:
/// the one outcome type of every dialog.
public enum Outcome: Sendable, Equatable {
    /// Applied; send these replies now (they are not kept in the outbox).
    case applied(replies: [SiteMessage])
    /// Nothing to do: a repeat, or a message to ignore (reason for the log).
    case ignored(String)
}

/// One change to the site file. Each names the row it touches; the store
/// turns each into one statement and trusts its constraints for the rest.
public enum Effect: Sendable, Equatable {
    // Tickets and tallies
    /// Marks a one-time ticket used (it was unused in the snapshot).
    case consumeTicket(token: String, at: String)
    case insertTally(TallyRecord)
    case deleteTally(uuid: String)
    /// A state change, with the signatures when they changed.
    case setTallyState(uuid: String, state: TallyState, sign: TallySignatures?)
    /// A request that cannot go on: void, with the reason for its user.
    case voidRequest(uuid: String, note: String)

    // The outbox
    case enqueue(to: CHAD, topic: String, message: SiteMessage, firstContact: Bool)
    /// Every waiting message of `topic` leaves the outbox (answered or superseded).
    case dropOutbox(topic: String)

    // Chits and the chain
    case insertChit(Chit, local: Bool)
    /// Chit `uuid` becomes chain entry `index`.
    case chainChit(uuid: String, index: Int64, prior: String, hash: String)
    case refuseChit(uuid: String, reason: String)
    /// The tally's chain after this message: length, head and balance.
    case setChainHead(tally: String, length: Int64, head: String, balance: Int64)
    /// The partner holds our chain up to `index` (foil side).
    case setAcked(tally: String, index: Int64)

    // Invoices
    case insertIncomingInvoice(InvoiceObject)
    /// Our invoice `uuid` was paid by chit `chit`.
    case settleInvoice(uuid: String, chit: String)
    /// An invoice our user paid with a chit that was refused is open again.
    case reopenInvoice(uuid: String)
    /// The partner refused our invoice `uuid`.
    case refuseOurInvoice(uuid: String, reason: String)

    // Lifts (section 9)
    /// The referee's one decision for its lift, written durably (fsync)
    /// before any answer carries it. Insert only: if the store already holds
    /// a decision for that H (a concurrent request won), it keeps that one
    /// and the engine decides the request again on it (9.7).
    /// `deadline`: the header's, kept with it (R keeps it 400 days past that).
    case storeRefereeDecision(SignedDecision, deadline: String)
    /// A valid decision applied to the site's record and every chit whose
    /// `lift` is its H, good ones chained with no limit check (9.5, 9.7).
    case applyLiftDecision(SignedDecision)
    /// The decision applied for H was queued on to the neighbours (9.7):
    /// a decision first applied from a chain entry (9.5) is passed on when
    /// the lift's own message for it comes, once.
    case setDecisionPassed(lift: String)
    /// A valid decision for H with the other result, kept as proof.
    case storeDecisionProof(SignedDecision)
    /// The referee signed both results for one lift: drop it from the
    /// accept list and tell the operator (9.7).
    case refereeEquivocated(referee: AgentID, lift: String)
    /// A lift chit, stored `pend` and reserved (9.2, 9.5), with its header;
    /// `local`: made by this site for its segment.
    case insertLiftChit(LiftChit, header: LiftHeader, local: Bool)
    /// The site's record of a lift (relay or terminus: `part`, with its answer).
    case insertLiftRecord(LiftRecord)
    /// The record of H moves to `state`; `call`: which act O called.
    case setLiftState(lift: String, state: LiftRecord.State, call: LiftAct?)
    /// Our promise on hop `hop` was answered.
    case setPromiseAnswer(lift: String, hop: Int, answer: LiftAnswer)
    /// A `commit` or `abort` queued to R, a site address (9.8).
    case enqueueToReferee(LiftSite, topic: String, message: SiteMessage)
}

/// Outbox topics: what a waiting message is about, so that its answer can
/// take it out. A tally's messages use the tally uuid.
public enum OutboxTopic {
    public static func invoice(_ uuid: String) -> String { "invoice:" + uuid }
}
