import ArgumentParser
import ChipModel
import ChipDaemon
import ChipProtocol
import ChipStore
import ChipViews
import Foundation

struct TallyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tally",
        abstract: "Request, accept, refuse, list and show tallies.",
        subcommands: [Request.self, Accept.self, Refuse.self, List.self, Show.self, VerifyTally.self, Trade.self])

    struct Request: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Ask for a tally with the user who issued a ticket.",
            discussion: """
                Writes the request to the site file and wakes `chipsite serve`, which opens a \
                channel to the issuer's site and sends the ticket with the user's certificate. \
                Waits (--wait) for the issuer's offer and prints the tally and its state.
                """)

        @Argument(help: ArgumentHelp("Your user who asks.", valueName: "cuid"))
        var cuid: String

        @Argument(help: ArgumentHelp("The ticket: its JSON, its link, or @FILE.", valueName: "ticket"))
        var ticket: String

        @Flag(help: "Accept the offer at once if it asks no credit of your user.")
        var accept = false

        /// The longest `--wait` (an hour: longer is a job for `tally list`),
        /// and how often the site file is read while waiting.
        static let maxWait: Double = 3600
        static let pollInterval: TimeInterval = 0.05

        @Option(help: ArgumentHelp("Seconds to wait for the offer (0: do not wait).", valueName: "seconds"))
        var wait: Double = 20

        @OptionGroup var site: SiteOptions
        @OptionGroup var output: OutputOptions

        func run() throws {
            let user = try CUID(cuid)
            guard wait >= 0, wait <= Self.maxWait else { throw ValidationError("--wait must be 0-\(Int(Self.maxWait)) seconds") }
            let parsed = try TallyTicket(parsing: try Self.ticketText(ticket))
            let store = try site.open()
            _ = try store.user(user)
            let id = try store.requestTally(cuid: user, ticket: parsed, accept: accept)
            SiteDaemon.pokeRunning(siteFile: store.path)
            let deadline = Date().addingTimeInterval(wait)
            var record = try Self.current(store, token: parsed.token, user: user) ?? store.tally(id)
            while Date() < deadline, record.state == .draft || (accept && record.state == .peerOffer && record.core?.limit(record.side) == 0) {
                Thread.sleep(forTimeInterval: Self.pollInterval)
                record = try Self.current(store, token: parsed.token, user: user) ?? record
            }
            if record.state == .void {
                throw CLIError(Printable.clip(record.note ?? "the tally was refused"))
            }
            if output.json { print(TallyView.json(record).prettyString); return }
            if record.state == .draft {
                print("Request \(record.uuid) queued: `chipsite serve` sends it (is it running?)")
            } else {
                print("Tally \(record.uuid) \(record.state.rawValue) with \(record.partner)")
            }
        }

        static func current(_ store: SiteStore, token: String, user: CUID) throws -> TallyRecord? {
            try store.tallies(user: user).first { $0.token == token }
        }

        /// The ticket text itself, or the contents of @FILE (bounded).
        static func ticketText(_ argument: String) throws -> String {
            guard argument.hasPrefix("@") else { return argument }
            let path = String(argument.dropFirst())
            guard let handle = FileHandle(forReadingAtPath: path) else { throw CLIError("cannot read \(path)") }
            defer { try? handle.close() }
            let data = (try? handle.read(upToCount: TallyTicket.maxTextBytes + 1)) ?? Data()
            guard data.count <= TallyTicket.maxTextBytes else { throw CLIError("\(path) is too large for a ticket") }
            guard let text = String(data: data, encoding: .utf8) else { throw CLIError("\(path) is not UTF-8 text") }
            return text
        }
    }

    struct Accept: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Accept a tally offered to one of your users: sign it and send open.")

        @Argument(help: ArgumentHelp("The tally id (or a unique prefix of at least 4 characters).", valueName: "id"))
        var id: String

        @OptionGroup var site: SiteOptions
        @OptionGroup var passphrase: PassphraseOptions
        @OptionGroup var output: OutputOptions

        func run() throws {
            let store = try site.open()
            let sealingKey = try passphrase.sealingKey(for: store)
            let record = try store.acceptTally(id) { try store.userKey($0, sealingKey: sealingKey) }
            SiteDaemon.pokeRunning(siteFile: store.path)
            if output.json { print(TallyView.json(record).prettyString) } else { print("Tally \(record.uuid) open with \(record.partner)") }
        }
    }

    struct Refuse: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Refuse a tally offered to one of your users (send void), or a redeemed invitation awaiting a device's offer.")

        @Argument(help: ArgumentHelp("The tally id (or a unique prefix of at least 4 characters).", valueName: "id"))
        var id: String

        @OptionGroup var site: SiteOptions
        @OptionGroup var output: OutputOptions

        func run() throws {
            let store = try site.open()
            let record = try store.refuseTally(id)
            SiteDaemon.pokeRunning(siteFile: store.path)
            if output.json { print(TallyView.json(record).prettyString) } else { print("Tally \(record.uuid) void") }
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List tallies, newest first.")

        @Option(help: ArgumentHelp("Only this user's tallies.", valueName: "cuid"))
        var user: String?

        @OptionGroup var site: SiteOptions
        @OptionGroup var output: OutputOptions

        func run() throws {
            let store = try site.open()
            let records = try store.tallies(user: try user.map(CUID.init))
            if output.json { print(JSONValue.object(["tallies": .array(records.map(TallyView.json))]).prettyString); return }
            if records.isEmpty { print("No tallies yet."); return }
            for t in records {
                print(
                    "\(t.uuid)  \(t.state.rawValue.padding(7))  \(t.cuid) (\(t.side.rawValue)) with \(t.partner.cuid)@\(t.partner.address)  balance \(Amount.format(t.balance))"
                )
            }
        }
    }

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show one tally: state, sides, terms, balance, signatures.")

        @Argument(help: ArgumentHelp("The tally id (or a unique prefix of at least 4 characters).", valueName: "id"))
        var id: String

        @OptionGroup var site: SiteOptions
        @OptionGroup var output: OutputOptions

        func run() throws {
            let t = try site.open().tally(id)
            if output.json { print(TallyView.json(t).prettyString); return }
            print("tally     \(t.uuid)")
            print("state     \(t.state.rawValue)")
            print("user      \(t.cuid) (\(t.side.rawValue))")
            print("partner   \(t.partner)")
            print("balance   \(Amount.format(t.balance)) CHIPs (positive: the foil owes the stock)")
            print("chain     \(t.chainLength) chits")
            if let core = t.core {
                print("limits    stock grants \(Amount.format(core.limit(.stock))), foil grants \(Amount.format(core.limit(.foil)))")
                if let memo = core.json["memo"]?.stringValue { print("memo      \(Printable.line(memo))") }
                print("hash      \(core.hash)")
            }
            if let trade = t.trade {
                print(
                    "trade     target \(Amount.format(trade.target)), bound \(Amount.format(trade.bound)) CHIPs; reward \(trade.reward), clutch \(trade.clutch) ppm"
                )
            }
            print(
                "signed    stock \(t.core.map { $0.verify(t.sign?.stock, by: .stock) } == true ? "valid" : "no"), foil \(t.core.map { $0.verify(t.sign?.foil, by: .foil) } == true ? "valid" : "no")"
            )
            if let note = t.note { print("note      \(Printable.line(note))") }
        }
    }
}
