import ArgumentParser
import ChipModel
import ChipProtocol
import ChipStore

#if canImport(Glibc)
    import Glibc
#endif

/// Where the site file is.
struct SiteOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("Path of the site file.", valueName: "path"))
    var db: String?

    /// The resolved path and whether it is the default location.
    func location() -> (path: String, isDefault: Bool) {
        SiteLocation.resolve(
            explicit: db, environment: Environment.all, isRoot: geteuid() == 0,
            accountHome: { getpwuid(getuid()).flatMap { $0.pointee.pw_dir.map { String(cString: $0) } } })
    }

    /// `concurrentReads`: serve's pool of read connections (SiteStore.open).
    func open(concurrentReads: Bool = false) throws -> SiteStore {
        try SiteStore.open(at: location().path, concurrentReads: concurrentReads)
    }
}

/// How to get the passphrase of a sealed site.
struct PassphraseOptions: ParsableArguments {
    static let environmentVariable = "CHIPSITE_PASSPHRASE_FILE"

    @Option(
        name: .long,
        help: ArgumentHelp(
            "Read the passphrase from this file (first line). Else $CHIPSITE_PASSPHRASE_FILE, else a prompt on a terminal.",
            valueName: "file"))
    var passphraseFile: String?

    /// The passphrase from the file option or the environment, nil when
    /// neither is given.
    func fromFile() throws -> [UInt8]? {
        let file = passphraseFile ?? Environment.all[Self.environmentVariable].flatMap { $0.isEmpty ? nil : $0 }
        guard let file else { return nil }
        return try Passphrase.read(file: file)
    }

    /// The passphrase from a file, else asked on the terminal, else nil.
    func obtain(confirm: Bool = false) throws -> [UInt8]? {
        if let p = try fromFile() { return p }
        guard Passphrase.hasTerminal else { return nil }
        return try Passphrase.prompt(confirm: confirm)
    }

    /// The sealing key of `store` when it is sealed (asking for the
    /// passphrase as needed), nil when it is not sealed.
    func sealingKey(for store: SiteStore) throws -> SealingKey? {
        guard try store.isSealed() else { return nil }
        guard var passphrase = try obtain() else { throw StoreError.passphraseNeeded }
        defer { Crypto.wipe(&passphrase) }
        return try store.sealingKey(passphrase: passphrase)
    }
}

/// Output selection shared by commands that show things.
struct OutputOptions: ParsableArguments {
    @Flag(name: .long, help: "Print JSON with stable field names (see doc/cli.md).")
    var json = false
}

enum Environment {
    static var all: [String: String] {
        var env = [String: String]()
        var p = environ
        while let entry = p.pointee {
            let s = String(cString: entry)
            if let eq = s.firstIndex(of: "=") { env[String(s[..<eq])] = String(s[s.index(after: eq)...]) }
            p += 1
        }
        return env
    }
}

/// Checks a free-text note from the command line (a memo, a reason): at most
/// `max` characters and no control characters, which could forge lines in a
/// partner's terminal or log.
func checkNote(_ text: String?, option: String, max: Int) throws {
    guard let text else { return }
    // Bytes too: a character may carry any number of combining marks.
    if text.count > max || text.utf8.count > max * 4 || text.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) {
        throw CLIError("\(option) must be at most \(max) characters (\(max * 4) bytes) without control characters")
    }
}
