import ChipModel

// The `route` (9.4) and `lift` (9.6) messages, parsed once from the envelope
// `{"target","action","to","from","object"}` with strict key sets.

// MARK: - Route discovery (9.4)

/// How a query names its end: circular, the closing hop's nonce; linear, the payee.
public enum RouteFind: Sendable, Equatable {
    case hop(String)
    case payee(LiftFind)

    public var json: JSONValue {
        switch self {
        case .hop(let n): ["hop": .string(n)]
        case .payee(let f): f.json
        }
    }
}

/// A route query. `ttl`, `wait` and the length of `path` are read as any
/// non-negative integer and list: out of 9.9's ranges they are answered
/// `none`/`busy` (9.4 step 1), not dropped; `limitProblem` says which.
public struct RouteQuery: Sendable, Equatable {
    public var qid: String
    public var kind: LiftKind
    public var units: Int64
    public var min: Int64
    public var ttl: Int64
    public var wait: Int64
    public var referee: LiftSite
    public var find: RouteFind
    public var path: [String]

    public init(
        qid: String, kind: LiftKind, units: Int64, min: Int64, ttl: Int64, wait: Int64, referee: LiftSite, find: RouteFind,
        path: [String]
    ) {
        self.qid = qid; self.kind = kind; self.units = units; self.min = min; self.ttl = ttl; self.wait = wait
        self.referee = referee; self.find = find; self.path = path
    }

    public static let keys: Set<String> = ["qid", "kind", "units", "min", "ttl", "wait", "referee", "find", "path"]
    /// A sanity bound on what is read at all (a `T` message holds 65519 bytes anyway).
    static let maxReadPath = 64

    public init(object: JSONValue?) throws(LiftError) {
        let o = try LiftField.object(object, "route query", keys: Self.keys)
        qid = try LiftField.base64(o, "qid", bytes: HopNonce.qidBytes)
        guard let k = o["kind"]?.stringValue, let kind = LiftKind(rawValue: k) else { throw .malformed("kind must be circ or line") }
        self.kind = kind
        units = try LiftField.units(o)
        min = try LiftField.integer(o, "min")
        guard min >= 1, min <= units else { throw .outOfRange("min must be 1 to units") }
        ttl = try LiftField.integer(o, "ttl")
        wait = try LiftField.integer(o, "wait")
        guard ttl >= 0, wait >= 0 else { throw .outOfRange("ttl and wait are not negative") }
        do { referee = try LiftSite(json: o["referee"] ?? .null) } catch { throw .malformed("referee: \(error)") }
        let f = o["find"]?.objectValue ?? [:]
        switch kind {
        case .circ:
            let fo = try LiftField.object(o["find"], "find", keys: ["hop"])
            find = .hop(try LiftField.nonce(fo["hop"], "find.hop"))
        case .line:
            guard f["hop"] == nil else { throw .malformed("a linear query's find names the payee") }
            find = .payee(try LiftFind(json: o["find"]))
        }
        path = try LiftField.path(o, max: Self.maxReadPath)
    }

    /// What puts the query outside 9.9's ranges, or nil.
    public var limitProblem: String? {
        let maxTTL = kind == .line ? LiftLimits.maxTTLLine : LiftLimits.maxTTLCirc
        if ttl > maxTTL { return "ttl over \(maxTTL)" }
        if wait > LiftLimits.maxWaitMs { return "wait over \(LiftLimits.maxWaitMs) ms" }
        if path.count > LiftLimits.maxPath { return "path over \(LiftLimits.maxPath) entries" }
        return nil
    }

    public var json: JSONValue {
        [
            "qid": .string(qid), "kind": .string(kind.rawValue), "units": .integer(units), "min": .integer(min), "ttl": .integer(ttl),
            "wait": .integer(wait), "referee": referee.json, "find": find.json, "path": .array(path.map(JSONValue.string))
        ]
    }
}

/// A route a `good` answer offers: the nonces and the most it carries.
public struct FoundRoute: Sendable, Equatable {
    public var path: [String]
    public var max: Int64
    public init(path: [String], max: Int64) {
        self.path = path
        self.max = max
    }
    public var json: JSONValue { ["path": .array(path.map(JSONValue.string)), "max": .integer(max)] }
}

/// Why a site found no route (`none`).
public enum RouteNoneReason: String, Sendable, CaseIterable {
    case dup, ttl, time, referee, busy
    case noRoute = "none"
}

/// `route` messages: `query`, `good`, `none`. To and from are the hop's payee
/// and payer users (a query) or the other way round (an answer).
public struct RouteMessage: Sendable, Equatable {
    public enum Action: String, Sendable, CaseIterable {
        case query, good
        case noRoute = "none"
    }

    public enum Body: Sendable, Equatable {
        case query(RouteQuery)
        case good(qid: String, routes: [FoundRoute])
        case noRoute(qid: String, reason: RouteNoneReason)
    }

    public var to: CHAD
    public var from: CHAD
    public var body: Body

    public init(to: CHAD, from: CHAD, body: Body) {
        self.to = to
        self.from = from
        self.body = body
    }

    public var action: Action {
        switch body {
        case .query: .query
        case .good: .good
        case .noRoute: .noRoute
        }
    }

    public var qid: String {
        switch body {
        case .query(let q): q.qid
        case .good(let qid, _), .noRoute(let qid, _): qid
        }
    }

    public init(json: JSONValue) throws(MessageError) {
        do { try self.init(strict: json) } catch { throw .malformed("route: \(error)") }
    }

    init(strict json: JSONValue) throws(LiftError) {
        let env = try LiftField.object(json, "route message", keys: ["target", "action", "to", "from", "object"])
        guard env["target"] == "route" else { throw .malformed("target") }
        guard let a = env["action"]?.stringValue, let action = Action(rawValue: a) else { throw .malformed("unknown route action") }
        guard case .user(let to) = try LiftParty(json: env["to"] ?? .null), case .user(let from) = try LiftParty(json: env["from"] ?? .null)
        else { throw .malformed("route to and from are users' CHADs") }
        self.to = to
        self.from = from
        switch action {
        case .query: body = .query(try RouteQuery(object: env["object"]))
        case .good:
            let o = try LiftField.object(env["object"], "route good", keys: ["qid", "routes"])
            let qid = try LiftField.base64(o, "qid", bytes: HopNonce.qidBytes)
            guard let list = o["routes"]?.arrayValue, (1...LiftLimits.maxRoutes).contains(list.count) else {
                throw .outOfRange("good holds 1 to \(LiftLimits.maxRoutes) routes")
            }
            var routes = [FoundRoute]()
            for r in list {
                let ro = try LiftField.object(r, "route", keys: ["path", "max"])
                routes.append(FoundRoute(path: try LiftField.path(ro), max: try LiftField.units(ro, "max")))
            }
            body = .good(qid: qid, routes: routes)
        case .noRoute:
            let o = try LiftField.object(env["object"], "route none", keys: ["qid", "reason"])
            let qid = try LiftField.base64(o, "qid", bytes: HopNonce.qidBytes)
            guard let r = o["reason"]?.stringValue, let reason = RouteNoneReason(rawValue: r) else { throw .malformed("none reason") }
            body = .noRoute(qid: qid, reason: reason)
        }
    }

    public var json: JSONValue {
        let object: JSONValue
        switch body {
        case .query(let q): object = q.json
        case .good(let qid, let routes): object = ["qid": .string(qid), "routes": .array(routes.map(\.json))]
        case .noRoute(let qid, let reason): object = ["qid": .string(qid), "reason": .string(reason.rawValue)]
        }
        return ["target": "route", "action": .string(action.rawValue), "to": to.json, "from": from.json, "object": object]
    }
}

// MARK: - Lift messages (9.6)

/// What an `ack` acknowledges.
public enum LiftAckOf: String, Sendable, CaseIterable {
    case promise, refuse, arrive, good, void
}

/// Why a site refused a promise (9.6 step 2).
public enum LiftRefusal: String, Sendable, CaseIterable {
    case invalid, late, capacity, referee, time, route, busy
}

/// `lift` messages. Between neighbours `to`/`from` are the hop's users and
/// the object holds `hop`; to and from a referee they are site addresses
/// (`from` may be `{"agent"}` alone) and there is no `hop`.
public struct LiftMessage: Sendable, Equatable {
    public enum Action: String, Sendable, CaseIterable {
        case promise, ack, refuse, arrive, commit, abort, good, void, status, query, pending
    }

    public enum Body: Sendable, Equatable {
        case promise(header: LiftHeader, hop: Int, chit: LiftChit)
        /// A promise whose H and hop can be read but whose header or chit
        /// fails 9.3/9.5: answered `refuse` with `invalid`, nothing stored.
        case invalidPromise(lift: String, hop: Int, why: String, object: JSONValue)
        case ack(lift: String, hop: Int, of: LiftAckOf)
        case refuse(lift: String, hop: Int, reason: LiftRefusal)
        case arrive(lift: String, hop: Int, sign: String)
        /// `commit` or `abort` (never `arrive`), signed with the origin key.
        case call(LiftAct, header: LiftHeader, sign: String)
        /// `good` or `void`: R's signed decision, with `hop` between neighbours.
        case decision(SignedDecision, hop: Int?)
        case status(lift: String, hop: Int)
        case query(header: LiftHeader)
        case pending(lift: String, hop: Int?, retry: Int64)
    }

    public var to: LiftParty
    public var from: LiftParty
    public var body: Body

    public init(to: LiftParty, from: LiftParty, body: Body) {
        self.to = to
        self.from = from
        self.body = body
    }

    public var action: Action {
        switch body {
        case .promise, .invalidPromise: .promise
        case .ack: .ack
        case .refuse: .refuse
        case .arrive: .arrive
        case .call(let act, _, _): act == .abort ? .abort : .commit
        case .decision(let d, _): d.result == .good ? .good : .void
        case .status: .status
        case .query: .query
        case .pending: .pending
        }
    }

    /// H.
    public var lift: String {
        switch body {
        case .promise(let h, _, _), .call(_, let h, _), .query(let h): h.hash
        case .invalidPromise(let l, _, _, _), .ack(let l, _, _), .refuse(let l, _, _), .arrive(let l, _, _), .status(let l, _),
            .pending(let l, _, _):
            l
        case .decision(let d, _): d.lift
        }
    }

    /// The hop the message travels on, between neighbours.
    public var hop: Int? {
        switch body {
        case .promise(_, let h, _), .invalidPromise(_, let h, _, _), .ack(_, let h, _), .refuse(_, let h, _), .arrive(_, let h, _),
            .status(_, let h):
            h
        case .decision(_, let h), .pending(_, let h, _): h
        case .call, .query: nil
        }
    }

    public init(json: JSONValue) throws(MessageError) {
        do { try self.init(strict: json) } catch { throw .malformed("lift: \(error)") }
    }

    init(strict json: JSONValue) throws(LiftError) {
        let env = try LiftField.object(json, "lift message", keys: ["target", "action", "to", "from", "object"])
        guard env["target"] == "lift" else { throw .malformed("target") }
        guard let a = env["action"]?.stringValue, let action = Action(rawValue: a) else { throw .malformed("unknown lift action") }
        to = try LiftParty(json: env["to"] ?? .null)
        from = try LiftParty(json: env["from"] ?? .null)
        let object = env["object"]
        switch action {
        case .promise:
            let o = try LiftField.object(object, "promise", keys: ["lift", "hop", "chit"])
            let hop = try LiftField.hop(o)
            let claimed = try LiftField.digest(o["lift"]?.objectValue ?? [:], "hash")
            do {
                let header = try LiftHeader(json: o["lift"] ?? .null)
                guard hop < header.path.count else { throw LiftError.outOfRange("hop beyond the path") }
                let chit = try LiftChit(json: o["chit"] ?? .null)
                if let why = chit.mismatch(header) { throw LiftError.invalid(why) }
                body = .promise(header: header, hop: hop, chit: chit)
            } catch {
                body = .invalidPromise(lift: claimed, hop: hop, why: "\(error)", object: object ?? .null)
            }
        case .ack:
            let o = try LiftField.object(object, "ack", keys: ["lift", "hop", "of"])
            guard let of = o["of"]?.stringValue.flatMap(LiftAckOf.init(rawValue:)) else { throw .malformed("ack of") }
            body = .ack(lift: try LiftField.digest(o, "lift"), hop: try LiftField.hop(o), of: of)
        case .refuse:
            let o = try LiftField.object(object, "refuse", keys: ["lift", "hop", "reason"])
            guard let reason = o["reason"]?.stringValue.flatMap(LiftRefusal.init(rawValue:)) else { throw .malformed("refuse reason") }
            body = .refuse(lift: try LiftField.digest(o, "lift"), hop: try LiftField.hop(o), reason: reason)
        case .arrive:
            let o = try LiftField.object(object, "arrive", keys: ["lift", "hop", "sign"])
            body = .arrive(lift: try LiftField.digest(o, "lift"), hop: try LiftField.hop(o), sign: try LiftField.signature(o))
        case .commit, .abort:
            let o = try LiftField.object(object, action.rawValue, keys: ["lift", "sign"])
            body = .call(
                action == .commit ? .commit : .abort, header: try LiftHeader(json: o["lift"] ?? .null),
                sign: try LiftField.signature(o))
        case .good, .void:
            let o = try LiftField.object(object, action.rawValue, keys: ["decision", "sign"], optional: ["hop"])
            let d = try SignedDecision(decision: o["decision"], sign: try LiftField.signature(o))
            guard d.result.rawValue == action.rawValue else { throw .malformed("the action is the decision's result") }
            body = .decision(d, hop: o["hop"] == nil ? nil : try LiftField.hop(o))
        case .status:
            let o = try LiftField.object(object, "status", keys: ["lift", "hop"])
            body = .status(lift: try LiftField.digest(o, "lift"), hop: try LiftField.hop(o))
        case .query:
            let o = try LiftField.object(object, "query", keys: ["lift"])
            body = .query(header: try LiftHeader(json: o["lift"] ?? .null))
        case .pending:
            let o = try LiftField.object(object, "pending", keys: ["lift", "retry"], optional: ["hop"])
            let retry = try LiftField.integer(o, "retry")
            guard retry >= 0, retry <= LiftLimits.maxRetryMs else { throw .outOfRange("retry must be 0 to 5 min") }
            body = .pending(lift: try LiftField.digest(o, "lift"), hop: o["hop"] == nil ? nil : try LiftField.hop(o), retry: retry)
        }
        // Neighbours are users; a referee's correspondents are sites.
        let betweenNeighbours = hop != nil
        guard to.isUser == betweenNeighbours, from.isUser == betweenNeighbours else {
            throw .malformed(
                betweenNeighbours ? "to and from of a hop message are users' CHADs" : "to and from of a referee message are site addresses")
        }
    }

    public var object: JSONValue {
        switch body {
        case .promise(let h, let hop, let chit): ["lift": h.json, "hop": .integer(Int64(hop)), "chit": chit.json]
        case .invalidPromise(_, _, _, let object): object
        case .ack(let l, let hop, let of): ["lift": .string(l), "hop": .integer(Int64(hop)), "of": .string(of.rawValue)]
        case .refuse(let l, let hop, let r): ["lift": .string(l), "hop": .integer(Int64(hop)), "reason": .string(r.rawValue)]
        case .arrive(let l, let hop, let s): ["lift": .string(l), "hop": .integer(Int64(hop)), "sign": .string(s)]
        case .call(_, let h, let s): ["lift": h.json, "sign": .string(s)]
        case .decision(let d, let hop):
            if let hop { ["decision": d.decision, "sign": .string(d.sign), "hop": .integer(Int64(hop))] } else { d.json }
        case .status(let l, let hop): ["lift": .string(l), "hop": .integer(Int64(hop))]
        case .query(let h): ["lift": h.json]
        case .pending(let l, let hop, let retry):
            if let hop {
                ["lift": .string(l), "hop": .integer(Int64(hop)), "retry": .integer(retry)]
            } else {
                ["lift": .string(l), "retry": .integer(retry)]
            }
        }
    }

    public var json: JSONValue {
        ["target": "lift", "action": .string(action.rawValue), "to": to.json, "from": from.json, "object": object]
    }
}
