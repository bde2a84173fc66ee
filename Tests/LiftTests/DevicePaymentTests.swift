import ChipModel
import Testing

@testable import ChipProtocol

/// 10.7's checks of a device's `chit.pay` (ChipProtocol/DevicePayment.swift),
/// on the lift fixtures' tallies: the right verdict for each kind of bad input.
@Suite struct DevicePaymentTests {
    static let alice = Fx.cuid("alice")

    /// alice holds the foil of an open tally with bob.
    func record(state: TallyState = .open, cuid: CUID = alice) -> TallyRecord {
        let core = Fx.tally(Fx.tallyUUID, stock: ("bob", 2), foil: ("alice", 1))
        return TallyRecord(
            uuid: Fx.tallyUUID, cuid: cuid, side: .foil, partner: Fx.chad("bob", site: 2), state: state, revision: 1, core: core,
            sign: nil, token: nil, balance: 0, created: Fx.ts(Fx.t0), updated: Fx.ts(Fx.t0))
    }

    func core(by: String = "foil", date: Int64 = Fx.t0, units: Int64 = 500, tally: String = Fx.tallyUUID) -> JSONValue {
        [
            "tally": .string(tally), "by": .string(by), "type": "tran", "uuid": "5f0e8a3c-1b2d-4c6e-9f7a-0b1c2d3e4f5a",
            "date": .string(Fx.ts(date)), "units": .integer(units)
        ]
    }

    func sign(_ core: JSONValue, by user: String = "alice") -> String {
        Base64URL.encode(Fx.userKey(user).sign(core.canonicalBytes))
    }

    func code(_ body: () throws(UserError) -> DevicePayment.Verdict) -> UserErrorCode? {
        do throws(UserError) {
            _ = try body()
            return nil
        } catch { return error.code }
    }

    @Test func aSiteUserWithoutASignatureIsSignedByTheSite() throws {
        let c = core()
        #expect(try DevicePayment.check(core: c, sign: nil, tally: record(), user: Self.alice, custody: .site, now: Fx.t0) == .siteSigns(c))
    }

    @Test func theUsersOwnSignatureIsAccepted() throws {
        let c = core()
        let verdict = try DevicePayment.check(core: c, sign: sign(c), tally: record(), user: Self.alice, custody: .device, now: Fx.t0)
        guard case .signed(let chit) = verdict else {
            Issue.record("not signed: \(verdict)")
            return
        }
        #expect(chit.units == 500 && chit.by == .foil)
    }

    @Test func everyBadPaymentGetsItsCode() {
        let c = core()
        let now = Fx.t0
        func check(_ core: JSONValue, sign: String?, tally: TallyRecord?, custody: UserCustody = .site, at: Int64 = now) -> UserErrorCode? {
            code { () throws(UserError) in
                try DevicePayment.check(core: core, sign: sign, tally: tally, user: Self.alice, custody: custody, now: at)
            }
        }
        // A device user must sign; a foreign key's or a changed core's signature does not verify.
        #expect(check(c, sign: nil, tally: record(), custody: .device) == .signInvalid)
        #expect(check(c, sign: sign(c, by: "bob"), tally: record()) == .signInvalid)
        #expect(check(core(units: 501), sign: sign(c), tally: record()) == .signInvalid)
        // Another user's tally, or none, is not found; a closed one is the wrong state.
        #expect(check(c, sign: nil, tally: nil) == .notFound)
        #expect(check(c, sign: nil, tally: record(cuid: Fx.cuid("mallory"))) == .notFound)
        #expect(check(core(tally: Fx.otherTallyUUID), sign: nil, tally: record()) == .notFound)
        #expect(check(c, sign: nil, tally: record(state: .void)) == .state)
        // The partner's side, a date over 5 minutes off, bad units or fields.
        #expect(check(core(by: "stock"), sign: nil, tally: record()) == .badRequest)
        #expect(check(c, sign: nil, tally: record(), at: now + 301_000) == .badRequest)
        #expect(check(c, sign: nil, tally: record(), at: now - 301_000) == .badRequest)
        #expect(check(c, sign: nil, tally: record(), at: now + 299_000) == nil)
        #expect(check(core(units: -5), sign: nil, tally: record()) == .badRequest)
        #expect(check(core(units: 0), sign: nil, tally: record()) == .badRequest)
        var extra = c.objectValue ?? [:]
        extra["extra"] = 1
        #expect(check(.object(extra), sign: nil, tally: record()) == .badRequest)
    }
}
