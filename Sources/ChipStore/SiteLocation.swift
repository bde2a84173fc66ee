/// Where the site file lives when no `--db` is given:
/// `CHIPSITE_DB`, else `/var/lib/chipsite/site.db` for root, else
/// `$XDG_DATA_HOME/chipsite/site.db`, else `~/.local/share/chipsite/site.db`.
public enum SiteLocation {
    public static let environmentVariable = "CHIPSITE_DB"
    public static let systemPath = "/var/lib/chipsite/site.db"

    /// The path to use and whether it was chosen by default (a default
    /// location may have its directory created; an explicit one may not).
    ///
    /// Without an absolute `$HOME`, `accountHome` (the password database's
    /// entry) is used; without either, `/` (a relative path would depend on
    /// the current directory).
    public static func resolve(
        explicit: String?, environment: [String: String], isRoot: Bool,
        accountHome: () -> String? = { nil }
    ) -> (path: String, isDefault: Bool) {
        if let explicit, !explicit.isEmpty { return (explicit, false) }
        if let env = environment[environmentVariable], !env.isEmpty { return (env, false) }
        if isRoot { return (systemPath, true) }
        if let xdg = environment["XDG_DATA_HOME"], xdg.hasPrefix("/") { return (xdg + "/chipsite/site.db", true) }
        if let home = environment["HOME"], home.hasPrefix("/") { return (home + "/.local/share/chipsite/site.db", true) }
        let home = accountHome().flatMap { $0.hasPrefix("/") ? $0 : nil } ?? ""
        return (home + "/.local/share/chipsite/site.db", true)
    }
}
