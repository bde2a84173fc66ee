import ChipModel

/// Invoices (payment requests on a tally) as pure decisions: the partner's
/// invoice is stored once for our user to answer; our user's refusal answers
/// it and every repeat of it; the partner's refusal ends our invoice.
public enum InvoiceDialog {
    /// Invoices from a partner waiting for our user's answer, per tally; more
    /// are not taken in (they stay in the partner's outbox) so that a partner
    /// cannot grow our file without bound.
    public static let maxOpenIncoming = 100

    /// What our site holds about one invoice message.
    public struct Snapshot: Sendable {
        /// The open tally the message names, shared with the peer that sent it.
        public var tally: TallyRecord?
        /// The invoice with the message's uuid, if we hold one.
        public var existing: InvoiceRecord?
        /// Open incoming invoices on the tally.
        public var openIncoming: Int
        public init(tally: TallyRecord?, existing: InvoiceRecord?, openIncoming: Int = 0) {
            self.tally = tally
            self.existing = existing
            self.openIncoming = openIncoming
        }
    }

    /// Decides `invoice` or `refuse`.
    public static func decide(_ m: ChitMessage, snapshot s: Snapshot) -> Decision {
        switch m.body {
        case .invoice(let invoice): return receive(invoice, s)
        case .refuse(let tally, let uuid, let reason): return refused(tally: tally, uuid: uuid, reason: reason, s)
        default: return .ignore("not an invoice message")
        }
    }

    static func receive(_ invoice: InvoiceObject, _ s: Snapshot) -> Decision {
        guard let t = s.tally, t.uuid == invoice.tally else { return .ignore("invoice about a tally not shared with this peer") }
        guard invoice.by == t.side else { return .ignore("invoice asks the wrong side to pay") }
        if let existing = s.existing {
            guard existing.direction == .in, existing.tally == invoice.tally else { return .ignore("invoice id clash") }
            if existing.state == .refused { return .apply([], replies: [refusal(t, uuid: invoice.uuid, reason: existing.note)]) }
            return .ignore("invoice repeated")
        }
        guard s.openIncoming < maxOpenIncoming else { return .ignore("too many open invoices on this tally") }
        return .apply([.insertIncomingInvoice(invoice)])
    }

    static func refused(tally: String, uuid: String, reason: String, _ s: Snapshot) -> Decision {
        guard let t = s.tally, t.uuid == tally else { return .ignore("refuse about a tally not shared with this peer") }
        // Only an invoice of ours on this tally leaves the outbox: a refusal
        // naming another tally's invoice cancels nothing.
        guard let ours = s.existing, ours.direction == .out, ours.tally == tally, ours.state == .open else {
            return .ignore("refuse of no open invoice of ours on this tally")
        }
        return .apply([.refuseOurInvoice(uuid: uuid, reason: reason), .dropOutbox(topic: OutboxTopic.invoice(uuid))])
    }

    /// The invoice a chit pays: its `ref` is `{"invoice":<uuid>,"ref"?:…}`
    /// (section 8). Nil when the ref names none; an `invoice` member that
    /// is not a string is `bad_request`.
    public static func invoiceNamed(by chit: Chit) throws(UserError) -> String? {
        guard let named = chit.core["ref"]?["invoice"] else { return nil }
        guard let uuid = named.stringValue else { throw UserError(.badRequest, "ref.invoice must be an invoice's uuid") }
        return uuid
    }

    /// Whether our user's `chit` may settle the invoice `uuid` it names, as
    /// our site holds it (`invoice`, nil: none). The CLI's `chit accept` and
    /// a device's `chit.pay` both go through this (10.6), inside the
    /// payment's transaction. It must be an open invoice from the partner on
    /// the chit's tally (else `not_found`, or `state` once answered), asking
    /// our side, and the chit pays exactly what it asks (`bad_request`).
    public static func settlement(_ chit: Chit, of uuid: String, held invoice: InvoiceRecord?) -> UserError? {
        guard let invoice, invoice.uuid == uuid, invoice.direction == .in, invoice.tally == chit.tally else {
            return UserError(.notFound, "no invoice \(Printable.clip(uuid)) to the user on tally \(chit.tally)")
        }
        guard invoice.state == .open else {
            return UserError(.state, "invoice \(invoice.uuid) is \(invoice.state.rawValue), no longer open (answered meanwhile)")
        }
        guard chit.units == invoice.units else {
            return UserError(
                .badRequest, "invoice \(invoice.uuid) asks for \(Amount.format(invoice.units)) CHIPs, not \(Amount.format(chit.units))")
        }
        return nil
    }

    /// Our user's refusal of the partner's invoice `uuid`.
    public static func refusal(_ t: TallyRecord, uuid: String, reason: String?) -> SiteMessage {
        .chit(.on(t, .refuse, .refuse(tally: t.uuid, uuid: uuid, reason: reason ?? "refused")))
    }

    /// Our user's invoice to the partner.
    public static func invoice(_ t: TallyRecord, _ object: InvoiceObject) -> SiteMessage {
        .chit(.on(t, .invoice, .invoice(object)))
    }
}
