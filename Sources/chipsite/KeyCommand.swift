import ArgumentParser
import ChipModel
import ChipProtocol
import ChipStore
import ChipViews

/// `chipsite key show|seal|unseal|passphrase|new`: the site key and the
/// passphrase that seals it and every user's key.
struct KeyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "key",
        abstract: "Show the site key; seal, unseal or re-key the site.",
        discussion: """
            seal, unseal and passphrase change the site key and every user's key in one \
            transaction: a crash leaves the old state or the new one, never a mix. A running \
            `chipsite serve` keeps the key it started with: restart it afterwards.
            """,
        subcommands: [Show.self, Seal.self, Unseal.self, Passphrase.self, New.self])

    /// A new passphrase: from `file` when given, else asked twice on the terminal.
    static func newPassphrase(file: String?) throws -> [UInt8] {
        if let file { return try ChipsitePassphrase.read(file: file) }
        guard ChipsitePassphrase.hasTerminal else {
            throw CLIError("no terminal to ask for the new passphrase: give --new-passphrase-file")
        }
        return try ChipsitePassphrase.prompt(confirm: true)
    }

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show the agent id, the key's fingerprint and whether it is sealed.")

        @OptionGroup var site: SiteOptions
        @OptionGroup var output: OutputOptions

        func run() throws {
            let info = try site.open().siteKeyInfo()
            if output.json {
                print(KeyView.json(info).prettyString)
            } else {
                print("agent        \(info.agent)")
                print("fingerprint  \(info.fingerprint)")
                print("sealed       \(info.sealed ? "yes" : "no")")
                print("created      \(info.created)")
            }
        }
    }

    struct Seal: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Seal the site key and every user key with a new passphrase.",
            discussion: "The passphrase comes from --new-passphrase-file, else it is asked twice on the terminal.")

        @Option(help: ArgumentHelp("Read the new passphrase from this file (first line).", valueName: "file"))
        var newPassphraseFile: String?

        @OptionGroup var site: SiteOptions

        func run() throws {
            let store = try site.open()
            guard try !store.isSealed() else { throw CLIError("the site is already sealed; change the passphrase with `chipsite key passphrase`") }
            var secret = try KeyCommand.newPassphrase(file: newPassphraseFile)
            defer { Crypto.wipe(&secret) }
            let count = try store.reseal(current: nil, new: try NewSeal(passphrase: secret))
            print("Sealed \(count) keys (the site key and \(count - 1) user keys). Restart `chipsite serve` if it runs.")
        }
    }

    struct Unseal: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Remove the passphrase: store the site key and every user key in the clear.",
            discussion: "Anyone who can read the site file (or a backup) can then use the keys.")

        @OptionGroup var site: SiteOptions
        @OptionGroup var passphrase: PassphraseOptions

        func run() throws {
            let store = try site.open()
            guard try store.isSealed() else { throw CLIError("the site is not sealed") }
            let kek = try passphrase.sealingKey(for: store)
            let count = try store.reseal(current: kek, new: nil)
            print("Unsealed \(count) keys. Anyone who can read \(store.path) can now use them.")
        }
    }

    struct Passphrase: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Change the passphrase of the site key and every user key.",
            discussion: """
                The current passphrase comes from --passphrase-file (or $CHIPSITE_PASSPHRASE_FILE, or the \
                terminal), the new one from --new-passphrase-file (or the terminal, asked twice).
                """)

        @Option(help: ArgumentHelp("Read the new passphrase from this file (first line).", valueName: "file"))
        var newPassphraseFile: String?

        @OptionGroup var site: SiteOptions
        @OptionGroup var passphrase: PassphraseOptions

        func run() throws {
            let store = try site.open()
            guard try store.isSealed() else { throw CLIError("the site is not sealed; seal it with `chipsite key seal`") }
            let kek = try passphrase.sealingKey(for: store)
            var secret = try KeyCommand.newPassphrase(file: newPassphraseFile)
            defer { Crypto.wipe(&secret) }
            let count = try store.reseal(current: kek, new: try NewSeal(passphrase: secret))
            print("Changed the passphrase of \(count) keys. Restart `chipsite serve` if it runs.")
        }
    }

    struct New: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Replace the site key: a new agent id.",
            discussion: """
                Partners know a site by its agent id, and every user's certificate names it. \
                A new key gives a new agent id: tallies with partners can no longer be reached \
                through it, so this is refused while any tally exists unless --force is given. \
                Every user's certificate is re-issued with the new agent id.
                """)

        @Flag(help: "Replace the key even though tallies exist (partners lose the way to this site).")
        var force = false

        @OptionGroup var site: SiteOptions
        @OptionGroup var passphrase: PassphraseOptions
        @OptionGroup var output: OutputOptions

        func run() throws {
            let store = try site.open()
            let change = try store.replaceSiteKey(sealingKey: try passphrase.sealingKey(for: store), force: force)
            if output.json {
                print(
                    JSONValue.object([
                        "old_agent": .string(change.old.description), "agent": .string(change.new.description),
                        "certificates_reissued": .integer(Int64(change.certificatesReissued)),
                        "tallies": .integer(Int64(change.tallies))
                    ]).prettyString)
                return
            }
            print("New site key: agent \(change.new) (was \(change.old))")
            print("Re-issued \(change.certificatesReissued) user certificates with the new agent id.")
            if change.tallies > 0 {
                print("Warning: \(change.tallies) tallies name the old agent id; their partners cannot reach this site through it.")
            }
            print("Restart `chipsite serve` if it runs, and give partners your users' new CHADs.")
        }
    }
}

/// The passphrase helpers, under a name that does not clash with `key passphrase`.
typealias ChipsitePassphrase = Passphrase
