import ArgumentParser
import ChipModel
import ChipDaemon
import ChipProtocol
import ChipStore
import ChipViews
import Foundation

struct PayCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pay",
        abstract: "Pay on a tally: sign a chit as your user and send it to the partner.",
        discussion: """
            AMOUNT is in CHIPs with up to 3 decimals. TALLY is a tally id, a unique prefix \
            of it (4+ characters), or the partner's CHAD when only one tally of the user \
            has that partner. The payment is reported once it is committed in the site \
            file; `chipsite serve` delivers it, now or when the partner's site is back.
            """)

    @OptionGroup var payment: PaymentArguments

    @OptionGroup var site: SiteOptions
    @OptionGroup var passphrase: PassphraseOptions
    @OptionGroup var output: OutputOptions

    func run() throws {
        let p = try payment.checked()
        let store = try site.open()
        let t = try Self.resolve(payment.tally, user: p.user, store: store)
        let sealingKey = try passphrase.sealingKey(for: store)
        let record = try store.pay(tally: t.uuid, units: p.units, memo: payment.memo, ref: p.ref) { try store.userKey($0, sealingKey: sealingKey) }
        SiteDaemon.pokeRunning(siteFile: store.path)
        if output.json { print(ChitView.json(record).prettyString); return }
        print(
            "Paid \(Amount.format(p.units)) CHIPs to \(t.partner.cuid)@\(t.partner.address) on tally \(t.uuid.prefix(8)) (chit \(record.chit.uuid), \(record.state.rawValue))"
        )
    }

    /// A tally of `user` by id, id prefix, or partner CHAD.
    static func resolve(_ text: String, user: CUID, store: SiteStore) throws -> TallyRecord {
        if text.contains("@") || text.contains(":") {
            let chad = try CHAD(text: text)
            let matches = try store.tallies(user: user).filter { $0.partner.agent == chad.agent && $0.partner.cuid == chad.cuid && $0.state == .open }
            guard let first = matches.first else { throw CLIError("\(user) has no open tally with \(chad.cuid)") }
            guard matches.count == 1 else { throw CLIError("\(user) has \(matches.count) open tallies with \(chad.cuid); give the tally id") }
            return first
        }
        let t = try store.tally(text)
        guard t.cuid == user else { throw CLIError("tally \(t.uuid) belongs to \(t.cuid), not \(user)") }
        return t
    }
}

/// What `pay` and `invoice` both take: who, on which tally, how much, and a note.
struct PaymentArguments: ParsableArguments {
    @Argument(help: ArgumentHelp("Your user who pays (pay) or asks to be paid (invoice).", valueName: "cuid"))
    var cuid: String

    @Argument(help: ArgumentHelp("The tally: id, id prefix, or partner CHAD.", valueName: "tally"))
    var tally: String

    @Argument(help: ArgumentHelp("CHIPs, e.g. 12.5.", valueName: "amount"))
    var amount: String

    @Option(help: ArgumentHelp("A note for the partner.", valueName: "text"))
    var memo: String?

    @Option(help: ArgumentHelp("A JSON reference (invoice number, order) carried in the chit.", valueName: "json"))
    var ref: String?

    /// A bad user, amount, memo or reference is a usage error (exit 2).
    func validate() throws {
        do { _ = try checked() } catch { throw ValidationError("\(error)") }
    }

    /// The checked user, amount in milliCHIPs and reference.
    func checked() throws -> (user: CUID, units: Int64, ref: JSONValue?) {
        let user = try CUID(cuid)
        let units = try Amount.parse(amount)
        guard units > 0 else { throw CLIError("the amount must be more than 0") }
        try checkNote(memo, option: "--memo", max: Chit.maxMemo)
        return (user, units, try ref.map { try JSONValue(parsing: $0, limits: JSONLimits(maxDepth: Chit.maxRefDepth, maxBytes: Chit.maxRefBytes)) })
    }
}

struct InvoiceCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "invoice",
        abstract: "Ask the partner on a tally for a payment.",
        discussion: """
            The invoice waits on the partner's site until its user answers with \
            `chipsite chit accept ID` (a payment that names the invoice) or `chipsite chit refuse ID`. \
            `chipsite chit list` shows invoices and their state.
            """)

    @OptionGroup var payment: PaymentArguments

    @OptionGroup var site: SiteOptions
    @OptionGroup var output: OutputOptions

    func run() throws {
        let p = try payment.checked()
        let store = try site.open()
        let t = try PayCommand.resolve(payment.tally, user: p.user, store: store)
        let invoice = try store.createInvoice(tally: t.uuid, units: p.units, memo: payment.memo, ref: p.ref)
        SiteDaemon.pokeRunning(siteFile: store.path)
        if output.json { print(InvoiceView.json(invoice).prettyString); return }
        print("Asked \(t.partner.cuid)@\(t.partner.address) for \(Amount.format(p.units)) CHIPs (invoice \(invoice.uuid))")
    }
}

struct ChitCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "chit",
        abstract: "List chits (payments) and invoices; answer invoices.",
        subcommands: [List.self, Accept.self, Refuse.self])

    struct Accept: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Pay an invoice the partner sent to one of your users.")

        @Argument(help: ArgumentHelp("The invoice id (or a unique prefix).", valueName: "id"))
        var id: String

        @OptionGroup var site: SiteOptions
        @OptionGroup var passphrase: PassphraseOptions
        @OptionGroup var output: OutputOptions

        func run() throws {
            let store = try site.open()
            let sealingKey = try passphrase.sealingKey(for: store)
            let record = try store.payInvoice(id) { try store.userKey($0, sealingKey: sealingKey) }
            SiteDaemon.pokeRunning(siteFile: store.path)
            if output.json { print(ChitView.json(record).prettyString); return }
            print("Paid \(Amount.format(record.chit.units)) CHIPs (chit \(record.chit.uuid), \(record.state.rawValue))")
        }
    }

    struct Refuse: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Refuse an invoice the partner sent to one of your users.")

        @Argument(help: ArgumentHelp("The invoice id (or a unique prefix).", valueName: "id"))
        var id: String

        @Option(help: ArgumentHelp("Why, for the partner.", valueName: "text"))
        var reason: String?

        @OptionGroup var site: SiteOptions
        @OptionGroup var output: OutputOptions

        func run() throws {
            try checkNote(reason, option: "--reason", max: Chit.maxReason)
            let store = try site.open()
            let record = try store.refuseInvoice(id, reason: reason)
            SiteDaemon.pokeRunning(siteFile: store.path)
            if output.json { print(InvoiceView.json(record).prettyString); return }
            print("Refused invoice \(record.uuid)")
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List chits, newest first.")

        @Option(help: ArgumentHelp("Only this tally's chits (id or prefix).", valueName: "id"))
        var tally: String?

        @Option(help: ArgumentHelp("Only chits on this user's tallies.", valueName: "cuid"))
        var user: String?

        /// The most chits one listing may ask for.
        static let maxLimit = 100_000

        @Option(help: ArgumentHelp("At most this many.", valueName: "n"))
        var limit: Int = 100

        @OptionGroup var site: SiteOptions
        @OptionGroup var output: OutputOptions

        func run() throws {
            guard (1...Self.maxLimit).contains(limit) else { throw ValidationError("--limit must be 1-\(Self.maxLimit)") }
            let store = try site.open()
            let tallyID = try tally.map { try store.tally($0).uuid }
            let records = try store.chits(tally: tallyID, user: try user.map(CUID.init), limit: limit)
            let invoices = try store.invoices(tally: tallyID, user: try user.map(CUID.init))
            if output.json {
                print(
                    JSONValue.object(["chits": .array(records.map(ChitView.json)), "invoices": .array(invoices.map(InvoiceView.json))]).prettyString)
                return
            }
            for i in invoices {
                print(
                    "invoice \(i.uuid)  \(i.state.rawValue.padding(7))  \(i.direction == .in ? "asks you for" : "you asked for") \(Amount.format(i.units))  \(Printable.clip(i.memo ?? ""))"
                )
            }
            if records.isEmpty { print("No chits."); return }
            for r in records {
                let sign = r.chit.balanceEffect > 0 ? "+" : "-"
                print(
                    "\(r.chit.uuid)  \(r.state.rawValue.padding(7))  #\(r.index.map(String.init) ?? "-")  \(r.chit.by.rawValue) pays \(sign)\(Amount.format(r.chit.units))  \(Printable.clip(r.chit.memo ?? ""))"
                )
            }
        }
    }
}

struct VerifyTally: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Re-check a tally: both signatures, every chit's signature, every link of the chain, and the balance.")

    @Argument(help: ArgumentHelp("The tally id (or a unique prefix).", valueName: "id"))
    var id: String

    @OptionGroup var site: SiteOptions
    @OptionGroup var output: OutputOptions

    func run() throws {
        let store = try site.open()
        let t = try store.tally(id)
        let problems = try store.verifyTally(t.uuid)
        let head = try store.chainHead(of: t.uuid)
        if output.json {
            print(
                JSONValue.object([
                    "id": .string(t.uuid), "ok": .bool(problems.isEmpty), "problems": .array(problems.map(JSONValue.string)),
                    "chain_length": .integer(head.length), "chain_head": head.head.map(JSONValue.string) ?? .null,
                    "balance": .integer(t.balance)
                ]).prettyString)
        } else if problems.isEmpty {
            print(
                "OK  tally \(t.uuid): signatures, \(head.length) chit\(head.length == 1 ? "" : "s") and the balance \(Amount.format(t.balance)) check out"
            )
        } else {
            for p in problems { print("FAIL  \(p)") }
        }
        if !problems.isEmpty { throw ExitCode(1) }
    }
}
