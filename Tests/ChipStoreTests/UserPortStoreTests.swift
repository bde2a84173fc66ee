import ChipModel
import Foundation
import GRDB
import Testing
import TestSupport
import ChipProtocol
@testable import ChipStore

/// The user port's part of the site file (protocol section 10): tickets,
/// registration, devices, events, idempotency.
@Suite struct UserPortStoreTests {
    static let now: Int64 = 1_795_000_000_000
    static let day: Int64 = 86_400_000

    struct Site {
        let dir: TempDir
        let store: SiteStore
        let alice: CUID
        var path: String { dir.file("site.db") }

        init() throws {
            dir = try TempDir()
            store = try SiteStore.create(at: dir.file("site.db"), address: address, passphrase: nil)
            alice = try CUID("alice")
            try store.addUser(cuid: alice, name: "Alice", email: nil, sealingKey: nil)
        }

        func ticketState(_ token: String) throws -> String? {
            try store.database.read { db in
                try String.fetchOne(db, sql: "SELECT state FROM user_tickets WHERE token_hash = ?", arguments: [UserTicket.tokenHash(token)])
            }
        }
    }

    static func newDevice() throws -> DeviceID { try DeviceID(publicKey: Crypto.randomBytes(32)) }

    static func register(_ store: SiteStore, _ token: String, _ device: DeviceID, name: String = "Pixel 7", now: Int64 = now) throws
        -> DeviceRegistrationOutcome
    {
        try store.registerDevice(token: token, name: name, device: device, now: now)
    }

    static func isRegistered(_ o: DeviceRegistrationOutcome) -> Bool {
        if case .registered = o { return true }
        return false
    }

    // MARK: Tickets

    @Test func aTicketNamesTheUserPortAndTheAgentAndOnlyItsHashIsStored() throws {
        let s = try Site()
        let t = try s.store.issueUserTicket(cuid: s.alice, scopes: nil, lifetime: nil, now: Self.now)
        #expect(t.address.host == address.host && t.address.port == address.port + UserPortDefaults.portOffset)
        #expect(t.agent == (try s.store.agent()))
        #expect(t.user == s.alice)
        #expect(t.expires == Timestamp.format(millisecondsSince1970: Self.now + UserTicket.defaultLifetimeSeconds * 1000))
        #expect(try s.ticketState(t.token) == "open")
        let row = try #require(
            try s.store.database.read { db in try Row.fetchOne(db, sql: "SELECT scopes, expires, created FROM user_tickets") })
        #expect((row["scopes"] as String) == #"["read","request","pay","tally","devices"]"#)
        #expect((row["expires"] as Int64) == Self.now + 86_400_000)
        // Neither the file nor its WAL holds the token.
        try s.store.checkpointAndClose()
        for file in [s.path, s.path + "-wal"] {
            guard let content = bytes(file) else { continue }
            #expect(!content.contains(Array(t.token.utf8)), "the token is in \(file)")
        }
    }

    @Test func userPortSettingScopesAndLifetime() throws {
        let s = try Site()
        try s.store.database.write { db in try db.execute(sql: "INSERT INTO config (key, value) VALUES ('user.port', '7000')") }
        let t = try s.store.issueUserTicket(cuid: s.alice, scopes: [.read, .pay], lifetime: 7 * 86400, now: Self.now)
        #expect(t.address.port == 7000)
        #expect(t.expires == Timestamp.format(millisecondsSince1970: Self.now + 7 * Self.day))
        #expect(throws: ModelError.self) { try s.store.issueUserTicket(cuid: s.alice, scopes: nil, lifetime: 7 * 86400 + 1, now: Self.now) }
        #expect(throws: ModelError.self) { try s.store.issueUserTicket(cuid: s.alice, scopes: [], lifetime: nil, now: Self.now) }
        #expect(throws: StoreError.unknownUser("carol")) {
            try s.store.issueUserTicket(cuid: try CUID("carol"), scopes: nil, lifetime: nil, now: Self.now)
        }
        let device = try Self.newDevice()
        #expect(try Self.register(s.store, t.token, device) == .registered(user: s.alice, device: device))
        #expect(try s.store.deviceSession(device: device)?.scopes == [.read, .pay])
    }

    @Test func aNewTicketRevokesTheUsersOlderOpenOnes() throws {
        let s = try Site()
        let bob = try CUID("bob")
        try s.store.addUser(cuid: bob, name: "Bob", email: nil, sealingKey: nil)
        let first = try s.store.issueUserTicket(cuid: s.alice, scopes: nil, lifetime: nil, now: Self.now)
        let bobs = try s.store.issueUserTicket(cuid: bob, scopes: nil, lifetime: nil, now: Self.now)
        let second = try s.store.issueUserTicket(cuid: s.alice, scopes: nil, lifetime: nil, now: Self.now + 1)
        #expect(try s.ticketState(first.token) == "revoked")
        #expect(try s.ticketState(second.token) == "open")
        #expect(try s.ticketState(bobs.token) == "open", "only the same user's tickets")
        #expect(try Self.register(s.store, first.token, try Self.newDevice()) == .refused("ticket already revoked"))
        // A ticket that could not be shown is not stored, and revokes nothing.
        struct Unshown: Error {}
        var shown: String?
        #expect(throws: StoreError.self) {
            try s.store.issueUserTicket(cuid: s.alice, scopes: nil, lifetime: nil, now: Self.now + 2) { t in
                shown = t.token
                throw Unshown()
            }
        }
        #expect(try s.ticketState(try #require(shown)) == nil)
        #expect(try s.ticketState(second.token) == "open")
        #expect(Self.isRegistered(try Self.register(s.store, second.token, try Self.newDevice())))
    }

    @Test func sixteenDevicesRefuseANewTicket() throws {
        let s = try Site()
        for n in 0..<UserPortDefaults.maxDevicesPerUser {
            let t = try s.store.issueUserTicket(cuid: s.alice, scopes: nil, lifetime: nil, now: Self.now + Int64(n))
            #expect(Self.isRegistered(try Self.register(s.store, t.token, try Self.newDevice(), now: Self.now + Int64(n))))
        }
        #expect(throws: StoreError.deviceLimit("alice")) { try s.store.issueUserTicket(cuid: s.alice, scopes: nil, lifetime: nil, now: Self.now) }
        // A revoked device no longer counts.
        let first = try #require(try s.store.devices(of: s.alice).first)
        try s.store.revokeDevice(cuid: s.alice, device: first.device, now: Self.now + 100)
        _ = try s.store.issueUserTicket(cuid: s.alice, scopes: nil, lifetime: nil, now: Self.now + 101)
    }

    // MARK: Registration

    @Test func aFailedRegistrationStillBurnsTheTicket() throws {
        let s = try Site()
        // Expired.
        let expired = try s.store.issueUserTicket(cuid: s.alice, scopes: nil, lifetime: 60, now: Self.now)
        #expect(try Self.register(s.store, expired.token, try Self.newDevice(), now: Self.now + 60_000) == .refused("ticket expired"))
        #expect(try s.ticketState(expired.token) == "used")

        // The device key is registered already (here, to the same user).
        let key = try Self.newDevice()
        let t1 = try s.store.issueUserTicket(cuid: s.alice, scopes: nil, lifetime: nil, now: Self.now)
        #expect(try Self.register(s.store, t1.token, key) == .registered(user: s.alice, device: key))
        let t2 = try s.store.issueUserTicket(cuid: s.alice, scopes: nil, lifetime: nil, now: Self.now)
        #expect(try Self.register(s.store, t2.token, key) == .refused("the device key is registered already"))
        #expect(try s.ticketState(t2.token) == "used")

        // Sixteen devices by the time the ticket is used.
        let t3 = try s.store.issueUserTicket(cuid: s.alice, scopes: nil, lifetime: nil, now: Self.now)
        try s.store.database.write { db in
            for n in 1..<UserPortDefaults.maxDevicesPerUser {
                let d = try Self.newDevice()
                try db.execute(
                    sql: "INSERT INTO devices (id, cuid, public, name, scopes, created) VALUES (?, 'alice', ?, ?, '[\"read\"]', ?)",
                    arguments: [d.description, Data(d.publicKey), "extra \(n)", Self.now])
            }
        }
        #expect(try Self.register(s.store, t3.token, try Self.newDevice()) == .refused("user alice has 16 devices"))
        #expect(try s.ticketState(t3.token) == "used")
        #expect(try s.store.devices(of: s.alice).count == 16)

        // The ticket's user is gone (the file edited with foreign keys off).
        let bob = try CUID("bob")
        try s.store.addUser(cuid: bob, name: "Bob", email: nil, sealingKey: nil)
        let t4 = try s.store.issueUserTicket(cuid: bob, scopes: nil, lifetime: nil, now: Self.now)
        try s.store.database.writeWithoutTransaction { db in
            try db.execute(sql: "PRAGMA foreign_keys = OFF")
            try db.execute(sql: "DELETE FROM users WHERE cuid = 'bob'")
            try db.execute(sql: "PRAGMA foreign_keys = ON")
        }
        #expect(try Self.register(s.store, t4.token, try Self.newDevice()) == .refused("the ticket's user is gone"))
        #expect(try s.ticketState(t4.token) == "used")

        // A bad name is refused after the burn too.
        try s.store.database.write { db in try db.execute(sql: "DELETE FROM devices WHERE name LIKE 'extra%'") }
        let t5 = try s.store.issueUserTicket(cuid: s.alice, scopes: nil, lifetime: nil, now: Self.now)
        #expect(try Self.register(s.store, t5.token, try Self.newDevice(), name: "") == .refused("bad device name"))
        #expect(try s.ticketState(t5.token) == "used")
    }

    @Test func aUsedTokenIsRefusedWithTheSameKeyOrAnother() throws {
        let s = try Site()
        let t = try s.store.issueUserTicket(cuid: s.alice, scopes: nil, lifetime: nil, now: Self.now)
        let key = try Self.newDevice()
        #expect(try Self.register(s.store, t.token, key) == .registered(user: s.alice, device: key))
        #expect(try Self.register(s.store, t.token, key) == .refused("ticket already used"))
        #expect(try Self.register(s.store, t.token, try Self.newDevice()) == .refused("ticket already used"))
        #expect(try Self.register(s.store, String(repeating: "0", count: 32), try Self.newDevice()) == .refused("no such ticket"))
        #expect(try Self.register(s.store, "not a token", try Self.newDevice()) == .refused("malformed token"))
        #expect(try s.store.devices(of: s.alice).count == 1)
    }

    @Test func ofTwoRacingRegistrationsExactlyOneWins() async throws {
        for _ in 0..<5 {
            let s = try Site()
            let t = try s.store.issueUserTicket(cuid: s.alice, scopes: nil, lifetime: nil, now: Self.now)
            // Two connections to the file, as two processes would have.
            let one = try SiteStore.open(at: s.path), two = try SiteStore.open(at: s.path)
            let token = t.token
            async let r1 = Task.detached { try Self.register(one, token, try Self.newDevice()) }.value
            async let r2 = Task.detached { try Self.register(two, token, try Self.newDevice()) }.value
            let outcomes = try await [r1, r2]
            #expect(outcomes.filter(Self.isRegistered).count == 1, "\(outcomes)")
            #expect(try s.store.devices(of: s.alice).count == 1)
            #expect(try s.ticketState(t.token) == "used")
        }
    }

    // MARK: Devices and sessions

    @Test func sessionsLockRevokeAndListing() throws {
        let s = try Site()
        let t = try s.store.issueUserTicket(cuid: s.alice, scopes: [.read, .devices], lifetime: nil, now: Self.now)
        let device = try Self.newDevice()
        _ = try Self.register(s.store, t.token, device)
        #expect(
            try s.store.deviceSession(device: device)
                == DeviceSessionInfo(user: s.alice, custody: .site, scopes: [.read, .devices], locked: false))
        #expect(try s.store.deviceSession(device: try Self.newDevice()) == nil)
        try s.store.setUserLocked(s.alice, true)
        #expect(try s.store.deviceSession(device: device)?.locked == true)
        try s.store.setUserLocked(s.alice, false)
        try s.store.setLockdown(true)
        #expect(try s.store.deviceSession(device: device)?.locked == true)
        try s.store.setLockdown(false)

        try s.store.touchDevice(device: device, now: Self.now + 5)
        var listed = try #require(try s.store.devices(of: s.alice).first)
        #expect(listed.name == "Pixel 7" && listed.created == Self.now && listed.lastSeen == Self.now + 5 && listed.revoked == nil)
        #expect(listed.json["last_seen"]?.stringValue == Timestamp.format(millisecondsSince1970: Self.now + 5))
        #expect(listed.json["revoked"] == nil)

        // Another user cannot revoke it; an unknown device is an error.
        let bob = try CUID("bob")
        try s.store.addUser(cuid: bob, name: "Bob", email: nil, sealingKey: nil)
        #expect(throws: StoreError.unknownDevice(user: "bob", device: device.description)) {
            try s.store.revokeDevice(cuid: bob, device: device, now: Self.now)
        }
        try s.store.revokeDevice(cuid: s.alice, device: device, now: Self.now + 9)
        #expect(try s.store.deviceSession(device: device) == nil)
        listed = try #require(try s.store.devices(of: s.alice).first)
        #expect(listed.revoked == Self.now + 9)
        #expect(throws: StoreError.unknownDevice(user: "alice", device: device.description)) {
            try s.store.revokeDevice(cuid: s.alice, device: device, now: Self.now)
        }
        #expect(throws: StoreError.unknownUser("carol")) { try s.store.devices(of: try CUID("carol")) }
        // The revoked key can never register again.
        let again = try s.store.issueUserTicket(cuid: s.alice, scopes: nil, lifetime: nil, now: Self.now)
        #expect(try Self.register(s.store, again.token, device) == .refused("the device key is registered already"))
        // Device events: added, then revoked.
        let events = try s.store.userEvents(cuid: s.alice, after: 0, limit: 10)
        #expect(events.map(\.seq) == [1, 2])
        #expect(events.map(\.topic) == [.device, .device])
        #expect(events[0].data == ["device": .string(device.description), "name": "Pixel 7", "state": "added"])
        #expect(events[1].data == ["device": .string(device.description), "state": "revoked"])
        #expect(try s.store.userEvents(cuid: bob, after: 0, limit: 10).isEmpty)
    }

    @Test func deviceCustodyUsersAreNeverSignedFor() throws {
        let s = try Site()
        let dora = try CUID("dora")
        try s.store.addUser(cuid: dora, name: "Dora", email: nil, custody: .device, sealingKey: nil)
        #expect(try s.store.custody(of: dora) == .device)
        #expect(try s.store.custody(of: s.alice) == .site)
        #expect(throws: StoreError.deviceCustody("dora")) { try s.store.userKey(dora, sealingKey: nil) }
        _ = try s.store.userKey(s.alice, sealingKey: nil)
        let t = try s.store.issueUserTicket(cuid: dora, scopes: nil, lifetime: nil, now: Self.now)
        let device = try Self.newDevice()
        _ = try Self.register(s.store, t.token, device)
        #expect(try s.store.deviceSession(device: device)?.custody == .device)
    }

    // MARK: Events

    @Test func eventsCountPerUserAndRollBackWithTheirTransaction() throws {
        let s = try Site()
        let bob = try CUID("bob")
        try s.store.addUser(cuid: bob, name: "Bob", email: nil, sealingKey: nil)
        let seqs = try s.store.database.write { db in
            [
                try SiteStore.appendUserEvent(db, cuid: "alice", topic: .chit, data: ["n": 1], now: Self.now).seq,
                try SiteStore.appendUserEvent(db, cuid: "bob", topic: .chit, data: ["n": 1], now: Self.now).seq,
                try SiteStore.appendUserEvent(db, cuid: "alice", topic: .tally, data: ["n": 2], now: Self.now).seq
            ]
        }
        #expect(seqs == [1, 1, 2])
        // A failed write appends nothing.
        struct Failed: Error {}
        #expect(throws: Failed.self) {
            try s.store.database.write { db in
                try SiteStore.appendUserEvent(db, cuid: "alice", topic: .chit, data: [:], now: Self.now)
                throw Failed()
            }
        }
        #expect(try s.store.latestUserSeq(cuid: s.alice) == 2)
        #expect(try s.store.userEvents(cuid: s.alice, after: 1, limit: 5).map(\.data) == [["n": 2]])
        #expect(try s.store.userEvents(cuid: s.alice, after: 0, limit: 1).count == 1)
        #expect(try s.store.latestUserSeq(cuid: try CUID("nobody")) == 0)
    }

    @Test func aReceivedChitAppendsOneEventInItsTransaction() throws {
        // b (bob) is the stock, a (alice) the foil that orders the chain.
        let sites = try PTwoSites()
        let id = try ChainRun.openTally(sites, issuerSide: .stock, limit: 1_000_000)
        // The dialog told each user of the tally's states.
        let tallyEvents = try sites.b.userEvents(cuid: sites.bob, after: 0, limit: 100)
        #expect(!tallyEvents.isEmpty && tallyEvents.allSatisfy { $0.topic == .tally && $0.data["uuid"]?.stringValue == id })
        #expect(tallyEvents.map(\.seq) == Array(1...Int64(tallyEvents.count)))
        #expect(tallyEvents.last?.data["state"]?.stringValue == "open")
        #expect(try sites.a.userEvents(cuid: sites.alice, after: 0, limit: 100).contains { $0.data["state"]?.stringValue == "P.offer" })

        let before = try sites.b.latestUserSeq(cuid: sites.bob)
        let aliceBefore = try sites.a.latestUserSeq(cuid: sites.alice)
        let chit = try sites.a.pay(tally: id, units: 20_000, memo: nil, ref: nil, key: sites.key(.a))
        // The payer's own payment is one event too (the user's other devices hear of it).
        let own = try sites.a.userEvents(cuid: sites.alice, after: aliceBefore, limit: 10)
        #expect(own.count == 1 && own.first?.topic == .chit && own.first?.data["local"] == true)
        #expect(own.first?.data["uuid"]?.stringValue == chit.chit.uuid && own.first?.data["state"] == "chained")
        let upd = try #require(try sites.a.chainUpdate(tally: id, after: 0))
        _ = try sites.deliver(PPacket(to: .b, message: upd))
        let events = try sites.b.userEvents(cuid: sites.bob, after: before, limit: 10)
        #expect(events.count == 1)
        #expect(events.first?.topic == .chit && events.first?.seq == before + 1)
        #expect(events.first?.data["uuid"]?.stringValue == chit.chit.uuid)
        #expect(events.first?.data["units"] == .integer(20_000))
        // A repeat of the message changes nothing, and appends nothing.
        _ = try sites.deliver(PPacket(to: .b, message: upd))
        #expect(try sites.b.latestUserSeq(cuid: sites.bob) == before + 1)
    }

    @Test func aRequestTheIssuerRefusedIsAnEvent() throws {
        let sites = try PTwoSites()
        let id = try sites.a.requestTally(cuid: sites.alice, ticket: try sites.ticket(), accept: false)
        #expect(try sites.a.latestUserSeq(cuid: sites.alice) == 0, "our user's own request is no event")
        try sites.a.failRequest(topic: id, note: "the issuer closed the channel")
        let events = try sites.a.userEvents(cuid: sites.alice, after: 0, limit: 10)
        #expect(events.map(\.topic) == [.tally])
        #expect(events.first?.data == ["uuid": .string(id), "state": "void"])
        // Once void, a repeat changes nothing.
        try sites.a.failRequest(topic: id, note: "again")
        #expect(try sites.a.latestUserSeq(cuid: sites.alice) == 1)
    }

    @Test func anIncomingInvoiceIsAnEvent() throws {
        let sites = try PTwoSites()
        let id = try ChainRun.openTally(sites, issuerSide: .stock, limit: 1_000_000)
        let before = try sites.a.latestUserSeq(cuid: sites.alice)
        let invoice = try sites.b.createInvoice(tally: id, units: 500, memo: "lunch", ref: nil)
        let message = try #require(try sites.b.outbox(for: sites.agentA).last?.message)
        _ = try sites.deliver(PPacket(to: .a, message: message))
        let events = try sites.a.userEvents(cuid: sites.alice, after: before, limit: 10)
        #expect(events.map(\.topic) == [.invoice])
        #expect(events.first?.data["uuid"]?.stringValue == invoice.uuid)
    }

    @Test func aLiftsResultIsOneEventPerChangeForEachUserInIt() throws {
        typealias L = LiftChainStoreTests
        let (sites, id) = try L.openTally()
        let h = try L.header(id, units: 2_000)
        let chit = try L.chit(sites, h, id, by: .foil)
        try L.apply(sites.a, [.insertLiftChit(chit, header: h, local: true)])
        let before = try sites.a.latestUserSeq(cuid: sites.alice)
        #expect(before > 0, "the tally's dialog appended its events")
        try L.apply(sites.a, [.applyLiftDecision(try L.decision(h, .void))])
        try L.apply(sites.a, [.applyLiftDecision(try L.decision(h, .void, date: "2026-12-01T12:00:05.000Z"))])
        // The referee equivocates: good upgrades void (9.7); void after good changes nothing.
        try L.apply(sites.a, [.applyLiftDecision(try L.decision(h, .good))])
        try L.apply(sites.a, [.applyLiftDecision(try L.decision(h, .void))])
        let events = try sites.a.userEvents(cuid: sites.alice, after: before, limit: 10)
        #expect(events.map(\.topic) == [.lift, .lift])
        #expect(events.map { $0.data["state"]?.stringValue } == ["void", "good"])
        #expect(events.first?.data == ["lift": .string(h.hash), "state": "void", "tallies": [.string(id)]])
    }

    @Test func pruningKeepsEachUsersLatestEvent() throws {
        let s = try Site()
        let old = Self.now - 31 * Self.day
        try s.store.database.write { db in
            for n in 1...3 { try SiteStore.appendUserEvent(db, cuid: "alice", topic: .chit, data: ["n": .integer(Int64(n))], now: old) }
            try SiteStore.rememberReply(db, cuid: "alice", key: .idem("k-old"), requestHash: "h", reply: [:], now: Self.now - Self.day - 1)
            try SiteStore.rememberReply(db, cuid: "alice", key: .idem("k-new"), requestHash: "h", reply: [:], now: Self.now - 1000)
        }
        _ = try s.store.issueUserTicket(cuid: s.alice, scopes: nil, lifetime: 60, now: Self.now - 61_000)
        let pruned = try s.store.pruneUserData(now: Self.now)
        #expect(pruned == UserPrune(events: 2, replies: 1, tickets: 1))
        #expect(try s.store.userEvents(cuid: s.alice, after: 0, limit: 10).map(\.seq) == [3])
        #expect(try s.store.oldestKeptUserSeq(cuid: s.alice) == 3)
        #expect(try s.store.userEventsMissed(cuid: s.alice, since: 1))
        #expect(try !s.store.userEventsMissed(cuid: s.alice, since: 2))
        // Seq goes on from the latest kept.
        let next = try s.store.database.write { db in try SiteStore.appendUserEvent(db, cuid: "alice", topic: .chit, data: [:], now: Self.now) }
        #expect(next.seq == 4)
        // Once a newer event is kept, the old latest goes too.
        #expect(try s.store.pruneUserData(now: Self.now) == UserPrune(events: 1))
    }

    // MARK: Idempotency

    @Test func repliesReplayForTheSameRequestAndConflictForAnother() throws {
        let s = try Site()
        let key = IdempotencyKey.signed(cmd: "chit.pay", uuid: "11111111-2222-4333-8444-555555555555", revision: nil)
        try s.store.database.write { db in
            #expect(try SiteStore.storedReply(db, cuid: "alice", key: key, requestHash: "aa") == StoredReply.none)
            try SiteStore.rememberReply(db, cuid: "alice", key: key, requestHash: "aa", reply: ["state": "pending"], now: Self.now)
            #expect(try SiteStore.storedReply(db, cuid: "alice", key: key, requestHash: "aa") == .replay(["state": "pending"]))
            #expect(try SiteStore.storedReply(db, cuid: "alice", key: key, requestHash: "bb") == .conflict)
            // Keys are per user and per kind.
            #expect(try SiteStore.storedReply(db, cuid: "bob", key: key, requestHash: "aa") == StoredReply.none)
            let idem = IdempotencyKey.idem("11111111-2222-4333-8444-555555555555")
            #expect(try SiteStore.storedReply(db, cuid: "alice", key: idem, requestHash: "aa") == StoredReply.none)
            let revised = IdempotencyKey.signed(cmd: "chit.pay", uuid: "11111111-2222-4333-8444-555555555555", revision: 2)
            #expect(try SiteStore.storedReply(db, cuid: "alice", key: revised, requestHash: "aa") == StoredReply.none)
            // A success whose reply carried a secret is kept without it: its repeat is `conflict`.
            try SiteStore.rememberWithheldReply(db, cuid: "alice", key: idem, requestHash: "aa", now: Self.now)
            #expect(try SiteStore.storedReply(db, cuid: "alice", key: idem, requestHash: "aa") == .conflict)
        }
    }

    @Test func theMigrationAppliesToAnOlderFile() throws {
        let s = try Site()
        try s.store.database.write { db in
            for table in ["user_replies", "user_events", "devices", "user_tickets"] { try db.execute(sql: "DROP TABLE \(table)") }
            try db.execute(sql: "ALTER TABLE users DROP COLUMN custody")
            try db.execute(sql: "DELETE FROM grdb_migrations WHERE identifier = '2026-12-02 user port'")
        }
        try s.store.closeFile()
        let reopened = try SiteStore.open(at: s.path)
        #expect(try reopened.custody(of: s.alice) == .site)
        #expect(try reopened.status().schemaVersion == Schema.currentVersion)
    }
}

/// Group commit of devices' payments: one transaction, each payment in its
/// own savepoint with its own reply.
@Suite struct DevicePaymentGroupCommitTests {
    @Test func aRefusedPaymentIsRefusedAloneAndTheOthersCommitWithTheirReplies() throws {
        let s = try PTwoSites()
        // alice (a) holds the foil; bob grants her 100 CHIPs.
        let id = try ChainRun.openTally(s, issuerSide: .stock, limit: 100_000)
        let t = try s.a.tally(id)
        let key = try s.key(.a)(s.alice)
        func chit(_ units: Int64) throws -> Chit {
            try Chit(
                tally: id, by: t.side, uuid: TallyCore.newUUID(), date: Timestamp.format(millisecondsSince1970: wallClockMilliseconds()),
                units: units, memo: nil, ref: nil, key: key)
        }
        let chits = [try chit(30_000), try chit(90_000), try chit(50_000)]
        let alice = s.alice.value
        let riders = chits.map { c in
            TransactionRider { db, _ in
                try SiteStore.rememberReply(
                    db, cuid: alice, key: .signed(cmd: "chit.pay", uuid: c.uuid, revision: nil), requestHash: c.uuid,
                    reply: ["uuid": .string(c.uuid)], now: wallClockMilliseconds())
            }
        }
        let results = s.a.payDeviceChits(
            zip(chits, riders).map { SiteStore.DevicePaymentItem(chit: $0, tally: t, rider: $1) }, now: wallClockMilliseconds())
        #expect(results.map { (try? $0.get()) != nil } == [true, false, true])
        #expect(try s.a.tally(id).balance == 80_000)
        #expect(try s.a.chits(tally: id).count == 2)
        for (c, ok) in zip(chits, [true, false, true]) {
            let stored = try s.a.storedReply(
                cuid: s.alice, key: .signed(cmd: "chit.pay", uuid: c.uuid, revision: nil), requestHash: c.uuid)
            #expect((stored == .replay(["uuid": .string(c.uuid)])) == ok, "the reply is kept only with its payment")
        }
        #expect(try s.a.verifyTally(id).isEmpty)
    }
}

/// A device's `chit.pay` whose `ref` names an invoice settles it as `chit
/// accept` does (10.6), in its own savepoint of the group commit.
@Suite struct DeviceInvoicePaymentTests {
    @Test func aDevicesPaymentNamingAnInvoiceSettlesItOrIsRefused() throws {
        let s = try PTwoSites()
        // alice (a) holds the foil; bob grants her 100 CHIPs and asks her for 5, then 4.
        let id = try ChainRun.openTally(s, issuerSide: .stock, limit: 100_000)
        func ask(_ units: Int64) throws -> String {
            let invoice = try s.b.createInvoice(tally: id, units: units, memo: "lunch", ref: "table 4")
            let message = try #require(try s.b.outbox(for: s.agentA).last?.message)
            _ = try s.deliver(PPacket(to: .a, message: message))
            #expect(try s.a.invoice(invoice.uuid).state == .open)
            return invoice.uuid
        }
        let five = try ask(5_000), four = try ask(4_000)
        let ours = try s.a.createInvoice(tally: id, units: 1_000, memo: nil, ref: nil).uuid
        let t = try s.a.tally(id)
        let key = try s.key(.a)(s.alice)
        func chit(_ units: Int64, ref: JSONValue?) throws -> Chit {
            try Chit(
                tally: id, by: t.side, uuid: TallyCore.newUUID(), date: Timestamp.format(millisecondsSince1970: wallClockMilliseconds()),
                units: units, memo: nil, ref: ref, key: key)
        }
        let pays = [
            try chit(5_000, ref: ["invoice": .string(five), "ref": "table 4"]),
            try chit(5_000, ref: ["invoice": .string(five)]),  // paid by the first, in the same batch
            try chit(3_000, ref: ["invoice": .string(four)]),  // not what it asks
            try chit(1_000, ref: ["invoice": .string(ours)]),  // alice's own invoice to bob
            try chit(1_000, ref: ["invoice": .string(TallyCore.newUUID())]),
            try chit(1_000, ref: ["invoice": 7]),
            try chit(1_000, ref: ["note": "no invoice"])
        ]
        let results = s.a.payDeviceChits(pays.map { SiteStore.DevicePaymentItem(chit: $0, tally: t, rider: nil) }, now: wallClockMilliseconds())
        func code(_ r: Result<ChitRecord, any Error>) -> UserErrorCode? {
            if case .failure(let e) = r { return (e as? UserError)?.code ?? .internal }
            return nil
        }
        #expect(results.map(code) == [nil, .state, .badRequest, .notFound, .notFound, .badRequest, nil])
        // Settled exactly as `chit accept` leaves an invoice: paid by that chit.
        let paid = try s.a.invoice(five)
        #expect(paid.state == .paid)
        #expect(paid.chit == pays[0].uuid)
        #expect(try s.a.invoice(four).state == .open)
        #expect(try s.a.invoice(ours).state == .open)
        #expect(try s.a.tally(id).balance == 6_000)
        // The CLI's way pays the other one the same way.
        let accepted = try s.a.payInvoice(four, key: s.key(.a))
        #expect(try s.a.invoice(four).state == .paid)
        #expect(try s.a.invoice(four).chit == accepted.chit.uuid)
        #expect(try s.a.verifyTally(id).isEmpty)
        // alice's site (the foil) chained them: bob's site settles both of its invoices.
        let upd = try #require(try s.a.chainUpdate(tally: id, after: 0))
        _ = try s.deliver(PPacket(to: .b, message: upd))
        #expect(try s.b.invoice(five).state == .paid)
        #expect(try s.b.invoice(four).state == .paid)
    }
}

/// The store's refusals a device hears of carry their 10.5 code in their
/// case (`StoreError.userErrorCode`), not in their wording.
@Suite struct StoreRefusalCodeTests {
    static func code(_ body: () throws -> Void) -> UserErrorCode? {
        do { try body() } catch let e as StoreError { return e.userErrorCode } catch { return nil }
        return nil
    }

    @Test func lockedOverALimitAndNotFoundAreTyped() throws {
        let s = try PTwoSites()
        // alice (a) holds the foil; bob grants her 100 CHIPs (bob's half on b has a limit of 100 CHIPs).
        let id = try ChainRun.openTally(s, issuerSide: .stock, limit: 100_000)
        #expect(Self.code { _ = try s.a.pay(tally: id, units: 100_001, memo: nil, ref: nil, key: s.key(.a)) } == .limit)
        #expect(Self.code { _ = try s.b.setTrade(tally: id, bound: 100_001) } == .limit)
        #expect(Self.code { _ = try s.a.tally("abcd1234") } == .notFound)
        #expect(Self.code { _ = try s.a.invoice("abcd1234") } == .notFound)
        _ = try s.a.setUserLocked(s.alice, true)
        #expect(Self.code { _ = try s.a.pay(tally: id, units: 1_000, memo: nil, ref: nil, key: s.key(.a)) } == .locked)
        _ = try s.a.setUserLocked(s.alice, false)
        try s.a.setLockdown(true)
        #expect(Self.code { _ = try s.a.createInvoice(tally: id, units: 1_000, memo: nil, ref: nil) } == .locked)
    }
}

@Suite struct SignedTradeDateTests {
    @Test func aDevicesTradingVariablesMustBeNewerThanTheLastOnes() throws {
        let s = try PTwoSites()
        let id = try ChainRun.openTally(s, issuerSide: .stock, limit: 100_000)
        let d1 = "2026-12-01T10:00:00.000Z", d0 = "2026-12-01T09:59:59.999Z", d2 = "2026-12-01T10:00:00.001Z"
        #expect(try s.b.setTrade(tally: id, target: 1_000, date: d1).trade?.target == 1_000)
        #expect(throws: ModelError.self) { try s.b.setTrade(tally: id, target: 2_000, date: d1) }
        #expect(throws: ModelError.self) { try s.b.setTrade(tally: id, target: 2_000, date: d0) }
        #expect(try s.b.tally(id).trade?.target == 1_000)
        // The CLI's (no date) keeps the last date; a newer signed one goes.
        #expect(try s.b.setTrade(tally: id, target: 500).trade?.target == 500)
        #expect(throws: ModelError.self) { try s.b.setTrade(tally: id, target: 2_000, date: d1) }
        #expect(try s.b.setTrade(tally: id, target: 2_000, date: d2).trade?.target == 2_000)
    }
}
