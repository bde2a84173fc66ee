import ArgumentParser
import ChipModel
import ChipProtocol
import ChipStore
import ChipViews

/// `chipsite lift list|show`: the lifts this site holds (protocol section 9).
struct LiftCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lift",
        abstract: "List and show the lifts this site takes part in or decided as referee.",
        discussion: """
            A lift moves the same units along a path of open tallies at once (credit clearing). \
            Each row is this site's record of one lift (role origin, relay or terminus), or a \
            lift it decided as referee without a record of its own (role referee).
            """,
        subcommands: [List.self, Show.self])

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

        @Argument(help: ArgumentHelp("The lift id H (or a unique prefix of at least 4 characters).", valueName: "id"))
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
