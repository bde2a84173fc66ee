import ChipModel
import ChipProtocol
@testable import ChipStore

// The store's dialogs take typed messages (ChipProtocol). The store tests
// speak JSON, as a partner's site does: these parse a message as the engine
// does and hand it to the store, and give the replies back as JSON.

/// What handling a message came to, replies as JSON.
enum TallyOutcome: Equatable {
    case applied(replies: [JSONValue])
    case ignored(String)

    init(_ outcome: Outcome) {
        switch outcome {
        case .applied(let replies): self = .applied(replies: replies.map(\.json))
        case .ignored(let why): self = .ignored(why)
        }
    }
}

/// What a ticket message came to: the offer that went into the outbox.
enum TicketOutcome: Equatable {
    case offer(JSONValue)
    case refused(String)
}

extension SiteStore {
    func redeemTicket(_ json: JSONValue, userKey: (CUID) throws -> SigningKey) throws -> TicketOutcome {
        guard case .tally(let m) = try? SiteMessage(json: json), m.action == .ticket,
            case .ticket(let token, _, _) = m.body, let from = m.from
        else { return .refused("malformed ticket message") }
        switch try receiveTally(m, from: from.agent, userKey: userKey) {
        case .ignored(let why): return .refused(why)
        case .applied:
            let offers = try outbox(for: from.agent).compactMap { entry -> JSONValue? in
                guard entry.message["action"]?.stringValue == "offer", let uuid = entry.message["object"]?["uuid"]?.stringValue,
                    let t = try? tally(uuid), t.token == token, t.partner == from
                else { return nil }
                return entry.message
            }
            guard let offer = offers.last else { return .refused("no offer queued") }
            return .offer(offer)
        }
    }

    func receiveTally(_ json: JSONValue, from peer: AgentID, autoAcceptKey: (CUID) throws -> SigningKey?) throws -> TallyOutcome {
        guard case .tally(let m) = try? SiteMessage(json: json) else { return .ignored("malformed tally message") }
        return TallyOutcome(
            try receiveTally(
                m, from: peer,
                userKey: { cuid in
                    guard let key = try autoAcceptKey(cuid) else { throw Reason("no key") }
                    return key
                }))
    }

    func receiveChitJSON(_ json: JSONValue, from peer: AgentID) throws -> TallyOutcome {
        do {
            guard case .chit(let m) = try SiteMessage(json: json) else { return .ignored("not a chit message") }
            return TallyOutcome(try receiveChit(m, from: peer))
        } catch let error as MessageError {
            return .ignored(error.description)
        }
    }

    func receiveTransfer(_ json: JSONValue, from peer: AgentID) throws -> TallyOutcome { try receiveChitJSON(json, from: peer) }
    func receiveChainUpdate(_ json: JSONValue, from peer: AgentID) throws -> TallyOutcome { try receiveChitJSON(json, from: peer) }
    func receiveChainAnswer(_ json: JSONValue, from peer: AgentID) throws -> TallyOutcome { try receiveChitJSON(json, from: peer) }
    func receiveInvoice(_ json: JSONValue, from peer: AgentID) throws -> TallyOutcome { try receiveChitJSON(json, from: peer) }
    func receiveRefusal(_ json: JSONValue, from peer: AgentID) throws -> TallyOutcome { try receiveChitJSON(json, from: peer) }

    static var maxOpenIncomingInvoices: Int { InvoiceDialog.maxOpenIncoming }
}
