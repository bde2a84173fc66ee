import ChipModel

/// A neighbour's `ack` (9.6, 9.9): what it takes out of the outbox. Only
/// queued messages are acknowledged: a `promise` (its answer: the promise
/// leaves the outbox and our record keeps that it was answered), a `refuse`
/// passed on or an `arrive`, and a decision to that neighbour.
public enum LiftAck {
    /// What the site holds about H.
    public struct Snapshot: Sendable, Equatable {
        /// It holds a record of H.
        public var known: Bool
        /// The hop of the promise we sent, and whether it was answered.
        public var promisedHop: Int?
        public var promiseAnswered: Bool
        public init(known: Bool, promisedHop: Int?, promiseAnswered: Bool) {
            self.known = known
            self.promisedHop = promisedHop
            self.promiseAnswered = promiseAnswered
        }
    }

    public static func decide(_ m: LiftMessage, snapshot s: Snapshot) -> Decision {
        guard case .ack(let lift, let hop, let of) = m.body else { return .ignore("not an ack") }
        guard s.known else { return .ignore("an ack for a lift we hold no record of") }
        switch of {
        case .promise:
            guard hop == s.promisedHop else { return .ignore("an ack for a promise we did not send on that hop") }
            var effects: [Effect] = [.dropOutbox(topic: LiftTopic.promise(lift, hop: hop))]
            if !s.promiseAnswered { effects.insert(.setPromiseAnswer(lift: lift, hop: hop, answer: .ack), at: 0) }
            return .apply(effects)
        case .refuse, .arrive:
            return .apply([.dropOutbox(topic: LiftTopic.back(lift))])
        case .good, .void:
            return .apply([.dropOutbox(topic: LiftTopic.decision(lift, hop: hop))])
        }
    }
}
