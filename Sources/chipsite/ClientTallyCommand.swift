import ArgumentParser
import ChipModel
import ChipProtocol
import Foundation

extension ClientCommand {
    struct Tally: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List, show, invite, redeem, accept and refuse the account's tallies.",
            subcommands: [List.self, Show.self, Invite.self, Redeem.self, Accept.self, Refuse.self])

        struct List: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "List the tallies (tally.list).")

            @Option(help: ArgumentHelp("Only tallies in this state (draft, P.offer, open, …).", valueName: "state"))
            var state: String?

            @OptionGroup var page: ClientPageOptions
            @OptionGroup var options: ClientOptions

            func run() async throws {
                var wanted: TallyState?
                if let state {
                    guard let s = TallyState(rawValue: state) else { throw ValidationError("unknown tally state \(Printable.quote(state))") }
                    wanted = s
                }
                let c = try await options.connect()
                let data = try await c.call(.tallyList(state: wanted, page: page.page))
                await c.close()
                options.show(data) {
                    printPage(data, empty: "No tallies.", header: "TALLY     STATE    SIDE   BALANCE      PARTNER") { t in
                        let partner = partnerOf(t)
                        let who = partner.map { "\(Printable.clip($0.cuid)):\($0.agent ?? "?")" } ?? "?"
                        let name = partner?.name.map { " (\(Printable.clip($0)))" } ?? ""
                        let action = t["action"]?.stringValue.map { "  [\(Printable.clip($0))]" } ?? ""
                        return [
                            String((t["uuid"]?.stringValue ?? "?").prefix(8)), (t["state"]?.stringValue ?? "?").padding(7),
                            (t["side"]?.stringValue ?? "?").padding(5), chips(t["balance"]).padding(11), who + name + action
                        ].joined(separator: "  ")
                    }
                }
            }
        }

        struct Show: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Show one tally: its core, signatures, state and balance (tally.show).")

            @Argument(help: ArgumentHelp("The tally: uuid, uuid prefix, or partner cuid:agent.", valueName: "tally"))
            var tally: String

            @OptionGroup var options: ClientOptions

            func run() async throws {
                let c = try await options.connect()
                let uuid = try await c.tally(tally)
                let data = try await c.call(.tallyShow(uuid: uuid))
                await c.close()
                options.show(data) {
                    let side = (try? c.side(of: data))?.rawValue ?? "?"
                    print("tally     \(uuid)")
                    print("state     \(data["state"]?.stringValue ?? "?") (revision \(data["revision"]?.integerValue.map(String.init) ?? "?"))")
                    print("side      \(side)")
                    print(
                        "balance   \(chips(data["balance"])) CHIPs\(data["pending"].flatMap(\.integerValue).map { $0 != 0 ? ", pending \(Amount.format($0))" : "" } ?? "")"
                    )
                    print("hash      \(data["hash"]?.stringValue ?? "?")")
                    if let core = data["core"] {
                        print("core:")
                        print(core.prettyString)
                    }
                }
            }
        }

        struct Invite: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Make a tally invitation for someone to redeem (tally.invite).")

            @Option(
                name: .customLong("as"), help: ArgumentHelp("Your side of the tally: stock (vendor/creditor) or foil (client).", valueName: "side"))
            var side: TicketCommand.Side = .stock

            @Option(help: ArgumentHelp("Credit limit you grant, in CHIPs (default 0).", valueName: "chips"))
            var limit: String = "0"

            @Option(help: ArgumentHelp("A note for the tally.", valueName: "text"))
            var memo: String?

            @Flag(help: "Let the invitation be used many times (each use opens a new tally).")
            var reuse = false

            @Option(help: ArgumentHelp("How long the invitation is valid: 90s, 30m, 48h, 7d.", valueName: "duration"))
            var expires: String?

            @Option(name: .customLong("for"), help: ArgumentHelp("Only this requester may use it (CHAD text form).", valueName: "chad"))
            var forCHAD: String?

            @OptionGroup var options: ClientOptions

            func run() async throws {
                var args: [String: JSONValue] = ["side": .string(side.rawValue), "limit": .integer(try Amount.parse(limit))]
                if let memo { args["memo"] = .string(memo) }
                if reuse { args["reuse"] = true }
                if let expires { args["expires"] = .string(expires) }
                if let forCHAD { args["for"] = .string(forCHAD) }
                let command = try deviceCommand("tally.invite", args)
                var c = try await options.connect()
                let data = try await c.callRetrying(command, idem: TallyCore.newUUID())
                await c.close()
                options.show(data) {
                    if let link = data["link"]?.stringValue { print(link) }
                    if let invite = data["invite"] { print(invite.canonicalString) }
                }
            }
        }

        struct Redeem: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Ask for a tally with whoever made an invitation (tally.redeem).")

            @Argument(help: ArgumentHelp("The invitation: its JSON, its link, or @FILE.", valueName: "invite"))
            var invite: String

            @OptionGroup var options: ClientOptions

            func run() async throws {
                let ticket: TallyTicket
                do { ticket = try TallyTicket(parsing: try TallyCommand.Request.ticketText(invite)) } catch let e as ModelError {
                    throw CLIError("bad invitation: \(e.description)")
                }
                var c = try await options.connect()
                let data = try await c.callRetrying(.tallyRedeem(ticket), idem: TallyCore.newUUID())
                await c.close()
                options.show(data) {
                    print(
                        "Tally \(data["uuid"]?.stringValue ?? "?") \(data["state"]?.stringValue ?? "?"): the site asks the inviter's site; `chipsite client watch` shows the offer"
                    )
                }
            }
        }

        struct Accept: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Accept a tally offered to the account (tally.accept).",
                discussion: """
                    The client reads the tally, checks that its core hashes to the site's hash \
                    and, for a user whose key this device holds, shows the core and signs it.
                    """)

            @Argument(help: ArgumentHelp("The tally: uuid, uuid prefix, or partner cuid:agent.", valueName: "tally"))
            var tally: String

            @OptionGroup var options: ClientOptions
            @OptionGroup var passphrase: PassphraseOptions

            func run() async throws {
                var c = try await options.connect()
                let uuid = try await c.tally(tally)
                let show = try await c.call(.tallyShow(uuid: uuid))
                guard let core = show["core"], let hash = show["hash"]?.stringValue, let revision = show["revision"]?.integerValue else {
                    throw CLIError("the site's tally.show has no core, hash or revision")
                }
                guard Base64URL.encode(Crypto.sha256(core.canonicalBytes)) == hash else {
                    throw CLIError("the tally's core does not hash to the site's hash: not signing it")
                }
                _ = try c.side(of: show)  // the core names the user on one side
                var sign: String?
                if let key = try await c.signingKey(passphrase) {
                    showSigning("tally", core)
                    sign = signature(core, with: key)
                }
                var args: [String: JSONValue] = ["uuid": .string(uuid), "revision": .integer(revision), "hash": .string(hash)]
                if let sign { args["sign"] = .string(sign) }
                let data = try await c.callRetrying(try deviceCommand("tally.accept", args))
                await c.close()
                options.show(data) { print("Tally \(uuid) \(data["state"]?.stringValue ?? "?")") }
            }
        }

        struct Refuse: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Refuse a tally offered to the account (tally.refuse).")

            @Argument(help: ArgumentHelp("The tally: uuid, uuid prefix, or partner cuid:agent.", valueName: "tally"))
            var tally: String

            @OptionGroup var options: ClientOptions

            func run() async throws {
                var c = try await options.connect()
                let uuid = try await c.tally(tally)
                let show = try await c.call(.tallyShow(uuid: uuid))
                guard let revision = show["revision"]?.integerValue else { throw CLIError("the site's tally.show has no revision") }
                let data = try await c.callRetrying(.tallyRefuse(uuid: uuid, revision: revision), idem: TallyCore.newUUID())
                await c.close()
                options.show(data) { print("Tally \(uuid) \(data["state"]?.stringValue ?? "?")") }
            }
        }
    }

    struct Lift: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Pay anyone reachable through tallies by a linear lift, and list lifts.", subcommands: [Pay.self, List.self])

        struct Pay: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Pay a user of any site by linear lifts (lift.pay).",
                discussion: """
                    PAYEE is a pay link (https://mychips.org/pay?chad=…) or CUID:AGENT. AMOUNT, in \
                    CHIPs, may be left out when the link carries units. The client makes the signed \
                    authorisation (a fresh uuid, now) and, for a user whose key this device holds, \
                    shows and signs it. A dropped session is retried with the same authorisation.
                    """)

            @Argument(help: ArgumentHelp("A pay link or CUID:AGENT.", valueName: "payee"))
            var payee: String

            @Argument(help: ArgumentHelp("CHIPs, e.g. 12.5 (default: the link's units).", valueName: "amount"))
            var amount: String?

            @Option(help: ArgumentHelp("A note for the payee (default: the link's).", valueName: "text"))
            var memo: String?

            @OptionGroup var options: ClientOptions
            @OptionGroup var passphrase: PassphraseOptions

            func validate() throws {
                do {
                    _ = try PayLink(text: payee)
                    if let amount { _ = try parseUnits(amount) }
                    try checkNote(memo, option: "--memo", max: ChipModel.Chit.maxMemo)
                } catch { throw ValidationError("\(error)") }
            }

            func run() async throws {
                let link = try PayLink(text: payee)
                let units: Int64
                if let amount {
                    units = try parseUnits(amount)
                } else if let u = link.units {
                    units = u
                } else {
                    throw CLIError("give AMOUNT: the link carries no units")
                }
                try checkNote(memo, option: "--memo", max: ChipModel.Chit.maxMemo)
                var auth: [String: JSONValue] = [
                    "uuid": .string(TallyCore.newUUID()), "date": .string(nowTimestamp()),
                    "to": ["cuid": .string(link.cuid.value), "agent": .string(link.agent.description)], "units": .integer(units)
                ]
                if let m = memo ?? link.memo { auth["memo"] = .string(m) }
                if let r = link.ref { auth["ref"] = r }
                let authJSON = JSONValue.object(auth)
                var c = try await options.connect()
                var sign: String?
                if let key = try await c.signingKey(passphrase) {
                    showSigning("lift payment", authJSON)
                    sign = signature(authJSON, with: key)
                }
                var args: [String: JSONValue] = ["auth": authJSON]
                if let sign { args["sign"] = .string(sign) }
                let data = try await c.callRetrying(try deviceCommand("lift.pay", args))
                await c.close()
                options.show(data) {
                    print(
                        "Lift payment \(data["uuid"]?.stringValue ?? "?"): \(Amount.format(units)) CHIPs to \(link.cuid.value), \(data["state"]?.stringValue ?? "?")"
                    )
                }
            }
        }

        struct List: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "List the account's lifts (lift.list).")

            @Option(help: ArgumentHelp("Only lifts in this state (seek, good, void, …).", valueName: "state"))
            var state: String?

            @OptionGroup var page: ClientPageOptions
            @OptionGroup var options: ClientOptions

            func run() async throws {
                if let state, !DeviceCommand.liftStates.contains(state) {
                    throw ValidationError("--state must be one of \(DeviceCommand.liftStates.sorted().joined(separator: ", "))")
                }
                let c = try await options.connect()
                let data = try await c.call(.liftList(state: state, page: page.page))
                await c.close()
                options.show(data) {
                    printPage(data, empty: "No lifts.", header: "LIFT      KIND      ROLE     STATE  UNITS        DEADLINE") { l in
                        [
                            String((l["uuid"]?.stringValue ?? "?").prefix(8)), (l["kind"]?.stringValue ?? "?").padding(8),
                            (l["role"]?.stringValue ?? "?").padding(7), (l["state"]?.stringValue ?? "?").padding(5), chips(l["units"]).padding(11),
                            l["deadline"]?.stringValue ?? ""
                        ].joined(separator: "  ")
                    }
                }
            }
        }
    }

    struct Device: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List and revoke the account's devices; issue a ticket for another device.",
            subcommands: [List.self, Revoke.self, Ticket.self])

        struct List: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "List the account's devices (device.list).")

            @OptionGroup var options: ClientOptions

            func run() async throws {
                let c = try await options.connect()
                let data = try await c.call(.deviceList)
                await c.close()
                let me = c.profile.device.description
                options.show(data) {
                    printPage(data, empty: "No devices.", header: nil) { d in
                        let id = d["device"]?.stringValue ?? "?"
                        let scopes = d["scopes"]?.arrayValue?.compactMap(\.stringValue).joined(separator: ",") ?? "?"
                        return
                            "\(id)  \(Printable.clip(d["name"]?.stringValue ?? "").padding(20))  \(scopes)  last seen \(d["last_seen"]?.stringValue ?? "never")\(id == me ? "  (this device)" : "")"
                    }
                }
            }
        }

        struct Revoke: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Revoke a device of the account (device.revoke): its sessions close at once.")

            @Argument(help: ArgumentHelp("The device id (43 base64url characters); one that starts with '-' goes after `--`.", valueName: "device"))
            var device: String

            @OptionGroup var options: ClientOptions

            func run() async throws {
                let id = try DeviceID(device)
                var c = try await options.connect()
                let data = try await c.callRetrying(.deviceRevoke(id), idem: TallyCore.newUUID())
                await c.close()
                options.show(data) { print("Revoked device \(id)") }
            }
        }

        struct Ticket: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Issue a user ticket for another device of the account (device.ticket).",
                discussion: "The ticket is a secret shown once: hand it to the new device for `chipsite client register`.")

            @Option(
                help: ArgumentHelp(
                    "The new device's scopes, comma-separated: read, request, pay, tally, devices (default: this device's).", valueName: "list"))
            var scopes: String?

            @Option(help: ArgumentHelp("How long the ticket is valid: 90s, 30m, 24h, 7d (default 24h).", valueName: "duration"))
            var expires: String?

            @OptionGroup var options: ClientOptions

            func run() async throws {
                var args: [String: JSONValue] = [:]
                if let scopes { args["scopes"] = .array(scopes.split(separator: ",").map { .string(String($0)) }) }
                if let expires { args["expires"] = .string(expires) }
                let command = try deviceCommand("device.ticket", args)
                // Not retried: a repeat of a reply that carries a secret is `conflict` (10.5).
                let c = try await options.connect()
                let data = try await c.call(command, idem: TallyCore.newUUID())
                await c.close()
                options.show(data) {
                    if let link = data["link"]?.stringValue { print(link) }
                    if let t = data["ticket"] { print(JSONValue.object(["ticket": t]).canonicalString) }
                }
            }
        }
    }
}
