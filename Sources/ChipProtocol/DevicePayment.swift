import ChipModel

/// 10.7's checks of a payment a device sends (`chit.pay`), before the
/// store's limits: the core is well formed, the tally is the user's and
/// open, `by` is the user's side, `date` is near the site's clock, and the
/// signature is the user's (a `device` user must send one; for a `site`
/// user the site signs when none is sent, and one sent anyway must verify).
public enum DevicePayment {
    /// How far a device's `date` may be from the site's clock, seconds (10.7).
    public static let clockSkew = UserPortDefaults.clockSkew

    public enum Verdict: Sendable, Equatable {
        /// The device signed it and the signature verifies.
        case signed(Chit)
        /// A `site` custody user sent no signature: the site signs the core.
        case siteSigns(JSONValue)
    }

    /// `tally` is the record the core names (nil: none). `now` in ms.
    public static func check(
        core: JSONValue, sign: String?, tally t: TallyRecord?, user: CUID, custody: UserCustody, now: Int64
    ) throws(UserError) -> Verdict {
        let chit: Chit
        do throws(ModelError) { chit = try Chit(core: core, sign: sign ?? "") } catch {
            throw UserError(.badRequest, error.description)
        }
        guard let t, t.uuid == chit.tally, t.cuid == user else { throw UserError(.notFound, "no such tally") }
        guard t.state == .open, let tallyCore = t.core else { throw UserError(.state, "the tally is \(t.state.rawValue), not open") }
        guard chit.by == t.side else { throw UserError(.badRequest, "by must be the user's side of the tally (\(t.side.rawValue))") }
        guard let date = core["date"]?.stringValue.flatMap(Timestamp.parse), abs(date - now) <= clockSkew * 1000 else {
            throw UserError(.badRequest, "the chit's date is more than \(clockSkew / 60) minutes from the site's clock")
        }
        if sign != nil {
            guard chit.verify(in: tallyCore) else { throw UserError(.signInvalid, "the signature is not the user's") }
            return .signed(chit)
        }
        guard custody == .site else { throw UserError(.signInvalid, "chit.pay needs the user's signature") }
        return .siteSigns(core)
    }
}
