import ChipModel
import ChipProtocol
import GRDB
@testable import ChipStore
import Foundation
import Testing
import TestSupport
@_spi(Testing) import Noise
@testable import ChipDaemon

/// serve's command runner for device custody (protocol 10.7): bob's device
/// takes his key (fetch, confirm in a later session), signs the offer of
/// the tally alice asked for with his invitation (`tally.offer`), and pays.
@Suite struct CustodyRunnerTests {
    static func clock() -> Int64 { Int64(Date().timeIntervalSince1970 * 1000) }

    struct Failed: Error, CustomStringConvertible {
        let description: String
    }

    static func run(
        _ runner: UserCommandRunner, _ caller: UserCommandRunner.Caller, _ cmd: String, _ args: JSONValue, idem: Bool = false,
        key: String? = nil
    )
        async throws -> JSONValue
    {
        var o: [String: JSONValue] = ["id": "r", "cmd": .string(cmd), "args": args]
        if idem { o["idem"] = .string(TallyCore.newUUID()) }
        if let key { o["idem"] = .string(key) }
        let request: UserRequest
        do { request = try UserRequest(parsing: JSONValue.object(o).canonicalBytes) } catch { throw Failed(description: "\(cmd): \(error)") }
        guard case .reply(let reply) = await runner.run(request, caller: caller, now: clock()) else { throw Failed(description: "no reply") }
        return reply
    }

    static func code(_ reply: JSONValue) -> String? { reply["error"]?["code"]?.stringValue }

    static func deliver(_ json: JSONValue, to store: SiteStore, from peer: AgentID) throws {
        guard case .tally(let m) = try SiteMessage(json: json) else { throw Failed(description: "not a tally message") }
        _ = try store.receiveTally(m, from: peer, userKey: { try store.userKey($0, sealingKey: nil) })
    }

    @Test func aRepeatOfTheKeyTakeUnderItsIdemIsTheCachesAnswer() async throws {
        let dir = try TempDir()
        let b = try SiteStore.create(at: dir.file("b.db"), address: try SiteAddress(host: "b.example", port: 2), passphrase: nil)
        let bob = try CUID("bob")
        try b.addUser(cuid: bob, name: "Bob", email: nil, sealingKey: nil)
        let runner = UserCommandRunner(store: b, sealingKey: nil)
        let pair = KeyPair.generate()
        let device = try DeviceID(publicKey: pair.publicKey)
        let first = UserCommandRunner.Caller(user: bob, device: device, scopes: Set(UserScope.allCases), sessionOpened: Self.clock() - 1_000)
        func fetches() throws -> Int {
            try b.database.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM key_fetches") ?? 0 }
        }

        // The fetch's reply carries the seed, so it is not kept: its repeat is `conflict`, and nothing is fetched again.
        let fetchKey = TallyCore.newUUID()
        let fetched = try await Self.run(runner, first, "me.key.take", ["step": "fetch"], key: fetchKey)
        let sealed = try #require(fetched["data"]?["key"]?.stringValue, "\(fetched)")
        #expect(try fetches() == 1)
        let again = try await Self.run(runner, first, "me.key.take", ["step": "fetch"], key: fetchKey)
        #expect(Self.code(again) == "conflict", "\(again)")
        #expect(again["data"] == nil)
        #expect(try fetches() == 1)
        // A new idem is a new fetch.
        #expect(try await Self.run(runner, first, "me.key.take", ["step": "fetch"], idem: true)["data"]?["key"] != nil)
        #expect(try fetches() == 2)

        var seed = try KeyTransfer.open(sealed, publicKey: pair.publicKey, secretKey: pair.privateKey)
        let key = try SigningKey(seed: seed)
        Crypto.wipe(&seed)
        var later = first
        later.sessionOpened = max(Self.clock(), first.sessionOpened) + 1
        let proof: JSONValue = [
            "act": "key.take", "cuid": "bob", "date": .string(Timestamp.format(millisecondsSince1970: Self.clock())),
            "device": .string(device.description)
        ]
        let confirm: JSONValue = ["step": "confirm", "proof": proof, "sign": .string(Base64URL.encode(key.sign(proof.canonicalBytes)))]
        let confirmKey = TallyCore.newUUID()
        let taken = try await Self.run(runner, later, "me.key.take", confirm, key: confirmKey)
        #expect(taken["data"] == ["custody": "device"], "\(taken)")
        #expect(taken["replayed"] == nil)
        // The repeat is the first reply, replayed, even from another session.
        var another = later
        another.sessionOpened += 1
        let repeated = try await Self.run(runner, another, "me.key.take", confirm, key: confirmKey)
        #expect(repeated["data"] == ["custody": "device"])
        #expect(repeated["replayed"] == true, "\(repeated)")
        // Another request under the confirm's idem: `conflict`.
        #expect(Self.code(try await Self.run(runner, later, "me.key.take", ["step": "fetch"], key: confirmKey)) == "conflict")

        // `device.ticket`'s reply carries a token: its repeat is `conflict` too, and mints
        // nothing (a second ticket would revoke the first).
        let ticketKey = TallyCore.newUUID()
        let minted = try await Self.run(runner, later, "device.ticket", [:], key: ticketKey)
        let token = try #require(minted["data"]?["ticket"]?["ticket"]?["token"]?.stringValue, "\(minted)")
        #expect(Self.code(try await Self.run(runner, later, "device.ticket", [:], key: ticketKey)) == "conflict")
        let phone = try DeviceID(publicKey: KeyPair.generate().publicKey)
        #expect(try b.registerDevice(token: token, name: "Phone", device: phone, now: Self.clock()) == .registered(user: bob, device: phone))
    }

    @Test func aDeviceTakesTheKeySignsItsOfferAndPays() async throws {
        let dir = try TempDir()
        let a = try SiteStore.create(at: dir.file("a.db"), address: try SiteAddress(host: "a.example", port: 1), passphrase: nil)
        let b = try SiteStore.create(at: dir.file("b.db"), address: try SiteAddress(host: "b.example", port: 2), passphrase: nil)
        let alice = try CUID("alice"), bob = try CUID("bob")
        try a.addUser(cuid: alice, name: "Alice", email: nil, sealingKey: nil)
        try b.addUser(cuid: bob, name: "Bob", email: nil, sealingKey: nil)
        let agentA = try a.agent(), agentB = try b.agent()
        let runner = UserCommandRunner(store: b, sealingKey: nil)
        let pair = KeyPair.generate()
        let device = try DeviceID(publicKey: pair.publicKey)
        let first = UserCommandRunner.Caller(user: bob, device: device, scopes: Set(UserScope.allCases), sessionOpened: Self.clock() - 1_000)

        // Fetch: the seed sealed to this device; the reply is not kept.
        let fetched = try await Self.run(runner, first, "me.key.take", ["step": "fetch"], idem: true)
        let sealed = try #require(fetched["data"]?["key"]?.stringValue, "\(fetched)")
        var seed = try KeyTransfer.open(sealed, publicKey: pair.publicKey, secretKey: pair.privateKey)
        let key = try SigningKey(seed: seed)
        Crypto.wipe(&seed)
        #expect(key.publicKey == (try b.user(bob).certificate.publicKey))
        func confirm(_ caller: UserCommandRunner.Caller) async throws -> JSONValue {
            let proof: JSONValue = [
                "act": "key.take", "cuid": "bob", "date": .string(Timestamp.format(millisecondsSince1970: Self.clock())),
                "device": .string(device.description)
            ]
            let sign = Base64URL.encode(key.sign(proof.canonicalBytes))
            return try await Self.run(runner, caller, "me.key.take", ["step": "confirm", "proof": proof, "sign": .string(sign)], idem: true)
        }
        // Not in the session of the fetch; in a later one, yes, and again.
        #expect(Self.code(try await confirm(first)) == "state")
        // A session opened after the fetch (1 ms later at the least).
        var later = first
        later.sessionOpened = max(Self.clock(), first.sessionOpened) + 1
        #expect(try await confirm(later)["data"] == ["custody": "device"])
        #expect(try await confirm(later)["data"] == ["custody": "device"])
        #expect(try b.custody(of: bob) == .device)
        #expect(Self.code(try await Self.run(runner, later, "me.key.take", ["step": "fetch"])) == "state")

        // alice asks for a tally with bob's invitation: it waits for bob's offer signature.
        let info = try b.issueTicket(
            cuid: bob, expiresAt: Self.clock() + 600_000, reuse: false, bound: nil, terms: ["side": "stock", "limit": 100_000])
        let ticket = try TallyTicket(
            token: info.token, expires: info.expires, chad: CHAD(cuid: bob, agent: agentB, address: try SiteAddress(host: "b.example", port: 2)))
        let request = try a.requestTally(cuid: alice, ticket: ticket, accept: false)
        let ticketMessage = try #require(try a.outbox(for: agentB).first(where: { $0.topic == request })?.message)
        try Self.deliver(ticketMessage, to: b, from: agentA)
        let t = try #require(try b.tallies(user: bob).first)
        #expect(t.state == .peerDraft)
        let shown = try await Self.run(runner, later, "tally.show", ["uuid": .string(t.uuid)])
        let core = try TallyCore(json: try #require(shown["data"]?["core"]))
        let hash = try #require(shown["data"]?["hash"]?.stringValue)
        #expect(core.hash == hash)
        func offer(_ sign: String) async throws -> JSONValue {
            try await Self.run(
                runner, later, "tally.offer",
                ["uuid": .string(t.uuid), "revision": .integer(t.revision), "hash": .string(hash), "sign": .string(sign)])
        }
        #expect(Self.code(try await offer(core.sign(with: SigningKey.generate()))) == "sign_invalid")
        #expect(try await offer(core.sign(with: key))["data"] == ["state": "H.offer"])
        // A repeat is the same request: replayed.
        #expect(try await offer(core.sign(with: key))["replayed"] == true)

        // alice's site takes the offer and accepts; bob's site opens the tally.
        let offered = try #require(try b.outbox(for: agentA).first(where: { $0.topic == t.uuid })?.message)
        try Self.deliver(offered, to: a, from: agentB)
        _ = try a.acceptTally(t.uuid, key: { try a.userKey($0, sealingKey: nil) })
        let open = try #require(try a.outbox(for: agentB).first(where: { $0.topic == t.uuid })?.message)
        try Self.deliver(open, to: b, from: agentA)
        #expect(try b.tally(t.uuid).state == .open)

        // bob pays with a chit his device signed (alice grants him nothing, so the
        // signature passes and the limit stops it); one without a signature is refused.
        let chitCore: JSONValue = [
            "tally": .string(t.uuid), "by": "stock", "type": "tran", "uuid": .string(TallyCore.newUUID()),
            "date": .string(Timestamp.format(millisecondsSince1970: Self.clock())), "units": 1_000
        ]
        #expect(Self.code(try await Self.run(runner, later, "chit.pay", ["chit": chitCore])) == "sign_invalid")
        let paid = try await Self.run(
            runner, later, "chit.pay", ["chit": chitCore, "sign": .string(Base64URL.encode(key.sign(chitCore.canonicalBytes)))])
        #expect(Self.code(paid) == "limit", "\(paid)")
        let badly = try await Self.run(
            runner, later, "chit.pay",
            ["chit": chitCore, "sign": .string(Base64URL.encode(SigningKey.generate().sign(chitCore.canonicalBytes)))])
        #expect(Self.code(badly) == "sign_invalid")
        #expect(try b.verifyTally(t.uuid).isEmpty)
    }
}
