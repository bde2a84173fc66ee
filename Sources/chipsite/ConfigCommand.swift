import ArgumentParser
import ChipModel
import ChipProtocol
import ChipStore
import ChipViews

/// `chipsite config list|get|set|unset`: the site's settings, kept in the
/// site file and checked by each key's validator (doc/configuration.md).
struct ConfigCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "config",
        abstract: "List, show and change the site's settings.",
        discussion: """
            Every setting lives in the site file and is checked before it is stored; \
            doc/configuration.md lists the keys, their defaults and ranges. A running \
            `chipsite serve` reads settings when it starts: restart it to apply a change \
            (SIGHUP only prints a reminder).
            """,
        subcommands: [List.self, Get.self, Set.self, Unset.self])

    static func key(_ name: String) throws -> ConfigKey {
        guard let key = ConfigKey.named(name) else {
            throw CLIError("unknown setting \(Printable.quote(name)) (see `chipsite config list`)")
        }
        return key
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List every setting: value, default and whether it is set.")

        @OptionGroup var site: SiteOptions
        @OptionGroup var output: OutputOptions

        func run() throws {
            let entries = try site.open().configEntries()
            if output.json {
                print(JSONValue.object(["config": .array(entries.map { ConfigView.json($0.setting) })]).prettyString)
                return
            }
            let width = entries.map { $0.key.name.count }.max() ?? 0
            let values = entries.map { Printable.clip($0.effective ?? "(unset)") }
            let valueWidth = values.map(\.count).max() ?? 0
            for (e, v) in zip(entries, values) {
                let origin = e.stored == nil ? "default" : (e.isValid ? "set" : "set, INVALID")
                print(e.key.name.padding(width) + "  " + v.padding(valueWidth) + "  (\(origin); \(e.key.range))")
            }
        }
    }

    struct Get: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print one setting's value (its default when not set).")

        @Argument(help: ArgumentHelp("The setting, for example site.port.", valueName: "key"))
        var key: String

        @OptionGroup var site: SiteOptions
        @OptionGroup var output: OutputOptions

        func run() throws {
            let k = try ConfigCommand.key(key)
            // Through configEntries, not configValue: a bad stored value is shown
            // (with "valid": false) rather than refused, so it can be seen and fixed.
            let entry = try site.open().configEntries().first { $0.key == k } ?? ConfigEntry(key: k, stored: nil)
            if output.json {
                print(ConfigView.json(entry.setting).prettyString)
            } else {
                print(entry.effective.map(Printable.clip) ?? "")
            }
        }
    }

    struct Set: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Change one setting; the value is checked first.",
            discussion: "A running `chipsite serve` applies the change when restarted.")

        @Argument(help: ArgumentHelp("The setting, for example site.port.", valueName: "key"))
        var key: String

        @Argument(help: ArgumentHelp("The new value.", valueName: "value"))
        var value: String

        @OptionGroup var site: SiteOptions
        @OptionGroup var output: OutputOptions

        func run() throws {
            let k = try ConfigCommand.key(key)
            try k.validate(value)
            let store = try site.open()
            let reissued = try store.setSetting(k, value)
            if output.json {
                print(ConfigView.json(ConfigEntry(key: k, stored: value).setting).prettyString)
            } else {
                print("\(k.name) = \(Printable.clip(value)) (restart `chipsite serve` to apply)")
                if reissued { print("users' certificates re-issued with the new address") }
            }
        }
    }

    struct Unset: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove one setting so its default applies.")

        @Argument(help: ArgumentHelp("The setting, for example peer.idle_timeout.", valueName: "key"))
        var key: String

        @OptionGroup var site: SiteOptions

        func run() throws {
            let k = try ConfigCommand.key(key)
            let reissued = try site.open().unsetConfigValue(k)
            print("\(k.name) = \(k.defaultValue ?? "") (default; restart `chipsite serve` to apply)")
            if reissued { print("users' certificates re-issued with the new address") }
        }
    }
}
