import ChipModel
import Noise

/// This site, as channels need it: its agent id and the X25519 static key
/// converted from its agent key (protocol section 1).
public struct LocalSite: Sendable {
    public let agent: AgentID
    public let staticKey: KeyPair

    public init(agent: AgentID, staticKey: KeyPair) {
        self.agent = agent
        self.staticKey = staticKey
    }
}

/// A ticket presented in an `I` handshake, for the site to judge.
public struct TicketPresentation: Sendable, Equatable {
    public let token: String
    public let from: CHAD
    public let to: CHAD
    /// The whole ticket message, delivered to the engine once the channel opens.
    public let message: JSONValue
}

/// What the responder must ask the site before it answers `A`.
public enum ChannelQuestion: Sendable, Equatable {
    /// Is this a valid ticket (section 6)?
    case ticket(TicketPresentation)
    /// Does one of our users share a tally (in negotiation or open) with this agent?
    case agent(AgentID)
}

/// What the network edge must do after feeding the machine.
public enum ChannelAction: Sendable, Equatable {
    /// Write this frame.
    case send(Frame)
    /// Ask the site, then call ``ChannelMachine/answer(_:)``.
    case ask(ChannelQuestion)
    /// The channel is open with this authenticated peer.
    case opened(AgentID)
    /// A checked message from the peer for the engine.
    case deliver(JSONValue)
    /// A message was dropped (wrong envelope); the channel stays open. Debug-log only.
    case dropped(String)
    /// Close the connection at once and send nothing more. Debug-log only.
    case close(String)
}

/// Why a message could not be sent.
public enum ChannelError: Error, Equatable, Sendable {
    case notOpen
    case messageTooLarge(Int)
    case noise(NoiseError)
}

/// One site-to-site channel as a pure state machine (protocol sections 2-4):
/// frames in, actions out; no I/O. The responder runs IK after `I`, or the
/// throw-away N after `N` and then KK after `K`; the initiator starts either
/// and waits for `A`. Once open, `T` frames carry JSON messages both ways.
public struct ChannelMachine {
    // Noise_IK/N/KK_25519_ChaChaPoly_BLAKE2b (section 3).
    /// The prologue is empty (section 3), and still mixed in.
    public static let prologue: [UInt8] = []
    /// Rekey after this many messages in one direction (section 3).
    public static let rekeyInterval: UInt64 = 1 << 32
    /// Largest JSON message in one `T` frame.
    public static let maxMessageBytes = NoiseSpec.MAX_PLAINTEXT_LEN
    /// A token is 128 bits in lowercase hex.
    public static let tokenLength = 32
    /// Sizes of handshake messages (Noise, 25519 + ChaChaPoly): a DH public
    /// key, an AEAD tag. IK message 1 is e + s + tag + payload tag at least.
    static let dhLength = 32, tagLength = 16
    static let minIKMessage1 = dhLength + (dhLength + tagLength) + tagLength
    /// N message 1 (and KK message 1) is e + payload tag at least; N's payload
    /// is the initiator's agent id as a JSON string (45 bytes), so 64 bytes
    /// of payload is plenty.
    static let minOneWayMessage = dhLength + tagLength
    static let maxNPayload = 64
    /// Deepest JSON accepted in a message, and the longest `action`.
    static let maxJSONDepth = 32
    static let maxActionBytes = 32

    enum State {
        case responderStart
        case responderAwaitingTicket(Handshake, TicketPresentation)
        case responderAfterN(peer: AgentID, known: Bool?, pendingK: [UInt8]?)
        case initiatorAwaitingA(Handshake, peer: AgentID)
        case open(Transport, peer: AgentID)
        case closed
    }

    let local: LocalSite
    /// The agent this side speaks as (this site's, or a referee channel's fresh key).
    public var localAgent: AgentID { local.agent }
    var state: State
    var sentCount: UInt64 = 0
    var receivedCount: UInt64 = 0

    /// Whether this side opened the connection.
    public let isInitiator: Bool

    private init(local: LocalSite, state: State, isInitiator: Bool) {
        self.local = local
        self.state = state
        self.isInitiator = isInitiator
    }

    /// A machine for an accepted connection.
    public static func responder(local: LocalSite) -> ChannelMachine {
        ChannelMachine(local: local, state: .responderStart, isInitiator: false)
    }

    /// First contact (section 4): IK to `remote` with the ticket message as payload.
    public static func firstContact(local: LocalSite, remote: AgentID, ticketMessage: JSONValue) throws(ChannelError)
        -> (ChannelMachine, [ChannelAction])
    {
        guard let rs = remote.noiseStaticKey else { throw .noise(.invalidKeyLength) }
        let payload = ticketMessage.canonicalBytes
        guard payload.count <= maxMessageBytes - minIKMessage1 else { throw .messageTooLarge(payload.count) }
        do throws(NoiseError) {
            let hs = try Handshake(
                pattern: .IK, hash: .blake2b, initiator: true, prologue: prologue,
                localStatic: local.staticKey, remoteStatic: rs)
            let m1 = try hs.writeMessage(payload)
            return (
                ChannelMachine(local: local, state: .initiatorAwaitingA(hs, peer: remote), isInitiator: true),
                [.send(Frame(.I, m1))]
            )
        } catch {
            throw .noise(error)
        }
    }

    /// Later contact (section 4): `N` naming us, then `K` (KK message 1).
    public static func laterContact(local: LocalSite, remote: AgentID) throws(ChannelError) -> (ChannelMachine, [ChannelAction]) {
        guard let rs = remote.noiseStaticKey else { throw .noise(.invalidKeyLength) }
        do throws(NoiseError) {
            let n = try Handshake(pattern: .N, hash: .blake2b, initiator: true, prologue: prologue, remoteStatic: rs)
            let nMessage = try n.writeMessage(JSONValue.string(local.agent.description).canonicalBytes)
            n.abort()  // throw-away: only its payload matters
            let kk = try Handshake(
                pattern: .KK, hash: .blake2b, initiator: true, prologue: prologue,
                localStatic: local.staticKey, remoteStatic: rs)
            let kMessage = try kk.writeMessage([])
            return (
                ChannelMachine(local: local, state: .initiatorAwaitingA(kk, peer: remote), isInitiator: true),
                [.send(Frame(.N, nMessage)), .send(Frame(.K, kMessage))]
            )
        } catch {
            throw .noise(error)
        }
    }

    /// The authenticated peer, once known.
    public var peer: AgentID? {
        switch state {
        case .open(_, let p), .initiatorAwaitingA(_, let p), .responderAfterN(let p, _, _): return p
        case .responderAwaitingTicket(_, let t): return t.from.agent
        case .responderStart, .closed: return nil
        }
    }

    public var isOpen: Bool { if case .open = state { return true } else { return false } }
    public var isClosed: Bool { if case .closed = state { return true } else { return false } }

    // MARK: Input

    /// Feeds one frame from the peer.
    public mutating func receive(_ frame: Frame) -> [ChannelAction] {
        switch (state, frame.header) {
        case (.responderStart, .I): return readI(frame.body)
        case (.responderStart, .N): return readN(frame.body)
        case (.responderAfterN(let peer, let known, nil), .K):
            if known == true { return readK(frame.body, peer: peer) }
            state = .responderAfterN(peer: peer, known: known, pendingK: frame.body)
            return []
        case (.initiatorAwaitingA(let hs, let peer), .A): return readA(frame.body, handshake: hs, peer: peer)
        case (.open(let transport, let peer), .T): return readT(frame.body, transport: transport, peer: peer)
        case (.closed, _): return []
        default: return close("\(frame.header) frame out of order")
        }
    }

    /// The site's answer to the last ``ChannelAction/ask(_:)``.
    public mutating func answer(_ accept: Bool) -> [ChannelAction] {
        switch state {
        case .responderAwaitingTicket(let hs, let ticket):
            guard accept else { return close("ticket refused") }
            do throws(NoiseError) {
                let a = try hs.writeMessage([])
                let transport = try hs.finish()
                state = .open(transport, peer: ticket.from.agent)
                return [.send(Frame(.A, a)), .opened(ticket.from.agent), .deliver(ticket.message)]
            } catch {
                return close("IK message 2 failed: \(error)")
            }
        case .responderAfterN(let peer, nil, let pendingK):
            guard accept else { return close("agent shares nothing with this site") }
            if let pendingK { return readK(pendingK, peer: peer) }
            state = .responderAfterN(peer: peer, known: true, pendingK: nil)
            return []
        default:
            return []
        }
    }

    /// Encrypts one JSON message into a `T` frame.
    public mutating func send(_ message: JSONValue) throws(ChannelError) -> [ChannelAction] {
        guard case .open(let transport, _) = state else { throw .notOpen }
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
        if case .responderAwaitingTicket(let hs, _) = state { hs.abort() }
        if case .initiatorAwaitingA(let hs, _) = state { hs.abort() }
        state = .closed
    }

    // MARK: Steps

    private mutating func close(_ why: String) -> [ChannelAction] {
        shutdown()
        return [.close(why)]
    }

    private mutating func readI(_ body: [UInt8]) -> [ChannelAction] {
        guard body.count >= Self.minIKMessage1 else { return close("I message too short") }
        do throws(NoiseError) {
            let hs = try Handshake(pattern: .IK, hash: .blake2b, initiator: false, prologue: Self.prologue, localStatic: local.staticKey)
            let payload: [UInt8]
            do throws(NoiseError) { payload = try hs.readMessage(body) } catch { hs.abort(); throw error }
            guard let rs = hs.remoteStaticKey, let ticket = Self.ticketPresentation(payload, local: local.agent, remoteStatic: rs) else {
                hs.abort()
                return close("I payload is not a valid ticket message")
            }
            state = .responderAwaitingTicket(hs, ticket)
            return [.ask(.ticket(ticket))]
        } catch {
            return close("IK message 1: \(error)")
        }
    }

    private mutating func readN(_ body: [UInt8]) -> [ChannelAction] {
        guard body.count >= Self.minOneWayMessage, body.count <= Self.minOneWayMessage + Self.maxNPayload else {
            return close("N message has the wrong size")
        }
        do throws(NoiseError) {
            let hs = try Handshake(pattern: .N, hash: .blake2b, initiator: false, prologue: Self.prologue, localStatic: local.staticKey)
            defer { hs.abort() }
            let payload = try hs.readMessage(body)
            guard let text = (try? JSONValue(parsing: payload))?.stringValue, let peer = try? AgentID(text),
                peer != local.agent, peer.noiseStaticKey != nil
            else { return close("N payload is not an agent id") }
            state = .responderAfterN(peer: peer, known: nil, pendingK: nil)
            return [.ask(.agent(peer))]
        } catch {
            return close("N message: \(error)")
        }
    }

    private mutating func readK(_ body: [UInt8], peer: AgentID) -> [ChannelAction] {
        guard body.count >= Self.minOneWayMessage, let rs = peer.noiseStaticKey else { return close("K message too short") }
        do throws(NoiseError) {
            let hs = try Handshake(
                pattern: .KK, hash: .blake2b, initiator: false, prologue: Self.prologue,
                localStatic: local.staticKey, remoteStatic: rs)
            let payload: [UInt8]
            let a: [UInt8]
            let transport: Transport
            do throws(NoiseError) {
                payload = try hs.readMessage(body)
                a = try hs.writeMessage([])
                transport = try hs.finish()
            } catch {
                hs.abort()
                throw error
            }
            state = .open(transport, peer: peer)
            var actions: [ChannelAction] = [.send(Frame(.A, a)), .opened(peer)]
            if !payload.isEmpty { actions.append(envelope(payload, peer: peer)) }
            return actions
        } catch {
            return close("KK message 1: \(error)")
        }
    }

    private mutating func readA(_ body: [UInt8], handshake hs: Handshake, peer: AgentID) -> [ChannelAction] {
        do throws(NoiseError) {
            _ = try hs.readMessage(body)
            let transport = try hs.finish()
            state = .open(transport, peer: peer)
            return [.opened(peer)]
        } catch {
            hs.abort()
            return close("A message: \(error)")
        }
    }

    private mutating func readT(_ body: [UInt8], transport: Transport, peer: AgentID) -> [ChannelAction] {
        if receivedCount > 0, receivedCount % Self.rekeyInterval == 0 { transport.receiveCipher?.rekey() }
        do throws(NoiseError) {
            let plaintext = try transport.decrypt(body)
            receivedCount += 1
            return [envelope(plaintext, peer: peer)]
        } catch {
            return close("T message: \(error)")
        }
    }

    /// Section 4: `from.agent` must be the authenticated peer and `to.agent` this site.
    private func envelope(_ bytes: [UInt8], peer: AgentID) -> ChannelAction {
        guard let message = try? JSONValue(parsing: bytes, limits: JSONLimits(maxDepth: Self.maxJSONDepth, maxBytes: Self.maxMessageBytes)) else {
            return .dropped("not JSON")
        }
        switch Envelope.check(message, local: local.agent, peer: peer) {
        case .success: return .deliver(message)
        case .failure(let why): return .dropped(why.description)
        }
    }

    /// The ticket in an `I` payload, if it is one addressed to us from the
    /// agent whose static key the handshake proved.
    static func ticketPresentation(_ payload: [UInt8], local: AgentID, remoteStatic: [UInt8]) -> TicketPresentation? {
        guard let message = try? JSONValue(parsing: payload, limits: JSONLimits(maxDepth: maxJSONDepth, maxBytes: maxMessageBytes)),
            message["target"]?.stringValue == "tally", message["action"]?.stringValue == "ticket",
            let toJSON = message["to"], let fromJSON = message["from"],
            let to = try? CHAD(json: toJSON), let from = try? CHAD(json: fromJSON),
            to.agent == local, from.agent.noiseStaticKey == remoteStatic,
            let token = message["ticket"]?["token"]?.stringValue, token.utf8.count == tokenLength,
            token.utf8.allSatisfy({ (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }),
            message["ticket"]?["cert"]?.objectValue != nil
        else { return nil }
        return TicketPresentation(token: token, from: from, to: to, message: message)
    }
}

/// The envelope every application message has (section 5):
/// `{"target":…,"action":…,"to":CHAD,"from":CHAD,…}`.
public enum Envelope {
    public static let targets: Set<String> = ["tally", "chit", "route", "lift"]

    public static func check(_ message: JSONValue, local: AgentID, peer: AgentID) -> Result<Void, ModelError> {
        guard let target = message["target"]?.stringValue, targets.contains(target),
            let action = message["action"]?.stringValue, !action.isEmpty, action.utf8.count <= ChannelMachine.maxActionBytes
        else { return .failure(.malformed("message without a known target and action")) }
        // Lift messages to and from a referee name sites, not users (9.6):
        // a site address, or (an asker's `from`) only its agent.
        let sites = target == "lift"
        guard let to = party(message["to"], sites: sites), let from = party(message["from"], sites: sites)
        else { return .failure(.malformed("message without valid to and from CHADs")) }
        guard from.agent == peer else { return .failure(.invalid("from.agent is not the channel's peer")) }
        guard to.agent == local else { return .failure(.invalid("to.agent is not this site")) }
        return .success(())
    }

    /// The agent of a `to` or `from`: a CHAD, or for `sites` also an object
    /// with an `agent` (the full check is the message parser's).
    static func party(_ json: JSONValue?, sites: Bool) -> (agent: AgentID, Void)? {
        guard let json else { return nil }
        if let c = try? CHAD(json: json) { return (c.agent, ()) }
        guard sites, let text = json["agent"]?.stringValue, let agent = try? AgentID(text) else { return nil }
        return (agent, ())
    }
}
