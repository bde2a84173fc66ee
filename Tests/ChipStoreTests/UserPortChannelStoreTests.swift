import ChipChannel
import ChipModel
import Noise
import Testing
import ChipProtocol
@testable import ChipStore

/// The user channel's machines (ChipChannel) asking the store their
/// questions, as serve will: a ticket issued by the store registers a
/// device over a real IK handshake, then the device opens a session.
@Suite struct UserPortChannelStoreTests {
    static func frames(_ actions: [UserChannelAction]) -> [Frame] {
        actions.compactMap { if case .send(let f) = $0 { return f } else { return nil } }
    }

    @Test func registerThenSessionThroughTheMachines() throws {
        let s = try UserPortStoreTests.Site()
        let now = UserPortStoreTests.now
        let siteKey = try s.store.siteKey(sealingKey: nil)
        var secret = siteKey.curve25519SecretKey()
        defer { Crypto.wipe(&secret) }
        let local = LocalSite(agent: try s.store.agent(), staticKey: try KeyPair(privateKey: secret))
        let ticket = try s.store.issueUserTicket(cuid: s.alice, scopes: [.read, .pay], lifetime: nil, now: now)
        let deviceKey = KeyPair.generate()

        // Registration: the machine asks, the store answers (and burns the ticket).
        var (client, out) = try UserChannelMachine.register(device: deviceKey, ticket: ticket, deviceName: "Pixel 7")
        var server = UserChannelMachine.responder(local: local)
        guard case .ask(.register(let r))? = server.receive(try #require(Self.frames(out).first)).first else {
            Issue.record("no registration question")
            return
        }
        let outcome = try s.store.registerDevice(r, now: now)
        let id = try DeviceID(publicKey: deviceKey.publicKey)
        #expect(outcome == .registered(user: s.alice, device: id))
        out = client.receive(try #require(Self.frames(server.answerRegistration(s.alice)).first))
        #expect(out == [.answered(.registered(version: 1, user: s.alice, device: id))])
        // A replayed registration finds the ticket spent.
        #expect(try s.store.registerDevice(r, now: now) == .refused("ticket already used"))

        // Session: the key the handshake proved is the device's.
        var (device, hello) = try UserChannelMachine.session(device: deviceKey, site: local.agent)
        var site = UserChannelMachine.responder(local: local)
        guard case .ask(.session(let asked))? = site.receive(try #require(Self.frames(hello).first)).first else {
            Issue.record("no session question")
            return
        }
        let info = try #require(try s.store.deviceSession(device: asked))
        let grant = UserSessionGrant(user: info.user, custody: info.custody, scopes: info.scopes)
        hello = device.receive(try #require(Self.frames(site.answerSession(grant)).first))
        #expect(hello == [.answered(.session(version: 1, agent: local.agent, grant: grant))])
        #expect(grant.scopes == [.read, .pay] && grant.custody == .site)
    }
}
