import ChipModel
import Testing
@testable import ChipProtocol

/// 10.7's custody checks (``KeyCustody``): `me.key.take`'s fetch and
/// confirm, `me.signkey`. Pure: a snapshot and a clock in, a verdict out.
@Suite struct CustodyTests {
    static let now: Int64 = 1_795_000_000_000
    static let user: CUID = {
        guard let c = try? CUID("alice") else { preconditionFailure() }; return c
    }()
    static let stamp = Timestamp.format(millisecondsSince1970: now)

    static func snapshot(
        _ custody: UserCustody, holds: Bool = true, key: SigningKey = userKey, fetches: [Int64] = [], pastDraft: Bool = false
    ) -> KeyCustody.Snapshot {
        KeyCustody.Snapshot(
            custody: custody, siteHoldsKey: holds, certKey: key.publicKey, fetches: fetches, tallyPastDraft: pastDraft, agent: siteAgent)
    }

    static func proof(date: String = stamp, device: DeviceID = deviceID, cuid: CUID = user) -> KeyTakeProof {
        KeyTakeProof(cuid: cuid, date: date, device: device)
    }

    static func signed(_ o: JSONValue, by key: SigningKey = userKey) -> String { Base64URL.encode(key.sign(o.canonicalBytes)) }

    static func code<T>(_ r: Result<T, UserError>) -> UserErrorCode? {
        if case .failure(let e) = r { return e.code }
        return nil
    }

    // MARK: me.key.take fetch

    @Test func onlyASiteUserWhoseKeyTheSiteHoldsMayFetch() {
        #expect(KeyCustody.fetch(Self.snapshot(.site)) == nil)
        #expect(KeyCustody.fetch(Self.snapshot(.device))?.code == .state)
        #expect(KeyCustody.fetch(Self.snapshot(.device, holds: false))?.code == .state)
        #expect(KeyCustody.fetch(Self.snapshot(.site, holds: false))?.code == .state)
    }

    // MARK: me.key.take confirm

    @Test func confirmTakesOnlyInASessionOpenedAfterTheFetch() {
        let p = Self.proof()
        let sign = Self.signed(p.json)
        let fetched = Self.now - 60_000
        func confirm(opened: Int64, fetches: [Int64]) -> Result<KeyCustody.Confirm, UserError> {
            KeyCustody.confirm(
                p, sign: sign, user: Self.user, device: deviceID, sessionOpened: opened, snapshot: Self.snapshot(.site, fetches: fetches),
                now: Self.now)
        }
        #expect(confirm(opened: fetched + 1, fetches: [fetched]) == .success(.take))
        // The session of the fetch (opened before it) is not a later one.
        #expect(Self.code(confirm(opened: fetched - 1_000, fetches: [fetched])) == .state)
        #expect(Self.code(confirm(opened: fetched, fetches: [fetched])) == .state)
        // No fetch by this device at all.
        #expect(Self.code(confirm(opened: Self.now, fetches: [])) == .state)
        // Any earlier fetch will do.
        #expect(confirm(opened: fetched + 1, fetches: [fetched, fetched + 10]) == .success(.take))
    }

    @Test func confirmChecksTheProof() {
        let opened = Self.now - 1_000, fetches = [Self.now - 60_000]
        func confirm(_ p: KeyTakeProof, sign: String, device: DeviceID = deviceID, snapshot: KeyCustody.Snapshot? = nil) -> UserErrorCode? {
            Self.code(
                KeyCustody.confirm(
                    p, sign: sign, user: Self.user, device: device, sessionOpened: opened,
                    snapshot: snapshot ?? Self.snapshot(.site, fetches: fetches), now: Self.now))
        }
        let good = Self.proof()
        #expect(confirm(good, sign: Self.signed(good.json)) == nil)
        // Signed by another key, or over another object, or not base64url.
        #expect(confirm(good, sign: Self.signed(good.json, by: SigningKey.generate())) == .signInvalid)
        #expect(confirm(good, sign: Self.signed(Self.proof(date: "2026-11-24T21:00:01.000Z").json)) == .signInvalid)
        #expect(confirm(good, sign: "!!") == .signInvalid)
        // The proof names another device, another user, or a date off by more than 5 min.
        let other = (try? DeviceID(publicKey: Crypto.randomBytes(32))) ?? deviceID
        let forOther = Self.proof(device: other)
        #expect(confirm(forOther, sign: Self.signed(forOther.json)) == .badRequest)
        #expect(confirm(good, sign: Self.signed(good.json), device: other) == .badRequest)
        let bob = Self.proof(cuid: (try? CUID("bob")) ?? Self.user)
        #expect(confirm(bob, sign: Self.signed(bob.json)) == .badRequest)
        let late = Self.proof(date: Timestamp.format(millisecondsSince1970: Self.now + 301_000))
        #expect(confirm(late, sign: Self.signed(late.json)) == .badRequest)
        let early = Self.proof(date: Timestamp.format(millisecondsSince1970: Self.now - 299_000))
        #expect(confirm(early, sign: Self.signed(early.json)) == nil)
    }

    @Test func aRepeatConfirmOnceDeviceGetsTheSameVerdict() {
        let p = Self.proof()
        let r = KeyCustody.confirm(
            p, sign: Self.signed(p.json), user: Self.user, device: deviceID, sessionOpened: 0,
            snapshot: Self.snapshot(.device, holds: false), now: Self.now)
        #expect(r == .success(.already))
        // Still only with a good signature.
        let bad = KeyCustody.confirm(
            p, sign: Self.signed(p.json, by: SigningKey.generate()), user: Self.user, device: deviceID, sessionOpened: 0,
            snapshot: Self.snapshot(.device, holds: false), now: Self.now)
        #expect(Self.code(bad) == .signInvalid)
    }

    // MARK: me.signkey

    @Test func signKeyReplacesOnlyTheSiteMadePlaceholderOfADeviceUser() {
        let placeholder = SigningKey.generate()
        let new = SigningKey.generate()
        let key = SignKeyArgs(agent: siteAgent, cuid: Self.user, publicKey: new.publicKey, date: Self.stamp)
        let sign = Self.signed(key.json, by: new)
        func signKey(_ snap: KeyCustody.Snapshot, _ k: SignKeyArgs = key, sign s: String? = nil) -> Result<[UInt8], UserError> {
            KeyCustody.signKey(k, sign: s ?? sign, user: Self.user, snapshot: snap, now: Self.now)
        }
        #expect(signKey(Self.snapshot(.device, key: placeholder)) == .success(new.publicKey))
        // A site user, a device user with its own key already, one with a tally past draft.
        #expect(Self.code(signKey(Self.snapshot(.site, key: placeholder))) == .state)
        #expect(Self.code(signKey(Self.snapshot(.device, holds: false, key: placeholder))) == .state)
        #expect(Self.code(signKey(Self.snapshot(.device, key: placeholder, pastDraft: true))) == .state)
        // Signed by the old key (or any other) rather than the new one.
        #expect(Self.code(signKey(Self.snapshot(.device, key: placeholder), sign: Self.signed(key.json, by: placeholder))) == .signInvalid)
        // Another user's, another site's, a stale date.
        var bob = key
        bob.cuid = (try? CUID("bob")) ?? Self.user
        #expect(Self.code(signKey(Self.snapshot(.device, key: placeholder), bob, sign: Self.signed(bob.json, by: new))) == .badRequest)
        var elsewhere = key
        elsewhere.agent = (try? AgentID(publicKey: SigningKey.generate().publicKey)) ?? siteAgent
        #expect(
            Self.code(signKey(Self.snapshot(.device, key: placeholder), elsewhere, sign: Self.signed(elsewhere.json, by: new))) == .badRequest)
        var stale = key
        stale.date = Timestamp.format(millisecondsSince1970: Self.now - 600_000)
        #expect(Self.code(signKey(Self.snapshot(.device, key: placeholder), stale, sign: Self.signed(stale.json, by: new))) == .badRequest)
    }
}
