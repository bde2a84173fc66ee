import ChipModel
import ChipProtocol
import ChipStore
import ChipViews

/// Runs a device's commands (protocol 10.6) against the site file: the same
/// store operations as the CLI, answered with the same JSON views as
/// `--json` (plus the fields 10.6 names). The session decider
/// (``UserSessionMachine``) has already checked scopes, locks and the shape
/// of the args; this checks everything that needs the file: the object is
/// the user's (else `not_found`), its state, limits and signatures.
public struct UserCommandRunner: Sendable {
    let store: SiteStore
    let sealingKey: SealingKey?
    let payments: PaymentBatcher

    public init(store: SiteStore, sealingKey: SealingKey?) {
        self.store = store
        self.sealingKey = sealingKey
        self.payments = PaymentBatcher(store: store)
    }

    /// Who runs a command: the session's user, device and scopes, and
    /// when the session opened (ms since 1970; `me.key.take`'s confirm must
    /// come in a session opened after the fetch, 10.7).
    public struct Caller: Sendable {
        public var user: CUID
        public var device: DeviceID
        public var scopes: Set<UserScope>
        public var sessionOpened: Int64
        public init(user: CUID, device: DeviceID, scopes: Set<UserScope>, sessionOpened: Int64 = 0) {
            self.user = user
            self.device = device
            self.scopes = scopes
            self.sessionOpened = sessionOpened
        }
    }

    /// The outcome of `request` for `caller` at `now` (ms). A command that
    /// changes something and has an idempotency key (10.5) looks in the
    /// reply cache first, and its success is remembered in the transaction
    /// of its change (``TransactionRider``); a failure stores nothing.
    /// `ping`'s answer: the site's clock.
    static func pingData(now: Int64) -> JSONValue { ["time": .string(Timestamp.format(millisecondsSince1970: now))] }

    public func run(_ request: UserRequest, caller: Caller, now: Int64) async -> UserCommandOutcome {
        do {
            switch request.command {
            case .eventsSubscribe, .eventsUnsubscribe:
                return try subscription(request, user: caller.user)
            default: break
            }
            guard let key = request.idempotencyKey else {
                return .reply(UserReply.ok(id: request.id, data: try await data(request.command, caller: caller, now: now)))
            }
            let hash = request.fingerprint
            switch try store.storedReply(cuid: caller.user, key: key, requestHash: hash) {
            case .replay(let data): return .reply(UserReply.ok(id: request.id, data: data, replayed: true))
            case .conflict: throw UserError(.conflict, "another request was made under this key")
            case .none: break
            }
            let cached = request.command.replyIsCached
            let user = caller.user.value
            let memory = ReplyMemory()
            let rider = TransactionRider { db, result in
                // A reply carrying a secret is not kept, but its key is: the repeat is `conflict` (10.5).
                guard cached else { return try SiteStore.rememberWithheldReply(db, cuid: user, key: key, requestHash: hash, now: now) }
                guard let data = memory.view?(result) else { return }
                try SiteStore.rememberReply(db, cuid: user, key: key, requestHash: hash, reply: data, now: now)
            }
            do {
                let data = try await SiteStore.$rider.withValue(rider) {
                    try await self.data(request.command, caller: caller, now: now, memory: memory)
                }
                return .reply(UserReply.ok(id: request.id, data: data))
            } catch {
                // A racing twin (another session) may have committed first: its reply is the answer.
                if case .replay(let data) = (try? store.storedReply(cuid: caller.user, key: key, requestHash: hash)) ?? .none {
                    return .reply(UserReply.ok(id: request.id, data: data, replayed: true))
                }
                throw error
            }
        } catch let error as UserError {
            return .reply(UserReply.error(id: request.id, error))
        } catch {
            return .reply(UserReply.error(id: request.id, Self.userError(error)))
        }
    }

    /// A store or model error as the device sees it: a code by the error's
    /// case (``StoreError/userErrorCode``), and the store's one line where it
    /// speaks of the user's own objects; never a path or a secret (the
    /// site's own failures are `internal`). A model error is the request's
    /// (`bad_request`: malformed) or the objects' state (`state`).
    static func userError(_ error: any Error) -> UserError {
        switch error {
        case let e as ModelError:
            switch e {
            case .malformed: return UserError(.badRequest, e.description)
            case .invalid: return UserError(.state, e.description)
            }
        case let e as StoreError:
            switch e.userErrorCode {
            case .internal:
                if case .busy = e { return UserError(.internal, "the site is busy; try again") }
                return UserError(.internal, "the site could not do that now")
            case .notFound:
                switch e {
                case .unknownUser, .unknownDevice: return UserError(.notFound, "no such device or user")
                default: return UserError(.notFound, e.description)
                }
            case let code: return UserError(code, e.description)
            }
        default: return UserError(.internal, "the site could not do that now")
        }
    }

    func subscription(_ request: UserRequest, user: CUID) throws -> UserCommandOutcome {
        guard case .eventsSubscribe(_, let since) = request.command else { return .unsubscribed }
        let latest = try store.latestUserSeq(cuid: user)
        // A `since` before the kept window (events pruned after it) gets a resync.
        let resync = try since.map { try store.userEventsMissed(cuid: user, since: $0) } ?? false
        return .subscribed(latest: latest, resync: resync)
    }

    func data(_ command: DeviceCommand, caller: Caller, now: Int64, memory: ReplyMemory = ReplyMemory()) async throws -> JSONValue {
        let user = caller.user
        switch command {
        case .ping: return Self.pingData(now: now)
        case .meShow: return try me(user)
        case .tallyList(let state, let page):
            let tallies = try store.tallies(user: user).filter { state == nil || $0.state == state }
            return try Self.page(tallies.map(Self.tallyItem), page: page)
        case .tallyShow(let uuid): return Self.tallyDetail(try tally(uuid, of: user))
        case .chitList(let tally, let state, let page):
            if let tally { _ = try self.tally(tally, of: user) }
            let chits = try store.chits(tally: tally, user: user).filter { state == nil || $0.state.rawValue == state }
            return try Self.page(chits.map(ChitView.json), page: page)
        case .liftList(let state, let page):
            let mine = Set(try store.tallies(user: user).map(\.uuid))
            let lifts = try store.lifts(state: state).filter { !mine.isDisjoint(with: $0.tallies) }
            return try Self.page(lifts.map { Self.liftItem($0) }, page: page)
        case .liftShow(let uuid):
            let mine = Set(try store.tallies(user: user).map(\.uuid))
            if let payment = try store.liftPayment(payor: user, authUUID: uuid) { return try paymentItem(payment) }
            let lift: LiftOverview
            do { lift = try store.lift(uuid) } catch is ModelError, StoreError.notFound { throw UserError(.notFound, "no such lift") }
            guard !mine.isDisjoint(with: lift.tallies) else { throw UserError(.notFound, "no such lift") }
            return Self.liftItem(lift, detail: true)
        case .liftInvoice(let units, let memo, let ref):
            let link = try PayLink(cuid: user, agent: try store.agent(), units: units, memo: memo, ref: ref)
            return ["link": .string(link.text)]
        case .deviceList:
            return try Self.page(try store.devices(of: user).filter { $0.revoked == nil }.map(\.json), page: UserPage(limit: UserPage.maxLimit))
        case .deviceRevoke(let device):
            memory.view = { _ in [:] }
            try store.revokeDevice(cuid: user, device: device, now: now)
            return [:]
        case .deviceTicket(let asked, let lifetime):
            let scopes = try DeviceCommand.mintedScopes(asked: asked, holding: caller.scopes).get()
            let ticket = try store.issueUserTicket(cuid: user, scopes: scopes, lifetime: lifetime, now: now)
            return ["ticket": ticket.json, "link": .string(ticket.link)]
        case .chitPay(let core, _, let sign):
            let t = try? store.tally(core["tally"]?.stringValue ?? "")
            let chit: Chit
            switch try DevicePayment.check(core: core, sign: sign, tally: t, user: user, custody: try store.custody(of: user), now: now) {
            case .signed(let c): chit = c
            case .siteSigns(let core):
                let key = try store.userKey(user, sealingKey: sealingKey)
                chit = try Chit(core: core, sign: Base64URL.encode(key.sign(core.canonicalBytes)))
            }
            guard let t else { throw UserError(.notFound, "no such tally") }
            memory.view = { ($0 as? [ChitRecord])?.first.map(Self.payReply) }
            // Committed with the other sessions' payments waiting meanwhile (group commit).
            let item = SiteStore.DevicePaymentItem(chit: chit, tally: t, rider: SiteStore.rider)
            return Self.payReply(try await payments.pay(item, now: now).get())
        case .chitRequest(let tally, let units, let memo, let ref):
            _ = try self.tally(tally, of: user)
            memory.view = { ($0 as? InvoiceRecord).map { ["uuid": .string($0.uuid)] } }
            return ["uuid": .string(try store.createInvoice(tally: tally, units: units, memo: memo, ref: ref).uuid)]
        case .chitRefuse(let tally, let uuid, let reason):
            _ = try self.tally(tally, of: user)
            let invoice: InvoiceRecord
            do { invoice = try store.invoice(uuid) } catch { throw UserError(.notFound, "no such invoice") }
            guard invoice.tally == tally else { throw UserError(.notFound, "no such invoice") }
            memory.view = { _ in [:] }
            _ = try store.refuseInvoice(uuid, reason: reason)
            return [:]
        case .tallyInvite(let a):
            var terms: [String: JSONValue] = ["side": .string(a.side.rawValue), "limit": .integer(a.limit)]
            if let memo = a.memo { terms["memo"] = .string(memo) }
            let lifetime =
                try a.expires ?? DurationText.seconds(try store.configValue(.ticketExpires) ?? ConfigKey.ticketExpires.defaultValue ?? "48h")
            let status = try store.status()
            memory.view = { r in
                guard let info = r as? TicketInfo else { return nil }
                return try? Self.inviteReply(info, chad: CHAD(cuid: user, agent: status.agent, address: status.address))
            }
            let info = try store.issueTicket(
                cuid: user, expiresAt: now + lifetime * 1000, reuse: a.reuse, bound: a.requester, terms: .object(terms))
            return try Self.inviteReply(info, chad: CHAD(cuid: user, agent: status.agent, address: status.address))
        case .tallyRedeem(let ticket):
            memory.view = { ($0 as? String).map { ["uuid": .string($0), "state": "draft"] } }
            return ["uuid": .string(try store.requestTally(cuid: user, ticket: ticket, accept: false)), "state": "draft"]
        case .tallyAccept(let a):
            let t = try tally(a.uuid, of: user)
            try Self.checkCurrent(t, revision: a.revision, hash: a.hash)
            if let sign = a.sign, let core = t.core, !core.verify(sign, by: t.side) {
                throw UserError(.signInvalid, "the signature is not the user's")
            }
            memory.view = { ($0 as? TallyRecord).map { ["state": .string($0.state.rawValue)] } }
            // The device's signature, verified above, is stored as it came
            // (a `device` user always sends one: the site signs nothing for it).
            if let sign = a.sign {
                return ["state": .string(try store.acceptTally(t.uuid, revision: a.revision, signature: sign).state.rawValue)]
            }
            let key = try store.userKey(user, sealingKey: sealingKey)
            return ["state": .string(try store.acceptTally(t.uuid) { _ in key }.state.rawValue)]
        case .tallyRefuse(let uuid, let revision):
            let t = try tally(uuid, of: user)
            guard t.revision == revision else { throw UserError(.state, "the tally has changed (revision \(t.revision)); look again") }
            memory.view = { ($0 as? TallyRecord).map { ["state": .string($0.state.rawValue)] } }
            return ["state": .string(try store.refuseTally(t.uuid).state.rawValue)]
        case .tallyOffer(let a):
            let t = try tally(a.uuid, of: user)
            try Self.checkCurrent(t, revision: a.revision, hash: a.hash)
            // Only a `device` user's tally waits for its offer signature (P.draft):
            // the site signs a `site` user's offers when the invitation is redeemed.
            guard t.state == .peerDraft, let core = t.core else {
                throw UserError(.state, "tally \(t.uuid) is \(t.state.rawValue): there is no offer waiting for a signature")
            }
            guard let sign = a.sign else { throw UserError(.signInvalid, "tally.offer needs the user's signature") }
            guard core.verify(sign, by: t.side) else { throw UserError(.signInvalid, "the signature is not the user's") }
            memory.view = { ($0 as? TallyRecord).map { ["state": .string($0.state.rawValue)] } }
            return ["state": .string(try store.offerTally(t.uuid, revision: a.revision, signature: sign).state.rawValue)]
        case .tallyTrade(let trade, let sign):
            let t = try tally(trade.tally, of: user)
            guard trade.side == t.side else { throw UserError(.badRequest, "side must be the user's side of the tally (\(t.side.rawValue))") }
            try checkSigned(trade.json, sign: sign, user: user, date: trade.date, now: now)
            memory.view = { ($0 as? TallyRecord).map { ["trade": $0.trade?.json ?? .null] } }
            let updated = try store.setTrade(
                tally: t.uuid, target: trade.target, bound: trade.bound, reward: trade.reward, clutch: trade.clutch, date: trade.date)
            return ["trade": updated.trade?.json ?? .null]
        case .liftPay(let auth, let sign):
            try checkSigned(auth.json, sign: sign, user: user, date: auth.date, now: now)
            let link = try PayLink(cuid: auth.to.cuid, agent: auth.to.agent, units: auth.units, memo: auth.memo, ref: auth.ref)
            memory.view = { _ in ["uuid": .string(auth.uuid), "state": "draft"] }
            var signed: [String: JSONValue] = ["auth": auth.json]
            if let sign { signed["sign"] = .string(sign) }
            _ = try store.requestPay(payor: user, link: link, units: auth.units, memo: auth.memo, auth: .object(signed))
            return ["uuid": .string(auth.uuid), "state": "draft"]
        case .meKeyTakeFetch:
            // Its reply is never cached (`replyIsCached`: it carries the sealed
            // seed); its key is, in the fetch's transaction, so a repeat is `conflict`.
            let sealed = try store.fetchKeyForDevice(
                cuid: user, device: caller.device, sessionOpened: caller.sessionOpened, now: now, sealingKey: sealingKey)
            return ["key": .string(sealed)]
        case .meKeyTakeConfirm(let proof, let sign):
            memory.view = { _ in ["custody": "device"] }
            let custody = try store.confirmKeyTake(
                cuid: user, device: caller.device, sessionOpened: caller.sessionOpened, proof: proof, sign: sign, now: now)
            store.checkpointAfterErase()
            return ["custody": .string(custody.rawValue)]
        case .meSignKey(let key, let sign):
            memory.view = { ($0 as? Certificate).map { ["cert": $0.json] } }
            let cert = try store.setDeviceKey(cuid: user, key: key, sign: sign, now: now)
            store.checkpointAfterErase()
            return ["cert": cert.json]
        case .eventsSubscribe, .eventsUnsubscribe:
            return [:]
        }
    }

    /// A signed object of 10.6 (`trade`, `auth`): `date` within ±5 min of
    /// the site's clock; a signature, when sent (always for a `device` user),
    /// is the user's over the object's canonical form.
    func checkSigned(_ object: JSONValue, sign: String?, user: CUID, date: String, now: Int64) throws {
        guard let d = Timestamp.parse(date), abs(d - now) <= DevicePayment.clockSkew * 1000 else {
            throw UserError(.badRequest, "the date is more than \(DevicePayment.clockSkew / 60) minutes from the site's clock")
        }
        guard let sign else {
            if try store.custody(of: user) == .device { throw UserError(.signInvalid, "the user's signature is needed") }
            return
        }
        let key = try store.user(user).certificate.publicKey
        guard let bytes = Base64URL.decode(sign), Ed25519.verify(signature: bytes, message: object.canonicalBytes, publicKey: key) else {
            throw UserError(.signInvalid, "the signature is not the user's")
        }
    }

    /// A stale revision or hash is `state` (10.7).
    static func checkCurrent(_ t: TallyRecord, revision: Int64, hash: String) throws {
        guard t.revision == revision, t.core?.hash == hash else {
            throw UserError(.state, "the tally has changed (revision \(t.revision)); look again")
        }
    }

    static func payReply(_ r: ChitRecord) -> JSONValue { ["uuid": .string(r.chit.uuid), "state": .string(r.state.rawValue)] }

    static func inviteReply(_ info: TicketInfo, chad: CHAD) throws -> JSONValue {
        let ticket = try TallyTicket(token: info.token, expires: info.expires, chad: chad)
        return ["invite": ticket.json, "link": .string(ticket.link)]
    }

    /// A device's `lift.pay` by its `auth.uuid` (10.6): the payment, its
    /// state (`draft` until serve starts a lift, then the last lift's), the
    /// lifts tried, and the signed `auth`.
    func paymentItem(_ r: LiftRequest) throws -> JSONValue {
        let auth = r.params["auth"]
        var state = r.state == .new ? "draft" : "seek"
        if let last = r.lifts.last, let s = try store.liftState(last) { state = s.rawValue }
        if r.state == .done, r.lifts.isEmpty { state = "void" }
        var o: [String: JSONValue] = [
            "uuid": auth?["auth"]?["uuid"] ?? .null, "kind": "line", "role": "origin", "state": .string(state),
            "units": r.params["units"] ?? .null, "lifts": .array(r.lifts.map(JSONValue.string)), "auth": auth?["auth"] ?? .null
        ]
        if let sign = auth?["sign"] { o["sign"] = sign }
        if let note = r.note { o["note"] = .string(note) }
        return .object(o)
    }

    /// The user's tally `uuid`; another user's, or none: `not_found`.
    func tally(_ uuid: String, of user: CUID) throws -> TallyRecord {
        let t: TallyRecord
        do { t = try store.tally(uuid) } catch is ModelError, StoreError.notFound { throw UserError(.notFound, "no such tally") }
        guard t.cuid == user else { throw UserError(.notFound, "no such tally") }
        return t
    }

    func me(_ user: CUID) throws -> JSONValue {
        let info = try store.user(user)
        let open = try store.tallies(user: user).filter { $0.state == .open }
        let assets = open.map(\.balance).filter { $0 > 0 }.reduce(0, +)
        let liabilities = open.map(\.balance).filter { $0 < 0 }.reduce(0, +)
        var o = UserView.json(info, locked: try store.isUserLocked(user) || store.isLockedDown()).objectValue ?? [:]
        o["cert"] = info.certificate.json
        o["custody"] = .string(try store.custody(of: user).rawValue)
        o["assets"] = .integer(assets)
        o["liabilities"] = .integer(liabilities)
        o["net"] = .integer(assets + liabilities)
        return .object(o)
    }

    // MARK: Views (the `--json` views plus 10.6's names)

    static func tallyItem(_ t: TallyRecord) -> JSONValue {
        var o = TallyView.json(t).objectValue ?? [:]
        o["uuid"] = .string(t.uuid)
        o["limits"] = o["terms"] ?? .null
        return .object(o)
    }

    static func tallyDetail(_ t: TallyRecord) -> JSONValue {
        var o = tallyItem(t).objectValue ?? [:]
        o["core"] = t.core?.json ?? .null
        o["sign"] =
            t.sign.map { s in
                ["stock": s.stock.map(JSONValue.string) ?? .null, "foil": s.foil.map(JSONValue.string) ?? .null]
            } ?? .null
        o["trade"] = t.trade?.json ?? .null
        return .object(o)
    }

    static func liftItem(_ l: LiftOverview, detail: Bool = false) -> JSONValue {
        var o = LiftView.json(l, detail: detail).objectValue ?? [:]
        o["uuid"] = .string(l.id)
        return .object(o)
    }

    /// One page of `items` (10.5): the cursor is the index of the next item, opaque to the device.
    static func page(_ items: [JSONValue], page: UserPage) throws -> JSONValue {
        var start = 0
        if let after = page.after {
            guard let bytes = Base64URL.decode(after), let text = String(bytes: bytes, encoding: .utf8),
                text.hasPrefix("i:"), let n = Int(text.dropFirst(2)), n >= 0
            else { throw UserError(.badRequest, "after is not a cursor this site made") }
            start = min(n, items.count)
        }
        let end = min(items.count, start + page.limit)
        var slice = Array(items[start..<end])
        // A page ends early rather than exceed one frame (10.5).
        var size = 64
        for (i, item) in slice.enumerated() {
            size += item.canonicalBytes.count + 1
            if size > UserSessionMachine.maxReplyBytes {
                slice = Array(slice.prefix(max(i, 1)))
                break
            }
        }
        let next = start + slice.count < items.count ? Base64URL.encode(Array("i:\(start + slice.count)".utf8)) : nil
        return UserPage.data(items: slice, next: next)
    }
}

/// How the reply of the command running is made from its operation's
/// result, for the reply cache inside the operation's transaction.
final class ReplyMemory: @unchecked Sendable {
    // Set once by the command before its operation runs, read in the transaction.
    var view: (@Sendable (any Sendable) -> JSONValue?)?
}
