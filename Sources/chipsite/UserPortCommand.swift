import ArgumentParser
import ChipModel
import ChipProtocol
import ChipStore
import Foundation
import QRCode

// The admin's side of the user port (protocol section 10): user tickets
// for devices, and the devices a user registered.

extension UserCommand {
    struct Ticket: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Issue a user ticket: a one-time token a device of the user registers with.",
            discussion: """
                Prints a short summary, the ticket as JSON and as a link, and the link as a QR \
                code drawn in the terminal. The device registers with it on the site's user port \
                (`chipsite client register`, or a MyCHIPs app). The token is shown once and stored \
                only as its hash; it is burned by its first use whatever happens next, and a new \
                ticket of the user replaces any unused one.
                """)

        @Argument(help: ArgumentHelp("The user the device acts for.", valueName: "cuid"))
        var cuid: String

        @Option(help: ArgumentHelp("How long the ticket is valid: 90m, 24h, 7d (default 24h, at most 7d).", valueName: "duration"))
        var expires: String?

        @Option(help: ArgumentHelp("What the device may do, comma separated: read, request, pay, tally, devices (default all).", valueName: "list"))
        var scopes: String?

        @Option(help: ArgumentHelp("text (summary, JSON, link, QR), json, link or qr.", valueName: "format"))
        var format: TicketCommand.Format = .text

        @Option(help: ArgumentHelp("Also write the QR code to this .png or .svg file.", valueName: "file"))
        var output: String?

        @Flag(help: "Draw the terminal QR code for a light terminal background (dark modules drawn).")
        var lightBackground = false

        @OptionGroup var site: SiteOptions

        /// The scopes of `--scopes`, nil for all.
        static func parseScopes(_ text: String?) throws -> Set<UserScope>? {
            guard let text else { return nil }
            return try UserScope.parse(text.split(separator: ",", omittingEmptySubsequences: false).map(String.init))
        }

        /// Bad option values are usage errors (exit 2), found before the site is opened.
        func validate() throws {
            do {
                if let expires { try UserTicket.validate(lifetime: DurationText.seconds(expires)) }
                _ = try Self.parseScopes(scopes)
            } catch {
                throw ValidationError("\(error)")
            }
            if let output, !(output.hasSuffix(".png") || output.hasSuffix(".svg")) {
                throw ValidationError("--output must name a .png or .svg file")
            }
        }

        func run() throws {
            let user = try CUID(cuid)
            let lifetime = try expires.map(DurationText.seconds)
            let chosen = try Self.parseScopes(scopes)
            if let output { try SiteBackup.checkFree(output) }
            let store = try site.open()
            let now = Int64(Date().timeIntervalSince1970 * 1000)
            // The QR code is made (and its --output file written) before the
            // ticket commits: if that fails, no ticket is stored and the user's
            // older one stays valid, so no live ticket is left that nobody saw.
            var code: QRCode?
            let ticket = try store.issueUserTicket(cuid: user, scopes: chosen, lifetime: lifetime, now: now) { ticket in
                let qr = try QRCode.encode(ticket.link)
                if let output {
                    try SiteBackup.writeNew(output, output.hasSuffix(".png") ? qr.pngData() : Array(qr.svgString().utf8))
                }
                code = qr
            }
            guard let qr = code else { throw CLIError("the ticket's QR code was not made") }
            let scopeList = (chosen ?? Set(UserScope.allCases)).sorted().map(\.rawValue).joined(separator: ",")
            switch format {
            case .json: print(ticket.json.prettyString)
            case .link: print(ticket.link)
            case .qr: print(qr.terminalString(background: lightBackground ? .light : .dark), terminator: "")
            case .text:
                print("User ticket for \(user) at \(ticket.address) (one-time, expires \(ticket.expires ?? "?"), scopes \(scopeList))")
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
    }

    struct Device: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List or revoke the devices a user registered on the user port.",
            subcommands: [List.self, Revoke.self])

        struct List: ParsableCommand {
            static let configuration = CommandConfiguration(abstract: "List a user's devices, revoked ones included.")

            @Argument(help: ArgumentHelp("The user's CUID.", valueName: "cuid"))
            var cuid: String

            @OptionGroup var site: SiteOptions
            @OptionGroup var output: OutputOptions

            func run() throws {
                let user = try CUID(cuid)
                let devices = try site.open().devices(of: user)
                if output.json {
                    print(JSONValue.object(["devices": .array(devices.map(\.json))]).prettyString)
                    return
                }
                if devices.isEmpty {
                    print("No devices yet: issue a ticket with `chipsite user ticket \(user)` and register with it.")
                    return
                }
                for d in devices {
                    let seen = d.lastSeen.map { Timestamp.format(millisecondsSince1970: $0) } ?? "never"
                    let state = d.revoked.map { "revoked \(Timestamp.format(millisecondsSince1970: $0))" } ?? "active"
                    print("\(d.device)  \(d.name)")
                    print(
                        "    \(state), scopes \(d.scopes.sorted().map(\.rawValue).joined(separator: ",")), added \(Timestamp.format(millisecondsSince1970: d.created)), last seen \(seen)"
                    )
                }
            }
        }

        struct Revoke: ParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Revoke a user's device: it can open no more sessions (serve closes its open ones).")

            @Argument(help: ArgumentHelp("The user's CUID.", valueName: "cuid"))
            var cuid: String

            @Argument(
                help: ArgumentHelp(
                    "The device id, as `user device list` shows it; one that starts with '-' goes after `--`.", valueName: "device"))
            var device: String

            @OptionGroup var site: SiteOptions

            func run() throws {
                let user = try CUID(cuid)
                let id = try DeviceID(device)
                try site.open().revokeDevice(cuid: user, device: id, now: Int64(Date().timeIntervalSince1970 * 1000))
                print("Revoked device \(id) of \(user).")
            }
        }
    }
}
