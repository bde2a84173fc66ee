import ChipModel
import ChipProtocol

// Real lifts (protocol section 9) for the route_message and lift_message
// targets and their seeds, built from the fixed sites and keys of
// FuzzSupport.swift. Site B (bob) is the site that decides: it holds two open
// foreign tallies, the fixed tally with alice at site A (bob the stock, he
// owes her 20,000) and a tally with carol at site C (bob the foil, carol's
// limit 70,000), and, when a selector asks, an internal tally to dave. Site R
// is the lift's referee; one fixed origin key signs every header.

enum Lifts {
    static let siteC = FuzzSite(fill: 0xC3)
    static let siteR = FuzzSite(fill: 0xD4)
    static let alice = Dialogs.alice, bob = Dialogs.bob, carol = siteC.chad("carol"), dave = Fixed.siteB.chad("dave")
    static let carolKey = Fixed.userKey(0xC5)
    static let carolCert = Fixed.certificate(carol, "Carol White", carolKey)
    static let originKey = Fixed.userKey(0x0F)

    static func site(_ s: FuzzSite, port: Int) -> LiftSite {
        guard let address = try? SiteAddress(host: "127.0.0.1", port: port) else { fatalError("fixed lift site address") }
        return LiftSite(agent: s.agent, address: address)
    }
    static let siteAAddress = site(Fixed.siteA, port: 65430)
    static let siteBAddress = site(Fixed.siteB, port: 65430)
    static let siteCAddress = site(siteC, port: 65430)
    static let referee = site(siteR, port: 65431)

    /// The fixed tally (alice pays bob on it: hop 0), and bob's tally with carol (bob pays carol: hop 1).
    static let tallyAB = Fixed.tallyUUID
    static let tallyBC = "9d1b2c3d-4e5f-4a6b-8c7d-8e9f0a1b2c3d"
    /// Carol's tally with alice (closes the circle; only its nonce is used) and bob's internal tally with dave.
    static let tallyCA = "ae1b2c3d-4e5f-4a6b-8c7d-8e9f0a1b2c3d"
    static let tallyBD = "bf1b2c3d-4e5f-4a6b-8c7d-8e9f0a1b2c3d"

    static let coreBC: TallyCore = {
        guard
            let core = try? TallyCore(
                uuid: tallyBC, date: Fixed.date, memo: "fuzz lift tally",
                stock: (cert: carolCert.json, terms: ["limit": 70_000]), foil: (cert: Fixed.bobCert.json, terms: ["limit": 50_000]))
        else { fatalError("fixed lift tally is invalid") }
        return core
    }()

    static let qid = Base64URL.encode(Array(0x10..<0x20))
    static func nonce(_ tally: String) -> String {
        guard let n = HopNonce.nonce(qid: qid, tally: tally) else { fatalError("fixed nonce") }
        return n
    }

    /// The clock: headers are dated `date`, die at `deadline`; sites decide at `now` (1 s after `date`).
    static let date = Dialogs.now
    static let dateMs = Timestamp.parse(date) ?? 0
    static let deadlineMs = dateMs + 60_000
    static let now = dateMs + 1000

    // MARK: Halves

    static func halfAB(balance: Int64 = -20_000) -> LiftHalf {
        LiftHalf(tally: tallyAB, side: .stock, stockLimit: 100_000, foilLimit: 50_000, balance: balance)
    }
    static func halfBC(balance: Int64 = 0) -> LiftHalf {
        LiftHalf(tally: tallyBC, side: .foil, stockLimit: 70_000, foilLimit: 50_000, balance: balance)
    }
    static func foreign(low: Bool = false) -> [RouteDiscovery.Foreign] {
        [
            RouteDiscovery.Foreign(uuid: tallyAB, user: bob, partner: alice, half: halfAB(balance: low ? -100 : -20_000)),
            RouteDiscovery.Foreign(uuid: tallyBC, user: bob, partner: carol, half: halfBC(balance: low ? 69_950 : 0))
        ]
    }
    static let internalBD: RouteDiscovery.Internal = {
        let half = { (side: TallySide) in LiftHalf(tally: tallyBD, side: side, stockLimit: 30_000, foilLimit: 30_000, balance: 10_000) }
        return RouteDiscovery.Internal(uuid: tallyBD, stock: bob.cuid, foil: dave.cuid, stockHalf: half(.stock), foilHalf: half(.foil))
    }()

    // MARK: Headers, chits, decisions

    /// What a linear lift to bob (at site B, the terminus) seals: 5,000 to bob.
    static let sealForB = SealContents(qid: qid, cuid: bob.cuid, units: 5000, memo: "fuzz pay", ref: ["n": 1], payor: alice)
    static let sealForC = SealContents(qid: qid, cuid: carol.cuid, units: 5000)

    /// The seals of the linear headers, sealed once (a sealed box is random;
    /// the headers, and so the seeds' H, must be the same in every process).
    static let sealTextB =
        "bCmiR_2YZhQrghFT-WB0zHYclxIRJUFJ1lSCbGx4_Q04joBubFpZt0bTojo1HywDVV0EHYWPyHNPjZ_vkJrPiz3dHA5docsDrdXv9rerudWiD3ambbmHYqXfcWVKL3sssBNHyiLwMhn8XK2NW4q53eUmpvSbSCJTDPtDX79Vo6vn7Q0JFCSj0y5OgAboFmXKb-Lta_C4lzoeB1Y53kTLavOE-YtddDtxLABldBTWw6VxkrJOjQCl8Ywn0uybG9EQrlbKCVqwVwbpBe36h_qTNMc6Lrvj_m5YHMN8Ckn05OPHBkNR9eAUK-nuvve6OAPfHaEnIWV6zjwQ"
    static let sealTextC =
        "7VHaBGxH-08c-DTmuLOz0lDVeLeBLfF9Lw7_yoxttHfOXlKgFT-vp68R1XXn_2X3jvvONcivmbTDgKUuWoLIHVTYLEOQc_ZLQFYrgrgcsyOWrIVNGQup-hA-O0mgcrf_Bqte4cqnLY2qsIj7"
    static let findB: LiftFind = {
        let find = LiftFind(agent: Fixed.siteB.agent, seal: sealTextB)
        guard openSeal(find) == sealForB else { fatalError("the fixed seal to site B does not open to sealForB") }
        return find
    }()
    static let findC = LiftFind(agent: siteC.agent, seal: sealTextC)

    static func header(_ uuid: String, _ kind: LiftKind, path: [String], find: LiftFind?) -> LiftHeader {
        guard
            let h = try? LiftHeader.make(
                uuid: uuid, kind: kind, qid: qid, date: date, deadline: Timestamp.format(millisecondsSince1970: deadlineMs), units: 5000,
                path: path, referee: referee, find: find, originKey: originKey)
        else { fatalError("fixed lift header \(uuid) is invalid") }
        return h
    }
    /// A circular lift A → B → C → A, a linear one A → B → C (payee carol), a linear one A → B (payee bob).
    static let circ = header("c01b2c3d-4e5f-4a6b-8c7d-8e9f0a1b2c3d", .circ, path: [nonce(tallyAB), nonce(tallyBC), nonce(tallyCA)], find: nil)
    static let lineRelay = header(
        "c11b2c3d-4e5f-4a6b-8c7d-8e9f0a1b2c3d", .line, path: [nonce(tallyAB), nonce(tallyBC)],
        find: findC)
    static let lineHere = header(
        "c21b2c3d-4e5f-4a6b-8c7d-8e9f0a1b2c3d", .line, path: [nonce(tallyAB)],
        find: findB)
    /// A circular lift site B started, B → C → A → B: its promise comes home on the fixed tally (hop 2).
    static let circHome = header(
        "c31b2c3d-4e5f-4a6b-8c7d-8e9f0a1b2c3d", .circ, path: [nonce(tallyBC), nonce(tallyCA), nonce(tallyAB)], find: nil)
    static let headers = [circ, lineRelay, lineHere, circHome]
    /// The header a site holds for H (its record's, or a chit's promise's).
    static func known(_ lift: String) -> LiftHeader? { headers.first { $0.hash == lift } }

    /// Alice's site's chit on hop 0 (the fixed tally), as its promise carries it.
    static func chitAB(_ h: LiftHeader) -> LiftChit {
        guard let c = try? LiftChit.make(header: h, tally: tallyAB, by: .foil, agentKey: Fixed.siteA.key) else { fatalError("fixed lift chit") }
        return c
    }
    static func decision(_ h: LiftHeader, _ result: LiftResult, at ms: Int64 = now + 500) -> SignedDecision {
        let commit = result == .good ? LiftAct.commit.sign(lift: h.hash, key: originKey) : nil
        guard
            let d = try? SignedDecision.make(
                lift: h.hash, result: result, date: Timestamp.format(millisecondsSince1970: ms), commit: commit, key: siteR.key)
        else { fatalError("fixed decision") }
        return d
    }

    // MARK: Snapshots (as ChipStore/LiftDialogs.swift loads them)

    /// The route snapshot at site B from one selector byte: bit 0 the qid
    /// was seen, bit 1 over a limit, bit 2 R not accepted, bit 3 the internal
    /// tally to dave, bit 4 low capacities; a linear query's seal opened with site B's key.
    static func routeSnapshot(_ m: RouteMessage, _ v: UInt8) -> RouteDiscovery.Snapshot {
        var seal: SealContents?
        if case .query(let q) = m.body, case .payee(let find) = q.find { seal = openSeal(find) }
        return RouteDiscovery.Snapshot(
            site: Fixed.siteB.agent, foreign: foreign(low: v & 16 != 0), internalTallies: v & 8 != 0 ? [internalBD] : [],
            unlocked: [bob.cuid, dave.cuid], seen: v & 1 != 0, overLimit: v & 2 != 0, acceptsReferee: v & 4 == 0, seal: seal)
    }

    /// ChipStore's `openSeal`: site B's seal, opened and read (nil: not ours, or it does not open or parse).
    static func openSeal(_ find: LiftFind) -> SealContents? {
        guard find.agent == Fixed.siteB.agent, let bytes = SealedBox.open(find.seal, with: Fixed.siteB.key, maxBytes: LiftLimits.maxSealBytes),
            let json = try? JSONValue(parsing: bytes)
        else { return nil }
        return try? SealContents(json: json)
    }

    /// What site B holds of H: a record (role, state) when H is a fixed header.
    static func record(_ lift: String, _ v: UInt8) -> LiftRecord? {
        guard let h = known(lift), v & 1 != 0 else { return nil }
        let states = LiftRecord.State.allCases
        let state = states[Int(v >> 1 & 7) % states.count]
        let origin = v & 16 != 0
        return LiftRecord(
            header: h, role: origin ? .origin : (h.path.count == 1 ? .terminus : .relay), state: state, hop: origin ? nil : 0,
            answer: .ack, outgoing: h.path.count > 1 ? tallyBC : nil)
    }

    /// The promise snapshot from one selector byte (bits: 0 answered, 1 the chit held,
    /// 2 R not accepted, 3 64 lifts with the partner, 4 low capacities, 5 a decision applied, 6 users locked
    /// and a void decision, 7 our record as origin in exec).
    static func promiseSnapshot(_ m: LiftMessage, _ v: UInt8) -> PromiseDialog.Snapshot {
        var s = PromiseDialog.Snapshot(site: siteBAddress, tallies: [])
        guard case .user(let to) = m.to, case .user(let from) = m.from, m.hop != nil else { return s }
        if v & 1 != 0 { s.answered = v & 2 != 0 ? .ack : .refuse(.capacity) }
        guard case .promise(let header, _, _) = m.body else { return s }
        s.holdsChit = v & 2 != 0 && v & 1 == 0
        let low = v & 16 != 0
        for f in foreign(low: low) where f.user == to && f.partner == from {
            s.tallies.append(
                PromiseDialog.Inbound(core: f.uuid == tallyAB ? Fixed.tallyCore : coreBC, user: f.user, partner: f.partner, half: f.half))
        }
        s.acceptsReferee = v & 4 == 0
        s.withPartner = v & 8 != 0 ? LiftLimits.maxLiftsPerPartner : 1
        // Our own lift in exec (a circular one coming home, or one we also relay).
        s.record = v & 128 != 0 ? record(header.hash, 1 | 2 << 1 | 16) : nil
        if v & 32 != 0, known(header.hash) != nil { s.decided = decision(header, v & 64 != 0 ? .void : .good) }
        s.foreign = foreign(low: low)
        s.internalTallies = [internalBD]
        s.unlocked = v & 64 != 0 ? [] : [bob.cuid, dave.cuid]
        if s.record?.role == .origin { s.originKey = originKey }
        if let find = header.find { s.seal = openSeal(find) }
        return s
    }

    /// The call snapshot (refuse, arrive) from one selector byte: bits 0-4 the record, 5 our promise answered, 6 no origin key.
    static func callSnapshot(_ m: LiftMessage, _ v: UInt8) -> LiftCall.Snapshot {
        guard let r = record(m.lift, v | 1) else { return LiftCall.Snapshot(site: siteBAddress, record: nil, promisedHop: nil) }
        let promisedHop = r.outgoing.flatMap { r.header.path.firstIndex(of: nonce($0)) }
        let predecessor = r.hop.map { LiftCall.Predecessor(hop: $0, user: alice, ours: bob) }
        return LiftCall.Snapshot(
            site: siteBAddress, record: r, promisedHop: promisedHop, promiseAnswer: v & 32 != 0 ? .ack : nil, predecessor: predecessor,
            originKey: r.role == .origin && v & 64 == 0 ? originKey : nil)
    }

    static func ackSnapshot(_ m: LiftMessage, _ v: UInt8) -> LiftAck.Snapshot {
        let r = record(m.lift, v | 1)
        return LiftAck.Snapshot(
            known: r != nil, promisedHop: r?.outgoing.flatMap { r?.header.path.firstIndex(of: nonce($0)) }, promiseAnswered: v & 32 != 0)
    }

    /// The decisions site B holds for H from two bits: none, good, void, void then good.
    static func held(_ lift: String, _ v: UInt8) -> [SignedDecision] {
        guard let h = known(lift) else { return [] }
        switch v & 3 {
        case 1: return [decision(h, .good)]
        case 2: return [decision(h, .void)]
        case 3: return [decision(h, .void), decision(h, .good, at: now + 900)]
        default: return []
        }
    }

    /// The decision snapshot: bits 0-1 held decisions, 2 our successor answered, 3 a lift we hold nothing of.
    static func decisionSnapshot(_ m: LiftMessage, _ v: UInt8) -> DecisionApply.Snapshot {
        guard let h = known(m.lift), v & 8 == 0 else { return DecisionApply.Snapshot(header: nil, known: false) }
        var neighbours = [DecisionApply.Neighbour(hop: 0, user: alice, ours: bob, successor: false, answered: true)]
        if h.path.count > 1 { neighbours.append(DecisionApply.Neighbour(hop: 1, user: carol, ours: bob, successor: true, answered: v & 4 != 0)) }
        return DecisionApply.Snapshot(header: h, held: held(m.lift, v), known: true, neighbours: neighbours)
    }

    /// R's clock from two bits: before the deadline, at it, just before the keep period ends, after it.
    static func refereeNow(_ v: UInt8) -> Int64 {
        switch v & 3 {
        case 1: deadlineMs
        case 2: deadlineMs + LiftLimits.keepMs - 1
        case 3: deadlineMs + LiftLimits.keepMs
        default: now
        }
    }

    // MARK: Messages

    static func hop(_ to: CHAD, _ from: CHAD, _ body: LiftMessage.Body) -> JSONValue {
        SiteMessage.lift(LiftMessage(to: .user(to), from: .user(from), body: body)).json
    }
    static func toReferee(_ body: LiftMessage.Body) -> JSONValue {
        SiteMessage.lift(LiftMessage(to: .site(referee), from: .site(siteAAddress), body: body)).json
    }
    static func fromReferee(_ body: LiftMessage.Body) -> JSONValue {
        SiteMessage.lift(LiftMessage(to: .site(siteBAddress), from: .site(referee), body: body)).json
    }

    /// Real lift messages, each named for its seed.
    static var liftMessages: [(String, JSONValue)] {
        var out: [(String, JSONValue)] = []
        for (name, h) in [("circ", circ), ("line-relay", lineRelay), ("line-here", lineHere)] {
            let H = h.hash
            out.append(("promise-\(name)", hop(bob, alice, .promise(header: h, hop: 0, chit: chitAB(h)))))
            out.append(("ack-promise-\(name)", hop(bob, carol, .ack(lift: H, hop: 1, of: .promise))))
            out.append(("ack-good-\(name)", hop(bob, alice, .ack(lift: H, hop: 0, of: .good))))
            out.append(("refuse-\(name)", hop(bob, carol, .refuse(lift: H, hop: 1, reason: .capacity))))
            out.append(("commit-\(name)", toReferee(.call(.commit, header: h, sign: LiftAct.commit.sign(lift: H, key: originKey)))))
            out.append(("abort-\(name)", toReferee(.call(.abort, header: h, sign: LiftAct.abort.sign(lift: H, key: originKey)))))
            out.append(("query-\(name)", toReferee(.query(header: h))))
            out.append(("good-\(name)", hop(bob, alice, .decision(decision(h, .good), hop: 0))))
            out.append(("void-\(name)", hop(bob, carol, .decision(decision(h, .void), hop: 1))))
            out.append(("good-from-referee-\(name)", fromReferee(.decision(decision(h, .good), hop: nil))))
            out.append(("status-\(name)", hop(bob, carol, .status(lift: H, hop: 1))))
            out.append(("pending-\(name)", fromReferee(.pending(lift: H, hop: nil, retry: 2000))))
        }
        out.append(("promise-circ-home", hop(bob, alice, .promise(header: circHome, hop: 2, chit: chitAB(circHome)))))
        out.append(("refuse-circ-home", hop(bob, carol, .refuse(lift: circHome.hash, hop: 0, reason: .busy))))
        out.append(
            (
                "arrive-line-relay",
                hop(bob, carol, .arrive(lift: lineRelay.hash, hop: 1, sign: LiftAct.arrive.sign(lift: lineRelay.hash, key: siteC.key)))
            ))
        out.append(("pending-hop", hop(bob, carol, .pending(lift: circ.hash, hop: 1, retry: 0))))
        // A promise whose chit is another hop's: read, answered invalid.
        out.append(("promise-invalid", hop(bob, alice, .promise(header: circ, hop: 0, chit: chitAB(lineRelay)))))
        return out
    }

    /// The query alice's site sends bob for a circular lift closing on carol's tally with alice, and linear ones.
    static func query(_ find: RouteFind, kind: LiftKind, ttl: Int64 = 3, wait: Int64 = 4000, path: [String]? = nil) -> RouteMessage {
        RouteMessage(
            to: bob, from: alice,
            body: .query(
                RouteQuery(
                    qid: qid, kind: kind, units: 5000, min: 100, ttl: ttl, wait: wait, referee: referee, find: find,
                    path: path ?? [nonce(tallyAB)])))
    }
    static let circQuery = query(.hop(nonce(tallyCA)), kind: .circ)
    /// The forwards site B makes for `circQuery` (to carol): what `good` answers are folded into.
    static let circForwards: [RouteDiscovery.Forward] = {
        guard case .forward(let f, _, _) = RouteDiscovery.decide(circQuery, snapshot: routeSnapshot(circQuery, 0)) else {
            fatalError("the fixed query is not forwarded")
        }
        return f
    }()

    /// Real route messages, each named for its seed.
    static var routeMessages: [(String, JSONValue)] {
        let here = findB, there = findC
        var sent: [String] = []
        if let f = circForwards.first, case .query(let q) = f.message.body { sent = q.path }
        let m: [(String, RouteMessage)] = [
            ("query-circ", circQuery),
            ("query-circ-closing", query(.hop(nonce(tallyBC)), kind: .circ)),
            ("query-circ-ttl0", query(.hop(nonce(tallyCA)), kind: .circ, ttl: 0)),
            ("query-line-here", query(.payee(here), kind: .line)),
            ("query-line-there", query(.payee(there), kind: .line, wait: 5000)),
            ("good", RouteMessage(to: bob, from: carol, body: .good(qid: qid, routes: [FoundRoute(path: sent + [nonce(tallyCA)], max: 4000)]))),
            (
                "good-three",
                RouteMessage(
                    to: bob, from: carol,
                    body: .good(
                        qid: qid,
                        routes: [
                            FoundRoute(path: sent + [nonce(tallyCA)], max: 90_000), FoundRoute(path: sent, max: 50),
                            FoundRoute(path: [nonce(tallyBD)], max: 1)
                        ]))
            ),
            ("none", RouteMessage(to: bob, from: carol, body: .noRoute(qid: qid, reason: .noRoute))),
            ("none-busy", RouteMessage(to: alice, from: bob, body: .noRoute(qid: qid, reason: .busy)))
        ]
        return m.map { ($0.0, SiteMessage.route($0.1).json) }
    }
}
