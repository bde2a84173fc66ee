import ChipModel
import Testing
@testable import ChipProtocol

/// Re-signs and re-hashes a header core, so a test can reach the checks behind the signature.
func resigned(_ core: JSONValue, key: SigningKey = Fx.originKey) -> JSONValue {
    let bytes = core.canonicalBytes
    return core.with("sign", .string(Base64URL.encode(key.sign(bytes)))).with("hash", .string(Base64URL.encode(Crypto.sha256(bytes))))
}

@Suite struct HeaderValidatorTests {
    @Test func everyKeyMissingExtraOrNull() {
        let h = Fx.header()
        for key in LiftHeader.signedKeys.union(["sign", "hash"]) {
            #expect(throws: LiftError.self, "without \(key)") { try LiftHeader(json: h.json.with(key, nil)) }
            #expect(throws: LiftError.self, "null \(key)") { try LiftHeader(json: h.json.with(key, .null)) }
            if LiftHeader.signedKeys.contains(key) {
                // Re-signed, so only the key set can refuse it.
                #expect(throws: LiftError.self, "re-signed without \(key)") { try LiftHeader(json: resigned(h.core.with(key, nil))) }
            }
        }
        #expect(throws: LiftError.self) { try LiftHeader(json: resigned(h.core.with("memo", "x"))) }
        #expect(throws: LiftError.self) { try LiftHeader(json: h.json.with("extra", 1)) }
        // find: exactly for line.
        #expect(throws: LiftError.self) { try LiftHeader(json: resigned(h.core.with("find", Fx.header(kind: .line).core["find"]))) }
        #expect(throws: LiftError.self) { try LiftHeader(json: resigned(Fx.header(kind: .line).core.with("find", nil))) }
        #expect(throws: LiftError.self) {
            try LiftHeader(json: resigned(Fx.header(kind: .line).core.with("find", ["agent": .string(Fx.site(3).agent.description)])))
        }
    }

    @Test func rangesAndFormats() {
        let core = Fx.header().core
        let bad: [(String, JSONValue)] = [
            ("version", 2), ("version", "1"), ("uuid", "6F1C3A52-8D2E-4B7A-9C41-2E5D8F0A7B13"), ("kind", "loop"), ("qid", "AAECAwQFBgcICQoLDA0O"),
            ("units", 0), ("units", .integer(Amount.maxMilli + 1)), ("units", "1000"), ("path", []),
            ("path", .array([JSONValue](repeating: .string(Fx.nonce(Fx.tallyUUID)), count: 9))), ("path", ["short"]),
            ("origin", "AAAA"), ("date", "2026-12-01T12:00:00Z"), ("deadline", "2026-12-01 12:01:00.000Z"),
            ("deadline", "2026-12-01T12:00:00.000Z"),  // = date
            ("deadline", "2026-12-01T11:59:59.999Z"),  // before date
            ("deadline", "2026-12-01T12:02:00.001Z"),  // 120.001 s
            ("referee", Fx.chad("r", site: 9).json),  // a user's CHAD, not a site address
            ("referee", ["agent": .string(Fx.site(9).agent.description), "host": "site9.example.org"])
        ]
        for (key, value) in bad {
            #expect(throws: LiftError.self, "\(key) = \(value.canonicalString)") { try LiftHeader(json: resigned(core.with(key, value))) }
        }
        // Exactly 120 s and eight entries are allowed.
        #expect((try? LiftHeader(json: resigned(core.with("deadline", "2026-12-01T12:02:00.000Z")))) != nil)
        #expect(
            (try? LiftHeader(json: resigned(core.with("path", .array([JSONValue](repeating: .string(Fx.nonce(Fx.tallyUUID)), count: 8)))))) != nil)
    }

    @Test func hashAndSignature() throws {
        let h = Fx.header()
        // Altered units, hash left: the hash does not match.
        #expect(throws: LiftError.invalid("the header does not hash to its hash")) { try LiftHeader(json: h.json.with("units", 999)) }
        // Altered and re-hashed but signed by another key: the origin does not verify it.
        #expect(throws: LiftError.invalid("the header's signature does not verify with its origin")) {
            try LiftHeader(json: resigned(h.core.with("units", 999), key: Fx.key(43)))
        }
        // Re-signed by another key that also claims to be the origin: a different lift (another H).
        let forged = try LiftHeader(json: resigned(h.core.with("origin", .string(Base64URL.encode(Fx.key(43).publicKey))), key: Fx.key(43)))
        #expect(forged.hash != h.hash)
        // A signature of the wrong length.
        #expect(throws: LiftError.self) { try LiftHeader(json: h.json.with("sign", "AAAA")) }
    }
}

@Suite struct ChitValidatorTests {
    let header = Fx.header()
    var chit: LiftChit { (try? LiftChit.make(header: header, tally: Fx.tallyUUID, by: .foil, agentKey: Fx.siteKey(2)))! }

    @Test func everyKeyMissingExtraOrNull() {
        for key in LiftChit.keys.union(["sign", "hash"]) {
            #expect(throws: LiftError.self, "without \(key)") { try LiftChit(json: chit.json.with(key, nil)) }
            #expect(throws: LiftError.self, "null \(key)") { try LiftChit(json: chit.json.with(key, .null)) }
        }
        #expect(throws: LiftError.self) { try LiftChit(json: chit.json.with("memo", "hi")) }
        #expect(throws: LiftError.self) { try LiftChit(json: chit.json.with("type", "tran")) }
        #expect(throws: LiftError.self) { try LiftChit(json: chit.json.with("units", 1001)) }  // hash no longer matches
        #expect(throws: LiftError.self) { try LiftChit(json: chit.json.with("by", "both")) }
    }

    @Test func belongsToItsHeaderAndTally() throws {
        let core = Fx.tally(Fx.tallyUUID, stock: ("alice", 1), foil: ("bob", 2))
        // Signed by the user, not the agent: refused.
        let byUser = try LiftChit.make(header: header, tally: Fx.tallyUUID, by: .foil, agentKey: Fx.userKey("bob"))
        #expect(!byUser.verify(in: core))
        // Claiming the other side pays: the stock's agent did not sign it.
        let otherSide = try LiftChit.make(header: header, tally: Fx.tallyUUID, by: .stock, agentKey: Fx.siteKey(2))
        #expect(!otherSide.verify(in: core))
        // The chit of another tally is not this tally's.
        let other = Fx.tally(Fx.otherTallyUUID, stock: ("alice", 1), foil: ("bob", 2))
        #expect(!chit.verify(in: other))
        #expect(try LiftChit.make(header: header, tally: Fx.otherTallyUUID, by: .foil, agentKey: Fx.siteKey(2)).verify(in: other))
        // A header swapped between two lifts: the chit names the other H.
        let second = Fx.header(uuid: "7a2d4b63-9e3f-4c8b-8d52-3f6e9a1b8c24")
        #expect(chit.mismatch(second) != nil)
        let secondChit = try LiftChit.make(header: second, tally: Fx.tallyUUID, by: .foil, agentKey: Fx.siteKey(2))
        #expect(secondChit.uuid != chit.uuid)
        #expect(secondChit.mismatch(header) != nil)
        // Same H but another date, units or uuid (re-signed by the right agent): still not 9.5's chit.
        for (key, value) in [("date", JSONValue.string(Fx.ts(Fx.t0 + 1))), ("units", 999), ("uuid", .string(Fx.otherTallyUUID))] {
            let core = chit.core.with(key, value)
            let sign = Base64URL.encode(Fx.siteKey(2).sign(core.canonicalBytes))
            let forged = try LiftChit(
                json: core.with("sign", .string(sign)).with("hash", .string(Base64URL.encode(Crypto.sha256(core.canonicalBytes)))))
            #expect(forged.mismatch(header) != nil, "\(key)")
        }
    }
}

@Suite struct DecisionValidatorTests {
    let header = Fx.header()

    @Test func shape() throws {
        let good = Fx.decision(header, .good)
        for key in ["date", "lift", "referee", "result", "commit"] {
            #expect(throws: LiftError.self, "without \(key)") { try SignedDecision(decision: good.decision.with(key, nil), sign: good.sign) }
            #expect(throws: LiftError.self, "null \(key)") { try SignedDecision(decision: good.decision.with(key, .null), sign: good.sign) }
        }
        #expect(throws: LiftError.self) { try SignedDecision(decision: good.decision.with("hop", 1), sign: good.sign) }
        // commit present exactly when good.
        let void = Fx.decision(header, .void)
        #expect(throws: LiftError.self) { try SignedDecision(decision: void.decision.with("commit", .string(good.commit ?? "")), sign: void.sign) }
        #expect(throws: LiftError.self) { try SignedDecision(decision: good.decision.with("result", "void"), sign: good.sign) }
        #expect(throws: LiftError.self) { try SignedDecision(json: good.json.with("extra", 1)) }
        #expect(throws: LiftError.self) {
            try SignedDecision.make(lift: header.hash, result: .good, date: Fx.ts(Fx.t0), commit: nil, key: Fx.siteKey(9))
        }
    }

    @Test func validity() throws {
        #expect(Fx.decision(header, .good).problem(for: header) == nil)
        #expect(Fx.decision(header, .void).problem(for: header) == nil)
        // Signed by someone else than R.
        #expect(Fx.decision(header, .void, key: Fx.siteKey(3)).problem(for: header) != nil)
        // For another lift.
        let other = Fx.header(uuid: "7a2d4b63-9e3f-4c8b-8d52-3f6e9a1b8c24")
        #expect(Fx.decision(other, .void).problem(for: header) != nil)
        // A good whose commit is not the origin's: R cannot make a lift good alone.
        let fake = try SignedDecision.make(
            lift: header.hash, result: .good, date: Fx.ts(Fx.t0),
            commit: LiftAct.commit.sign(lift: header.hash, key: Fx.siteKey(9)), key: Fx.siteKey(9))
        #expect(fake.problem(for: header) == "the good decision's commit does not verify with the origin")
        // An abort's signature is no commit.
        let abort = try SignedDecision.make(
            lift: header.hash, result: .good, date: Fx.ts(Fx.t0),
            commit: LiftAct.abort.sign(lift: header.hash, key: Fx.originKey), key: Fx.siteKey(9))
        #expect(abort.problem(for: header) != nil)
        // A signature altered after the fact.
        let d = Fx.decision(header, .void)
        let tampered = try SignedDecision(decision: d.decision.with("date", .string(Fx.ts(Fx.t0 + 5))), sign: d.sign)
        #expect(tampered.problem(for: header) == "the referee's signature does not verify")
    }
}

@Suite struct MessageValidatorTests {
    let header = Fx.header()
    let alice = Fx.chad("alice", site: 1)
    let bob = Fx.chad("bob", site: 2)

    var query: RouteQuery {
        RouteQuery(
            qid: Fx.qid, kind: .circ, units: 1000, min: 500, ttl: 3, wait: 4000, referee: Fx.site(9),
            find: .hop(Fx.nonce(Fx.otherTallyUUID)), path: [Fx.nonce(Fx.tallyUUID)])
    }

    func route(_ body: RouteMessage.Body) -> RouteMessage { RouteMessage(to: alice, from: bob, body: body) }

    @Test func routeMessagesRoundTrip() throws {
        let messages: [RouteMessage] = [
            route(.query(query)),
            route(.good(qid: Fx.qid, routes: [FoundRoute(path: [Fx.nonce(Fx.tallyUUID)], max: 7)])),
            route(.noRoute(qid: Fx.qid, reason: .noRoute))
        ]
        for m in messages {
            let text = m.json.canonicalString
            #expect(try RouteMessage(json: Fx.json(text)) == m)
            #expect(try SiteMessage(json: Fx.json(text)) == .route(m))
            #expect(SiteMessage.route(m).json == m.json)
        }
        #expect(messages[2].json["action"] == "none")
    }

    @Test func routeQueryStrict() {
        let q = query.json
        for key in RouteQuery.keys {
            #expect(throws: LiftError.self, "without \(key)") { try RouteQuery(object: q.with(key, nil)) }
            #expect(throws: LiftError.self, "null \(key)") { try RouteQuery(object: q.with(key, .null)) }
        }
        let bad: [(String, JSONValue)] = [
            ("extra", 1), ("min", 0), ("min", 1001), ("units", 0), ("ttl", -1), ("wait", -1),
            ("kind", "line"),  // a circular find
            ("find", ["hop": "x"]), ("path", []), ("qid", "x")
        ]
        for (key, value) in bad {
            #expect(throws: LiftError.self, "\(key)") { try RouteQuery(object: q.with(key, value)) }
        }
        // Out of 9.9's ranges: read, and answered busy.
        #expect((try? RouteQuery(object: q.with("ttl", 5)))?.limitProblem != nil)
        #expect((try? RouteQuery(object: q.with("ttl", 4)))?.limitProblem == nil)
        #expect((try? RouteQuery(object: q.with("wait", 5001)))?.limitProblem != nil)
        #expect((try? RouteQuery(object: q.with("wait", 5000)))?.limitProblem == nil)
        #expect(
            (try? RouteQuery(object: q.with("path", .array([JSONValue](repeating: .string(Fx.nonce(Fx.tallyUUID)), count: 9)))))?.limitProblem != nil)
    }

    @Test func routeAnswersStrict() {
        let good = route(.good(qid: Fx.qid, routes: [FoundRoute(path: [Fx.nonce(Fx.tallyUUID)], max: 7)])).json
        let four = JSONValue.array([JSONValue](repeating: ["path": [.string(Fx.nonce(Fx.tallyUUID))], "max": 1], count: 4))
        #expect(throws: MessageError.self) { try RouteMessage(json: good.with("object", good["object"]?.with("routes", four))) }
        #expect(throws: MessageError.self) { try RouteMessage(json: good.with("object", good["object"]?.with("routes", []))) }
        #expect(throws: MessageError.self) { try RouteMessage(json: good.with("extra", 1)) }
        #expect(throws: MessageError.self) { try RouteMessage(json: good.with("to", Fx.site(1).json)) }
        let none = route(.noRoute(qid: Fx.qid, reason: .dup)).json
        #expect(throws: MessageError.self) { try RouteMessage(json: none.with("object", ["qid": .string(Fx.qid), "reason": "later"])) }
    }

    var liftMessages: [LiftMessage] {
        let chit = (try? LiftChit.make(header: header, tally: Fx.tallyUUID, by: .foil, agentKey: Fx.siteKey(2)))!
        let h = header.hash
        let r = LiftParty.site(Fx.site(9)), o = LiftParty.agent(Fx.agent(Fx.key(77)))
        let (a, b) = (LiftParty.user(alice), LiftParty.user(bob))
        return [
            LiftMessage(to: a, from: b, body: .promise(header: header, hop: 0, chit: chit)),
            LiftMessage(to: b, from: a, body: .ack(lift: h, hop: 0, of: .promise)),
            LiftMessage(to: b, from: a, body: .refuse(lift: h, hop: 1, reason: .capacity)),
            LiftMessage(to: b, from: a, body: .arrive(lift: h, hop: 1, sign: LiftAct.arrive.sign(lift: h, key: Fx.siteKey(1)))),
            LiftMessage(to: r, from: o, body: .call(.commit, header: header, sign: LiftAct.commit.sign(lift: h, key: Fx.originKey))),
            LiftMessage(to: r, from: .site(Fx.site(1)), body: .call(.abort, header: header, sign: LiftAct.abort.sign(lift: h, key: Fx.originKey))),
            LiftMessage(to: o, from: r, body: .decision(Fx.decision(header, .good), hop: nil)),
            LiftMessage(to: a, from: b, body: .decision(Fx.decision(header, .void), hop: 1)),
            LiftMessage(to: a, from: b, body: .status(lift: h, hop: 1)),
            LiftMessage(to: r, from: o, body: .query(header: header)),
            LiftMessage(to: o, from: r, body: .pending(lift: h, hop: nil, retry: 5000)),
            LiftMessage(to: b, from: a, body: .pending(lift: h, hop: 1, retry: 2000))
        ]
    }

    @Test func liftMessagesRoundTrip() throws {
        for m in liftMessages {
            let text = m.json.canonicalString
            #expect(try LiftMessage(json: Fx.json(text)) == m, "\(m.action)")
            #expect(try SiteMessage(json: Fx.json(text)) == .lift(m))
            #expect(SiteMessage.lift(m).action == m.action.rawValue)
        }
    }

    @Test func liftMessagesStrict() {
        for m in liftMessages {
            let j = m.json
            #expect(throws: MessageError.self, "\(m.action) extra envelope key") { try LiftMessage(json: j.with("extra", 1)) }
            #expect(throws: MessageError.self, "\(m.action) extra object key") {
                try LiftMessage(json: j.with("object", j["object"]?.with("extra", 1)))
            }
            for key in j["object"]?.objectValue?.keys.sorted() ?? [] where m.action != .promise {
                #expect(throws: MessageError.self, "\(m.action) without \(key)") {
                    try LiftMessage(json: j.with("object", j["object"]?.with(key, nil)))
                }
                #expect(throws: MessageError.self, "\(m.action) null \(key)") {
                    try LiftMessage(json: j.with("object", j["object"]?.with(key, .null)))
                }
            }
            for key in ["to", "from"] {
                #expect(throws: MessageError.self, "\(m.action) without \(key)") { try LiftMessage(json: j.with(key, nil)) }
            }
            // A hop message between sites, or a referee message between users.
            let swapped: JSONValue = m.hop == nil ? alice.json : Fx.site(1).json
            #expect(throws: MessageError.self, "\(m.action) with the wrong kind of from") { try LiftMessage(json: j.with("from", swapped)) }
        }
        let ack = liftMessages[1].json
        #expect(throws: MessageError.self) { try LiftMessage(json: ack.with("object", ack["object"]?.with("hop", 8))) }
        #expect(throws: MessageError.self) { try LiftMessage(json: ack.with("object", ack["object"]?.with("hop", -1))) }
        #expect(throws: MessageError.self) { try LiftMessage(json: ack.with("object", ack["object"]?.with("of", "commit"))) }
        // The action must be the decision's result.
        let good = liftMessages[6].json
        #expect(throws: MessageError.self) { try LiftMessage(json: good.with("action", "void")) }
    }

    @Test func anInvalidPromiseIsStillAnswerable() throws {
        let promise = liftMessages[0].json
        let object = try #require(promise["object"])
        let second = Fx.header(uuid: "7a2d4b63-9e3f-4c8b-8d52-3f6e9a1b8c24")
        let secondChit = try LiftChit.make(header: second, tally: Fx.tallyUUID, by: .foil, agentKey: Fx.siteKey(2))
        let cases: [(String, JSONValue)] = [
            ("a chit of another lift (swapped header)", object.with("chit", secondChit.json)),
            ("an altered header", object.with("lift", header.json.with("units", 5))),
            ("a chit missing a key", object.with("chit", object["chit"]?.with("uuid", nil))),
            ("a hop beyond the path", object.with("hop", 2))
        ]
        for (what, o) in cases {
            let m = try LiftMessage(json: promise.with("object", o))
            guard case .invalidPromise(let lift, let hop, _, _) = m.body else {
                Issue.record("\(what): parsed as \(m.body)")
                continue
            }
            #expect(lift == header.hash)
            #expect(hop == o["hop"]?.integerValue.map(Int.init))
            #expect(m.json == promise.with("object", o))
        }
        // Without a readable H or hop there is nothing to answer.
        #expect(throws: MessageError.self) { try LiftMessage(json: promise.with("object", object.with("lift", header.json.with("hash", nil)))) }
        #expect(throws: MessageError.self) { try LiftMessage(json: promise.with("object", object.with("hop", "0"))) }
    }

    @Test func partiesAndSealContents() throws {
        #expect(try LiftParty(json: alice.json) == .user(alice))
        #expect(try LiftParty(json: Fx.site(1).json) == .site(Fx.site(1)))
        #expect(try LiftParty(json: ["agent": .string(Fx.site(1).agent.description)]) == .agent(Fx.site(1).agent))
        #expect(throws: LiftError.self) { try LiftParty(json: ["agent": .string(Fx.site(1).agent.description), "host": "h"]) }
        #expect(throws: LiftError.self) { try LiftParty(json: Fx.site(1).json.with("port", .null)) }
        // Site addresses compare by agent only.
        #expect(LiftSite(agent: Fx.site(1).agent, address: Fx.address(5)) == Fx.site(1))
        let seal = SealContents(qid: Fx.qid, cuid: Fx.cuid("carol"), units: 500, memo: "rent", payor: alice)
        #expect(try SealContents(json: Fx.json(seal.json.canonicalString)) == seal)
        #expect(throws: LiftError.self) { try SealContents(json: seal.json.with("units", 0)) }
        #expect(throws: LiftError.self) { try SealContents(json: seal.json.with("memo", .null)) }
        #expect(throws: LiftError.self) { try SealContents(json: seal.json.with("extra", 1)) }
    }
}
