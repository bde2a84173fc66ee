import ChipModel
import ChipProtocol
import Testing

/// The pure decisions behind a user's answers that the CLI and the user
/// port share: paying an invoice (`InvoiceDialog.settlement`, 10.6
/// `chit.pay` with `ref` `{"invoice":…}`) and refusing a tally
/// (`TallyDialog.refuse`, `tally.refuse`).
@Suite struct UserAnswerDecisionTests {
    static let tally = "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9"
    static let invoice = "11111111-2222-4333-8444-555555555555"

    static func chit(units: Int64, ref: JSONValue?) throws -> Chit {
        try Chit(
            tally: tally, by: .foil, uuid: "66666666-7777-4888-9999-aaaaaaaaaaaa", date: "2026-12-02T01:00:00.000Z", units: units,
            memo: nil, ref: ref, key: SigningKey.generate())
    }

    static func held(_ direction: InvoiceRecord.Direction = .in, state: InvoiceRecord.State = .open, tally: String = tally)
        -> InvoiceRecord
    {
        InvoiceRecord(
            uuid: invoice, tally: tally, direction: direction, units: 5_000, memo: nil, state: state, chit: nil, note: nil,
            created: "2026-12-02T00:59:00.000Z")
    }

    @Test func aChitsRefNamesTheInvoiceItPays() throws {
        #expect(try InvoiceDialog.invoiceNamed(by: Self.chit(units: 1, ref: ["invoice": .string(Self.invoice), "ref": 4])) == Self.invoice)
        #expect(try InvoiceDialog.invoiceNamed(by: Self.chit(units: 1, ref: nil)) == nil)
        #expect(try InvoiceDialog.invoiceNamed(by: Self.chit(units: 1, ref: "invoice")) == nil)
        #expect(try InvoiceDialog.invoiceNamed(by: Self.chit(units: 1, ref: ["note": "lunch"])) == nil)
        #expect(throws: UserError.self) { try InvoiceDialog.invoiceNamed(by: Self.chit(units: 1, ref: ["invoice": 7])) }
    }

    @Test func onlyTheOpenIncomingInvoiceOnTheTallyForItsAmountIsSettled() throws {
        let pays = try Self.chit(units: 5_000, ref: ["invoice": .string(Self.invoice)])
        func code(_ held: InvoiceRecord?, _ chit: Chit = pays) -> UserErrorCode? {
            InvoiceDialog.settlement(chit, of: Self.invoice, held: held)?.code
        }
        #expect(code(Self.held()) == nil)
        #expect(code(nil) == .notFound)
        #expect(code(Self.held(.out)) == .notFound, "the user's own invoice is not one to pay")
        #expect(code(Self.held(tally: "99999999-8888-4777-8666-555555555555")) == .notFound)
        #expect(code(Self.held(state: .paid)) == .state)
        #expect(code(Self.held(state: .refused)) == .state)
        #expect(code(Self.held(), try Self.chit(units: 4_999, ref: nil)) == .badRequest)
        #expect(code(Self.held(), try Self.chit(units: 5_001, ref: nil)) == .badRequest)
    }

    @Test func aRefusalWithdrawsADraftAndRefusesWhatWaitsForNobody() throws {
        let partner = CHAD(
            cuid: try CUID("bob"), agent: try AgentID(publicKey: SigningKey.generate().publicKey),
            address: try SiteAddress(host: "b.example", port: 2))
        func record(_ state: TallyState) throws -> TallyRecord {
            TallyRecord(
                uuid: Self.tally, cuid: try CUID("alice"), side: .stock, partner: partner, state: state, revision: 1, core: nil, sign: nil,
                token: nil, balance: 0, created: "2026-12-02T01:00:00.000Z", updated: "2026-12-02T01:00:00.000Z")
        }
        // A redeemed invitation waiting for the user's offer signature: withdrawn, nothing sent.
        guard case .success(let tell) = TallyDialog.refuse(try record(.peerDraft)) else {
            Issue.record("a P.draft tally is refused")
            return
        }
        #expect(tell == nil)
        for state in [TallyState.draft, .heldOffer, .open, .void] {
            guard case .failure = TallyDialog.refuse(try record(state)) else {
                Issue.record("\(state) has nothing to refuse")
                continue
            }
        }
        // An offer without its core cannot be voided.
        guard case .failure = TallyDialog.refuse(try record(.peerOffer)) else {
            Issue.record("an offer with no core")
            return
        }
    }
}
