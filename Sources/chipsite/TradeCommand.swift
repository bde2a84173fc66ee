import ArgumentParser
import ChipModel
import ChipProtocol
import ChipStore
import ChipViews

extension TallyCommand {
    /// `chipsite tally trade`: our half's trading variables (protocol 9.2).
    struct Trade: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show or set the trading variables of your half of an open tally (for lifts).",
            discussion: """
                With no option, shows them. --target: a circular lift raises what the partner owes \
                your user on this tally at most to this (default 0: only debts back to zero). \
                --bound: a linear lift raises it at most to this (default: the credit your user \
                grants; `limit` makes it follow that again). --reward, --clutch: rates in parts per \
                million, -1000000 to 1000000, reward + clutch not negative; reward > 0 takes no \
                linear lift past the target, clutch > 0 pays out of this tally in no lift. Amounts \
                are CHIPs with up to 3 decimals. Options left out keep their value.
                """)

        @Argument(help: ArgumentHelp("The tally id (or a unique prefix of at least 4 characters).", valueName: "id"))
        var id: String

        @Option(help: ArgumentHelp("Most a circular lift raises your user's holding to, CHIPs.", valueName: "chips"))
        var target: String?

        @Option(help: ArgumentHelp("Most a linear lift raises your user's holding to, CHIPs, or `limit`.", valueName: "chips"))
        var bound: String?

        @Option(
            parsing: .unconditional,
            help: ArgumentHelp("Price of lifts above the target, ppm (> 0: none are taken).", valueName: "ppm"))
        var reward: Int64?

        @Option(
            parsing: .unconditional,
            help: ArgumentHelp("Price of paying out of this half in a lift, ppm (> 0: it never pays).", valueName: "ppm"))
        var clutch: Int64?

        @OptionGroup var site: SiteOptions
        @OptionGroup var output: OutputOptions

        /// A bad amount is a usage error (exit 2); ranges are the store's to check.
        func validate() throws {
            do { _ = try amounts() } catch { throw ValidationError("\(error)") }
        }

        /// `--target` and `--bound` in milliCHIPs; `bound: .some(nil)` for `limit`.
        func amounts() throws -> (target: Int64?, bound: Int64??) {
            let t = try target.map { text in try Amount.parse(text) }
            let b: Int64?? = try bound.map { text in text == "limit" ? nil : try Amount.parse(text) }
            return (t, b)
        }

        func run() throws {
            let store = try site.open()
            let a = try amounts()
            let changes = target != nil || bound != nil || reward != nil || clutch != nil
            let t = changes ? try store.setTrade(tally: id, target: a.target, bound: a.bound, reward: reward, clutch: clutch) : try store.tally(id)
            if output.json { print(TallyView.json(t).prettyString); return }
            guard let trade = t.trade, let core = t.core else {
                throw CLIError("tally \(t.uuid) is \(t.state.rawValue) and has no terms yet: no trading variables")
            }
            print("tally     \(t.uuid) (\(t.cuid), \(t.side.rawValue); grants \(Amount.format(core.limit(t.side))) CHIPs)")
            print("target    \(Amount.format(trade.target)) CHIPs")
            print("bound     \(Amount.format(trade.bound)) CHIPs")
            print("reward    \(trade.reward) ppm")
            print("clutch    \(trade.clutch) ppm")
        }
    }
}
