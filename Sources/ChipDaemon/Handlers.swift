import ChipModel
import ChipPeer
import ChipProtocol
import ChipStore

// One handler per message target. Each hands the typed message to the store
// (load snapshot, decide, apply: one transaction), then sends what the
// decision says, after the commit, and starts the delivery that follows.

extension SiteEngine {
    /// Target `tally`: a ticket (we issued it), or an offer, open, void, draft.
    func handleTally(_ m: TallyMessage, from peer: AgentID, on connection: PeerConnection) async throws {
        let store = self.store, sealingKey = self.sealingKey
        let outcome = try store.receiveTally(m, from: peer, userKey: { try store.userKey($0, sealingKey: sealingKey) })
        switch outcome {
        case .applied(let replies):
            if m.action != .ticket { logger.info("tally \(m.action.rawValue)", metadata: ["peer": "\(peer)"]) }
            try await send(replies, on: connection)
            // An offer (a ticket's answer) or an open waits in the outbox.
            await flush(peer)
        case .ignored(let why) where m.action == .ticket:
            // A first contact whose ticket is refused after the handshake
            // (two requesters raced past the policy's check, and the other
            // one won) is closed silently, as a refusal at the handshake is:
            // the requester dials again, is refused there, and its request
            // ends void instead of waiting on an open channel for ever.
            logger.info("ticket refused", metadata: ["why": "\(why)", "peer": "\(peer)"])
            connection.close()
        case .ignored(let why):
            logger.debug("tally message ignored", metadata: ["why": "\(why)", "action": "\(m.action.rawValue)"])
        }
    }

    /// Target `chit`: the chain consensus (tran, upd, ack, nak) and invoices.
    func handleChit(_ m: ChitMessage, from peer: AgentID, on connection: PeerConnection) async throws {
        let outcome = try store.receiveChit(m, from: peer)
        if m.action == .nak, case .answer(let tally, let index?, _, _) = m.body {
            rewindChain(on: connection, tally: tally, to: index)
        }
        switch outcome {
        case .applied(let replies): try await send(replies, on: connection)
        case .ignored(let why): logger.debug("chit message ignored", metadata: ["why": "\(why)", "action": "\(m.action.rawValue)"])
        }
        switch m.action {
        case .tran, .ack, .nak: await syncChains(with: peer)
        case .upd, .invoice, .refuse: break
        }
    }

    /// Sends a decision's replies on the connection its message came on.
    func send(_ replies: [SiteMessage], on connection: PeerConnection) async throws {
        for reply in replies { try await connection.send(reply.json) }
    }
}
