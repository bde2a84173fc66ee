import ChipModel

/// A site-to-site application message (protocol section 5), parsed once from
/// the JSON envelope into a typed value. The channel has already checked the
/// envelope against the authenticated peer; what is parsed here is the
/// meaning: a message that does not parse is ignored, with the reason.
///
/// Parsing is as lenient as the dialogs always were where the protocol asks
/// for it (a `tran` item that is not a chit is skipped, an `upd` stops at its
/// first malformed entry) and strict everywhere else.
public enum SiteMessage: Sendable, Equatable {
    case tally(TallyMessage)
    case chit(ChitMessage)
    /// Section 9: route discovery and lifts (LiftMessages.swift).
    case route(RouteMessage)
    case lift(LiftMessage)

    /// Section 5's targets.
    public enum Target: String, Sendable, CaseIterable { case tally, chit, route, lift }

    public var target: Target {
        switch self {
        case .tally: .tally
        case .chit: .chit
        case .route: .route
        case .lift: .lift
        }
    }

    /// The action, for the log.
    public var action: String {
        switch self {
        case .tally(let m): m.action.rawValue
        case .chit(let m): m.action.rawValue
        case .route(let m): m.action.rawValue
        case .lift(let m): m.action.rawValue
        }
    }

    /// Parses a message. Throws `.malformed` with a reason for the log (the
    /// peer is never told).
    public init(json: JSONValue) throws(MessageError) {
        guard let targetText = json["target"]?.stringValue, let target = Target(rawValue: targetText) else {
            throw .malformed("unknown target")
        }
        switch target {
        case .tally: self = .tally(try TallyMessage(json: json))
        case .chit: self = .chit(try ChitMessage(json: json))
        case .route: self = .route(try RouteMessage(json: json))
        case .lift: self = .lift(try LiftMessage(json: json))
        }
    }

    /// The wire form.
    public var json: JSONValue {
        switch self {
        case .tally(let m): m.json
        case .chit(let m): m.json
        case .route(let m): m.json
        case .lift(let m): m.json
        }
    }
}

/// Why a message was not taken.
public enum MessageError: Error, Sendable, Equatable, CustomStringConvertible {
    case malformed(String)
    public var description: String {
        switch self {
        case .malformed(let why): "malformed message: \(why)"
        }
    }
}

/// Limits on what one incoming message may carry.
public enum MessageLimits {
    /// Most chain entries or chits we put in one message.
    public static let chainBatch = 100
    /// Most entries, chits or refusals taken from one incoming message: a
    /// partner's batches may be larger than ours, within reason.
    public static let maxIncomingBatch = chainBatch * 2
    /// Most bytes of entries or chits in one message: a `T` message holds
    /// 65519 bytes, and a chit with a long memo and ref is several kB, so
    /// batches are cut by size as well as by count (at least one goes).
    public static let chainBatchBytes = 48_000

    /// The longest prefix of `items` within `chainBatchBytes` (at least one).
    public static func sizedBatch(_ items: [JSONValue]) -> [JSONValue] {
        var total = 0
        var batch = [JSONValue]()
        for item in items {
            total += item.canonicalBytes.count
            if !batch.isEmpty, total > chainBatchBytes { break }
            batch.append(item)
        }
        return batch
    }
}

// MARK: - Tally messages (sections 6 and 7)

/// `tally` messages: the ticket (payload of IK), and offer, open, void, draft.
public struct TallyMessage: Sendable, Equatable {
    public enum Action: String, Sendable, CaseIterable { case ticket, offer, open, void, draft }

    public enum Body: Sendable, Equatable {
        /// The requester's ticket message: the token and its certificate.
        case ticket(token: String, cert: JSONValue, certificate: Certificate)
        /// A tally object: the core and its signatures (hash checked).
        case tally(core: TallyCore, sign: TallySignatures)
    }

    public var action: Action
    public var to: CHAD
    /// Always present on a ticket; on the others as sent (may be absent).
    public var from: CHAD?
    public var body: Body

    public init(action: Action, to: CHAD, from: CHAD?, body: Body) {
        self.action = action
        self.to = to
        self.from = from
        self.body = body
    }

    /// An offer, open, void or draft of `core` to `to`, from our user's CHAD.
    public static func make(_ action: Action, core: TallyCore, sign: TallySignatures, to: CHAD, from: CHAD) -> TallyMessage {
        TallyMessage(action: action, to: to, from: from, body: .tally(core: core, sign: sign))
    }

    /// The ticket message a requester sends in IK (section 5).
    public static func ticket(token: String, cert: JSONValue, to: CHAD, from: CHAD) throws(ModelError) -> TallyMessage {
        TallyMessage(action: .ticket, to: to, from: from, body: .ticket(token: token, cert: cert, certificate: try Certificate(json: cert)))
    }

    public init(json: JSONValue) throws(MessageError) {
        guard let actionText = json["action"]?.stringValue, let action = Action(rawValue: actionText) else {
            throw .malformed("unknown tally action")
        }
        guard let toJSON = json["to"], let to = try? CHAD(json: toJSON) else { throw .malformed("tally message without a valid to") }
        let from = json["from"].flatMap { try? CHAD(json: $0) }
        self.action = action
        self.to = to
        self.from = from
        if action == .ticket {
            guard let token = json["ticket"]?["token"]?.stringValue, let cert = json["ticket"]?["cert"], from != nil else {
                throw .malformed("ticket message without token, certificate or from")
            }
            guard let certificate = try? Certificate(json: cert) else { throw .malformed("ticket message with a bad certificate") }
            body = .ticket(token: token, cert: cert, certificate: certificate)
        } else {
            guard let object = json["object"] else { throw .malformed("tally message without object") }
            do {
                let (core, sign) = try TallyObject.parse(object)
                body = .tally(core: core, sign: sign)
            } catch { throw .malformed("bad tally object: \(error)") }
        }
    }

    public var json: JSONValue {
        var o: [String: JSONValue] = ["target": "tally", "action": .string(action.rawValue), "to": to.json]
        if let from { o["from"] = from.json }
        switch body {
        case .ticket(let token, let cert, _): o["ticket"] = ["token": .string(token), "cert": cert]
        case .tally(let core, let sign): o["object"] = TallyObject.make(core, sign)
        }
        return .object(o)
    }
}

// MARK: - Chit messages (section 8)

/// A good lift chit as a chain entry carries it in `upd` (9.5): the chit
/// and, unhashed beside it, its header and the referee's good decision, so
/// that the stock's site can take it whatever it holds of the lift.
public struct GoodLiftChit: Sendable, Equatable {
    public var chit: LiftChit
    /// The header, with `sign` and `hash`: its `hash` is the chit's `lift`.
    public var header: LiftHeader
    /// The referee's `good` decision for the header.
    public var decision: SignedDecision

    public init(chit: LiftChit, header: LiftHeader, decision: SignedDecision) {
        self.chit = chit
        self.header = header
        self.decision = decision
    }

    /// Why this is not a good lift chit of tally `core`, or nil (9.5, 9.7):
    /// the header hashes to the chit's `lift` (its own hash and origin
    /// signature were checked when it was read), the chit is the one 9.5 makes
    /// from that header, signed by the payer half's agent, and the decision is
    /// a valid `good` for the header.
    public func problem(in core: TallyCore) -> String? {
        if chit.lift != header.hash { return "the lift header does not hash to the chit's lift" }
        if let why = chit.mismatch(header) { return why }
        if !chit.verify(in: core) { return "the lift chit's signature is not the payer half's agent's" }
        if decision.result != .good { return "the lift's decision is not good" }
        return decision.problem(for: header)
    }
}

/// The chit of a chain entry: a payment (section 8) or a good lift chit (9.5).
/// Only the chain carries the second; `tran` and `nak` carry `Chit`s only.
public enum ChainChit: Sendable, Equatable {
    case tran(Chit)
    case lift(GoodLiftChit)

    public var uuid: String {
        switch self {
        case .tran(let c): c.uuid
        case .lift(let l): l.chit.uuid
        }
    }

    public var tally: String {
        switch self {
        case .tran(let c): c.tally
        case .lift(let l): l.chit.tally
        }
    }

    public var by: TallySide {
        switch self {
        case .tran(let c): c.by
        case .lift(let l): l.chit.by
        }
    }

    /// The chit hash the entry links (section 8).
    public var hash: String {
        switch self {
        case .tran(let c): c.hash
        case .lift(let l): l.chit.hash
        }
    }

    /// What it does to the balance (ChipModel's convention: a foil chit adds).
    public var balanceEffect: Int64 {
        switch self {
        case .tran(let c): c.balanceEffect
        case .lift(let l): l.chit.balanceEffect
        }
    }

    /// The payment, when this is one.
    public var tran: Chit? { if case .tran(let c) = self { return c }; return nil }
}

/// One entry of a chain update: chit `index` with its link hashes.
public struct ChainEntry: Sendable, Equatable {
    public var index: Int64
    public var prior: String
    public var hash: String
    public var chit: ChainChit

    public init(index: Int64, prior: String, hash: String, chit: ChainChit) {
        self.index = index
        self.prior = prior
        self.hash = hash
        self.chit = chit
    }

    /// An entry holding a payment.
    public init(index: Int64, prior: String, hash: String, chit: Chit) {
        self.init(index: index, prior: prior, hash: hash, chit: .tran(chit))
    }

    /// `{"index","prior","hash","chit"}`; a lift chit's entry also carries,
    /// unhashed, `"lift"` (the header) and `"decision"` (9.5).
    public var json: JSONValue {
        var o: [String: JSONValue] = ["index": .integer(index), "prior": .string(prior), "hash": .string(hash)]
        switch chit {
        case .tran(let c):
            o["chit"] = c.json
        case .lift(let l):
            o["chit"] = l.chit.json
            o["lift"] = l.header.json
            o["decision"] = l.decision.json
        }
        return .object(o)
    }

    /// Reads an entry; nil when any part is malformed (a lift chit's entry
    /// needs its header and decision, read with 9.3's exact keys; whether they
    /// belong together and to the tally is the chain dialog's check).
    public init?(json entry: JSONValue) {
        guard let index = entry["index"]?.integerValue, let prior = entry["prior"]?.stringValue, Base64URL.isDigest(prior),
            let hash = entry["hash"]?.stringValue, Base64URL.isDigest(hash), let chitJSON = entry["chit"]
        else { return nil }
        if chitJSON["type"]?.stringValue == "lift" {
            guard let chit = try? LiftChit(json: chitJSON), let header = try? LiftHeader(json: entry["lift"] ?? .null),
                let decision = try? SignedDecision(json: entry["decision"] ?? .null)
            else { return nil }
            self.init(index: index, prior: prior, hash: hash, chit: .lift(GoodLiftChit(chit: chit, header: header, decision: decision)))
        } else {
            guard let chit = try? Chit(json: chitJSON) else { return nil }
            self.init(index: index, prior: prior, hash: hash, chit: .tran(chit))
        }
    }
}

/// A chit a partner refused, and why.
public struct ChitRefusal: Sendable, Equatable {
    public var uuid: String
    public var reason: String
    public init(uuid: String, reason: String) {
        self.uuid = uuid
        self.reason = reason
    }
    public var json: JSONValue { ["uuid": .string(uuid), "reason": .string(reason)] }
}

/// An invoice: our user asks the partner's for a payment.
public struct InvoiceObject: Sendable, Equatable {
    public var tally: String
    public var uuid: String
    public var units: Int64
    public var date: String?
    /// The side asked to pay.
    public var by: TallySide?
    public var memo: String?
    public var ref: JSONValue?
    /// As it came (stored for the answer).
    public var json: JSONValue

    public init(tally: String, uuid: String, units: Int64, date: String, by: TallySide, memo: String?, ref: JSONValue?) {
        var o: [String: JSONValue] = [
            "tally": .string(tally), "uuid": .string(uuid), "units": .integer(units),
            "date": .string(date), "by": .string(by.rawValue)
        ]
        if let memo { o["memo"] = .string(memo) }
        if let ref { o["ref"] = ref }
        self.init(tally: tally, uuid: uuid, units: units, date: date, by: by, memo: memo, ref: ref, json: .object(o))
    }

    /// base64url SHA-256 of the invoice's canonical form, as it came (the
    /// `hash` of its `sign` event, 10.5).
    public var hash: String { Base64URL.encode(Crypto.sha256(json.canonicalBytes)) }

    init(tally: String, uuid: String, units: Int64, date: String?, by: TallySide?, memo: String?, ref: JSONValue?, json: JSONValue) {
        self.tally = tally
        self.uuid = uuid
        self.units = units
        self.date = date
        self.by = by
        self.memo = memo
        self.ref = ref
        self.json = json
    }
}

/// `chit` messages: the chain consensus (tran, upd, ack, nak) and invoices.
public struct ChitMessage: Sendable, Equatable {
    public enum Action: String, Sendable, CaseIterable { case tran, upd, ack, nak, invoice, refuse }

    public enum Body: Sendable, Equatable {
        /// The stock's pending chits (items that are not chits are skipped).
        case tran(tally: String, chits: [Chit])
        /// The foil's chain entries, up to the first malformed one; `last` is
        /// the index the sender's last entry claims (what an ack must reach).
        case upd(tally: String, entries: [ChainEntry], last: Int64)
        /// A chain head (`index`, `hash`) and/or refused chits.
        case answer(tally: String, index: Int64?, hash: String?, refused: [ChitRefusal]?)
        case invoice(InvoiceObject)
        /// The refusal of an invoice.
        case refuse(tally: String, uuid: String, reason: String)
    }

    public var action: Action
    public var to: CHAD?
    public var from: CHAD?
    public var body: Body

    public init(action: Action, to: CHAD?, from: CHAD?, body: Body) {
        self.action = action
        self.to = to
        self.from = from
        self.body = body
    }

    /// The tally the message is about.
    public var tally: String {
        switch body {
        case .tran(let t, _), .upd(let t, _, _), .answer(let t, _, _, _), .refuse(let t, _, _): t
        case .invoice(let i): i.tally
        }
    }

    public init(json: JSONValue) throws(MessageError) {
        guard let actionText = json["action"]?.stringValue, let action = Action(rawValue: actionText) else {
            throw .malformed("unknown chit action")
        }
        self.action = action
        to = json["to"].flatMap { try? CHAD(json: $0) }
        from = json["from"].flatMap { try? CHAD(json: $0) }
        guard let o = json["object"], let tally = o["tally"]?.stringValue else { throw .malformed("\(action.rawValue) without a tally") }
        switch action {
        case .tran:
            guard let list = o["chits"]?.arrayValue, list.count <= MessageLimits.maxIncomingBatch else { throw .malformed("tran") }
            body = .tran(tally: tally, chits: list.compactMap { try? Chit(json: $0) })
        case .upd:
            guard let list = o["entries"]?.arrayValue, list.count <= MessageLimits.maxIncomingBatch else { throw .malformed("upd") }
            var entries = [ChainEntry]()
            for item in list {
                guard let entry = ChainEntry(json: item) else { break }
                entries.append(entry)
            }
            body = .upd(tally: tally, entries: entries, last: list.last?["index"]?.integerValue ?? 0)
        case .ack, .nak:
            let hash = o["hash"]?.stringValue.flatMap { Base64URL.isDigest($0) ? $0 : nil }
            let refused = o["refused"]?.arrayValue.map { list in
                list.prefix(MessageLimits.maxIncomingBatch).compactMap { r -> ChitRefusal? in
                    guard let uuid = r["uuid"]?.stringValue else { return nil }
                    let reason = r["reason"]?.stringValue.map { String($0.prefix(Chit.maxReason)) } ?? "refused by the partner"
                    return ChitRefusal(uuid: uuid, reason: reason)
                }
            }
            body = .answer(tally: tally, index: o["index"]?.integerValue, hash: hash, refused: refused)
        case .invoice:
            guard let uuid = o["uuid"]?.stringValue, TallyCore.isUUID(uuid),
                let units = o["units"]?.integerValue, units > 0, units <= Amount.maxMilli,
                o["memo"].map({ $0.stringValue.map(Chit.memoFits) ?? false }) ?? true,
                (o["ref"]?.canonicalBytes.count ?? 0) <= Chit.maxRefBytes
            else { throw .malformed("invoice") }
            body = .invoice(
                InvoiceObject(
                    tally: tally, uuid: uuid, units: units, date: o["date"]?.stringValue,
                    by: o["by"]?.stringValue.flatMap(TallySide.init(rawValue:)),
                    memo: o["memo"]?.stringValue, ref: o["ref"], json: o))
        case .refuse:
            guard let uuid = o["uuid"]?.stringValue else { throw .malformed("refuse") }
            body = .refuse(tally: tally, uuid: uuid, reason: o["reason"]?.stringValue.map { String($0.prefix(Chit.maxReason)) } ?? "refused")
        }
    }

    public var json: JSONValue {
        let object: JSONValue
        switch body {
        case .tran(let tally, let chits): object = ["tally": .string(tally), "chits": .array(chits.map(\.json))]
        case .upd(let tally, let entries, _): object = ["tally": .string(tally), "entries": .array(entries.map(\.json))]
        case .answer(let tally, let index, let hash, let refused):
            var o: [String: JSONValue] = ["tally": .string(tally)]
            if let index { o["index"] = .integer(index) }
            if let hash { o["hash"] = .string(hash) }
            if let refused { o["refused"] = .array(refused.map(\.json)) }
            object = .object(o)
        case .invoice(let invoice): object = invoice.json
        case .refuse(let tally, let uuid, let reason): object = ["tally": .string(tally), "uuid": .string(uuid), "reason": .string(reason)]
        }
        var o: [String: JSONValue] = ["target": "chit", "action": .string(action.rawValue), "object": object]
        o["to"] = to?.json ?? .null
        o["from"] = from?.json ?? .null
        return .object(o)
    }

    /// A chit message on tally `t`, from our user to the partner.
    public static func on(_ t: TallyRecord, _ action: Action, _ body: Body) -> ChitMessage {
        ChitMessage(action: action, to: t.partner, from: t.core?.cert(t.side).chad, body: body)
    }
}
