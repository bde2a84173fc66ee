import ChipModel
import Testing
@testable import ChipProtocol

/// The user port's command layer (protocol 10.5-10.6): every command's
/// happy parse, and each kind of bad input to its error code.

let uuid = "5f0e3c1a-7b2d-4c8e-9f10-2a3b4c5d6e7f"
let uuid2 = "0a1b2c3d-4e5f-4a6b-8c7d-8e9f0a1b2c3d"
let date = "2026-11-24T21:00:00.000Z"
let hash = Base64URL.encode(Crypto.sha256([1, 2, 3]))
let sig = Base64URL.encode([UInt8](repeating: 7, count: 64))
let userKey = SigningKey.generate()
let siteAgent: AgentID = {
    guard let a = try? AgentID(publicKey: SigningKey.generate().publicKey) else { preconditionFailure() }; return a
}()
let deviceID: DeviceID = {
    guard let d = try? DeviceID(publicKey: Crypto.randomBytes(32)) else { preconditionFailure() }; return d
}()
let bob: CHAD = {
    guard let c = try? CHAD(cuid: CUID("bob"), agent: siteAgent, address: SiteAddress(host: "chips.example.org", port: 65430)) else {
        preconditionFailure()
    }
    return c
}()

func request(_ cmd: String, _ args: JSONValue? = nil, id: String = "r1", idem: String? = nil) -> [UInt8] {
    var o: [String: JSONValue] = ["id": .string(id), "cmd": .string(cmd)]
    if let args { o["args"] = args }
    if let idem { o["idem"] = .string(idem) }
    return JSONValue.object(o).canonicalBytes
}

func parse(_ bytes: [UInt8]) -> Result<UserRequest, UserRequestFailure> {
    do throws(UserRequestFailure) { return .success(try UserRequest(parsing: bytes)) } catch { return .failure(error) }
}

/// The error code a request gets, or nil if it parses (or closes the session).
func code(_ bytes: [UInt8]) -> UserErrorCode? {
    if case .failure(.reply(_, let e)) = parse(bytes) { return e.code }
    return nil
}

func closes(_ bytes: [UInt8]) -> Bool {
    if case .failure(.closeSession) = parse(bytes) { return true }
    return false
}

/// For each command of 10.6: args as a device sends them, and what they parse to.
func happy(_ name: String) throws -> (JSONValue?, DeviceCommand) {
    let chit = try Chit(tally: uuid, by: .foil, uuid: uuid2, date: date, units: 1500, memo: "lunch", ref: ["invoice": .string(uuid)], key: userKey)
    let invite = try TallyTicket(token: String(repeating: "ab", count: 16), expires: date, chad: bob)
    let signArgs = TallySignArgs(uuid: uuid, revision: 2, hash: hash, sign: sig)
    let signJSON: JSONValue = ["uuid": .string(uuid), "revision": 2, "hash": .string(hash), "sign": .string(sig)]
    let key = SignKeyArgs(agent: siteAgent, cuid: try CUID("alice"), publicKey: userKey.publicKey, date: date)
    let trade = TradeArgs(tally: uuid, side: .stock, target: 0, bound: 5000, reward: 0, clutch: 100, date: date)
    let auth = LiftAuth(uuid: uuid, date: date, to: (try CUID("bob"), siteAgent), units: 700, memo: "rent", ref: nil)
    switch name {
    case "ping": return (nil, .ping)
    case "me.show": return ([:], .meShow)
    case "me.signkey": return (["key": key.json, "sign": .string(sig)], .meSignKey(key, sign: sig))
    case "me.key.take":
        let proof = KeyTakeProof(cuid: try CUID("alice"), date: date, device: deviceID)
        return (["step": "confirm", "proof": proof.json, "sign": .string(sig)], .meKeyTakeConfirm(proof, sign: sig))
    case "tally.list": return (["state": "open", "limit": 10, "after": "c1"], .tallyList(state: .open, page: UserPage(limit: 10, after: "c1")))
    case "tally.show": return (["uuid": .string(uuid)], .tallyShow(uuid: uuid))
    case "tally.invite":
        return (
            ["side": "foil", "limit": 100_000, "memo": "m", "reuse": true, "expires": "48h", "for": bob.json],
            .tallyInvite(TallyInviteArgs(side: .foil, limit: 100_000, memo: "m", reuse: true, expires: 48 * 3600, requester: bob))
        )
    case "tally.redeem": return (["invite": .string(invite.link)], .tallyRedeem(try TallyTicket(parsing: invite.link)))
    case "tally.offer": return (signJSON, .tallyOffer(signArgs))
    case "tally.accept": return (signJSON, .tallyAccept(signArgs))
    case "tally.refuse": return (["uuid": .string(uuid), "revision": 1], .tallyRefuse(uuid: uuid, revision: 1))
    case "tally.trade": return (["trade": trade.json, "sign": .string(sig)], .tallyTrade(trade, sign: sig))
    case "chit.list": return (["tally": .string(uuid), "state": "chained"], .chitList(tally: uuid, state: "chained", page: UserPage()))
    case "chit.pay": return (["chit": chit.core, "sign": .string(chit.sign)], .chitPay(core: chit.core, uuid: uuid2, sign: chit.sign))
    case "chit.request":
        return (
            ["tally": .string(uuid), "units": 2500, "memo": "invoice 7", "ref": ["n": 7]],
            .chitRequest(tally: uuid, units: 2500, memo: "invoice 7", ref: ["n": 7])
        )
    case "chit.refuse": return (["tally": .string(uuid), "uuid": .string(uuid2), "reason": "no"], .chitRefuse(tally: uuid, uuid: uuid2, reason: "no"))
    case "lift.invoice": return (["units": 10], .liftInvoice(units: 10, memo: nil, ref: nil))
    case "lift.pay": return (["auth": auth.json], .liftPay(auth, sign: nil))
    case "lift.list": return (["state": "good", "limit": 200], .liftList(state: "good", page: UserPage(limit: 200)))
    case "lift.show": return (["uuid": .string(uuid)], .liftShow(uuid: uuid))
    case "device.list": return (nil, .deviceList)
    case "device.revoke": return (["device": .string(deviceID.description)], .deviceRevoke(deviceID))
    case "device.ticket": return (["scopes": ["read", "pay"], "expires": "7d"], .deviceTicket(scopes: [.read, .pay], expires: 7 * 86400))
    case "events.subscribe": return (["topics": ["chit", "sign"], "since": 41], .eventsSubscribe(topics: [.chit, .sign], since: 41))
    case "events.unsubscribe": return ([:], .eventsUnsubscribe)
    default: throw UserError(.unknownCmd, name)
    }
}

@Suite struct UserCommandTests {
    @Test(arguments: DeviceCommand.names)
    func happyParse(_ name: String) throws {
        let (args, expected) = try happy(name)
        let idem = expected.idempotency == .idem ? "9b2e4c1a-1b2d-4c8e-8f10-2a3b4c5d6e7f" : nil
        let parsed = try parse(request(name, args, id: "req-\(name)", idem: idem)).get()
        #expect(parsed.command == expected)
        #expect(parsed.id == "req-\(name)" && parsed.idem == idem && parsed.command.name == name)
        // It re-encodes and parses back equal.
        #expect(try parse(parsed.json.canonicalBytes).get() == parsed)
        // Unknown fields in its args are bad_request.
        var o = args?.objectValue ?? [:]
        o["bogus"] = 1
        #expect(code(request(name, .object(o))) == .badRequest)
    }

    @Test func everyCommandOf10_6IsCovered() {
        #expect(DeviceCommand.names.count == 25 && Set(DeviceCommand.names).count == 25)
    }

    @Test func meKeyTakeFetchAndPageDefaults() throws {
        #expect(try parse(request("me.key.take", ["step": "fetch"])).get().command == .meKeyTakeFetch)
        #expect(code(request("me.key.take", ["step": "fetch", "sign": .string(sig)])) == .badRequest)
        #expect(code(request("me.key.take", ["step": "later"])) == .badRequest)
        #expect(try parse(request("tally.list")).get().command == .tallyList(state: nil, page: UserPage(limit: 50, after: nil)))
        for bad: JSONValue in [["limit": 0], ["limit": 201], ["limit": "5"], ["after": ""], ["after": 3], ["state": "opened"]] {
            #expect(code(request("tally.list", bad)) == .badRequest, "\(bad.canonicalString)")
        }
        // A link or the JSON of the invitation.
        let invite = try TallyTicket(token: String(repeating: "ab", count: 16), expires: date, chad: bob)
        #expect(try parse(request("tally.redeem", ["invite": invite.json])).get().command == .tallyRedeem(invite))
        #expect(code(request("tally.redeem", ["invite": 5])) == .badRequest)
        #expect(code(request("tally.redeem", ["invite": "https://example.org"])) == .badRequest)
    }

    @Test func garbageDuplicatesDepthAndNonObjectsCloseTheSession() {
        let cases: [String] = [
            "", "garbage", "{", "[]", "\"ping\"", "null", "{\"id\":\"a\",\"cmd\":\"ping\",}",
            #"{"id":"a","cmd":"ping","id":"b"}"#,
            #"{"id":"a","cmd":"ping","args":{"x":1,"x":2}}"#,
            "{\"id\":\"a\",\"cmd\":\"ping\",\"args\":" + String(repeating: "[", count: 32) + String(repeating: "]", count: 32) + "}",
            "{\"id\":\"a\",\"cmd\":\"\\ud800\"}",
            "{\"id\":\"a\",\"cmd\":\"ping\",\"args\":{\"n\":01}}"
        ]
        for c in cases { #expect(closes(Array(c.utf8)), "\(c.prefix(60))") }
        // Nesting of 32 is read (and the extra field is bad_request, not a close).
        let deep = "{\"id\":\"a\",\"cmd\":\"ping\",\"args\":{\"x\":" + String(repeating: "[", count: 30) + String(repeating: "]", count: 30) + "}}"
        #expect(code(Array(deep.utf8)) == .badRequest)
        #expect(closes([0xFF, 0xFE]))
    }

    @Test func floatsAndHugeIntegersAreBadRequests() {
        let cases = [
            #"{"id":"a","cmd":"chit.request","args":{"tally":"\#(uuid)","units":1.5}}"#,
            #"{"id":"a","cmd":"chit.request","args":{"tally":"\#(uuid)","units":1e3}}"#,
            #"{"id":"a","cmd":"chit.request","args":{"tally":"\#(uuid)","units":-0.0}}"#,
            #"{"id":"a","cmd":"chit.request","args":{"tally":"\#(uuid)","units":9007199254740992}}"#,
            #"{"id":"a","cmd":"chit.request","args":{"tally":"\#(uuid)","units":-9007199254740992}}"#,
            #"{"id":"a","cmd":"chit.request","args":{"tally":"\#(uuid)","units":123456789012345678901234567890}}"#,
            #"{"id":"a","cmd":"ping","args":{},"x":[2.5]}"#
        ]
        for c in cases {
            guard case .failure(.reply(let id, let e)) = parse(Array(c.utf8)) else { Issue.record("not a reply: \(c)"); continue }
            #expect(id == "a" && e.code == .badRequest, "\(c)")
        }
        // The largest safe integer is read; a number inside a string is untouched.
        let ok = #"{"id":"a","cmd":"events.subscribe","args":{"since":9007199254740991}}"#
        #expect((try? parse(Array(ok.utf8)).get().command) == .eventsSubscribe(topics: nil, since: 9_007_199_254_740_991))
        let memo = #"{"id":"1.5e3","cmd":"lift.invoice","args":{"memo":"1.5 chips, 2e10 \"3.5\""}}"#
        #expect((try? parse(Array(memo.utf8)).get().command) == .liftInvoice(units: nil, memo: #"1.5 chips, 2e10 "3.5""#, ref: nil))
    }

    @Test func negativeUnitsWrongTypesAndUnknownFields() throws {
        let chit = try Chit(tally: uuid, by: .foil, uuid: uuid2, date: date, units: 5, memo: nil, ref: nil, key: userKey)
        var core = chit.core.objectValue ?? [:]
        core["units"] = -5
        #expect(code(request("chit.pay", ["chit": .object(core), "sign": .string(chit.sign)])) == .badRequest)
        core["units"] = 0
        #expect(code(request("chit.pay", ["chit": .object(core)])) == .badRequest)
        core["units"] = 5
        core["extra"] = true
        #expect(code(request("chit.pay", ["chit": .object(core)])) == .badRequest)
        let bad: [(String, JSONValue)] = [
            ("chit.request", ["tally": .string(uuid), "units": -1]),
            ("chit.request", ["tally": .string(uuid), "units": "12"]),
            ("chit.request", ["tally": "not-a-uuid", "units": 1]),
            ("chit.request", ["units": 1]),
            ("chit.request", ["tally": .string(uuid), "units": 1_000_000_000_000_001]),
            ("chit.request", ["tally": .string(uuid), "units": .null]),
            ("lift.invoice", ["units": -3]),
            ("tally.invite", ["side": "middle", "limit": 1]),
            ("tally.invite", ["side": "stock", "limit": -1]),
            ("tally.invite", ["side": "stock", "limit": 1, "expires": "366d"]),
            ("tally.invite", ["side": "stock", "limit": 1, "reuse": "yes"]),
            ("tally.offer", ["uuid": .string(uuid), "revision": 0, "hash": .string(hash)]),
            ("tally.offer", ["uuid": .string(uuid), "revision": 1, "hash": "short"]),
            ("tally.offer", ["uuid": .string(uuid), "revision": 1, "hash": .string(hash), "sign": 5]),
            (
                "tally.trade",
                ["trade": ["tally": .string(uuid), "side": "stock", "target": 10, "bound": 5, "reward": 0, "clutch": 0, "date": .string(date)]]
            ),
            (
                "tally.trade",
                ["trade": ["tally": .string(uuid), "side": "stock", "target": 0, "bound": 5, "reward": -5, "clutch": 0, "date": .string(date)]]
            ),
            ("tally.trade", ["trade": ["tally": .string(uuid), "side": "stock", "target": 0, "bound": 5, "reward": 0, "clutch": 0, "date": "now"]]),
            ("lift.pay", ["auth": ["uuid": .string(uuid), "date": .string(date), "to": ["cuid": "bob"], "units": 5]]),
            (
                "lift.pay",
                [
                    "auth": [
                        "uuid": .string(uuid), "date": .string(date), "to": ["cuid": "bob", "agent": .string(siteAgent.description), "x": 1],
                        "units": 5
                    ]
                ]
            ),
            ("device.revoke", ["device": "abc"]),
            ("device.ticket", ["scopes": ["read", "admin"]]),
            ("device.ticket", ["scopes": ["read", "read"]]),
            ("device.ticket", ["scopes": []]),
            ("device.ticket", ["expires": "8d"]),
            ("events.subscribe", ["topics": ["chits"]]),
            ("events.subscribe", ["since": -1]),
            (
                "me.signkey",
                [
                    "key": ["agent": .string(siteAgent.description), "cuid": "alice", "public": ["kty": "OKP"], "date": .string(date)],
                    "sign": .string(sig)
                ]
            ),
            ("chit.refuse", ["tally": .string(uuid), "uuid": .string(uuid2), "reason": .string(String(repeating: "x", count: 201))])
        ]
        for (cmd, args) in bad { #expect(code(request(cmd, args)) == .badRequest, "\(cmd) \(args.canonicalString)") }
        #expect(code(request("ping", "args")) == .badRequest)
        #expect(code(request("ping", [1])) == .badRequest)
    }

    @Test func requestFrameRules() {
        #expect(code(request("tally.delete")) == .unknownCmd)
        #expect(code(request("Ping")) == .unknownCmd)
        #expect(code(Array(#"{"id":"a","cmd":5}"#.utf8)) == .badRequest)
        #expect(code(Array(#"{"id":"a"}"#.utf8)) == .badRequest)
        #expect(code(Array(#"{"id":"a","cmd":"ping","extra":1}"#.utf8)) == .badRequest)
        // A request with no usable id is answered with id null.
        for bad in [
            #"{"cmd":"ping"}"#, #"{"id":"","cmd":"ping"}"#, #"{"id":7,"cmd":"ping"}"#,
            "{\"id\":\"" + String(repeating: "i", count: 65) + "\",\"cmd\":\"ping\"}"
        ] {
            guard case .failure(let f) = parse(Array(bad.utf8)), case .reply(nil, let e) = f else { Issue.record("\(bad)"); continue }
            #expect(e.code == .badRequest)
            #expect(f.reply?["id"] == JSONValue.null)
        }
        #expect((try? parse(request("ping", id: String(repeating: "é", count: 64))).get()) != nil)
        // idem: uuid v4 only, and only where the command takes it.
        #expect(code(request("tally.refuse", ["uuid": .string(uuid), "revision": 1], idem: "not-a-uuid")) == .badRequest)
        #expect(code(request("tally.refuse", ["uuid": .string(uuid), "revision": 1], idem: "5f0e3c1a-7b2d-1c8e-9f10-2a3b4c5d6e7f")) == .badRequest)
        #expect(code(request("tally.list", nil, idem: uuid)) == .badRequest)
        #expect(code(Array(#"{"id":"a","cmd":"tally.refuse","args":{"uuid":"\#(uuid)","revision":1},"idem":7}"#.utf8)) == .badRequest)
        #expect((try? parse(request("tally.refuse", ["uuid": .string(uuid), "revision": 1], idem: uuid)).get().idem) == uuid)
    }

    @Test func errorCodesHaveTheirWireNames() {
        #expect(
            UserErrorCode.allCases.map(\.rawValue) == [
                "bad_request", "unknown_cmd", "forbidden", "not_found", "state", "limit",
                "sign_invalid", "conflict", "locked", "rate_limited", "too_large", "internal"
            ])
    }

    @Test func repliesAndEventsEncode() {
        #expect(UserReply.ok(id: "1", data: ["time": .string(date)]).canonicalString == #"{"data":{"time":"\#(date)"},"id":"1","ok":true}"#)
        #expect(UserReply.ok(id: "1", data: [:], replayed: true)["replayed"] == true)
        let e = UserError(.notFound, "no such tally", detail: ["uuid": .string(uuid)])
        #expect(
            UserReply.error(id: "2", e).canonicalString
                == #"{"error":{"code":"not_found","detail":{"uuid":"\#(uuid)"},"message":"no such tally"},"id":"2","ok":false}"#)
        #expect(UserReply.error(id: "2", UserError(.locked, "locked"))["error"]?["detail"] == nil)
        #expect(
            UserEvent(topic: .chit, seq: 7, data: ["uuid": .string(uuid)]).json.canonicalString
                == #"{"data":{"uuid":"\#(uuid)"},"event":"chit","seq":7}"#)
        #expect(UserEvent.resync(latest: 9).canonicalString == #"{"event":"resync","seq":9}"#)
        #expect(UserPage.data(items: [1], next: nil).canonicalString == #"{"items":[1],"next":null}"#)
        #expect(UserEvent.signData(kind: .offer, uuid: uuid, core: [:], hash: hash)["kind"] == "offer")
    }

    @Test func scopesOfCommandsAndEvents() throws {
        let all = Set(UserScope.allCases)
        for name in DeviceCommand.names {
            let command = try happy(name).1
            #expect(command.scope.permits(all), "\(name)")
            switch command.scope {
            case .any: #expect(command.scope.permits([]))
            case .all: #expect(!command.scope.permits(all.subtracting([.read])))
            case .scope(let s): #expect(!command.scope.permits(all.subtracting([s])), "\(name)")
            }
        }
        #expect(DeviceCommand.ping.scope == .any && DeviceCommand.meKeyTakeFetch.scope == .all)
        #expect(DeviceCommand.chitPay(core: [:], uuid: uuid, sign: nil).scope == .scope(.pay))
        #expect(DeviceCommand.chitRequest(tally: uuid, units: 1, memo: nil, ref: nil).scope == .scope(.request))
        #expect(DeviceCommand.deviceList.scope == .scope(.devices) && DeviceCommand.eventsSubscribe(topics: nil, since: nil).scope == .scope(.read))
        // Events: read for all, devices for device, tally or pay for sign.
        #expect(!UserEvent.visible(topic: .chit, scopes: [.pay]))
        #expect(UserEvent.visible(topic: .chit, scopes: [.read]))
        #expect(!UserEvent.visible(topic: .device, scopes: [.read]) && UserEvent.visible(topic: .device, scopes: [.read, .devices]))
        #expect(!UserEvent.visible(topic: .sign, kind: .offer, scopes: [.read, .pay]))
        #expect(UserEvent.visible(topic: .sign, kind: .accept, scopes: [.read, .tally]))
        #expect(
            UserEvent.visible(topic: .sign, kind: .invoice, scopes: [.read, .pay])
                && !UserEvent.visible(topic: .sign, kind: .invoice, scopes: [.read, .tally]))
    }

    @Test func prechecksAndMintedScopes() throws {
        let all = Set(UserScope.allCases)
        let pay = DeviceCommand.chitPay(core: [:], uuid: uuid, sign: nil)
        #expect(pay.precheck(scopes: [.read], locked: false, custody: .site)?.code == .forbidden)
        #expect(pay.precheck(scopes: all, locked: true, custody: .site)?.code == .locked)
        #expect(pay.precheck(scopes: all, locked: false, custody: .device)?.code == .signInvalid)
        #expect(pay.precheck(scopes: all, locked: false, custody: .site) == nil)
        #expect(DeviceCommand.chitPay(core: [:], uuid: uuid, sign: sig).precheck(scopes: all, locked: false, custody: .device) == nil)
        // Reads and device.revoke work when locked (10.4).
        #expect(DeviceCommand.tallyShow(uuid: uuid).precheck(scopes: [.read], locked: true, custody: .device) == nil)
        #expect(DeviceCommand.deviceRevoke(deviceID).precheck(scopes: [.devices], locked: true, custody: .site) == nil)
        #expect(DeviceCommand.ping.precheck(scopes: [], locked: true, custody: .site) == nil)
        #expect(try DeviceCommand.mintedScopes(asked: nil, holding: [.read, .devices]).get() == [.read, .devices])
        #expect(try DeviceCommand.mintedScopes(asked: [.read], holding: [.read, .devices]).get() == [.read])
        guard case .failure(let e) = DeviceCommand.mintedScopes(asked: [.read, .pay], holding: [.read, .devices]) else {
            Issue.record("minted a scope it does not hold"); return
        }
        #expect(e.code == .forbidden)
    }

    @Test func idempotencyKeys() throws {
        let pay = try parse(request("chit.pay", try happy("chit.pay").0)).get()
        #expect(pay.idempotencyKey == .signed(cmd: "chit.pay", uuid: uuid2, revision: nil))
        #expect(code(request("chit.pay", try happy("chit.pay").0, idem: uuid)) == .badRequest)
        let offer = try parse(request("tally.offer", try happy("tally.offer").0)).get()
        #expect(offer.idempotencyKey == .signed(cmd: "tally.offer", uuid: uuid, revision: 2))
        #expect(try parse(request("lift.pay", try happy("lift.pay").0)).get().idempotencyKey == .signed(cmd: "lift.pay", uuid: uuid, revision: nil))
        let refuse = try parse(request("tally.refuse", try happy("tally.refuse").0, idem: uuid)).get()
        #expect(refuse.idempotencyKey == .idem(uuid))
        #expect(try parse(request("tally.refuse", try happy("tally.refuse").0)).get().idempotencyKey == nil)
        // The fingerprint tells a different request under the same key.
        let other = try parse(request("tally.refuse", ["uuid": .string(uuid2), "revision": 1], idem: uuid)).get()
        #expect(refuse.fingerprint != other.fingerprint)
        #expect(refuse.fingerprint == (try parse(request("tally.refuse", try happy("tally.refuse").0, id: "again", idem: uuid)).get().fingerprint))
        // Replies with a secret are never cached; reads are not keyed.
        #expect(!DeviceCommand.deviceTicket(scopes: nil, expires: nil).replyIsCached && !DeviceCommand.meKeyTakeFetch.replyIsCached)
        #expect(DeviceCommand.tallyRefuse(uuid: uuid, revision: 1).replyIsCached && !DeviceCommand.ping.replyIsCached)
        #expect(DeviceCommand.chitPay(core: [:], uuid: uuid, sign: nil).refusedWhenLocked && !DeviceCommand.deviceRevoke(deviceID).refusedWhenLocked)
    }
}
