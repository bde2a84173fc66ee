import ArgumentParser
import ChipDaemon
import ChipModel
import ChipProtocol
import ChipStore
import ChipViews
import Foundation

/// `chipsite lift clear|invoice|pay|list|show`: lifts (protocol section 9).
/// Only serve speaks to other sites: `clear` and `pay` write the request
/// into the site file and poke serve; `--wait` follows it there.
struct LiftCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lift",
        abstract: "Clear circles of debt, pay across sites, and list the lifts this site takes part in.",
        discussion: """
            A lift moves the same units along a path of open tallies at once (credit clearing). \
            `clear` asks serve to look for circles of debt through this site's users now; `pay` \
            pays someone your user shares no tally with, along a chain of tallies; `invoice` \
            makes the pay link to give a payer. In `list`, each row is this site's record of one \
            lift (role origin, relay or terminus), or a lift it decided as referee without a \
            record of its own (role referee).
            """,
        subcommands: [Clear.self, Invoice.self, Pay.self, List.self, Show.self])

    struct Clear: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Ask serve to look for circular lifts now.",
            discussion: """
                serve also looks by itself every `lift.interval` seconds while there is debt \
                to clear, and at once when a balance crosses its target. With --wait, waits until the lift it started is good or void.
                """)

        @Option(help: ArgumentHelp("Only circles through this user.", valueName: "cuid"))
        var user: String?

        @Option(help: ArgumentHelp("Wait up to this many seconds for the result.", valueName: "seconds"))
        var wait: Double?

        @OptionGroup var site: SiteOptions
        @OptionGroup var output: OutputOptions

        func validate() throws {
            if let user { do { _ = try CUID(user) } catch { throw ValidationError("--user: \(error)") } }
            if let wait, !(wait >= 0 && wait <= 3600) { throw ValidationError("--wait must be 0 to 3600 seconds") }
        }

        func run() throws {
            let store = try site.open()
            let id = try store.requestClear(user: try user.map { try CUID($0) })
            SiteDaemon.pokeRunning(siteFile: store.path)
            guard let wait else {
                if output.json { print(JSONValue.object(["request": .integer(id), "state": "new"]).prettyString); return }
                print("Asked serve to look for circular lifts (request \(id)); `chipsite lift list` shows what it starts.")
                return
            }
            let r = try LiftCommand.follow(id, store: store, seconds: wait)
            if output.json { print(LiftCommand.resultJSON(r, store: store).prettyString) }
            if let lift = r.lifts.first {
                let state = try store.liftState(lift)
                if !output.json {
                    print("Lift \(lift) is \(state?.rawValue ?? "unknown")\(state == .good ? ": the circle is cleared" : "").")
                }
                if state == .void { throw CLIError("the lift \(lift) ended void: nothing was cleared") }
                if state != .good { throw CLIError("the lift \(lift) is still \(state?.rawValue ?? "pending") after \(LiftCommand.seconds(wait))") }
            } else if r.state != .done {
                throw CLIError("serve did not take the request within \(LiftCommand.seconds(wait)) (is `chipsite serve` running?)")
            } else if !output.json {
                print("No lift: \(r.note ?? "nothing to clear").")
            }
        }
    }

    struct Invoice: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Make a pay link: someone on any site pays your user with `chipsite lift pay`.",
            discussion: """
                Prints https://mychips.org/pay?chad=CUID:AGENT&units=…&memo=…&ref=… (units in \
                milliCHIPs). The link names this site by its agent only: a lift finds it \
                through tallies. Share it as text or a QR code.
                """)

        @Argument(help: ArgumentHelp("Your user to be paid.", valueName: "cuid"))
        var cuid: String

        @Argument(help: ArgumentHelp("CHIPs, e.g. 12.5.", valueName: "amount"))
        var amount: String

        @Option(help: ArgumentHelp("What it is for.", valueName: "text"))
        var memo: String?

        @Option(help: ArgumentHelp("A JSON reference (invoice number, order).", valueName: "json"))
        var ref: String?

        @OptionGroup var site: SiteOptions
        @OptionGroup var output: OutputOptions

        func validate() throws {
            do { _ = try link(agent: nil) } catch { throw ValidationError("\(error)") }
        }

        func link(agent: AgentID?) throws -> PayLink? {
            let user = try CUID(cuid)
            let units = try Amount.parse(amount)
            guard units > 0 else { throw CLIError("the amount must be more than 0") }
            try checkNote(memo, option: "--memo", max: Chit.maxMemo)
            let r = try ref.map { try JSONValue(parsing: $0, limits: JSONLimits(maxDepth: Chit.maxRefDepth, maxBytes: Chit.maxRefBytes)) }
            guard let agent else { return nil }
            return try PayLink(cuid: user, agent: agent, units: units, memo: memo, ref: r)
        }

        func run() throws {
            let store = try site.open()
            guard try store.users().contains(where: { $0.cuid.value == cuid }) else { throw CLIError("no user \(cuid) on this site") }
            guard let link = try link(agent: try store.agent()) else { return }
            if output.json { print(JSONValue.object(["link": .string(link.text)]).prettyString); return }
            print(link.text)
        }
    }

    struct Pay: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Pay someone your user shares no tally with, by a linear lift.",
            discussion: """
                PAYEE is a pay link (`chipsite lift invoice` on the payee's site) or CUID:AGENT. \
                serve finds a chain of tallies that carries AMOUNT (at most 6 foreign hops), \
                and every site on it moves the same units at once, or none does. With --wait, \
                waits for the result; a lift that found no route or ended void is an error.
                """)

        @Argument(help: ArgumentHelp("Your user who pays.", valueName: "cuid"))
        var cuid: String

        @Argument(help: ArgumentHelp("A pay link, or CUID:AGENT of the payee.", valueName: "payee"))
        var payee: String

        @Argument(help: ArgumentHelp("CHIPs, e.g. 12.5 (a link's amount, if it names one).", valueName: "amount"))
        var amount: String

        @Option(help: ArgumentHelp("A note for the payee (sealed to its site).", valueName: "text"))
        var memo: String?

        @Option(help: ArgumentHelp("Wait up to this many seconds for the result.", valueName: "seconds"))
        var wait: Double?

        @OptionGroup var site: SiteOptions
        @OptionGroup var output: OutputOptions

        func validate() throws {
            do {
                _ = try CUID(cuid)
                _ = try PayLink(text: payee)
                guard try Amount.parse(amount) > 0 else { throw CLIError("the amount must be more than 0") }
                try checkNote(memo, option: "--memo", max: Chit.maxMemo)
            } catch { throw ValidationError("\(error)") }
            if let wait, !(wait >= 0 && wait <= 3600) { throw ValidationError("--wait must be 0 to 3600 seconds") }
        }

        func run() throws {
            let store = try site.open()
            let units = try Amount.parse(amount)
            let id = try store.requestPay(payor: try CUID(cuid), link: try PayLink(text: payee), units: units, memo: memo)
            SiteDaemon.pokeRunning(siteFile: store.path)
            guard let wait else {
                if output.json { print(JSONValue.object(["request": .integer(id), "state": "new"]).prettyString); return }
                print("Asked serve to pay \(Amount.format(units)) CHIPs by a lift (request \(id)); `chipsite lift list` shows it.")
                return
            }
            let r = try LiftCommand.follow(id, store: store, seconds: wait)
            if output.json { print(LiftCommand.resultJSON(r, store: store).prettyString) }
            guard let lift = r.lifts.first else {
                if r.state != .done {
                    throw CLIError("serve did not take the request within \(LiftCommand.seconds(wait)) (is `chipsite serve` running?)")
                }
                throw CLIError("no lift: \(r.note ?? "no route to the payee")")
            }
            let state = try store.liftState(lift)
            switch state {
            case .good: if !output.json { print("Paid \(Amount.format(units)) CHIPs by lift \(lift).") }
            case .void: throw CLIError("the lift \(lift) ended void: nothing was paid")
            default:
                throw CLIError(
                    "the lift \(lift) is still \(state?.rawValue ?? "pending") after \(LiftCommand.seconds(wait)); `chipsite lift show -- \(lift.prefix(8))` follows it"
                )
            }
        }
    }

    /// Waits (bounded, checking the site file every 50 ms) until request
    /// `id` is done and the lift it started is good or void.
    static func follow(_ id: Int64, store: SiteStore, seconds: Double) throws -> LiftRequest {
        let deadline = Date().addingTimeInterval(seconds)
        while true {
            if let r = try store.liftRequest(id), r.state == .done {
                let finished = try r.lifts.allSatisfy { [.good, .void].contains(try store.liftState($0)) }
                if finished || Date() >= deadline { return r }
            } else if Date() >= deadline {
                guard let r = try store.liftRequest(id) else { throw CLIError("the lift request \(id) vanished") }
                return r
            }
            Thread.sleep(forTimeInterval: 0.05)
        }
    }

    static func seconds(_ s: Double) -> String { s == s.rounded() ? "\(Int(s)) s" : "\(s) s" }

    static func resultJSON(_ r: LiftRequest, store: SiteStore) -> JSONValue {
        var o: [String: JSONValue] = ["request": .integer(r.id), "state": .string(r.state.rawValue)]
        o["lifts"] = .array(
            r.lifts.map { lift in
                ["id": .string(lift), "state": ((try? store.liftState(lift))?.map { .string($0.rawValue) }) ?? .null]
            })
        if let note = r.note { o["note"] = .string(note) }
        return .object(o)
    }

    /// The states `--state` takes: a record's (9.9); a referee row's is its result, good or void.
    static let states = LiftRecord.State.allCases.map(\.rawValue)

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List lifts, newest first.")

        @Option(help: ArgumentHelp("Only lifts in this state: \(LiftCommand.states.joined(separator: ", ")).", valueName: "state"))
        var state: String?

        @OptionGroup var site: SiteOptions
        @OptionGroup var output: OutputOptions

        func validate() throws {
            if let state, !LiftCommand.states.contains(state) {
                throw ValidationError("--state must be one of \(LiftCommand.states.joined(separator: ", ")), not \(Printable.quote(state))")
            }
        }

        func run() throws {
            let lifts = try site.open().lifts(state: state)
            if output.json { print(JSONValue.object(["lifts": .array(lifts.map { LiftView.json($0) })]).prettyString); return }
            if lifts.isEmpty { print(state == nil ? "No lifts yet." : "No lifts \(state ?? "")."); return }
            for l in lifts { print(LiftCommand.line(l)) }
        }
    }

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show one lift: its record, chits and the decisions held.")

        @Argument(
            help: ArgumentHelp(
                "The lift id H (or a unique prefix of at least 4 characters); one that starts with '-' goes after `--`.", valueName: "id"))
        var id: String

        @OptionGroup var site: SiteOptions
        @OptionGroup var output: OutputOptions

        func run() throws {
            let l = try site.open().lift(id)
            if output.json { print(LiftView.json(l, detail: true).prettyString); return }
            print("lift      \(l.id)")
            print("role      \(l.role?.rawValue ?? "none (no record)")")
            print("state     \(l.state ?? "-")")
            if let kind = l.kind { print("kind      \(kind == .circ ? "circular" : "linear")") }
            if let units = l.units { print("units     \(Amount.format(units)) CHIPs") }
            if let deadline = l.deadline { print("deadline  \(deadline)") }
            if let referee = l.referee { print("referee   \(referee)") }
            for c in l.chits {
                print("chit      \(c.uuid)  tally \(c.tally)  by \(c.by.rawValue)  \(Amount.format(c.units)) CHIPs  \(c.state)")
            }
            for d in l.decisions {
                let how = d.asReferee ? "decided by this site as referee" : (d.applied ? "applied" : "kept as proof")
                print("decision  \(d.result.rawValue) (\(how), \(d.created))")
            }
        }
    }

    /// One line of `lift list`.
    static func line(_ l: LiftOverview) -> String {
        let units = l.units.map { "\(Amount.format($0)) CHIPs" } ?? "-"
        let tallies = l.tallies.isEmpty ? "" : "  tallies \(l.tallies.map { String($0.prefix(8)) }.joined(separator: ","))"
        return
            "\(l.id)  \((l.role?.rawValue ?? "-").padding(8))  \((l.state ?? "-").padding(5))  \(l.kind?.rawValue ?? "-")  \(units)  deadline \(l.deadline ?? "-")\(tallies)"
    }
}
