import ChipModel
import Foundation
import GRDB
@_spi(Testing) import Noise
import Testing
import TestSupport
@testable import ChipProtocol
@testable import ChipStore

/// Device custody in the site file (protocol 10.7): `me.key.take`'s fetch
/// and confirm, `me.signkey`, a device's own tally signature and the `sign`
/// event that asks for it.
@Suite struct CustodyStoreTests {
    static func clock() -> Int64 { Int64(Date().timeIntervalSince1970 * 1000) }

    /// A device's X25519 pair and its id.
    struct Device {
        let pair = KeyPair.generate()
        var id: DeviceID { get throws { try DeviceID(publicKey: pair.publicKey) } }
        func open(_ sealed: String) throws -> SigningKey {
            var seed = try KeyTransfer.open(sealed, publicKey: pair.publicKey, secretKey: pair.privateKey)
            defer { Crypto.wipe(&seed) }
            return try SigningKey(seed: seed)
        }
    }

    static func proof(_ user: CUID, _ device: DeviceID, now: Int64, key: SigningKey) -> (KeyTakeProof, String) {
        let p = KeyTakeProof(cuid: user, date: Timestamp.format(millisecondsSince1970: now), device: device)
        return (p, Base64URL.encode(key.sign(p.json.canonicalBytes)))
    }

    /// `user` on `site` takes its key to a new device (fetch, then the
    /// confirming proof): the device and the key it holds now.
    static func takeKey(_ site: SiteStore, _ user: CUID) throws -> (device: Device, id: DeviceID, key: SigningKey, now: Int64) {
        let device = Device()
        let id = try device.id
        let now = clock()
        let key = try device.open(try site.fetchKeyForDevice(cuid: user, device: id, sessionOpened: now - 1, now: now, sealingKey: nil))
        let (p, sign) = proof(user, id, now: now, key: key)
        try site.confirmKeyTake(cuid: user, device: id, sessionOpened: now + 1, proof: p, sign: sign, now: now + 2)
        return (device, id, key, now)
    }

    static func userError(_ body: () throws -> Void) -> UserErrorCode? {
        do { try body() } catch let e as UserError { return e.code } catch { return nil }
        return nil
    }

    static func storedSecret(_ store: SiteStore, _ user: CUID) throws -> [UInt8] {
        try store.database.read { db in
            Array(try Data.fetchOne(db, sql: "SELECT secret FROM users WHERE cuid = ?", arguments: [user.value]) ?? Data())
        }
    }

    static func contains(_ haystack: [UInt8], _ needle: [UInt8]) -> Bool {
        guard needle.count <= haystack.count else { return false }
        return (0...(haystack.count - needle.count)).contains { i in haystack[i..<(i + needle.count)].elementsEqual(needle) }
    }

    @Test func aDeviceTakesTheKeyThenSignsItsOwnTally() throws {
        let s = try PTwoSites()
        let device = Device()
        let id = try device.id
        let now = Self.clock()
        let certKey = try s.a.user(s.alice).certificate.publicKey
        let plain = try Self.storedSecret(s.a, s.alice)
        let seed = Array(plain.dropFirst())
        #expect(plain.first == StoredSecret.plainTag && seed.count == 32)

        // Fetch in one session: the seed sealed to this device.
        let sealed = try s.a.fetchKeyForDevice(cuid: s.alice, device: id, sessionOpened: now - 10_000, now: now, sealingKey: nil)
        let key = try device.open(sealed)
        #expect(key.publicKey == certKey)
        // The confirmation in the same session is refused, and changes nothing.
        let (p, sign) = Self.proof(s.alice, id, now: now, key: key)
        #expect(
            Self.userError {
                try s.a.confirmKeyTake(cuid: s.alice, device: id, sessionOpened: now - 10_000, proof: p, sign: sign, now: now + 1)
            } == .state)
        #expect(try s.a.custody(of: s.alice) == .site)
        // Another device never fetched: refused too.
        let other = try Device().id
        let (op, osign) = Self.proof(s.alice, other, now: now, key: key)
        #expect(
            Self.userError { try s.a.confirmKeyTake(cuid: s.alice, device: other, sessionOpened: now + 1, proof: op, sign: osign, now: now + 2) }
                == .state)
        // A bad signature in a later session.
        let (_, wrong) = Self.proof(s.alice, id, now: now, key: SigningKey.generate())
        #expect(
            Self.userError { try s.a.confirmKeyTake(cuid: s.alice, device: id, sessionOpened: now + 1, proof: p, sign: wrong, now: now + 2) }
                == .signInvalid)
        // A later session: taken.
        #expect(try s.a.confirmKeyTake(cuid: s.alice, device: id, sessionOpened: now + 1, proof: p, sign: sign, now: now + 2) == .device)
        #expect(try s.a.custody(of: s.alice) == .device)
        #expect(throws: StoreError.deviceCustody("alice")) { try s.a.userKey(s.alice, sealingKey: nil) }
        let erased = try Self.storedSecret(s.a, s.alice)
        #expect(erased.count == 33 && erased.first == SiteStore.erasedSecretTag && erased.dropFirst().allSatisfy { $0 == 0 })
        #expect(try s.a.user(s.alice).certificate.publicKey == certKey, "the key, and so every tally, stays valid")
        #expect(try s.a.unopenableUserKeys(sealingKey: nil).isEmpty)
        // A repeat confirm gets the same answer; a fetch now is refused.
        #expect(try s.a.confirmKeyTake(cuid: s.alice, device: id, sessionOpened: now + 1, proof: p, sign: sign, now: now + 3) == .device)
        #expect(
            Self.userError { _ = try s.a.fetchKeyForDevice(cuid: s.alice, device: id, sessionOpened: now + 1, now: now + 4, sealingKey: nil) }
                == .state)
        // The site file keeps no copy of the seed.
        s.a.checkpointAfterErase()
        for file in [s.dir.file("a.db"), s.dir.file("a.db-wal")] {
            guard let content = bytes(file) else { continue }
            #expect(!Self.contains(content, seed), "the seed is still in \(file)")
        }

        // bob offers alice a tally: a `sign` event asks her device to accept.
        let before = try s.a.latestUserSeq(cuid: s.alice)
        let request = try s.a.requestTally(cuid: s.alice, ticket: try s.ticket(side: .stock, limit: 1_000_000), accept: false)
        let ticketMessage = try #require(try s.a.outbox(for: s.agentB).first(where: { $0.topic == request })?.message)
        guard case .offer(let offer) = try s.b.redeemTicket(ticketMessage, userKey: s.key(.b)) else {
            Issue.record("no offer")
            return
        }
        _ = try s.deliver(PPacket(to: .a, message: offer))
        let t = try #require(try s.a.tallies(user: s.alice).first)
        #expect(t.state == .peerOffer)
        let core = try #require(t.core)
        let events = try s.a.userEvents(cuid: s.alice, after: before, limit: 10)
        #expect(events.map(\.topic) == [.tally, .sign])
        #expect(events.last?.data == UserEvent.signData(kind: .accept, uuid: t.uuid, core: core.json, hash: core.hash))

        // The site signs nothing for her; her device's signature is stored as it came.
        #expect(throws: StoreError.deviceCustody("alice")) { try s.a.acceptTally(t.uuid, key: s.key(.a)) }
        #expect(throws: ModelError.self) {
            try s.a.acceptTally(t.uuid, revision: t.revision, signature: core.sign(with: SigningKey.generate()))
        }
        #expect(throws: ModelError.self) { try s.a.acceptTally(t.uuid, revision: t.revision + 1, signature: core.sign(with: key)) }
        let accepted = try s.a.acceptTally(t.uuid, revision: t.revision, signature: core.sign(with: key))
        #expect(accepted.state == .open && accepted.sign?[accepted.side] == core.sign(with: key))
        let open = try #require(try s.a.outbox(for: s.agentB).first?.message)
        for reply in try s.deliver(PPacket(to: .b, message: open)) { _ = try s.deliver(reply) }
        #expect(try s.b.tally(t.uuid).state == .open)

        // She pays with a chit her device signed.
        let chit = try Chit(
            tally: t.uuid, by: t.side, uuid: TallyCore.newUUID(), date: Timestamp.format(millisecondsSince1970: Self.clock()), units: 2_000,
            memo: nil, ref: nil, key: key)
        let item = SiteStore.DevicePaymentItem(chit: chit, tally: try s.a.tally(t.uuid), rider: nil)
        _ = try #require(s.a.payDeviceChits([item], now: Self.clock()).first).get()
        for p in try s.outbox(.a) { for reply in try s.deliver(p) { _ = try s.deliver(reply) } }
        #expect(try s.a.verifyTally(t.uuid).isEmpty)
        #expect(try s.b.verifyTally(t.uuid).isEmpty)
    }

    @Test func aDeviceUsersFirstKeyReplacesThePlaceholder() throws {
        let dir = try TempDir()
        let store = try SiteStore.create(at: dir.file("site.db"), address: address, passphrase: nil)
        let dora = try CUID("dora"), alice = try CUID("alice")
        try store.addUser(cuid: dora, name: "Dora", email: "dora@example.org", custody: .device, sealingKey: nil)
        try store.addUser(cuid: alice, name: "Alice", email: nil, sealingKey: nil)
        let placeholder = try store.user(dora).certificate
        let new = SigningKey.generate()
        let now = Self.clock()
        let args = SignKeyArgs(
            agent: try store.agent(), cuid: dora, publicKey: new.publicKey, date: Timestamp.format(millisecondsSince1970: now))
        let sign = Base64URL.encode(new.sign(args.json.canonicalBytes))
        // Signed by another key: refused, nothing changes.
        let bad = Base64URL.encode(SigningKey.generate().sign(args.json.canonicalBytes))
        #expect(Self.userError { _ = try store.setDeviceKey(cuid: dora, key: args, sign: bad, now: now) } == .signInvalid)
        #expect(try store.user(dora).certificate == placeholder)

        let cert = try store.setDeviceKey(cuid: dora, key: args, sign: sign, now: now)
        #expect(cert.publicKey == new.publicKey)
        #expect(cert.name == "Dora" && cert.email == "dora@example.org" && cert.chad == placeholder.chad)
        #expect(try store.user(dora).certificate == cert)
        #expect(try Self.storedSecret(store, dora).first == SiteStore.erasedSecretTag)
        #expect(try store.unopenableUserKeys(sealingKey: nil).isEmpty)
        #expect(throws: StoreError.deviceCustody("dora")) { try store.userKey(dora, sealingKey: nil) }
        // Only once: the user has a key now.
        let again = SigningKey.generate()
        var second = args
        second.publicKey = again.publicKey
        let sign2 = Base64URL.encode(again.sign(second.json.canonicalBytes))
        #expect(Self.userError { _ = try store.setDeviceKey(cuid: dora, key: second, sign: sign2, now: now) } == .state)
        // A site user takes its key with me.key.take instead.
        var forAlice = second
        forAlice.cuid = alice
        let sign3 = Base64URL.encode(again.sign(forAlice.json.canonicalBytes))
        #expect(Self.userError { _ = try store.setDeviceKey(cuid: alice, key: forAlice, sign: sign3, now: now) } == .state)
    }

    @Test func aTakenKeySurvivesAPassphraseChange() throws {
        let s = try PTwoSites()
        let device = Device()
        let id = try device.id
        let now = Self.clock()
        let key = try device.open(try s.a.fetchKeyForDevice(cuid: s.alice, device: id, sessionOpened: now - 1, now: now, sealingKey: nil))
        let (p, sign) = Self.proof(s.alice, id, now: now, key: key)
        try s.a.confirmKeyTake(cuid: s.alice, device: id, sessionOpened: now + 1, proof: p, sign: sign, now: now + 2)
        // Sealing the site re-seals every seed it holds (the site's own here) and skips the erased one.
        let seal = try NewSeal(passphrase: Array("first".utf8), cost: .interactive)
        #expect(try s.a.reseal(current: nil, new: seal) == 1)
        #expect(try Self.storedSecret(s.a, s.alice).first == SiteStore.erasedSecretTag)
        #expect(try s.a.unopenableUserKeys(sealingKey: seal.key).isEmpty)
        // On a sealed site a fetch needs the sealing key.
        let carol = try CUID("carol")
        try s.a.addUser(cuid: carol, name: "Carol", email: nil, sealingKey: seal.key)
        #expect(throws: StoreError.passphraseNeeded) {
            _ = try s.a.fetchKeyForDevice(cuid: carol, device: id, sessionOpened: now, now: now + 5, sealingKey: nil)
        }
        let sealed = try s.a.fetchKeyForDevice(cuid: carol, device: id, sessionOpened: now, now: now + 5, sealingKey: seal.key)
        #expect(try device.open(sealed).publicKey == (try s.a.user(carol).certificate.publicKey))
    }

    @Test func anInvoiceToADeviceUserAsksItsDeviceToSign() throws {
        let s = try PTwoSites()
        // alice (a) holds the foil of an open tally; bob grants her 100 CHIPs.
        let id = try ChainRun.openTally(s, issuerSide: .stock, limit: 100_000)
        // alice takes her key to her device.
        let device = Device()
        let deviceID = try device.id
        let now = Self.clock()
        let key = try device.open(
            try s.a.fetchKeyForDevice(cuid: s.alice, device: deviceID, sessionOpened: now - 1, now: now, sealingKey: nil))
        let (p, sign) = Self.proof(s.alice, deviceID, now: now, key: key)
        try s.a.confirmKeyTake(cuid: s.alice, device: deviceID, sessionOpened: now + 1, proof: p, sign: sign, now: now + 2)

        // bob asks her for 5 CHIPs: the invoice event, then a `sign` event of kind invoice.
        let before = try s.a.latestUserSeq(cuid: s.alice)
        let invoice = try s.b.createInvoice(tally: id, units: 5_000, memo: "lunch", ref: "table 4")
        let message = try #require(try s.b.outbox(for: s.agentA).last?.message)
        _ = try s.deliver(PPacket(to: .a, message: message))
        let events = try s.a.userEvents(cuid: s.alice, after: before, limit: 10)
        #expect(events.map(\.topic) == [.invoice, .sign])
        let object = try #require(message["object"])
        #expect(
            events.last?.data
                == UserEvent.signData(
                    kind: .invoice, uuid: invoice.uuid, core: object, hash: Base64URL.encode(Crypto.sha256(object.canonicalBytes))))
        // A repeat of the invoice asks nothing again.
        _ = try s.deliver(PPacket(to: .a, message: message))
        #expect(try s.a.latestUserSeq(cuid: s.alice) == before + 2)

        // A `site` user (bob) gets the invoice event alone.
        let bobBefore = try s.b.latestUserSeq(cuid: s.bob)
        _ = try s.a.createInvoice(tally: id, units: 1_000, memo: nil, ref: nil)
        _ = try s.deliver(PPacket(to: .b, message: try #require(try s.a.outbox(for: s.agentB).last?.message)))
        #expect(try s.b.userEvents(cuid: s.bob, after: bobBefore, limit: 10).map(\.topic) == [.invoice])

        // Her device answers with a chit it signed that names the invoice: paid.
        let chit = try Chit(
            tally: id, by: .foil, uuid: TallyCore.newUUID(), date: Timestamp.format(millisecondsSince1970: Self.clock()), units: 5_000,
            memo: nil, ref: ["invoice": .string(invoice.uuid), "ref": "table 4"], key: key)
        let item = SiteStore.DevicePaymentItem(chit: chit, tally: try s.a.tally(id), rider: nil)
        _ = try #require(s.a.payDeviceChits([item], now: Self.clock()).first).get()
        #expect(try s.a.invoice(invoice.uuid).state == .paid)
    }

    @Test func aDeviceUserRefusesARedeemedInvitationBeforeSigningItsOffer() throws {
        let s = try PTwoSites()
        let key = try Self.takeKey(s.b, s.bob).key
        let ticket = try s.ticket(side: .stock, limit: 1_000_000)
        let request = try s.a.requestTally(cuid: s.alice, ticket: ticket, accept: false)
        let ticketMessage = try #require(try s.a.outbox(for: s.agentB).first(where: { $0.topic == request })?.message)
        _ = try s.b.redeemTicket(ticketMessage, userKey: s.key(.b))
        let t = try #require(try s.b.tallies(user: s.bob).first)
        #expect(t.state == .peerDraft)

        let aliceCHAD = try s.a.user(s.alice).certificate.chad
        #expect(try s.b.ticketRedeemed(token: ticket.token, by: aliceCHAD))
        // bob's refusal withdraws it: void, nothing sent, the one-time ticket stays burned,
        // and alice's repeated first contact is no longer let in (her request then ends).
        #expect(try s.b.refuseTally(t.uuid).state == .void)
        #expect(try !s.b.ticketRedeemed(token: ticket.token, by: aliceCHAD))
        #expect(try s.b.tally(t.uuid).state == .void)
        #expect(try s.b.outbox(for: s.agentA).isEmpty)
        #expect(try s.b.ticket(ticket.token)?.used != nil)
        // His signature comes too late; a repeat of the ticket makes nothing; refusing again is refused.
        #expect(throws: ModelError.self) { try s.b.offerTally(t.uuid, revision: t.revision, signature: t.core?.sign(with: key) ?? "") }
        _ = try s.b.redeemTicket(ticketMessage, userKey: s.key(.b))
        #expect(try s.b.tallies(user: s.bob).map(\.state) == [.void])
        #expect(try s.b.outbox(for: s.agentA).isEmpty)
        #expect(throws: ModelError.self) { try s.b.refuseTally(t.uuid) }
    }

    @Test func aDeviceUsersInvitationWaitsForItsOfferSignature() throws {
        let s = try PTwoSites()
        // bob (site b, the issuer) takes his key to his device.
        let key = try Self.takeKey(s.b, s.bob).key

        // alice redeems bob's invitation: the tally waits in P.draft, unsigned and unsent.
        let before = try s.b.latestUserSeq(cuid: s.bob)
        let request = try s.a.requestTally(cuid: s.alice, ticket: try s.ticket(side: .stock, limit: 1_000_000), accept: false)
        let ticketMessage = try #require(try s.a.outbox(for: s.agentB).first(where: { $0.topic == request })?.message)
        // (Applied, but nothing queued: the test front reports no offer.)
        #expect(try s.b.redeemTicket(ticketMessage, userKey: s.key(.b)) == .refused("no offer queued"))
        let t = try #require(try s.b.tallies(user: s.bob).first)
        let core = try #require(t.core)
        #expect(t.state == .peerDraft && t.sign?[t.side] == nil)
        #expect(try s.b.outbox(for: s.agentA).isEmpty)
        let events = try s.b.userEvents(cuid: s.bob, after: before, limit: 10)
        #expect(events.map(\.topic) == [.tally, .sign])
        #expect(events.last?.data == UserEvent.signData(kind: .offer, uuid: t.uuid, core: core.json, hash: core.hash))
        // A repeat of the ticket is let in (a channel may idle out before bob
        // signs: alice's request must not end) and changes nothing while it waits.
        let aliceCHAD = try s.a.user(s.alice).certificate.chad
        let token = try #require(ticketMessage["ticket"]?["token"]?.stringValue)
        #expect(try s.b.ticketRedeemed(token: token, by: aliceCHAD))
        #expect(try s.b.redeemTicket(ticketMessage, userKey: s.key(.b)) == .refused("no offer queued"))
        #expect(try s.b.tallies(user: s.bob).count == 1)
        #expect(try s.b.outbox(for: s.agentA).isEmpty)

        // Only bob's signature sends the offer.
        #expect(throws: ModelError.self) {
            try s.b.offerTally(t.uuid, revision: t.revision, signature: core.sign(with: SigningKey.generate()))
        }
        let offered = try s.b.offerTally(t.uuid, revision: t.revision, signature: core.sign(with: key))
        #expect(offered.state == .heldOffer)
        #expect(throws: ModelError.self) { try s.b.offerTally(t.uuid, revision: t.revision, signature: core.sign(with: key)) }
        let offer = try #require(try s.b.outbox(for: s.agentA).first?.message)
        _ = try s.deliver(PPacket(to: .a, message: offer))
        #expect(try s.a.tally(t.uuid).state == .peerOffer)
        _ = try s.a.acceptTally(t.uuid, key: s.key(.a))
        let open = try #require(try s.a.outbox(for: s.agentB).first?.message)
        for reply in try s.deliver(PPacket(to: .b, message: open)) { _ = try s.deliver(reply) }
        #expect(try s.b.tally(t.uuid).state == .open && s.a.tally(t.uuid).state == .open)
        #expect(try s.a.verifyTally(t.uuid).isEmpty && s.b.verifyTally(t.uuid).isEmpty)
    }
}
