import ArgumentParser

/// `chipsite`: a complete MyCHIPs site in one binary and one SQLite file.
struct Chipsite: AsyncParsableCommand {
    /// The release version: packaging/VERSION is the one place it is decided
    /// (PackagingTests checks that the two agree).
    static let version = "0.1.0"

    static let configuration = CommandConfiguration(
        commandName: "chipsite",
        abstract: "A MyCHIPs site in one binary and one SQLite file.",
        discussion: """
            Everything the site knows (its key, settings and users) lives in one SQLite \
            file, chosen by --db, else $CHIPSITE_DB, else /var/lib/chipsite/site.db for \
            root, else $XDG_DATA_HOME/chipsite/site.db (~/.local/share/chipsite/site.db).

            Commands that list or show things take --json for scripts; the field \
            names are stable (doc/cli.md). Errors are one line on stderr starting \
            with "chipsite: error:" and exit 1; usage errors exit 2.
            """,
        version: version,
        subcommands: [
            InitCommand.self, StatusCommand.self, UserCommand.self, TicketCommand.self,
            TallyCommand.self, PayCommand.self, InvoiceCommand.self, ChitCommand.self, LiftCommand.self, ServeCommand.self, ConfigCommand.self,
            BackupCommand.self,
            RestoreCommand.self, DoctorCommand.self, KeyCommand.self, LockdownCommand.self, ClientCommand.self
        ]
    )
}
