import ArgumentParser
import ChipModel
import ChipStore

struct UserCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "user",
        abstract: "Add, list, show, edit, lock, export and import the site's users.",
        subcommands: [Add.self, List.self, Show.self, Lock.self, Unlock.self])

    struct Add: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Add a user with a new signing key and certificate.")

        @Argument(help: ArgumentHelp("The user's id on this site: 1-64 of A-Z a-z 0-9 . _ - .", valueName: "cuid"))
        var cuid: String

        @Option(help: ArgumentHelp("The user's name as partners see it.", valueName: "name"))
        var name: String

        @Option(help: ArgumentHelp("Contact email put in the certificate.", valueName: "address"))
        var email: String?

        @Option(help: ArgumentHelp("p for a person, o for an organisation.", valueName: "type"))
        var type: String = "p"

        @OptionGroup var site: SiteOptions
        @OptionGroup var passphrase: PassphraseOptions
        @OptionGroup var output: OutputOptions

        func run() throws {
            let id = try CUID(cuid)
            guard let entity = EntityType(rawValue: type) else { throw CLIError("--type must be p or o") }
            try Certificate.validate(name: name)
            if let email { try Certificate.validate(email: email) }
            let store = try site.open()
            let user = try store.addUser(cuid: id, name: name, email: email, type: entity,
                                         sealingKey: try passphrase.sealingKey(for: store))
            if output.json {
                print(Render.user(user, locked: false).prettyString)
            } else {
                print("Added user \(user.cuid) (\(user.certificate.chad))")
            }
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the users.")

        @OptionGroup var site: SiteOptions
        @OptionGroup var output: OutputOptions

        func run() throws {
            let store = try site.open()
            let users = try store.users()
            let locked = Set(try store.lockedUsers())
            if output.json {
                print(JSONValue.object(["users": .array(users.map { Render.user($0, locked: locked.contains($0.cuid.value)) })]).prettyString)
                return
            }
            if users.isEmpty { print("No users yet: add one with `chipsite user add CUID --name NAME`."); return }
            let width = max(4, users.map { $0.cuid.value.count }.max() ?? 4)
            print("CUID".padding(width) + "  NAME")
            for u in users {
                print(u.cuid.value.padding(width) + "  " + u.certificate.name + (locked.contains(u.cuid.value) ? "  (locked)" : ""))
            }
        }
    }

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show one user with its certificate.")

        @Argument(help: ArgumentHelp("The user's CUID.", valueName: "cuid"))
        var cuid: String

        @OptionGroup var site: SiteOptions
        @OptionGroup var output: OutputOptions

        func run() throws {
            let store = try site.open()
            let user = try store.user(try CUID(cuid))
            let locked = try store.isUserLocked(user.cuid)
            if output.json {
                print(Render.user(user, locked: locked).prettyString)
                return
            }
            let c = user.certificate
            print("cuid     \(user.cuid)")
            print("name     \(c.name)")
            print("type     \(c.type == .person ? "person" : "organisation")")
            if let email = c.email { print("email    \(email)") }
            print("chad     \(c.chad)")
            print("key      \(Base64URL.encode(c.publicKey)) (\(user.sealed ? "sealed" : "not sealed"))")
            print("locked   \(locked ? "yes: no new chits or offers on its tallies" : "no")")
            print("created  \(user.created)")
            print("certificate:")
            print(c.json.prettyString)
        }
    }

    struct Lock: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Lock a user: its tallies accept no new chits or offers.",
            discussion: "Partners get a protocol refusal; nothing is lost and queued messages wait. Undo with `user unlock`.")

        @Argument(help: ArgumentHelp("The user's CUID.", valueName: "cuid"))
        var cuid: String

        @OptionGroup var site: SiteOptions

        func run() throws {
            let id = try CUID(cuid)
            let changed = try site.open().setUserLocked(id, true)
            print(changed ? "Locked user \(id): its tallies accept no new chits or offers." : "User \(id) was already locked.")
        }
    }

    struct Unlock: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Unlock a locked user.")

        @Argument(help: ArgumentHelp("The user's CUID.", valueName: "cuid"))
        var cuid: String

        @OptionGroup var site: SiteOptions

        func run() throws {
            let id = try CUID(cuid)
            let changed = try site.open().setUserLocked(id, false)
            print(changed ? "Unlocked user \(id)." : "User \(id) was not locked.")
        }
    }
}

extension String {
    func padding(_ width: Int) -> String {
        count >= width ? self : self + String(repeating: " ", count: width - count)
    }
}
