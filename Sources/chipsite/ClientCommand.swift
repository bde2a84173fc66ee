import ArgumentParser
import ChipModel
import ChipProtocol
import ChipUserPort
import Foundation
import Noise

#if canImport(Glibc)
    import Glibc
#endif

/// `chipsite client`: the reference client of the user port (protocol
/// section 10), over the same modules as the site: the device's side of the
/// channel (ChipUserPort) and the one definition of the commands
/// (ChipProtocol's `DeviceCommand` and `UserRequest`).
struct ClientCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "client",
        abstract: "Use an account on a site from this device, over the site's user port.",
        discussion: """
            A user of a site runs their account from their own device: the site's admin \
            issues a user ticket (`chipsite user ticket CUID`), `chipsite client register \
            TICKET` registers this device with it, and every other subcommand opens an \
            encrypted session, sends one command and prints the answer.

            State lives in $XDG_CONFIG_HOME/chipsite/client/PROFILE/ (~/.config/… without \
            XDG_CONFIG_HOME): device.json (site, user, device), device.key (the device key, \
            mode 0600), seq (the last event seen by `client watch`) and, for a user whose \
            key is held by the device, sign.key (sealed with a passphrase). --profile \
            picks one of several accounts (default: default).

            Errors are one line, `chipsite: error: CODE: MESSAGE` for an error the site \
            answered (the codes of protocol section 10.5), and exit 1.
            """,
        subcommands: [
            Register.self, Status.self, Tally.self, Pay.self, Request.self, Chit.self, Lift.self, Device.self, Key.self,
            Watch.self, Raw.self
        ])
}

/// What every client subcommand takes.
struct ClientOptions: ParsableArguments {
    @Option(help: ArgumentHelp("The account to use: a profile name (default: default).", valueName: "name"))
    var profile = "default"

    @Option(help: ArgumentHelp("Seconds to wait for the site's answer.", valueName: "seconds"))
    var timeout: Double = 15

    @Flag(name: .long, help: "Print the reply's data as JSON (see doc/cli.md).")
    var json = false

    static let maxTimeout: Double = 3600

    func validate() throws {
        guard timeout > 0, timeout <= Self.maxTimeout else { throw ValidationError("--timeout must be more than 0 and at most 3600 seconds") }
        do { try ClientState.validate(profile: profile) } catch { throw ValidationError("\(error)") }
    }

    func state() throws -> ClientState { try ClientState(profile: profile) }

    /// The profile, its key, and an open session; the custody the site
    /// grants is remembered in the profile.
    func connect() async throws -> ClientContext {
        let state = try state()
        var (profile, key) = try state.load()
        let connection = try await ClientConnection.open(profile, key: key, timeout: timeout)
        let grant = connection.grant
        if grant.custody != profile.custody {
            profile.custody = grant.custody
            try? state.save(profile)
        }
        return ClientContext(options: self, state: state, profile: profile, key: key, connection: connection)
    }

    /// Prints `data` as JSON with --json, else runs `human`.
    func show(_ data: JSONValue, _ human: () -> Void) {
        if json { print(data.prettyString) } else { human() }
    }
}

/// One command's open session and what it was opened with.
struct ClientContext {
    let options: ClientOptions
    let state: ClientState
    let profile: ClientProfile
    let key: KeyPair
    var connection: ClientConnection

    var timeout: Double { options.timeout }

    func call(_ command: DeviceCommand, idem: String? = nil) async throws -> JSONValue {
        try await connection.call(command, idem: idem, timeout: timeout)
    }

    /// Sends `command` until it is answered: on a dropped session or a
    /// timeout, reconnects and sends it again, unchanged (the site knows the
    /// repeat by its uuid or `idem`, 10.5). At most `attempts` sends.
    mutating func callRetrying(_ command: DeviceCommand, idem: String? = nil, attempts: Int = 3) async throws -> JSONValue {
        var last: ClientOutcome = .closed
        for attempt in 1...attempts {
            if attempt > 1 {
                try? await Task.sleep(nanoseconds: UInt64(attempt - 1) * 500_000_000)
                await connection.close()
                do { connection = try await ClientConnection.open(profile, key: key, timeout: timeout) } catch {
                    if attempt == attempts { throw error }
                    continue
                }
            }
            let request: UserRequest
            do { request = try UserRequest(id: ClientIDs.next(), command: command, idem: idem) } catch {
                throw CLIError("\(error.code.rawValue): \(error.message)")
            }
            last = await connection.send(request.json, id: request.id, timeout: timeout)
            if case .reply = last { break }
        }
        return try ClientFailure.check(last, timeout: timeout)
    }

    func close() async { await connection.close() }

    /// The user's signing key, for a `device` custody user (nil for `site`:
    /// the site signs).
    func signingKey(_ passphrase: PassphraseOptions) async throws -> SigningKey? {
        guard connection.grant.custody == UserCustody.device else { return nil }
        guard ClientSignKey.exists(state) else { _ = try ClientSignKey.publicKey(state); return nil }
        guard var secret = try passphrase.obtain() else {
            throw CLIError("the signing key is sealed: give --passphrase-file or $CHIPSITE_PASSPHRASE_FILE, or run on a terminal")
        }
        defer { Crypto.wipe(&secret) }
        return try ClientSignKey.open(state, user: profile.user, passphrase: secret)
    }

    /// Resolves a tally argument: a uuid, a unique prefix of 4+ characters,
    /// or the partner's `cuid:agent` / CHAD text when one tally has that partner.
    func tally(_ text: String) async throws -> String {
        if TallyCore.isUUID(text) { return text }
        let byPartner = text.contains(":") || text.contains("@")
        if !byPartner {
            guard text.count >= 4, text.allSatisfy({ $0.isHexDigit || $0 == "-" }) else {
                throw CLIError("give the tally's uuid, a prefix of at least 4 characters, or the partner's cuid:agent")
            }
        }
        let wanted = parseParty(text)
        var matches = [JSONValue]()
        var after: String?
        repeat {
            let page = try await call(.tallyList(state: nil, page: UserPage(limit: UserPage.maxLimit, after: after)))
            for item in page["items"]?.arrayValue ?? [] {
                guard let uuid = item["uuid"]?.stringValue else { continue }
                if byPartner {
                    let partner = partnerOf(item)
                    let agentMatches = wanted.agent == nil || partner?.agent == nil || partner?.agent == wanted.agent
                    if let partner, partner.cuid == wanted.cuid, agentMatches, item["state"]?.stringValue != TallyState.void.rawValue {
                        matches.append(item)
                    }
                } else if uuid.hasPrefix(text.lowercased()) {
                    matches.append(item)
                }
            }
            after = page["next"]?.stringValue
        } while after != nil && matches.count < 2
        guard let first = matches.first?["uuid"]?.stringValue else { throw CLIError("no tally matches \(Printable.quote(text))") }
        guard matches.count == 1 else { throw CLIError("\(Printable.quote(text)) matches several tallies: give more of the uuid") }
        return first
    }

    /// The user's side of a tally, from `tally.show`'s core.
    func side(of show: JSONValue) throws -> TallySide {
        var found: TallySide?
        for side in [TallySide.stock, .foil] {
            let chad = show["core"]?[side.rawValue]?["cert"]?["chad"]
            if chad?["cuid"]?.stringValue == profile.user.value, chad?["agent"]?.stringValue == profile.agent.description {
                guard found == nil else { throw CLIError("the tally's core names both sides as \(profile.user.value)") }
                found = side
            }
        }
        // The core decides; the site's `side` (chipsite's view) only when there is no core yet.
        if let found { return found }
        if show["core"] == nil || show["core"] == .null, let s = show["side"]?.stringValue.flatMap(TallySide.init(rawValue:)) { return s }
        throw CLIError("the tally's core names neither side as \(profile.user.value)")
    }
}

/// A party given as CHAD text (`cuid:agent@host:port`), `cuid:agent` or a cuid.
func parseParty(_ text: String) -> (cuid: String, agent: String?) {
    if let chad = try? CHAD(text: text) { return (chad.cuid.value, chad.agent.description) }
    let parts = text.split(separator: "@", maxSplits: 1).first.map(String.init) ?? text
    let pair = parts.split(separator: ":", maxSplits: 1).map(String.init)
    return (pair.first ?? "", pair.count == 2 ? pair[1] : nil)
}

/// The partner of a `tally.list` item: `partner` `{"chad","name"}` (10.6),
/// or chipsite's view (`partner` CHAD text, `partner_chad` JSON).
func partnerOf(_ item: JSONValue) -> (cuid: String, agent: String?, name: String?)? {
    let name = item["partner"]?["name"]?.stringValue
    for chad in [item["partner_chad"], item["partner"]?["chad"], item["partner"]] {
        guard let chad else { continue }
        if let cuid = chad["cuid"]?.stringValue { return (cuid, chad["agent"]?.stringValue, name) }
        if let text = chad.stringValue {
            let p = parseParty(text)
            return (p.cuid, p.agent, name)
        }
    }
    return nil
}

/// Shows what the device signs (10.7: the user sees it first), on stderr so
/// that --json output stays one document. Never the key.
func showSigning(_ what: String, _ object: JSONValue) {
    writeStderr("chipsite: signing \(what) as the user: \(object.canonicalString)\n")
}

func signature(_ object: JSONValue, with key: SigningKey) -> String { Base64URL.encode(key.sign(object.canonicalBytes)) }

func nowTimestamp() -> String { Timestamp.format(millisecondsSince1970: Int64(Date().timeIntervalSince1970 * 1000)) }

/// A command from its wire name and args, through the parser the site uses
/// (so what the client sends is what the site reads).
func deviceCommand(_ cmd: String, _ args: [String: JSONValue]) throws -> DeviceCommand {
    do { return try DeviceCommand(cmd: cmd, args: args) } catch { throw CLIError(error.message) }
}

/// A JSON `--ref` as `pay` reads it.
func parseRef(_ text: String?) throws -> JSONValue? {
    try text.map { try JSONValue(parsing: $0, limits: JSONLimits(maxDepth: Chit.maxRefDepth, maxBytes: Chit.maxRefBytes)) }
}

/// A positive amount in CHIPs, as `pay` reads it, in milliCHIPs.
func parseUnits(_ text: String) throws -> Int64 {
    let units = try Amount.parse(text)
    guard units > 0 else { throw CLIError("the amount must be more than 0") }
    return units
}

/// Items of a list reply, and a hint for the next page.
func printPage(_ data: JSONValue, empty: String, header: String?, row: (JSONValue) -> String) {
    let items = data["items"]?.arrayValue ?? []
    if items.isEmpty {
        print(empty)
    } else {
        if let header { print(header) }
        for item in items { print(row(item)) }
    }
    if let next = data["next"]?.stringValue { print("(more: --after \(next))") }
}

func chips(_ value: JSONValue?) -> String { value?.integerValue.map(Amount.format) ?? "-" }

extension ClientCommand {
    struct Register: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Register this device with a user ticket and make a profile for the account.",
            discussion: """
                TICKET is the user ticket the site's admin issued (`chipsite user ticket`): its \
                JSON, its link (https://mychips.org/ticket?…) or @FILE. A fresh device key is \
                made and registered in one round trip; the ticket is spent whatever happens. \
                An existing profile is kept unless --force.
                """)

        @Argument(help: ArgumentHelp("The user ticket: its JSON, its link, or @FILE.", valueName: "ticket"))
        var ticket: String

        @Option(help: ArgumentHelp("This device's name as the site lists it (1-64 characters).", valueName: "device"))
        var name: String?

        @Flag(help: "Replace an existing profile (its device key is lost).")
        var force = false

        @OptionGroup var options: ClientOptions

        func run() async throws {
            let state = try options.state()
            let text = try TallyCommand.Request.ticketText(ticket)
            let parsed: UserTicket
            do { parsed = try UserTicket(parsing: text) } catch { throw CLIError("bad user ticket: \(error.description)") }
            if parsed.isExpired(now: Int64(Date().timeIntervalSince1970 * 1000)) {
                throw CLIError("the ticket expired at \(parsed.expires ?? "?"): ask the site's admin for a new one")
            }
            let deviceName = name ?? Self.defaultName()
            guard (1...64).contains(deviceName.count), !deviceName.unicodeScalars.contains(where: { $0.properties.generalCategory == .control })
            else {
                throw CLIError("--name must be 1-64 characters without control characters")
            }
            if state.exists, !force {
                let who = (try? state.load()).map { " (\($0.0.user.value) at \($0.0.address))" } ?? ""
                throw CLIError("profile \(Printable.quote(state.name)) exists\(who): give --force to replace it, or --profile NAME")
            }
            var secret = Crypto.randomBytes(32)
            defer { Crypto.wipe(&secret) }
            let key: KeyPair
            do { key = try KeyPair(privateKey: secret) } catch { throw CLIError("cannot make a device key") }
            let user: CUID
            var custody = UserCustody.site
            do {
                let r = try await UserPortClient.register(ticket: parsed, deviceName: deviceName, deviceKey: key, timeout: options.timeout)
                user = r.user
            } catch .invalidArgument(let why) {
                throw CLIError(why)
            } catch .versionRefused {
                throw CLIError("the site speaks no protocol version this client does")
            } catch .connectFailed(let why) {
                throw CLIError("cannot reach the site's user port at \(parsed.address.host):\(parsed.address.port): \(why)")
            } catch {
                // No `A` (10.3): the registration may have landed all the same;
                // a session tells.
                guard
                    let session = try? await UserPortClient.connect(
                        address: parsed.address, agent: parsed.agent, deviceKey: key, timeout: options.timeout)
                else {
                    throw CLIError(
                        "the site refused the registration: the ticket may be used, expired or replaced by a newer one (ask the site's admin for a new one)"
                    )
                }
                user = session.grant.user
                custody = session.grant.custody
                session.close()
            }
            if let session = try? await UserPortClient.connect(address: parsed.address, agent: parsed.agent, deviceKey: key, timeout: options.timeout)
            {
                custody = session.grant.custody
                session.close()
            }
            let device = try DeviceID(publicKey: key.publicKey)
            let profile = ClientProfile(
                address: parsed.address, agent: parsed.agent, user: user, device: device, deviceName: deviceName, custody: custody,
                registered: nowTimestamp())
            try state.create(profile, deviceSecret: secret)
            var out = profile.json.objectValue ?? [:]
            out["profile"] = .string(state.name)
            out["directory"] = .string(state.directory)
            out["format"] = nil
            options.show(.object(out)) {
                print("Registered device \(Printable.quote(deviceName)) (\(device)) for \(user.value) at \(parsed.address)")
                print("profile \(state.name): \(state.directory)")
                if custody == .device { print("the user's key is held by the device: `chipsite client key take` or copy sign.key here") }
            }
        }

        static func defaultName() -> String {
            var buffer = [CChar](repeating: 0, count: 256)
            let host =
                gethostname(&buffer, buffer.count) == 0
                ? String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self) : ""
            let name = host.isEmpty ? "chipsite client" : "chipsite client on \(host)"
            return String(name.prefix(64))
        }
    }

    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show the account: the user, its custody and this device's scopes (me.show).")

        @OptionGroup var options: ClientOptions

        func run() async throws {
            let c = try await options.connect()
            let me = try await c.call(.meShow)
            let grant = c.connection.grant
            await c.close()
            var o = me.objectValue ?? [:]
            o["grant"] = [
                "user": .string(grant.user.value), "custody": .string(grant.custody.rawValue), "scopes": UserScope.json(grant.scopes),
                "features": .array(grant.features.map(JSONValue.string))
            ]
            o["profile"] = .string(c.state.name)
            o["device"] = .string(c.profile.device.description)
            o["site"] = [
                "host": .string(c.profile.address.host), "port": .integer(Int64(c.profile.address.port)),
                "agent": .string(c.profile.agent.description)
            ]
            options.show(.object(o)) {
                print("user     \(grant.user.value) at \(c.profile.address) (profile \(c.state.name))")
                if let chad = me["chad"] { print("chad     \(chad.stringValue ?? chad.canonicalString)") }
                print("custody  \(grant.custody.rawValue)\(grant.custody == .device ? " (this client signs)" : " (the site signs)")")
                print("scopes   \(grant.scopes.sorted().map(\.rawValue).joined(separator: ","))")
                print("device   \(c.profile.deviceName) (\(c.profile.device))")
                if me["locked"] == true { print("locked   yes: reads work, payments and tally changes answer locked") }
                if me["net"] != nil {
                    print("assets \(chips(me["assets"])), liabilities \(chips(me["liabilities"])), net \(chips(me["net"])) CHIPs")
                }
            }
        }
    }

    struct Pay: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Pay on a tally: make the chit and send it (chit.pay).",
            discussion: """
                AMOUNT is in CHIPs with up to 3 decimals. The client makes the chit itself (a \
                fresh uuid, the user's side of the tally, now); a user whose key this device \
                holds signs it here, after the chit is shown on stderr. A dropped session is \
                retried with the same chit: the site pays it once.
                """)

        @OptionGroup var chit: ClientChitArguments
        @OptionGroup var options: ClientOptions
        @OptionGroup var passphrase: PassphraseOptions

        func run() async throws {
            let (tally, units, memo, r) = try chit.parsed()
            var c = try await options.connect()
            let uuid = try await c.tally(tally)
            let show = try await c.call(.tallyShow(uuid: uuid))
            var core: [String: JSONValue] = [
                "tally": .string(uuid), "by": .string(try c.side(of: show).rawValue), "type": "tran", "uuid": .string(TallyCore.newUUID()),
                "date": .string(nowTimestamp()), "units": .integer(units)
            ]
            if let memo { core["memo"] = .string(memo) }
            if let r { core["ref"] = r }
            let chit = JSONValue.object(core)
            var sign: String?
            if let key = try await c.signingKey(passphrase) {
                showSigning("chit", chit)
                sign = signature(chit, with: key)
            }
            var args: [String: JSONValue] = ["chit": chit]
            if let sign { args["sign"] = .string(sign) }
            let command = try deviceCommand("chit.pay", args)
            let data = try await c.callRetrying(command)
            await c.close()
            options.show(data) {
                print(
                    "Paid \(Amount.format(units)) CHIPs on tally \(uuid.prefix(8)) (chit \(data["uuid"]?.stringValue ?? "?"), \(data["state"]?.stringValue ?? "?"))"
                )
            }
        }
    }

    struct Request: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Ask the partner on a tally for a payment (chit.request).")

        @OptionGroup var chit: ClientChitArguments
        @OptionGroup var options: ClientOptions

        func run() async throws {
            let (tally, units, memo, r) = try chit.parsed()
            var c = try await options.connect()
            let uuid = try await c.tally(tally)
            let data = try await c.callRetrying(.chitRequest(tally: uuid, units: units, memo: memo, ref: r), idem: TallyCore.newUUID())
            await c.close()
            options.show(data) {
                print("Asked for \(Amount.format(units)) CHIPs on tally \(uuid.prefix(8)) (invoice \(data["uuid"]?.stringValue ?? "?"))")
            }
        }
    }

    struct Chit: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the account's chits.", subcommands: [List.self])

        struct List: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "List chits (chit.list), newest page first.")

            @Option(help: ArgumentHelp("Only this tally (uuid, prefix or partner cuid:agent).", valueName: "tally"))
            var tally: String?

            @Option(help: ArgumentHelp("pending, chained or refused.", valueName: "state"))
            var state: String?

            @OptionGroup var page: ClientPageOptions
            @OptionGroup var options: ClientOptions

            func run() async throws {
                if let state, !DeviceCommand.chitStates.contains(state) { throw ValidationError("--state must be pending, chained or refused") }
                let c = try await options.connect()
                let uuid: String? = if let tally { try await c.tally(tally) } else { nil }
                let data = try await c.call(.chitList(tally: uuid, state: state, page: page.page))
                await c.close()
                options.show(data) {
                    printPage(data, empty: "No chits.", header: "CHIT      TALLY     BY     UNITS        STATE     MEMO") { i in
                        let chit = i["chit"] ?? i
                        return [
                            String((chit["uuid"]?.stringValue ?? chit["id"]?.stringValue ?? "?").prefix(8)).padding(8),
                            String((chit["tally"]?.stringValue ?? "?").prefix(8)).padding(8),
                            (chit["by"]?.stringValue ?? "?").padding(5), chips(chit["units"]).padding(11),
                            (i["state"]?.stringValue ?? "?").padding(8),
                            Printable.clip(chit["memo"]?.stringValue ?? "")
                        ].joined(separator: "  ")
                    }
                }
            }
        }
    }
}

/// `--limit` and `--after` of list commands (10.5 paging).
struct ClientPageOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Items per page, 1-200.", valueName: "n"))
    var limit = UserPage.defaultLimit

    @Option(help: ArgumentHelp("The next page: the cursor a previous page gave.", valueName: "cursor"))
    var after: String?

    func validate() throws {
        guard (1...UserPage.maxLimit).contains(limit) else { throw ValidationError("--limit must be 1-200") }
        if let after, after.isEmpty || after.utf8.count > UserPage.maxCursorBytes { throw ValidationError("--after is not a cursor") }
    }

    var page: UserPage { UserPage(limit: limit, after: after) }
}

/// What `client pay` and `client request` take: a tally, an amount, a memo
/// and a reference. A bad amount, memo or reference is a usage error (exit
/// 2), as for `pay`.
struct ClientChitArguments: ParsableArguments {
    @Argument(help: ArgumentHelp("The tally: uuid, uuid prefix, or partner cuid:agent.", valueName: "tally"))
    var tally: String

    @Argument(help: ArgumentHelp("CHIPs, e.g. 12.5.", valueName: "amount"))
    var amount: String

    @Option(help: ArgumentHelp("A note for the partner.", valueName: "text"))
    var memo: String?

    @Option(help: ArgumentHelp("A JSON reference (invoice number, order) carried with it.", valueName: "json"))
    var ref: String?

    func validate() throws {
        do { _ = try parsed() } catch { throw ValidationError("\(error)") }
    }

    /// The tally as given, the amount in milliCHIPs, the memo and the reference.
    func parsed() throws -> (tally: String, units: Int64, memo: String?, ref: JSONValue?) {
        let units = try parseUnits(amount)
        try checkNote(memo, option: "--memo", max: ChipModel.Chit.maxMemo)
        return (tally, units, memo, try parseRef(ref))
    }
}
