import ArgumentParser
import ChipModel
import ChipProtocol
import ChipStore
import ChipViews

#if canImport(Glibc)
    import Glibc
#endif

struct UserCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "user",
        abstract: "Add, list, show, edit, lock, export and import the site's users; tickets and devices for the user port.",
        subcommands: [
            Add.self, List.self, Show.self, Edit.self, Lock.self, Unlock.self, Export.self, Import.self, Ticket.self, Device.self
        ])

    struct Add: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Add a user with a new signing key and certificate.")

        @Argument(help: ArgumentHelp("The user's id on this site: 1-64 of A-Z a-z 0-9 . _ -, starting with a letter or digit.", valueName: "cuid"))
        var cuid: String

        @Option(help: ArgumentHelp("The user's name as partners see it.", valueName: "name"))
        var name: String

        @Option(help: ArgumentHelp("Contact email put in the certificate.", valueName: "address"))
        var email: String?

        @Option(help: ArgumentHelp("p for a person, o for an organisation.", valueName: "type"))
        var type: String = "p"

        @Option(
            help: ArgumentHelp(
                "Who signs for the user: site (the site keeps its key; the admin CLI acts for it) or device (its own device signs, doc/protocol.md).",
                valueName: "custody"))
        var custody: String = "site"

        @OptionGroup var site: SiteOptions
        @OptionGroup var passphrase: PassphraseOptions
        @OptionGroup var output: OutputOptions

        func run() throws {
            let id = try CUID(cuid)
            guard let entity = EntityType(rawValue: type) else { throw ValidationError("--type must be p or o") }
            guard let holder = UserCustody(rawValue: custody) else { throw ValidationError("--custody must be site or device") }
            try Certificate.validate(name: name)
            if let email { try Certificate.validate(email: email) }
            let store = try site.open()
            let user = try store.addUser(
                cuid: id, name: name, email: email, type: entity, custody: holder,
                sealingKey: try passphrase.sealingKey(for: store))
            if output.json {
                print(UserView.json(user, locked: false, custody: holder).prettyString)
            } else {
                print("Added user \(user.cuid) (\(user.certificate.chad))\(holder == .device ? ", custody device" : "")")
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
                let views = try users.map { UserView.json($0, locked: locked.contains($0.cuid.value), custody: try store.custody(of: $0.cuid)) }
                print(JSONValue.object(["users": .array(views)]).prettyString)
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
            let custody = try store.custody(of: user.cuid)
            let tallies = try store.tallies(user: user.cuid).filter { $0.state != .void }
            if output.json {
                var o = UserView.json(user, locked: locked, custody: custody).objectValue ?? [:]
                // Balances per tally, in milliCHIPs from this user's side:
                // positive means the partner owes this user.
                o["tallies"] = .array(
                    tallies.map { t in
                        [
                            "id": .string(t.uuid), "partner": .string(t.partner.description), "side": .string(t.side.rawValue),
                            "state": .string(t.state.rawValue), "balance": .integer(t.balance),
                            "net": .integer(t.side == .stock ? t.balance : -t.balance)
                        ]
                    })
                o["net"] = .integer(tallies.reduce(0) { $0 + ($1.side == .stock ? $1.balance : -$1.balance) })
                print(JSONValue.object(o).prettyString)
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
            print("custody  \(custody == .site ? "site (the site holds the key)" : "device (the user's device holds the key)")")
            print("created  \(user.created)")
            for t in tallies {
                let net = t.side == .stock ? t.balance : -t.balance
                print(
                    "tally    \(t.uuid.prefix(8)) \(t.state.rawValue) with \(t.partner.cuid)@\(t.partner.address): \(net >= 0 ? "owed" : "owes") \(Amount.format(abs(net))) CHIPs"
                )
            }
            print("certificate:")
            print(c.json.prettyString)
        }
    }

    struct Edit: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Change a user's name, email or type; re-issues the certificate with the same key.")

        @Argument(help: ArgumentHelp("The user's CUID.", valueName: "cuid"))
        var cuid: String

        @Option(help: ArgumentHelp("The new name as partners see it.", valueName: "name"))
        var name: String?

        @Option(help: ArgumentHelp("The new contact email; an empty value removes it.", valueName: "address"))
        var email: String?

        @Option(help: ArgumentHelp("p for a person, o for an organisation.", valueName: "type"))
        var type: String?

        @OptionGroup var site: SiteOptions
        @OptionGroup var output: OutputOptions

        func run() throws {
            let id = try CUID(cuid)
            guard name != nil || email != nil || type != nil else { throw ValidationError("nothing to change: give --name, --email or --type") }
            var entity: EntityType?
            if let type {
                guard let t = EntityType(rawValue: type) else { throw ValidationError("--type must be p or o") }
                entity = t
            }
            var newEmail: String?? = nil
            if let email { newEmail = .some(email.isEmpty ? nil : email) }
            let store = try site.open()
            let user = try store.editUser(id, name: name, email: newEmail, type: entity)
            if output.json {
                print(UserView.json(user, locked: try store.isUserLocked(id)).prettyString)
            } else {
                print("Re-issued the certificate of \(user.cuid) (\(user.certificate.chad))")
            }
        }
    }

    struct Export: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write a user (certificate and key, sealed as stored) as JSON for `user import`.",
            discussion: """
                The key stays as it is stored: sealed keys stay sealed (the file carries the seal's \
                salt and cost so the same passphrase opens it elsewhere); a plain key is in the clear, \
                so keep the file private. --output writes a new file with mode 0600.
                """)

        @Argument(help: ArgumentHelp("The user's CUID.", valueName: "cuid"))
        var cuid: String

        @Option(name: .long, help: ArgumentHelp("Write to this new file instead of stdout.", valueName: "file"))
        var output: String?

        @OptionGroup var site: SiteOptions

        func run() throws {
            let export = try site.open().exportUser(try CUID(cuid))
            let text = export.json.prettyString + "\n"
            guard let output else {
                writeStdout(text)
                return
            }
            try SiteBackup.writeNew(output, Array(text.utf8))
            writeStderr("Exported \(export.cuid) (\(export.sealed ? "key sealed" : "key NOT sealed: keep the file private")) to \(output)\n")
        }
    }

    struct Import: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Add a user from a `user export` file; its certificate is re-issued for this site.",
            discussion: """
                Refuses a CUID or key the site already has, and any malformed file. A sealed key \
                can only be imported into a site sealed with the same passphrase; a plain key \
                into a site that is not sealed, or it is sealed on import when the site is.
                """)

        @Argument(help: ArgumentHelp("The export file.", valueName: "file"))
        var file: String

        @OptionGroup var site: SiteOptions
        @OptionGroup var passphrase: PassphraseOptions
        @OptionGroup var output: OutputOptions

        func run() throws {
            let export = try UserExport(json: try Self.readJSON(file))
            let store = try site.open()
            let siteSeal = try store.sealParameters()
            if export.sealed, siteSeal == nil {
                throw CLIError("the key in \(file) is sealed: import it into a site sealed with the same passphrase")
            }
            var siteKey: SealingKey?
            var exportKey: SealingKey?
            if export.sealed || siteSeal != nil {
                guard var secret = try passphrase.obtain() else { throw StoreError.passphraseNeeded }
                defer { Crypto.wipe(&secret) }
                siteKey = try store.sealingKey(passphrase: secret)
                if let seal = export.seal {
                    exportKey =
                        seal.salt == siteSeal?.salt && seal.cost == siteSeal?.cost
                        ? siteKey : try SealingKey(passphrase: secret, salt: seal.salt, cost: seal.cost)
                }
            }
            let user = try store.importUser(export, exportKey: exportKey, siteKey: siteKey)
            if output.json {
                print(UserView.json(user, locked: try store.isUserLocked(user.cuid)).prettyString)
            } else {
                print("Imported user \(user.cuid) (\(user.certificate.chad))\(user.sealed ? ", key sealed" : "")")
            }
        }

        /// The file's JSON, at most `UserExport.maxBytes`.
        static func readJSON(_ path: String) throws -> JSONValue {
            let fd = open(path, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else { throw CLIError("cannot read \(path): \(String(cString: strerror(errno)))") }
            defer { close(fd) }
            var bytes = [UInt8]()
            var buffer = [UInt8](repeating: 0, count: 4096)
            while true {
                let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                guard n >= 0 else { throw CLIError("cannot read \(path): \(String(cString: strerror(errno)))") }
                if n == 0 { break }
                bytes += buffer[0..<n]
                guard bytes.count <= UserExport.maxBytes else { throw CLIError("\(path) is too large for a user export") }
            }
            do { return try JSONValue(parsing: bytes) } catch {
                throw CLIError("\(path) is not a chipsite user export (not JSON: \(error))")
            }
        }
    }

    struct Lock: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Lock a user: its tallies accept no new chits or offers.",
            discussion:
                "A partner's chit or ticket request is refused; an offer to the user waits unanswered; the user's queued messages wait. Nothing is lost. Undo with `user unlock`."
        )

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
