import ChipModel

/// 10.7's checks of the commands that move the user's signing key:
/// `me.key.take` (fetch, then confirm in a later session) and
/// `me.signkey` (a `device` user's first key). Pure: the store gives a
/// ``Snapshot`` of the user read in the command's transaction and `now`,
/// and carries out the verdict in that transaction.
public enum KeyCustody {
    /// How far a signed object's `date` may be from the site's clock, seconds (10.7).
    public static let clockSkew = UserPortDefaults.clockSkew

    /// What the site file says of the user, read in the command's transaction.
    public struct Snapshot: Sendable, Equatable {
        public var custody: UserCustody
        /// The site holds a seed for the user: every `site` user, and a
        /// `device` user still on the site-made placeholder key.
        public var siteHoldsKey: Bool
        /// The public key in the user's certificate.
        public var certKey: [UInt8]
        /// When the calling device fetched the key (ms since 1970), oldest first.
        public var fetches: [Int64]
        /// Some tally of the user's is past `draft` (anything but our own
        /// request's `draft`; a `P.draft` core already names the user's key).
        public var tallyPastDraft: Bool
        /// This site's agent id.
        public var agent: AgentID

        public init(
            custody: UserCustody, siteHoldsKey: Bool, certKey: [UInt8], fetches: [Int64] = [], tallyPastDraft: Bool = false,
            agent: AgentID
        ) {
            self.custody = custody
            self.siteHoldsKey = siteHoldsKey
            self.certKey = certKey
            self.fetches = fetches
            self.tallyPastDraft = tallyPastDraft
            self.agent = agent
        }
    }

    /// `me.key.take` `fetch`: only a `site` user whose key the site holds.
    /// Nil: seal the seed to the device and record the fetch.
    public static func fetch(_ s: Snapshot) -> UserError? {
        guard s.custody == .site else { return UserError(.state, "the user's key is held by a device already (custody device)") }
        guard s.siteHoldsKey else { return UserError(.state, "the site holds no key for this user") }
        return nil
    }

    /// What a valid `confirm` does.
    public enum Confirm: Sendable, Equatable {
        /// Erase the site's copy of the seed and set custody `device`.
        case take
        /// Custody is `device` already: the same reply, nothing written.
        case already
    }

    /// `me.key.take` `confirm` from `device` of `user`, in a session opened
    /// at `sessionOpened` (ms): the proof names the user and this device,
    /// its date is near `now` (ms), it is signed by the key in the user's
    /// certificate, and this device fetched the key before this session opened.
    public static func confirm(
        _ proof: KeyTakeProof, sign: String, user: CUID, device: DeviceID, sessionOpened: Int64, snapshot s: Snapshot, now: Int64
    ) -> Result<Confirm, UserError> {
        guard proof.cuid == user else { return .failure(UserError(.badRequest, "proof.cuid must be the user's (\(user.value))")) }
        guard proof.device == device else { return .failure(UserError(.badRequest, "proof.device must be this device's id")) }
        if let e = dateError(proof.date, now: now) { return .failure(e) }
        guard verify(sign, proof.json, key: s.certKey) else {
            return .failure(UserError(.signInvalid, "the proof is not signed by the user's key"))
        }
        if s.custody == .device { return .success(.already) }
        guard s.siteHoldsKey else { return .failure(UserError(.state, "the site holds no key for this user")) }
        guard s.fetches.contains(where: { $0 < sessionOpened }) else {
            return .failure(
                UserError(.state, "confirm in a later session than this device's fetch (the key must survive a reconnect)"))
        }
        return .success(.take)
    }

    /// `me.signkey` by `user`: the key object names the user and this
    /// site, its date is near `now`, it is signed by the new key, and the
    /// user is `device` custody, still on the site-made placeholder key,
    /// with no tally past `draft`. Success: the new public key.
    public static func signKey(_ key: SignKeyArgs, sign: String, user: CUID, snapshot s: Snapshot, now: Int64) -> Result<
        [UInt8], UserError
    > {
        guard key.cuid == user else { return .failure(UserError(.badRequest, "key.cuid must be the user's (\(user.value))")) }
        guard key.agent == s.agent else { return .failure(UserError(.badRequest, "key.agent must be this site's agent")) }
        if let e = dateError(key.date, now: now) { return .failure(e) }
        guard verify(sign, key.json, key: key.publicKey) else {
            return .failure(UserError(.signInvalid, "the key object is not signed by the new key"))
        }
        guard s.custody == .device else {
            return .failure(UserError(.state, "the site holds this user's key (custody site): take it with me.key.take"))
        }
        guard s.siteHoldsKey else { return .failure(UserError(.state, "the user has a signing key already")) }
        guard !s.tallyPastDraft else { return .failure(UserError(.state, "the user has a tally past draft: the key cannot change")) }
        guard key.publicKey != s.certKey else { return .failure(UserError(.state, "that is the key the user has")) }
        return .success(key.publicKey)
    }

    static func dateError(_ date: String, now: Int64) -> UserError? {
        guard let d = Timestamp.parse(date), abs(d - now) <= clockSkew * 1000 else {
            return UserError(.badRequest, "the date is more than \(clockSkew / 60) minutes from the site's clock")
        }
        return nil
    }

    static func verify(_ sign: String, _ object: JSONValue, key: [UInt8]) -> Bool {
        guard let bytes = Base64URL.decode(sign) else { return false }
        return Ed25519.verify(signature: bytes, message: object.canonicalBytes, publicKey: key)
    }
}
