import ChipModel
import Noise

/// A registration presented in an `I` handshake (10.3), for the site to judge.
public struct UserRegistration: Sendable, Equatable {
    /// The one-time token; the site looks up `UserTicket.tokenHash(token)`.
    public let token: String
    /// Informative only (10.2).
    public let user: CUID?
    /// The device's name, 1-64 characters.
    public let deviceName: String
    /// The device key the handshake proved.
    public let device: DeviceID
}

/// What a known device's session may do, as the site answers it (10.4).
public struct UserSessionGrant: Sendable, Equatable {
    public var user: CUID
    public var custody: UserCustody
    public var scopes: Set<UserScope>
    public var features: [String]

    public init(user: CUID, custody: UserCustody, scopes: Set<UserScope>, features: [String] = []) {
        self.user = user
        self.custody = custody
        self.scopes = scopes
        self.features = features
    }
}

/// The payload of `A` as the device reads it.
public enum UserHandshakeAnswer: Sendable, Equatable {
    /// `{"ok":true,"v":1,"user","device"}`: registered; the site closes.
    case registered(version: Int, user: CUID, device: DeviceID)
    /// `{"ok":true,"v":1,"user","agent","custody","scopes","features"}`: the session is open.
    case session(version: Int, agent: AgentID, grant: UserSessionGrant)
    /// `{"ok":false,"reason":"version"}`: no common version; the site closes.
    case versionRefused
}

/// What the responder must ask the site before it answers `A`.
public enum UserChannelQuestion: Sendable, Equatable {
    /// Register this device with this token (10.2, 10.3)? Answer with
    /// ``UserChannelMachine/answerRegistration(_:)``.
    case register(UserRegistration)
    /// Is this device key registered and not revoked, and for whom (10.4)?
    /// Answer with ``UserChannelMachine/answerSession(_:)``.
    case session(DeviceID)
}

/// What the network edge must do after feeding the machine.
public enum UserChannelAction: Sendable, Equatable {
    /// Write this frame.
    case send(Frame)
    /// Ask the site, then answer.
    case ask(UserChannelQuestion)
    /// Site: the session is open for this device of this user.
    case opened(device: DeviceID, user: CUID)
    /// Device: the site's `A` payload.
    case answered(UserHandshakeAnswer)
    /// One JSON object from the other side: a request (site), a reply or an event (device).
    case deliver(UserMessage)
    /// Write the frames above, then close (a registration's answer, a version refusal).
    case closeAfterSend(String)
    /// Close the connection at once and send nothing more. Debug-log only.
    case close(String)
}

/// One user-port connection (protocol section 10.1-10.4) as a pure state
/// machine beside ``ChannelMachine``: the same frames and the same Noise
/// module, one pattern (`Noise_IK_25519_ChaChaPoly_BLAKE2b`) and its own
/// prologue, so that no handshake of one protocol completes on the other's
/// port. The site is the responder; the device starts with `register` or
/// `session`. Headers: `I` (device), `A` (site), `T` (either); any other,
/// a second `I`, a `T` before `A`: silent close.
public struct UserChannelMachine {
    /// 10.1: the 15 ASCII bytes `chipsite-user/1` (the peer prologue is empty).
    public static let prologue: [UInt8] = Array("chipsite-user/1".utf8)
    /// Versions this side speaks (10.4); `A` picks the highest common one.
    public static let versions: [Int] = [1]
    /// Rekey after this many messages in one direction (section 3).
    public static let rekeyInterval: UInt64 = ChannelMachine.rekeyInterval
    /// Largest JSON message in one `T` frame.
    public static let maxMessageBytes = ChannelMachine.maxMessageBytes
    /// A device name is 1-64 characters (10.3), and at most 256 bytes.
    public static let maxDeviceName = 64
    static let maxDeviceNameBytes = 256
    /// IK message 1 is e + s + tag + payload tag at least; a handshake
    /// payload (10.3, 10.4) is small, so 1 KiB of it is plenty.
    static let minIKMessage1 = ChannelMachine.minIKMessage1
    static let maxHandshakePayload = 1024
    /// Most versions a device may list.
    static let maxVersions = 16

    enum State {
        case responderStart
        case responderAwaitingRegistration(Handshake, UserRegistration, version: Int)
        case responderAwaitingSession(Handshake, DeviceID, version: Int?)
        case initiatorAwaitingA(Handshake, registering: Bool, site: AgentID)
        case open(Transport)
        case closed
    }

    let local: LocalSite?
    var state: State
    var sentCount: UInt64 = 0
    var receivedCount: UInt64 = 0
    /// Whether this side is the device.
    public let isInitiator: Bool

    private init(local: LocalSite?, state: State, isInitiator: Bool) {
        self.local = local
        self.state = state
        self.isInitiator = isInitiator
    }

    /// The site's machine for an accepted connection.
    public static func responder(local: LocalSite) -> UserChannelMachine {
        UserChannelMachine(local: local, state: .responderStart, isInitiator: false)
    }

    /// A device registering (10.3) with `device` (a fresh key) at the site
    /// of `ticket`, whose agent gives the site's static key.
    public static func register(
        device: KeyPair, ticket: UserTicket, deviceName: String,
        versions: [Int] = versions
    ) throws(ChannelError) -> (UserChannelMachine, [UserChannelAction]) {
        var payload: [String: JSONValue] = [
            "op": "register", "v": .array(versions.map { .integer(Int64($0)) }),
            "token": .string(ticket.token), "device": .string(deviceName)
        ]
        if let user = ticket.user { payload["user"] = .string(user.value) }
        return try start(device: device, site: ticket.agent, payload: .object(payload), registering: true)
    }

    /// A registered device opening a session (10.4).
    public static func session(device: KeyPair, site: AgentID, versions: [Int] = versions) throws(ChannelError)
        -> (UserChannelMachine, [UserChannelAction])
    {
        try start(
            device: device, site: site, payload: ["op": "session", "v": .array(versions.map { .integer(Int64($0)) })],
            registering: false)
    }

    private static func start(device: KeyPair, site: AgentID, payload: JSONValue, registering: Bool) throws(ChannelError)
        -> (UserChannelMachine, [UserChannelAction])
    {
        guard let rs = site.noiseStaticKey else { throw .noise(.invalidKeyLength) }
        let bytes = payload.canonicalBytes
        guard bytes.count <= maxHandshakePayload else { throw .messageTooLarge(bytes.count) }
        do throws(NoiseError) {
            let hs = try Handshake(
                pattern: .IK, hash: .blake2b, initiator: true, prologue: prologue, localStatic: device,
                remoteStatic: rs)
            let m1: [UInt8]
            do throws(NoiseError) { m1 = try hs.writeMessage(bytes) } catch { hs.abort(); throw error }
            return (
                UserChannelMachine(local: nil, state: .initiatorAwaitingA(hs, registering: registering, site: site), isInitiator: true),
                [.send(Frame(.I, m1))]
            )
        } catch {
            throw .noise(error)
        }
    }

    public var isOpen: Bool { if case .open = state { return true } else { return false } }
    public var isClosed: Bool { if case .closed = state { return true } else { return false } }

    // MARK: Input

    /// Feeds one frame from the other side.
    public mutating func receive(_ frame: Frame) -> [UserChannelAction] {
        switch (state, frame.header) {
        case (.responderStart, .I) where !isInitiator: return readI(frame.body)
        case (.initiatorAwaitingA(let hs, let registering, let site), .A):
            return readA(frame.body, handshake: hs, registering: registering, site: site)
        case (.open(let transport), .T): return readT(frame.body, transport: transport)
        case (.closed, _): return []
        default: return close("\(frame.header) frame out of order on the user port")
        }
    }

    /// The edge could not cut a frame (bad length or header): silent close.
    public mutating func reject(_ error: FrameError) -> [UserChannelAction] {
        if isClosed { return [] }
        return close("bad frame: \(error)")
    }

    /// The site's answer to a `register` question: the user the device was
    /// registered for, or nil (any failure: silent close, 10.3).
    public mutating func answerRegistration(_ user: CUID?) -> [UserChannelAction] {
        guard case .responderAwaitingRegistration(let hs, let registration, let version) = state else { return [] }
        guard let user else { return close("registration refused") }
        let payload: JSONValue = [
            "ok": true, "v": .integer(Int64(version)), "user": .string(user.value),
            "device": .string(registration.device.description)
        ]
        return finish(hs, payload: payload, open: false)
    }

    /// The site's answer to a `session` question: what the device may do,
    /// or nil (unknown or revoked: silent close, 10.4).
    public mutating func answerSession(_ grant: UserSessionGrant?) -> [UserChannelAction] {
        guard case .responderAwaitingSession(let hs, let device, let version) = state, let local else { return [] }
        guard let grant else { return close("unknown or revoked device key") }
        guard let version else { return finish(hs, payload: Self.versionRefusal, open: false) }
        let payload: JSONValue = [
            "ok": true, "v": .integer(Int64(version)), "user": .string(grant.user.value),
            "agent": .string(local.agent.description), "custody": .string(grant.custody.rawValue),
            "scopes": UserScope.json(grant.scopes), "features": .array(grant.features.map(JSONValue.string))
        ]
        var actions = finish(hs, payload: payload, open: true)
        if isOpen { actions.append(.opened(device: device, user: grant.user)) }
        return actions
    }

    /// Encrypts one JSON message (a reply or event, or a request) into a `T` frame.
    public mutating func send(_ message: JSONValue) throws(ChannelError) -> [UserChannelAction] {
        guard case .open(let transport) = state else { throw .notOpen }
        let bytes = message.canonicalBytes
        guard bytes.count <= Self.maxMessageBytes else { throw .messageTooLarge(bytes.count) }
        if sentCount > 0, sentCount % Self.rekeyInterval == 0 { transport.sendCipher?.rekey() }
        do throws(NoiseError) {
            let body = try transport.encrypt(bytes)
            sentCount += 1
            return [.send(Frame(.T, body))]
        } catch {
            throw .noise(error)
        }
    }

    /// Marks the machine closed and wipes its keys (on any close).
    public mutating func shutdown() {
        switch state {
        case .responderAwaitingRegistration(let hs, _, _), .responderAwaitingSession(let hs, _, _), .initiatorAwaitingA(let hs, _, _):
            hs.abort()
        default: break
        }
        state = .closed
    }

    // MARK: Steps

    static let versionRefusal: JSONValue = ["ok": false, "reason": "version"]

    private mutating func close(_ why: String) -> [UserChannelAction] {
        shutdown()
        return [.close(why)]
    }

    /// Writes `A` with `payload`; opens the session or closes after the send.
    private mutating func finish(_ hs: Handshake, payload: JSONValue, open: Bool) -> [UserChannelAction] {
        do throws(NoiseError) {
            let a = try hs.writeMessage(payload.canonicalBytes)
            let transport = try hs.finish()
            if open {
                state = .open(transport)
                return [.send(Frame(.A, a))]
            }
            state = .closed
            return [.send(Frame(.A, a)), .closeAfterSend(payload["ok"] == true ? "registered" : "no common version")]
        } catch {
            hs.abort()
            return close("IK message 2 failed: \(error)")
        }
    }

    private mutating func readI(_ body: [UInt8]) -> [UserChannelAction] {
        guard let local else { return close("no local site") }
        guard body.count >= Self.minIKMessage1, body.count <= Self.minIKMessage1 + Self.maxHandshakePayload else {
            return close("I message has the wrong size")
        }
        do throws(NoiseError) {
            let hs = try Handshake(pattern: .IK, hash: .blake2b, initiator: false, prologue: Self.prologue, localStatic: local.staticKey)
            let payload: [UInt8]
            do throws(NoiseError) { payload = try hs.readMessage(body) } catch { hs.abort(); throw error }
            guard let rs = hs.remoteStaticKey, let device = try? DeviceID(publicKey: rs) else {
                hs.abort()
                return close("no device key")
            }
            switch Self.hello(payload, device: device) {
            case .register(let registration, let version):
                state = .responderAwaitingRegistration(hs, registration, version: version)
                return [.ask(.register(registration))]
            case .registerWithoutCommonVersion:
                // No common version: say so, keep the ticket (10.3 step 2).
                return finish(hs, payload: Self.versionRefusal, open: false)
            case .session(let version):
                // Unknown keys close silently whatever they speak, so ask first (10.4).
                state = .responderAwaitingSession(hs, device, version: version)
                return [.ask(.session(device))]
            case .invalid(let why):
                hs.abort()
                return close("I payload: \(why)")
            }
        } catch {
            return close("IK message 1: \(error)")
        }
    }

    private mutating func readA(_ body: [UInt8], handshake hs: Handshake, registering: Bool, site: AgentID) -> [UserChannelAction] {
        let payload: [UInt8]
        let transport: Transport
        do throws(NoiseError) {
            payload = try hs.readMessage(body)
            transport = try hs.finish()
        } catch {
            hs.abort()
            return close("A message: \(error)")
        }
        guard let answer = Self.answer(payload, registering: registering) else { return close("A payload is not an answer") }
        if case .session(_, let agent, _) = answer {
            guard agent == site else { return close("A names another agent than the site dialed") }
            state = .open(transport)
        } else {
            state = .closed
        }
        return [.answered(answer)]
    }

    private mutating func readT(_ body: [UInt8], transport: Transport) -> [UserChannelAction] {
        if receivedCount > 0, receivedCount % Self.rekeyInterval == 0 { transport.receiveCipher?.rekey() }
        let plaintext: [UInt8]
        do throws(NoiseError) {
            plaintext = try transport.decrypt(body)
            receivedCount += 1
        } catch {
            return close("T message: \(error)")
        }
        // 10.5: invalid JSON, a duplicate key, nesting beyond 32 or a non-object closes the session.
        guard let message = try? UserMessage(parsing: plaintext, maxBytes: Self.maxMessageBytes) else {
            return close("T message is not one JSON object")
        }
        return [.deliver(message)]
    }

    // MARK: Handshake payloads

    enum Hello: Equatable {
        /// A registration in the common version.
        case register(UserRegistration, Int)
        case registerWithoutCommonVersion
        case session(Int?)
        case invalid(String)
    }

    /// The highest version both sides speak, nil if none; throws for a
    /// malformed list (not 1-16 positive integers).
    static func commonVersion(_ v: JSONValue?) -> Result<Int?, ModelError> {
        guard let list = v?.arrayValue, !list.isEmpty, list.count <= maxVersions else { return .failure(.malformed("v must list 1-16 versions")) }
        var theirs = Set<Int>()
        for item in list {
            guard let n = item.integerValue, n > 0, let i = Int(exactly: n) else { return .failure(.malformed("versions are positive integers")) }
            theirs.insert(i)
        }
        return .success(versions.filter(theirs.contains).max())
    }

    /// Parses an `I` payload (10.3, 10.4). The op and the version list are
    /// read first; with a common version the payload must be exactly that
    /// version's (no unknown field), without one nothing else is looked at.
    static func hello(_ payload: [UInt8], device: DeviceID) -> Hello {
        guard let json = try? JSONValue(parsing: payload, limits: JSONLimits(maxDepth: 2, maxBytes: maxHandshakePayload)),
            let o = json.objectValue, let op = o["op"]?.stringValue
        else { return .invalid("not a JSON object with an op") }
        let version: Int?
        switch commonVersion(o["v"]) {
        case .success(let v): version = v
        case .failure(let why): return .invalid(why.description)
        }
        switch op {
        case "session":
            guard version == nil || Set(o.keys) == ["op", "v"] else { return .invalid("unknown field in session") }
            return .session(version)
        case "register":
            guard let version else { return .registerWithoutCommonVersion }
            guard Set(o.keys).isSubset(of: ["op", "v", "token", "user", "device"]) else { return .invalid("unknown field in register") }
            guard let token = o["token"]?.stringValue, (try? UserTicket.validate(token: token)) != nil else { return .invalid("bad token") }
            guard let name = o["device"]?.stringValue, validDeviceName(name) else { return .invalid("bad device name") }
            var user: CUID?
            if let u = o["user"] {
                guard let text = u.stringValue, let cuid = try? CUID(text) else { return .invalid("bad user") }
                user = cuid
            }
            return .register(UserRegistration(token: token, user: user, deviceName: name, device: device), version)
        default:
            return .invalid("unknown op")
        }
    }

    /// A device name: 1-64 characters, no control characters.
    public static func validDeviceName(_ name: String) -> Bool {
        (1...maxDeviceName).contains(name.count) && name.utf8.count <= maxDeviceNameBytes
            && !name.unicodeScalars.contains { $0.value < 0x20 || (0x7F...0x9F).contains($0.value) }
    }

    /// Parses the `A` payload the device got. Unknown fields are ignored
    /// (a reply, 10.4), and so are unknown scope names.
    static func answer(_ payload: [UInt8], registering: Bool) -> UserHandshakeAnswer? {
        guard let json = try? JSONValue(parsing: payload, limits: JSONLimits(maxDepth: 4, maxBytes: maxHandshakePayload * 4)),
            let ok = json["ok"]?.boolValue
        else { return nil }
        guard ok else { return json["reason"]?.stringValue == "version" ? .versionRefused : nil }
        guard let v = json["v"]?.integerValue, let version = Int(exactly: v), versions.contains(version),
            let userText = json["user"]?.stringValue, let user = try? CUID(userText)
        else { return nil }
        if registering {
            guard let d = json["device"]?.stringValue, let device = try? DeviceID(d) else { return nil }
            return .registered(version: version, user: user, device: device)
        }
        guard let a = json["agent"]?.stringValue, let agent = try? AgentID(a),
            let c = json["custody"]?.stringValue, let custody = UserCustody(rawValue: c),
            let scopes = json["scopes"]?.arrayValue
        else { return nil }
        let features = json["features"]?.arrayValue?.compactMap(\.stringValue) ?? []
        let grant = UserSessionGrant(
            user: user, custody: custody, scopes: Set(scopes.compactMap { $0.stringValue.flatMap(UserScope.init(rawValue:)) }),
            features: features)
        return .session(version: version, agent: agent, grant: grant)
    }
}
