import ArgumentParser
import ChipModel
import ChipProtocol
import ChipStore
import ChipViews

#if canImport(Glibc)
    import Glibc
#endif

struct InitCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "init",
        abstract: "Create a new site: its file, its site key and its address.",
        discussion: """
            Refuses to touch an existing file. With --seal, --passphrase-file or \
            $CHIPSITE_PASSPHRASE_FILE the private keys are sealed with a passphrase \
            (Argon2id and XChaCha20-Poly1305); every command that needs a key then asks for it.
            """)

    @OptionGroup var site: SiteOptions

    @Option(help: ArgumentHelp("Host name partners use to reach this site (default: this machine's host name).", valueName: "host"))
    var host: String?

    @Option(help: ArgumentHelp("TCP port of the peer server.", valueName: "port"))
    var port: Int = SiteAddress.defaultPort

    @Flag(help: "Seal the keys with a passphrase asked on the terminal.")
    var seal = false

    @OptionGroup var passphrase: PassphraseOptions
    @OptionGroup var output: OutputOptions

    func run() throws {
        let address = try SiteAddress(host: host ?? Self.machineHostName(), port: port)
        var secret: [UInt8]? = try passphrase.fromFile()
        if secret == nil, seal {
            guard Passphrase.hasTerminal else {
                throw CLIError("--seal needs a terminal to ask for the passphrase; use --passphrase-file instead")
            }
            secret = try Passphrase.prompt(confirm: true)
        }
        defer { if secret != nil { Crypto.wipe(&secret!) } }
        let (path, isDefault) = site.location()
        let store = try SiteStore.create(at: path, address: address, passphrase: secret, createDirectory: isDefault)
        let status = try store.status()
        if output.json {
            print(StatusView.json(status, lockdown: try store.isLockedDown()).prettyString)
        } else {
            print("Created site \(status.agent)")
            print("  address  \(status.address)")
            print("  file     \(status.path)")
            print("  key      \(status.sealed ? "sealed with a passphrase" : "not sealed")")
        }
    }

    static func machineHostName() -> String {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count - 1) == 0 else { return "localhost" }
        let name = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return (try? SiteAddress.validate(host: name)) != nil ? name : "localhost"
    }
}

struct StatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show the site: agent id, address, file, schema, counts, whether the key is sealed.")

    @OptionGroup var site: SiteOptions
    @OptionGroup var output: OutputOptions

    func run() throws {
        let store = try site.open()
        let status = try store.status()
        let lockdown = try store.isLockedDown()
        if output.json {
            print(StatusView.json(status, lockdown: lockdown).prettyString)
            return
        }
        print("agent    \(status.agent)")
        print("address  \(status.address)")
        print("file     \(status.path)")
        print("schema   \(status.schemaVersion)")
        print("key      \(status.sealed ? "sealed" : "not sealed")")
        print("lockdown \(lockdown ? "ON: no new peer handshakes, nothing that moves value (`chipsite lockdown off`)" : "off")")
        print("users    \(status.users)")
        print("tickets  \(status.tickets)")
        print("tallies  \(status.tallies)")
    }
}
