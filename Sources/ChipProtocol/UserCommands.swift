import ChipModel

// The user port's command layer, pure part (protocol sections 10.5-10.6):
// a request frame parsed into a typed command with strict `args`, the error
// codes, the reply and event encoders, scopes, paging and idempotency rules.
// Nothing here touches the store or the network.

/// The error codes of 10.5, with their wire names. Clients localise by code.
public enum UserErrorCode: String, Sendable, CaseIterable {
    case badRequest = "bad_request"
    case unknownCmd = "unknown_cmd"
    /// Outside the device's scopes.
    case forbidden
    /// Also for another user's object.
    case notFound = "not_found"
    /// Wrong state, stale revision or hash.
    case state
    /// A tally limit or capacity.
    case limit
    /// A missing or bad signature.
    case signInvalid = "sign_invalid"
    /// The same uuid or `idem` with another request.
    case conflict
    case locked
    case rateLimited = "rate_limited"
    case tooLarge = "too_large"
    case `internal`
}

/// An error reply's `error` object: `{"code","message","detail"?}`.
public struct UserError: Error, Sendable, Equatable {
    public var code: UserErrorCode
    /// One line for people (the client localises by `code`).
    public var message: String
    public var detail: JSONValue?

    public init(_ code: UserErrorCode, _ message: String, detail: JSONValue? = nil) {
        self.code = code
        self.message = message
        self.detail = detail
    }

    static func bad(_ message: String) -> UserError { UserError(.badRequest, message) }

    public var json: JSONValue {
        var o: [String: JSONValue] = ["code": .string(code.rawValue), "message": .string(message)]
        if let detail { o["detail"] = detail }
        return .object(o)
    }
}

/// Replies and events as they go out (10.5).
public enum UserReply {
    /// `{"id","ok":true,"data"}`, with `"replayed":true` for a repeat answered from the cache.
    public static func ok(id: String, data: JSONValue, replayed: Bool = false) -> JSONValue {
        var o: [String: JSONValue] = ["id": .string(id), "ok": true, "data": data]
        if replayed { o["replayed"] = true }
        return .object(o)
    }

    /// `{"id","ok":false,"error":{…}}`; `id` is null when the request had no usable id.
    public static func error(id: String?, _ error: UserError) -> JSONValue {
        ["id": id.map(JSONValue.string) ?? .null, "ok": false, "error": error.json]
    }
}

/// Event topics (10.5), and `resync` (a `since` older than the kept window).
public enum UserTopic: String, Sendable, CaseIterable, Comparable {
    case tally, chit, invoice, lift, device, sign

    public static func < (a: UserTopic, b: UserTopic) -> Bool {
        allCases.firstIndex(of: a) ?? 0 < allCases.firstIndex(of: b) ?? 0
    }
}

/// What a `sign` event asks the user to sign.
public enum SignKind: String, Sendable, CaseIterable {
    case offer, accept, invoice
}

/// One event: `{"event":<topic>,"seq":<int>,"data":{…}}`.
public struct UserEvent: Sendable, Equatable {
    public var topic: UserTopic
    public var seq: Int64
    public var data: JSONValue

    public init(topic: UserTopic, seq: Int64, data: JSONValue) {
        self.topic = topic
        self.seq = seq
        self.data = data
    }

    public var json: JSONValue { ["event": .string(topic.rawValue), "seq": .integer(seq), "data": data] }

    /// `{"event":"resync","seq":<latest>}`: the device reloads.
    public static func resync(latest: Int64) -> JSONValue { ["event": "resync", "seq": .integer(latest)] }

    /// The data of a `sign` event: `{"kind","uuid","core","hash"}`.
    public static func signData(kind: SignKind, uuid: String, core: JSONValue, hash: String) -> JSONValue {
        ["kind": .string(kind.rawValue), "uuid": .string(uuid), "core": core, "hash": .string(hash)]
    }

    /// Whether a device with `scopes` may receive an event of `topic` (10.5):
    /// every event needs `read`; `device` also `devices`; `sign` also `tally`
    /// (offer, accept) or `pay` (invoice).
    public static func visible(topic: UserTopic, kind: SignKind? = nil, scopes: Set<UserScope>) -> Bool {
        guard scopes.contains(.read) else { return false }
        switch topic {
        case .device: return scopes.contains(.devices)
        case .sign:
            switch kind {
            case .offer?, .accept?: return scopes.contains(.tally)
            case .invoice?: return scopes.contains(.pay)
            case nil: return false
            }
        case .tally, .chit, .invoice, .lift: return true
        }
    }
}

/// Paging of list commands (10.5): `limit` 1-200 (default 50), an opaque
/// `after` cursor; `data` is `{"items":[…],"next":<cursor>|null}`.
public struct UserPage: Sendable, Equatable {
    public static let defaultLimit = 50
    public static let maxLimit = 200
    /// Longest cursor accepted (the site makes them; they are opaque to the device).
    public static let maxCursorBytes = 256

    public var limit: Int
    public var after: String?

    public init(limit: Int = defaultLimit, after: String? = nil) {
        self.limit = limit
        self.after = after
    }

    public static func data(items: [JSONValue], next: String?) -> JSONValue {
        ["items": .array(items), "next": next.map(JSONValue.string) ?? .null]
    }

    fileprivate func write(into o: inout [String: JSONValue]) {
        o["limit"] = .integer(Int64(limit))
        if let after { o["after"] = .string(after) }
    }

    fileprivate init(_ a: Args) throws(UserError) {
        let limit = try a.optInteger("limit", in: 1...Int64(Self.maxLimit)) ?? Int64(Self.defaultLimit)
        self.limit = Int(limit)
        self.after = try a.optString("after", maxBytes: Self.maxCursorBytes)
        if after?.isEmpty == true { throw .bad("after must not be empty") }
    }
}

/// Who may run a command (10.6's scope column).
public enum ScopeRule: Sendable, Equatable {
    /// Any device (`ping`).
    case any
    /// Every scope (`me.key.take`).
    case all
    case scope(UserScope)

    public func permits(_ scopes: Set<UserScope>) -> Bool {
        switch self {
        case .any: return true
        case .all: return scopes == Set(UserScope.allCases)
        case .scope(let s): return scopes.contains(s)
        }
    }
}

/// How a command is made idempotent (10.5).
public enum IdempotencyRule: Sendable, Equatable {
    /// Changes nothing: no key, and `idem` is refused.
    case none
    /// Keyed by (user, cmd, uuid[, revision]) of its signed object; `idem` is refused.
    case signedUUID
    /// Takes `idem` (uuid v4), kept 24 h with a hash of `cmd` and `args`.
    case idem
}

/// The key a repeat is recognised by, once a request is parsed.
public enum IdempotencyKey: Sendable, Equatable, Hashable {
    case signed(cmd: String, uuid: String, revision: Int64?)
    case idem(String)
}

/// A tally signature command's args (`tally.offer`, `tally.accept`).
public struct TallySignArgs: Sendable, Equatable {
    public var uuid: String
    public var revision: Int64
    public var hash: String
    /// Absent: the site signs (site custody only, 10.7).
    public var sign: String?
}

/// `tally.invite`'s args.
public struct TallyInviteArgs: Sendable, Equatable {
    public var side: TallySide
    /// milliCHIPs.
    public var limit: Int64
    public var memo: String?
    public var reuse: Bool
    /// Seconds the invitation stays valid (written as a duration, `"48h"`).
    public var expires: Int64?
    /// Binds the invitation to one requester.
    public var requester: CHAD?
}

/// The signed trading variables of `tally.trade` (9.2).
public struct TradeArgs: Sendable, Equatable {
    public static let rateRange: ClosedRange<Int64> = -1_000_000...1_000_000
    public var tally: String
    public var side: TallySide
    public var target: Int64
    public var bound: Int64
    public var reward: Int64
    public var clutch: Int64
    public var date: String

    public var json: JSONValue {
        [
            "tally": .string(tally), "side": .string(side.rawValue), "target": .integer(target), "bound": .integer(bound),
            "reward": .integer(reward), "clutch": .integer(clutch), "date": .string(date)
        ]
    }
}

/// The payor's signed authorisation of `lift.pay` (10.6).
public struct LiftAuth: Sendable, Equatable {
    public var uuid: String
    public var date: String
    public var to: (cuid: CUID, agent: AgentID)
    public var units: Int64
    public var memo: String?
    public var ref: JSONValue?

    public static func == (a: LiftAuth, b: LiftAuth) -> Bool { a.json == b.json }

    public var json: JSONValue {
        var o: [String: JSONValue] = [
            "uuid": .string(uuid), "date": .string(date), "units": .integer(units),
            "to": ["cuid": .string(to.cuid.value), "agent": .string(to.agent.description)]
        ]
        if let memo { o["memo"] = .string(memo) }
        if let ref { o["ref"] = ref }
        return .object(o)
    }
}

/// `me.signkey`'s key object: `{"agent","cuid","public":JWK,"date"}`.
public struct SignKeyArgs: Sendable, Equatable {
    public var agent: AgentID
    public var cuid: CUID
    public var publicKey: [UInt8]
    public var date: String

    public var json: JSONValue {
        [
            "agent": .string(agent.description), "cuid": .string(cuid.value), "public": UserKeyJWK.json(publicKey: publicKey),
            "date": .string(date)
        ]
    }
}

/// `me.key.take`'s confirmation proof: `{"act":"key.take","cuid","date","device"}`.
public struct KeyTakeProof: Sendable, Equatable {
    public var cuid: CUID
    public var date: String
    public var device: DeviceID

    public var json: JSONValue {
        ["act": "key.take", "cuid": .string(cuid.value), "date": .string(date), "device": .string(device.description)]
    }
}

/// Every command of 10.6, with its args checked.
public enum DeviceCommand: Sendable, Equatable {
    case ping
    case meShow
    case meSignKey(SignKeyArgs, sign: String)
    case meKeyTakeFetch
    case meKeyTakeConfirm(KeyTakeProof, sign: String)
    case tallyList(state: TallyState?, page: UserPage)
    case tallyShow(uuid: String)
    case tallyInvite(TallyInviteArgs)
    /// The invitation, given as its section 6 JSON or its link.
    case tallyRedeem(TallyTicket)
    case tallyOffer(TallySignArgs)
    case tallyAccept(TallySignArgs)
    case tallyRefuse(uuid: String, revision: Int64)
    case tallyTrade(TradeArgs, sign: String?)
    case chitList(tally: String?, state: String?, page: UserPage)
    /// The chit's section 8 core (checked as `Chit` checks it) and its signature.
    case chitPay(core: JSONValue, uuid: String, sign: String?)
    case chitRequest(tally: String, units: Int64, memo: String?, ref: JSONValue?)
    case chitRefuse(tally: String, uuid: String, reason: String?)
    case liftInvoice(units: Int64?, memo: String?, ref: JSONValue?)
    case liftPay(LiftAuth, sign: String?)
    case liftList(state: String?, page: UserPage)
    case liftShow(uuid: String)
    case deviceList
    case deviceRevoke(DeviceID)
    /// Scopes (nil: the device's own), lifetime in seconds (nil: 24 h).
    case deviceTicket(scopes: Set<UserScope>?, expires: Int64?)
    case eventsSubscribe(topics: Set<UserTopic>?, since: Int64?)
    case eventsUnsubscribe

    /// The `cmd` names of 10.6, in its order.
    public static let names: [String] = [
        "ping", "me.show", "me.signkey", "me.key.take", "tally.list", "tally.show", "tally.invite", "tally.redeem",
        "tally.offer", "tally.accept", "tally.refuse", "tally.trade", "chit.list", "chit.pay", "chit.request",
        "chit.refuse", "lift.invoice", "lift.pay", "lift.list", "lift.show", "device.list", "device.revoke",
        "device.ticket", "events.subscribe", "events.unsubscribe"
    ]

    /// Chit states a `chit.list` may filter on (chipsite's chit records).
    public static let chitStates: Set<String> = ["pending", "chained", "refused"]
    /// Lift states (9.9) a `lift.list` may filter on.
    public static let liftStates: Set<String> = ["draft", "seek", "exec", "call", "good", "void", "part", "pend"]
    /// Longest chit refusal reason (characters).
    public static let maxReason = Chit.maxReason
    /// Longest signature text accepted (a base64url Ed25519 signature is 86).
    public static let maxSignBytes = 128

    /// The wire name.
    public var name: String {
        switch self {
        case .ping: "ping"
        case .meShow: "me.show"
        case .meSignKey: "me.signkey"
        case .meKeyTakeFetch, .meKeyTakeConfirm: "me.key.take"
        case .tallyList: "tally.list"
        case .tallyShow: "tally.show"
        case .tallyInvite: "tally.invite"
        case .tallyRedeem: "tally.redeem"
        case .tallyOffer: "tally.offer"
        case .tallyAccept: "tally.accept"
        case .tallyRefuse: "tally.refuse"
        case .tallyTrade: "tally.trade"
        case .chitList: "chit.list"
        case .chitPay: "chit.pay"
        case .chitRequest: "chit.request"
        case .chitRefuse: "chit.refuse"
        case .liftInvoice: "lift.invoice"
        case .liftPay: "lift.pay"
        case .liftList: "lift.list"
        case .liftShow: "lift.show"
        case .deviceList: "device.list"
        case .deviceRevoke: "device.revoke"
        case .deviceTicket: "device.ticket"
        case .eventsSubscribe: "events.subscribe"
        case .eventsUnsubscribe: "events.unsubscribe"
        }
    }

    /// The scope a command needs (10.6).
    public var scope: ScopeRule {
        switch self {
        case .ping: .any
        case .meKeyTakeFetch, .meKeyTakeConfirm: .all
        case .meShow, .tallyList, .tallyShow, .chitList, .liftList, .liftShow, .eventsSubscribe, .eventsUnsubscribe: .scope(.read)
        case .meSignKey, .deviceList, .deviceRevoke, .deviceTicket: .scope(.devices)
        case .tallyInvite, .tallyRedeem, .tallyOffer, .tallyAccept, .tallyRefuse, .tallyTrade: .scope(.tally)
        case .chitPay, .chitRefuse, .liftPay: .scope(.pay)
        case .chitRequest, .liftInvoice: .scope(.request)
        }
    }

    /// How repeats are recognised (10.5).
    public var idempotency: IdempotencyRule {
        switch self {
        case .chitPay, .liftPay, .tallyOffer, .tallyAccept: .signedUUID
        case .meSignKey, .meKeyTakeFetch, .meKeyTakeConfirm, .tallyInvite, .tallyRedeem, .tallyRefuse, .tallyTrade,
            .chitRequest, .chitRefuse, .deviceRevoke, .deviceTicket:
            .idem
        case .ping, .meShow, .tallyList, .tallyShow, .chitList, .liftInvoice, .liftList, .liftShow, .deviceList,
            .eventsSubscribe, .eventsUnsubscribe:
            .none
        }
    }

    /// Whether a success may be kept for replay: replies carrying a secret
    /// are not (a repeat gets `conflict`, 10.5).
    public var replyIsCached: Bool {
        switch self {
        case .deviceTicket, .meKeyTakeFetch: false
        default: idempotency != .none
        }
    }

    /// Whether a locked user or a locked-down site gets `locked` (10.4):
    /// commands that sign, move value or change a tally. Reads, devices,
    /// events and the key's custody keep working.
    public var refusedWhenLocked: Bool {
        switch self {
        case .meSignKey, .tallyInvite, .tallyRedeem, .tallyOffer, .tallyAccept, .tallyRefuse, .tallyTrade, .chitPay,
            .chitRequest, .chitRefuse, .liftPay:
            true
        default: false
        }
    }

    /// The `sign` in the args, if the command takes one.
    public var signature: String? {
        switch self {
        case .meSignKey(_, let s), .meKeyTakeConfirm(_, let s): s
        case .tallyOffer(let a), .tallyAccept(let a): a.sign
        case .tallyTrade(_, let s), .chitPay(_, _, let s), .liftPay(_, let s): s
        default: nil
        }
    }

    /// Whether the args take a `sign` (10.7): for a `device` user it must be there.
    public var takesSign: Bool {
        switch self {
        case .meSignKey, .meKeyTakeConfirm, .tallyOffer, .tallyAccept, .tallyTrade, .chitPay, .liftPay: true
        default: false
        }
    }

    /// The checks that need no store, in order: the scope (`forbidden`), a
    /// lock (`locked`), a `device` user's missing signature (`sign_invalid`).
    /// Nil: the command may go on to the store.
    public func precheck(scopes: Set<UserScope>, locked: Bool, custody: UserCustody) -> UserError? {
        guard scope.permits(scopes) else { return UserError(.forbidden, "this device may not \(name)") }
        if locked, refusedWhenLocked { return UserError(.locked, "the account or the site is locked") }
        if custody == .device, takesSign, signature == nil { return UserError(.signInvalid, "\(name) needs the user's signature") }
        return nil
    }

    /// The scopes a ticket minted by `device.ticket` gets: those asked (all
    /// of them held by the minting device), or the device's own (10.2, 10.5).
    public static func mintedScopes(asked: Set<UserScope>?, holding: Set<UserScope>) -> Result<Set<UserScope>, UserError> {
        guard let asked else { return .success(holding) }
        guard asked.isSubset(of: holding) else { return .failure(UserError(.forbidden, "a device mints tickets only for scopes it has")) }
        return .success(asked)
    }

    /// The args as they go on the wire: parsing them gives this command back.
    public var args: JSONValue {
        var o: [String: JSONValue] = [:]
        func put(_ k: String, _ v: String?) { if let v { o[k] = .string(v) } }
        switch self {
        case .ping, .meShow, .deviceList, .eventsUnsubscribe: break
        case .meSignKey(let key, let sign): o["key"] = key.json; o["sign"] = .string(sign)
        case .meKeyTakeFetch: o["step"] = "fetch"
        case .meKeyTakeConfirm(let proof, let sign): o["step"] = "confirm"; o["proof"] = proof.json; o["sign"] = .string(sign)
        case .tallyList(let state, let page): put("state", state?.rawValue); page.write(into: &o)
        case .tallyShow(let uuid), .liftShow(let uuid): o["uuid"] = .string(uuid)
        case .tallyInvite(let a):
            o["side"] = .string(a.side.rawValue); o["limit"] = .integer(a.limit); put("memo", a.memo)
            if a.reuse { o["reuse"] = true }
            if let e = a.expires { o["expires"] = .string("\(e)s") }
            if let r = a.requester { o["for"] = r.json }
        case .tallyRedeem(let ticket): o["invite"] = ticket.json
        case .tallyOffer(let a), .tallyAccept(let a):
            o["uuid"] = .string(a.uuid); o["revision"] = .integer(a.revision); o["hash"] = .string(a.hash); put("sign", a.sign)
        case .tallyRefuse(let uuid, let revision): o["uuid"] = .string(uuid); o["revision"] = .integer(revision)
        case .tallyTrade(let t, let sign): o["trade"] = t.json; put("sign", sign)
        case .chitList(let tally, let state, let page): put("tally", tally); put("state", state); page.write(into: &o)
        case .chitPay(let core, _, let sign): o["chit"] = core; put("sign", sign)
        case .chitRequest(let tally, let units, let memo, let ref):
            o["tally"] = .string(tally); o["units"] = .integer(units); put("memo", memo)
            if let ref { o["ref"] = ref }
        case .chitRefuse(let tally, let uuid, let reason): o["tally"] = .string(tally); o["uuid"] = .string(uuid); put("reason", reason)
        case .liftInvoice(let units, let memo, let ref):
            if let units { o["units"] = .integer(units) }
            put("memo", memo)
            if let ref { o["ref"] = ref }
        case .liftPay(let auth, let sign): o["auth"] = auth.json; put("sign", sign)
        case .liftList(let state, let page): put("state", state); page.write(into: &o)
        case .deviceRevoke(let d): o["device"] = .string(d.description)
        case .deviceTicket(let scopes, let expires):
            if let scopes { o["scopes"] = UserScope.json(scopes) }
            if let expires { o["expires"] = .string("\(expires)s") }
        case .eventsSubscribe(let topics, let since):
            if let topics { o["topics"] = .array(topics.sorted().map { .string($0.rawValue) }) }
            if let since { o["since"] = .integer(since) }
        }
        return .object(o)
    }

    /// The key of a signed-uuid command (nil for the others).
    public var signedKey: IdempotencyKey? {
        switch self {
        case .chitPay(_, let uuid, _): .signed(cmd: name, uuid: uuid, revision: nil)
        case .liftPay(let auth, _): .signed(cmd: name, uuid: auth.uuid, revision: nil)
        case .tallyOffer(let a), .tallyAccept(let a): .signed(cmd: name, uuid: a.uuid, revision: a.revision)
        default: nil
        }
    }

    // MARK: Parsing

    /// Parses `args` of `cmd` (absent args are `{}`). Unknown `cmd`:
    /// `unknown_cmd`; unknown fields, wrong types, values out of range: `bad_request`.
    public init(cmd: String, args members: [String: JSONValue]) throws(UserError) {
        func a(_ allowed: Set<String>) throws(UserError) -> Args { try Args(cmd, members, allowed: allowed) }
        let pageFields: Set<String> = ["limit", "after"]
        switch cmd {
        case "ping": _ = try a([]); self = .ping
        case "me.show": _ = try a([]); self = .meShow
        case "me.signkey":
            let x = try a(["key", "sign"])
            let k = try Args("me.signkey key", try x.object("key"), allowed: ["agent", "cuid", "public", "date"])
            let jwk = try k.object("public")
            guard Set(jwk.keys) == ["kty", "crv", "x"] else { throw .bad("key.public must be an Ed25519 JWK {kty,crv,x}") }
            let publicKey: [UInt8]
            do throws(ModelError) { publicKey = try UserKeyJWK.publicKey(from: .object(jwk)) } catch {
                throw .bad("key.public must be an Ed25519 JWK")
            }
            self = .meSignKey(
                SignKeyArgs(
                    agent: try k.agent("agent"), cuid: try k.cuid("cuid"), publicKey: publicKey,
                    date: try k.timestamp("date")),
                sign: try x.sign("sign"))
        case "me.key.take":
            let step = try Args(cmd, members, allowed: ["step", "proof", "sign"]).string("step", maxBytes: 16)
            switch step {
            case "fetch": _ = try a(["step"]); self = .meKeyTakeFetch
            case "confirm":
                let x = try a(["step", "proof", "sign"])
                let p = try Args("me.key.take proof", try x.object("proof"), allowed: ["act", "cuid", "date", "device"])
                guard try p.string("act", maxBytes: 16) == "key.take" else { throw .bad("proof.act must be key.take") }
                let device: DeviceID
                let deviceText = try p.string("device", maxBytes: 64)
                do throws(ModelError) { device = try DeviceID(deviceText) } catch { throw .bad(error.description) }
                self = .meKeyTakeConfirm(
                    KeyTakeProof(cuid: try p.cuid("cuid"), date: try p.timestamp("date"), device: device),
                    sign: try x.sign("sign"))
            default: throw .bad("step must be fetch or confirm")
            }
        case "tally.list":
            let x = try a(pageFields.union(["state"]))
            var state: TallyState?
            if let s = try x.optString("state", maxBytes: 16) {
                guard let t = TallyState(rawValue: s) else { throw .bad("unknown tally state") }
                state = t
            }
            self = .tallyList(state: state, page: try UserPage(x))
        case "tally.show": self = .tallyShow(uuid: try a(["uuid"]).uuid("uuid"))
        case "tally.invite":
            let x = try a(["side", "limit", "memo", "reuse", "expires", "for"])
            var expires: Int64?
            if let e = try x.optString("expires", maxBytes: 16) {
                do throws(ModelError) {
                    let seconds = try DurationText.seconds(e)
                    try TallyTicket.validate(lifetime: seconds, what: "expires")
                    expires = seconds
                } catch { throw .bad(error.description) }
            }
            var requester: CHAD?
            if let f = x.members["for"] {
                do throws(ModelError) {
                    if let text = f.stringValue { requester = try CHAD(text: text) } else { requester = try CHAD(json: f) }
                } catch { throw .bad("for: \(error.description)") }
            }
            let memo = try x.optString("memo", maxBytes: TallyCore.maxMemo * 4)
            if let memo, memo.count > TallyCore.maxMemo { throw .bad("memo is too long") }
            self = .tallyInvite(
                TallyInviteArgs(
                    side: try x.side("side"), limit: try x.integer("limit", in: 0...Amount.maxMilli),
                    memo: memo, reuse: try x.optBool("reuse") ?? false, expires: expires,
                    requester: requester))
        case "tally.redeem":
            let x = try a(["invite"])
            guard let invite = x.members["invite"] else { throw .bad("invite is missing") }
            guard let text = invite.stringValue ?? (invite.objectValue != nil ? invite.canonicalString : nil) else {
                throw .bad("invite must be the invitation's JSON or its link")
            }
            let ticket: TallyTicket
            do throws(ModelError) { ticket = try TallyTicket(parsing: text) } catch { throw .bad("invite: \(error.description)") }
            self = .tallyRedeem(ticket)
        case "tally.offer", "tally.accept":
            let x = try a(["uuid", "revision", "hash", "sign"])
            let hash = try x.string("hash", maxBytes: 64)
            guard Base64URL.isDigest(hash) else { throw .bad("hash must be a base64url SHA-256") }
            let args = TallySignArgs(
                uuid: try x.uuid("uuid"), revision: try x.integer("revision", in: 1...TallyCore.maxRevision),
                hash: hash, sign: try x.optSign("sign"))
            self = cmd == "tally.offer" ? .tallyOffer(args) : .tallyAccept(args)
        case "tally.refuse":
            let x = try a(["uuid", "revision"])
            self = .tallyRefuse(uuid: try x.uuid("uuid"), revision: try x.integer("revision", in: 1...TallyCore.maxRevision))
        case "tally.trade":
            let x = try a(["trade", "sign"])
            let t = try Args(
                "tally.trade trade", try x.object("trade"),
                allowed: ["tally", "side", "target", "bound", "reward", "clutch", "date"])
            let trade = TradeArgs(
                tally: try t.uuid("tally"), side: try t.side("side"), target: try t.integer("target", in: 0...Amount.maxMilli),
                bound: try t.integer("bound", in: 0...Amount.maxMilli), reward: try t.integer("reward", in: TradeArgs.rateRange),
                clutch: try t.integer("clutch", in: TradeArgs.rateRange), date: try t.timestamp("date"))
            guard trade.target <= trade.bound else { throw .bad("trade.target must be at most trade.bound") }
            guard trade.reward + trade.clutch >= 0 else { throw .bad("trade.reward + trade.clutch must be at least 0") }
            self = .tallyTrade(trade, sign: try x.optSign("sign"))
        case "chit.list":
            let x = try a(pageFields.union(["tally", "state"]))
            let state = try x.optString("state", maxBytes: 16)
            if let state, !Self.chitStates.contains(state) { throw .bad("unknown chit state") }
            self = .chitList(tally: try x.optUUID("tally"), state: state, page: try UserPage(x))
        case "chit.pay":
            let x = try a(["chit", "sign"])
            let core = JSONValue.object(try x.object("chit"))
            let sign = try x.optSign("sign")
            let chit: Chit
            do throws(ModelError) { chit = try Chit(core: core, sign: sign ?? "") } catch { throw .bad("chit: \(error.description)") }
            self = .chitPay(core: core, uuid: chit.uuid, sign: sign)
        case "chit.request":
            let x = try a(["tally", "units", "memo", "ref"])
            self = .chitRequest(
                tally: try x.uuid("tally"), units: try x.integer("units", in: 1...Amount.maxMilli),
                memo: try x.optMemo("memo"), ref: try x.optRef("ref"))
        case "chit.refuse":
            let x = try a(["tally", "uuid", "reason"])
            let reason = try x.optString("reason", maxBytes: Self.maxReason * 4)
            if let reason, reason.count > Self.maxReason { throw .bad("reason is too long") }
            self = .chitRefuse(tally: try x.uuid("tally"), uuid: try x.uuid("uuid"), reason: reason)
        case "lift.invoice":
            let x = try a(["units", "memo", "ref"])
            self = .liftInvoice(units: try x.optInteger("units", in: 1...Amount.maxMilli), memo: try x.optMemo("memo"), ref: try x.optRef("ref"))
        case "lift.pay":
            let x = try a(["auth", "sign"])
            let au = try Args("lift.pay auth", try x.object("auth"), allowed: ["uuid", "date", "to", "units", "memo", "ref"])
            let to = try Args("lift.pay auth.to", try au.object("to"), allowed: ["cuid", "agent"])
            let auth = LiftAuth(
                uuid: try au.uuid("uuid"), date: try au.timestamp("date"), to: (try to.cuid("cuid"), try to.agent("agent")),
                units: try au.integer("units", in: 1...Amount.maxMilli), memo: try au.optMemo("memo"), ref: try au.optRef("ref"))
            self = .liftPay(auth, sign: try x.optSign("sign"))
        case "lift.list":
            let x = try a(pageFields.union(["state"]))
            let state = try x.optString("state", maxBytes: 16)
            if let state, !Self.liftStates.contains(state) { throw .bad("unknown lift state") }
            self = .liftList(state: state, page: try UserPage(x))
        case "lift.show": self = .liftShow(uuid: try a(["uuid"]).uuid("uuid"))
        case "device.list": _ = try a([]); self = .deviceList
        case "device.revoke":
            let text = try a(["device"]).string("device", maxBytes: 64)
            let device: DeviceID
            do throws(ModelError) { device = try DeviceID(text) } catch { throw .bad(error.description) }
            self = .deviceRevoke(device)
        case "device.ticket":
            let x = try a(["scopes", "expires"])
            var scopes: Set<UserScope>?
            if let list = try x.optArray("scopes") {
                let names = list.compactMap(\.stringValue)
                guard names.count == list.count else { throw .bad("scopes must be strings") }
                do throws(ModelError) { scopes = try UserScope.parse(names) } catch { throw .bad(error.description) }
            }
            var expires: Int64?
            if let e = try x.optString("expires", maxBytes: 16) {
                do throws(ModelError) {
                    let seconds = try DurationText.seconds(e)
                    try UserTicket.validate(lifetime: seconds)
                    expires = seconds
                } catch { throw .bad(error.description) }
            }
            self = .deviceTicket(scopes: scopes, expires: expires)
        case "events.subscribe":
            let x = try a(["topics", "since"])
            var topics: Set<UserTopic>?
            if let list = try x.optArray("topics") {
                var set = Set<UserTopic>()
                for item in list {
                    guard let t = item.stringValue.flatMap(UserTopic.init(rawValue:)) else { throw .bad("unknown topic") }
                    guard set.insert(t).inserted else { throw .bad("topic given twice") }
                }
                guard !set.isEmpty else { throw .bad("topics must not be empty") }
                topics = set
            }
            self = .eventsSubscribe(topics: topics, since: try x.optInteger("since", in: 0...JSONLimits.maxSafeInteger))
        case "events.unsubscribe": _ = try a([]); self = .eventsUnsubscribe
        default:
            throw UserError(.unknownCmd, "unknown command \(Printable.quote(cmd))")
        }
    }
}

/// What a request that cannot be answered normally comes to.
public enum UserRequestFailure: Error, Sendable, Equatable {
    /// Not one JSON object (10.5): the session closes. Debug-log only.
    case closeSession(String)
    /// Answer with this error (`id` nil when the request had no usable id).
    case reply(id: String?, UserError)

    /// The error reply to send, if any.
    public var reply: JSONValue? {
        guard case .reply(let id, let error) = self else { return nil }
        return UserReply.error(id: id, error)
    }
}

/// A request frame `{"id","cmd","args"?,"idem"?}` (10.5).
public struct UserRequest: Sendable, Equatable {
    public static let fields: Set<String> = ["id", "cmd", "args", "idem"]
    /// An id is 1-64 characters (and at most 256 bytes).
    public static let maxIDLength = 64
    static let maxIDBytes = 256

    public let id: String
    public let command: DeviceCommand
    /// Only for commands whose rule is `.idem`.
    public let idem: String?

    public init(id: String, command: DeviceCommand, idem: String? = nil) throws(UserError) {
        try Self.check(id: id, command: command, idem: idem)
        self.id = id
        self.command = command
        self.idem = idem
    }

    static func check(id: String, command: DeviceCommand, idem: String?) throws(UserError) {
        guard validID(id) else { throw .bad("id must be a string of 1-64 characters") }
        if let idem {
            guard isUUIDv4(idem) else { throw .bad("idem must be a lowercase uuid v4") }
            guard command.idempotency == .idem else { throw .bad("\(command.name) takes no idem") }
        }
    }

    /// Reads a request from one `T` frame's plaintext.
    public init(parsing bytes: [UInt8]) throws(UserRequestFailure) {
        let message: UserMessage
        do throws(ModelError) { message = try UserMessage(parsing: bytes) } catch { throw .closeSession(error.description) }
        try self.init(message: message)
    }

    /// Reads a request the channel delivered.
    public init(message: UserMessage) throws(UserRequestFailure) {
        guard let o = message.json.objectValue else { throw .closeSession("a request must be a JSON object") }
        guard let id = o["id"]?.stringValue, Self.validID(id) else {
            throw .reply(id: nil, .bad("id must be a string of 1-64 characters"))
        }
        let parts: (DeviceCommand, String?)
        do throws(UserError) { parts = try Self.parts(o, id: id, hasBadNumber: message.hasBadNumber) } catch {
            throw .reply(id: id, error)
        }
        self.id = id
        self.command = parts.0
        self.idem = parts.1
    }

    static func parts(_ o: [String: JSONValue], id: String, hasBadNumber: Bool) throws(UserError) -> (DeviceCommand, String?) {
        if let unknown = o.keys.sorted().first(where: { !Self.fields.contains($0) }) {
            throw .bad("unknown field \(Printable.quote(unknown)) in the request")
        }
        if hasBadNumber { throw .bad("numbers are integers within ±(2^53 - 1)") }
        guard let cmd = o["cmd"]?.stringValue else { throw .bad("cmd must be a string") }
        let args: [String: JSONValue]
        switch o["args"] {
        case nil: args = [:]
        case .object(let members)?: args = members
        default: throw .bad("args must be an object")
        }
        var idem: String?
        if let i = o["idem"] {
            guard let text = i.stringValue else { throw .bad("idem must be a lowercase uuid v4") }
            idem = text
        }
        let command = try DeviceCommand(cmd: cmd, args: args)
        try check(id: id, command: command, idem: idem)
        return (command, idem)
    }

    /// The request as it goes on the wire (what the reference client sends).
    public var json: JSONValue {
        var o: [String: JSONValue] = ["id": .string(id), "cmd": .string(command.name), "args": command.args]
        if let idem { o["idem"] = .string(idem) }
        return .object(o)
    }

    /// The key a repeat is recognised by, if the command has one.
    public var idempotencyKey: IdempotencyKey? {
        if let key = command.signedKey { return key }
        return idem.map(IdempotencyKey.idem)
    }

    /// What an `idem` key is stored with (10.5): base64url SHA-256 of the
    /// canonical `{"cmd","args"}`, so a different request under the key is `conflict`.
    public var fingerprint: String {
        let o: JSONValue = ["cmd": .string(command.name), "args": command.args]
        return Base64URL.encode(Crypto.sha256(o.canonicalBytes))
    }

    static func validID(_ id: String) -> Bool {
        (1...maxIDLength).contains(id.count) && id.utf8.count <= maxIDBytes
    }

    /// A lowercase uuid of version 4 (variant 10xx).
    public static func isUUIDv4(_ s: String) -> Bool {
        guard TallyCore.isUUID(s) else { return false }
        let b = Array(s.utf8)
        return b[14] == UInt8(ascii: "4") && [UInt8(ascii: "8"), UInt8(ascii: "9"), UInt8(ascii: "a"), UInt8(ascii: "b")].contains(b[19])
    }
}

/// Reads one args object: refuses unknown fields up front, then one typed
/// getter per field (a wrong type or a value out of range is `bad_request`).
struct Args {
    let what: String
    let members: [String: JSONValue]

    init(_ what: String, _ members: [String: JSONValue], allowed: Set<String>) throws(UserError) {
        if let unknown = members.keys.sorted().first(where: { !allowed.contains($0) }) {
            throw .bad("unknown field \(Printable.quote(unknown)) in \(what) args")
        }
        self.what = what
        self.members = members
    }

    func missing(_ k: String) -> UserError { .bad("\(k) is missing") }
    func wrong(_ k: String, _ type: String) -> UserError { .bad("\(k) must be \(type)") }

    func optString(_ k: String, maxBytes: Int) throws(UserError) -> String? {
        guard let v = members[k] else { return nil }
        guard let s = v.stringValue else { throw wrong(k, "a string") }
        guard s.utf8.count <= maxBytes else { throw .bad("\(k) is too long") }
        return s
    }

    func string(_ k: String, maxBytes: Int) throws(UserError) -> String {
        guard let s = try optString(k, maxBytes: maxBytes) else { throw missing(k) }
        return s
    }

    func optInteger(_ k: String, in range: ClosedRange<Int64>) throws(UserError) -> Int64? {
        guard let v = members[k] else { return nil }
        guard let i = v.integerValue else { throw wrong(k, "an integer") }
        guard range.contains(i) else { throw .bad("\(k) must be \(range.lowerBound) to \(range.upperBound)") }
        return i
    }

    func integer(_ k: String, in range: ClosedRange<Int64>) throws(UserError) -> Int64 {
        guard let i = try optInteger(k, in: range) else { throw missing(k) }
        return i
    }

    func optBool(_ k: String) throws(UserError) -> Bool? {
        guard let v = members[k] else { return nil }
        guard let b = v.boolValue else { throw wrong(k, "true or false") }
        return b
    }

    func optArray(_ k: String) throws(UserError) -> [JSONValue]? {
        guard let v = members[k] else { return nil }
        guard let a = v.arrayValue else { throw wrong(k, "an array") }
        return a
    }

    func object(_ k: String) throws(UserError) -> [String: JSONValue] {
        guard let v = members[k] else { throw missing(k) }
        guard let o = v.objectValue else { throw wrong(k, "an object") }
        return o
    }

    func optUUID(_ k: String) throws(UserError) -> String? {
        guard let s = try optString(k, maxBytes: 36) else { return nil }
        guard TallyCore.isUUID(s) else { throw wrong(k, "a lowercase uuid") }
        return s
    }

    func uuid(_ k: String) throws(UserError) -> String {
        guard let s = try optUUID(k) else { throw missing(k) }
        return s
    }

    func timestamp(_ k: String) throws(UserError) -> String {
        let s = try string(k, maxBytes: 24)
        guard Timestamp.parse(s) != nil else { throw wrong(k, "a timestamp like 2026-11-24T21:00:00.000Z") }
        return s
    }

    func side(_ k: String) throws(UserError) -> TallySide {
        guard let s = TallySide(rawValue: try string(k, maxBytes: 8)) else { throw wrong(k, "stock or foil") }
        return s
    }

    func cuid(_ k: String) throws(UserError) -> CUID {
        let text = try string(k, maxBytes: CUID.maxLength)
        do throws(ModelError) { return try CUID(text) } catch { throw .bad("\(k): \(error.description)") }
    }

    func agent(_ k: String) throws(UserError) -> AgentID {
        let text = try string(k, maxBytes: AgentID.textLength)
        do throws(ModelError) { return try AgentID(text) } catch { throw .bad("\(k): \(error.description)") }
    }

    func optSign(_ k: String) throws(UserError) -> String? {
        guard let s = try optString(k, maxBytes: DeviceCommand.maxSignBytes) else { return nil }
        guard !s.isEmpty else { throw .bad("\(k) must not be empty") }
        return s
    }

    func sign(_ k: String) throws(UserError) -> String {
        guard let s = try optSign(k) else { throw missing(k) }
        return s
    }

    func optMemo(_ k: String) throws(UserError) -> String? {
        guard let m = try optString(k, maxBytes: Chit.maxMemoBytes) else { return nil }
        guard Chit.memoFits(m) else { throw .bad("\(k) is too long") }
        return m
    }

    func optRef(_ k: String) throws(UserError) -> JSONValue? {
        guard let r = members[k] else { return nil }
        guard r.canonicalBytes.count <= Chit.maxRefBytes else { throw .bad("\(k) is too large") }
        return r
    }
}
