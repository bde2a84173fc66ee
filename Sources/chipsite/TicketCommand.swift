import ArgumentParser
import ChipModel
import ChipProtocol
import ChipStore
import Foundation
import QRCode

struct TicketCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ticket",
        abstract: "Issue tickets that invite people to your users.",
        subcommands: [Tally.self])

    enum Format: String, CaseIterable, ExpressibleByArgument { case text, json, link, qr }
    enum Side: String, CaseIterable, ExpressibleByArgument { case stock, foil }

    struct Tally: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Issue a tally ticket for a user: a one-time invitation to open a tally.",
            discussion: """
                Prints a short summary, the ticket as JSON and as a link, and the link as a \
                QR code drawn in the terminal. Hand one of them to the person you invite \
                (email, chat, screen); they run `chipsite tally request` with it on their site.
                """)

        @Argument(help: ArgumentHelp("The user who invites.", valueName: "cuid"))
        var cuid: String

        @Option(help: ArgumentHelp("How long the ticket is valid: 90s, 30m, 48h, 7d (default: config ticket.expires, 48h).", valueName: "duration"))
        var expires: String?

        @Flag(help: "Let the ticket be used many times (each use opens a new tally).")
        var reuse = false

        @Option(name: .customLong("for"), help: ArgumentHelp("Only this requester may use it (CHAD text form).", valueName: "chad"))
        var forCHAD: String?

        @Option(
            name: .customLong("as"),
            help: ArgumentHelp("The inviting user's side of the tally: stock (vendor/creditor) or foil (client).", valueName: "side"))
        var side: Side = .stock

        @Option(help: ArgumentHelp("Credit limit the inviting user grants, in CHIPs.", valueName: "chips"))
        var limit: String?

        @Option(help: ArgumentHelp("A note for the tally.", valueName: "text"))
        var memo: String?

        @Option(help: ArgumentHelp("text (summary, JSON, link, QR), json, link or qr.", valueName: "format"))
        var format: Format = .text

        @Option(help: ArgumentHelp("Also write the QR code to this .png or .svg file.", valueName: "file"))
        var output: String?

        @Flag(help: "Draw the terminal QR code for a light terminal background (dark modules drawn).")
        var lightBackground = false

        @OptionGroup var site: SiteOptions

        /// Bad option values are usage errors (exit 2), found before the site is opened.
        func validate() throws {
            do {
                if let expires { try TallyTicket.validate(lifetime: DurationText.seconds(expires), what: "--expires") }
                _ = try forCHAD.map { try CHAD(text: $0) }
                _ = try limit.map(Amount.parse)
                try checkNote(memo, option: "--memo", max: TallyCore.maxMemo)
            } catch {
                throw ValidationError("\(error)")
            }
            if let output, !(output.hasSuffix(".png") || output.hasSuffix(".svg")) {
                throw ValidationError("--output must name a .png or .svg file")
            }
        }

        func run() throws {
            let user = try CUID(cuid)
            let bound = try forCHAD.map { try CHAD(text: $0) }
            let limitMilli = try limit.map(Amount.parse)
            if let output { try SiteBackup.checkFree(output) }
            let store = try site.open()
            let status = try store.status()
            let seconds = try DurationText.seconds(
                expires ?? (try store.configValue(.ticketExpires)) ?? ConfigKey.ticketExpires.defaultValue ?? "48h")
            var terms: [String: JSONValue] = ["side": .string(side.rawValue)]
            if let limitMilli { terms["limit"] = .integer(limitMilli) }
            if let memo { terms["memo"] = .string(memo) }
            let now = Int64(Date().timeIntervalSince1970 * 1000)
            let info = try store.issueTicket(cuid: user, expiresAt: now + seconds * 1000, reuse: reuse, bound: bound, terms: .object(terms))
            // If the ticket cannot be shown (or its --output file written), it is
            // withdrawn: no live ticket is left that nobody has seen.
            let ticket: TallyTicket, qr: QRCode
            do {
                ticket = try TallyTicket(
                    token: info.token, expires: info.expires,
                    chad: CHAD(cuid: user, agent: status.agent, address: status.address))
                qr = try QRCode.encode(ticket.link)
                if let output { try write(qr, to: output) }
            } catch {
                try? store.withdrawTicket(info.token)
                throw error
            }

            switch format {
            case .json: print(ticket.json.prettyString)
            case .link: print(ticket.link)
            case .qr: print(qr.terminalString(background: lightBackground ? .light : .dark), terminator: "")
            case .text:
                print("Tally ticket for \(user) at \(status.address) (\(reuse ? "reusable" : "one-time"), expires \(info.expires))")
                if let bound { print("Only for \(bound)") }
                print("")
                print(ticket.json.canonicalString)
                print("")
                print(ticket.link)
                print("")
                if Terminal.isUTF8Terminal {
                    print(qr.terminalString(background: lightBackground ? .light : .dark), terminator: "")
                } else {
                    print("(QR code not drawn: stdout is not a UTF-8 terminal; use --format qr or --output FILE.png)")
                }
            }
        }

        func write(_ qr: QRCode, to path: String) throws {
            // The code carries the token: a new 0600 file, never an overwrite.
            try SiteBackup.writeNew(path, path.hasSuffix(".png") ? qr.pngData() : Array(qr.svgString().utf8))
        }
    }
}

enum Terminal {
    /// Whether stdout is a terminal that takes UTF-8 (half blocks draw right).
    static var isUTF8Terminal: Bool {
        guard isatty(STDOUT_FILENO) == 1 else { return false }
        let env = Environment.all
        let locale = env["LC_ALL"].flatMap { $0.isEmpty ? nil : $0 } ?? env["LC_CTYPE"].flatMap { $0.isEmpty ? nil : $0 } ?? env["LANG"] ?? ""
        return locale.uppercased().contains("UTF-8") || locale.uppercased().contains("UTF8")
    }
}
