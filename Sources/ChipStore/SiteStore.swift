import ChipModel
import ChipProtocol
import Foundation
import GRDB

/// The site file: one SQLite database holding everything a site knows.
/// Opened with WAL, `synchronous=FULL`, foreign keys and a busy timeout.
/// Every change is one transaction, committed before it is reported.
public final class SiteStore: Sendable {
    /// How long a writer waits for another process's lock before giving up.
    public static let busyTimeout: TimeInterval = 5
    static let siteKeyLabel = "chipsite site key"
    static func userKeyLabel(_ cuid: CUID) -> String { "chipsite user key \(cuid.value)" }

    public let path: String
    /// One connection (a `DatabaseQueue`) for the CLI's short commands; for
    /// serve a `DatabasePool`: WAL lets readers run beside the writer, so
    /// reads go to the pool's read-only connections (at most `readers`)
    /// and never queue behind a write, and their prepared statements stay
    /// valid (a queue's read toggles `PRAGMA query_only`, and SQLite expires
    /// every prepared statement of the connection at each toggle).
    let database: any DatabaseWriter
    static let readers = 4

    private init(path: String, database: any DatabaseWriter) {
        self.path = path
        self.database = database
    }

    private static func configuration(readonly: Bool = false) -> Configuration {
        var c = Configuration()
        c.readonly = readonly
        c.foreignKeysEnabled = true
        c.busyMode = .timeout(busyTimeout)
        c.label = "site"
        c.maximumReaderCount = readers
        c.prepareDatabase { db in
            try db.execute(cached: "PRAGMA synchronous = FULL")
        }
        return c
    }

    // MARK: Creating

    /// Makes a new site file at `path` with a fresh site key. Refuses any
    /// existing file, whatever it holds, and leaves it untouched. On failure
    /// nothing is left behind.
    public static func create(
        at path: String, address: SiteAddress, passphrase: [UInt8]?, cost: PassphraseCost = .moderate,
        createDirectory: Bool = false
    ) throws -> SiteStore {
        if createDirectory {
            let dir = (path as NSString).deletingLastPathComponent
            if !dir.isEmpty {
                do {
                    try FileManager.default.createDirectory(
                        atPath: dir, withIntermediateDirectories: true,
                        attributes: [.posixPermissions: 0o700])
                } catch {
                    throw StoreError.cannotCreate(path: path, reason: "cannot create directory \(dir)")
                }
            }
        }
        // O_EXCL: the file is ours alone from the first instant, with mode 0600
        // whatever the umask, and an existing file is never opened for writing.
        let fd = Glibc.open(path, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            let code = errno
            if code == EEXIST { throw StoreError.siteExists(path: path) }
            throw StoreError.cannotCreate(path: path, reason: String(cString: strerror(code)))
        }
        fchmod(fd, 0o600)
        Glibc.close(fd)
        for stale in ["-wal", "-shm", "-journal"] where FileManager.default.fileExists(atPath: path + stale) {
            unlink(path)
            throw StoreError.cannotCreate(path: path, reason: "a stale \(path + stale) is in the way")
        }

        do {
            let queue = try DatabaseQueue(path: path, configuration: configuration())
            // application_id and WAL are set outside any transaction; both persist in the file.
            try queue.writeWithoutTransaction { db in
                try db.execute(sql: "PRAGMA application_id = \(Schema.applicationID)")
                try db.execute(cached: "PRAGMA journal_mode = WAL")
            }
            try Schema.migrator.migrate(queue)
            let key = SigningKey.generate()
            let now = Self.now()
            let salt = Crypto.randomBytes(SealingKey.saltLength)
            let secret = try sealedSeed(of: key, passphrase: passphrase, salt: salt, cost: cost)
            let publicKey = key.publicKey
            try queue.write { db in
                if passphrase != nil {
                    try db.execute(
                        cached: "INSERT INTO seal (id, salt, opslimit, memlimit) VALUES (1, ?, ?, ?)",
                        arguments: [Data(salt), Int64(cost.opsLimit), Int64(cost.memLimit)])
                }
                try db.execute(
                    cached: "INSERT INTO site_key (id, public, secret, created) VALUES (1, ?, ?, ?)",
                    arguments: [Data(publicKey), Data(secret), now])
                try setConfig(db, .siteHost, address.host)
                try setConfig(db, .sitePort, String(address.port))
            }
            return SiteStore(path: path, database: queue)
        } catch {
            // We made the file; a half-made site must not be left behind.
            for suffix in ["", "-wal", "-shm", "-journal"] { unlink(path + suffix) }
            throw StoreError.from(error, path: path)
        }
    }

    /// The stored form of `key`'s seed: sealed under a key derived from
    /// `passphrase`, or plain when there is none.
    private static func sealedSeed(of key: SigningKey, passphrase: [UInt8]?, salt: [UInt8], cost: PassphraseCost) throws -> [UInt8] {
        var seed = key.exportSeed()
        defer { Crypto.wipe(&seed) }
        guard let passphrase else { return StoredSecret.plain(seed) }
        let kek = try SealingKey(passphrase: passphrase, salt: salt, cost: cost)
        return StoredSecret.seal(seed, with: kek, label: siteKeyLabel)
    }

    // MARK: Opening

    /// Opens an existing site file. A missing file, a file that is not
    /// SQLite, an SQLite file that is not a chipsite site, or one from a newer
    /// chipsite is refused without writing anything to it.
    ///
    /// An older file is migrated on open; with `migrate: false` it is left as
    /// it is until `migrate()` (doctor checks its integrity first).
    ///
    /// `concurrentReads` (serve): a pool of read connections beside the
    /// writer. Opening a pool may write to the file (GRDB makes sure its
    /// `-wal` is not empty), so the CLI, whose refused commands leave the
    /// file as it was, opens one connection.
    public static func open(at path: String, migrate: Bool = true, concurrentReads: Bool = false) throws -> SiteStore {
        var st = stat()
        guard stat(path, &st) == 0 else {
            if errno == ENOENT { throw StoreError.noSite(path: path) }
            throw StoreError.cannotOpen(path: path, reason: String(cString: strerror(errno)))
        }
        guard (st.st_mode & S_IFMT) == S_IFREG else { throw StoreError.cannotOpen(path: path, reason: "not a regular file") }
        guard access(path, R_OK) == 0 else { throw StoreError.cannotOpen(path: path, reason: "permission denied") }
        do {
            // Reads only, until we know the file is ours (for a pool on a
            // read-only connection first: opening a pool writes).
            let queue: any DatabaseWriter =
                concurrentReads
                ? try DatabaseQueue(path: path, configuration: configuration(readonly: true))
                : try DatabaseQueue(path: path, configuration: configuration())
            let (appID, superseded) = try queue.read { db in
                (try Int32.fetchOne(db, sql: "PRAGMA application_id") ?? 0, try Schema.migrator.hasBeenSuperseded(db))
            }
            guard appID == Schema.applicationID else { throw StoreError.notASite(path: path) }
            guard !superseded else { throw StoreError.newerSchema(path: path) }
            let database: any DatabaseWriter
            if concurrentReads {
                try queue.close()
                let pool = try DatabasePool(path: path, configuration: configuration())
                // The pool sets `synchronous = NORMAL` on its writer after
                // `prepareDatabase` ran: every commit is durable again.
                try pool.writeWithoutTransaction { db in try db.execute(cached: "PRAGMA synchronous = FULL") }
                database = pool
            } else {
                database = queue
            }
            if migrate { try Schema.migrator.migrate(database) }
            return SiteStore(path: path, database: database)
        } catch {
            throw StoreError.from(error, path: path)
        }
    }

    /// Applies the migrations this file lacks; returns the schema version
    /// before and after (equal when it was current).
    @discardableResult
    public func migrate() throws -> (from: Int, to: Int) {
        do {
            let before = try database.read { db in try Schema.migrator.appliedIdentifiers(db).count }
            try Schema.migrator.migrate(database)
            return (before, try database.read { db in try Schema.migrator.appliedIdentifiers(db).count })
        } catch {
            throw StoreError.from(error, path: path)
        }
    }

    // MARK: Reading

    static func now() -> String {
        Timestamp.format(millisecondsSince1970: Int64((Date().timeIntervalSince1970 * 1000).rounded(.down)))
    }

    private func guarded<T>(_ body: () throws -> T) throws -> T {
        do { return try body() } catch { throw StoreError.from(error, path: path) }
    }

    /// The site's agent id.
    public func agent() throws -> AgentID {
        try guarded { try database.read { db in try Self.agent(db) } }
    }

    static func agent(_ db: Database) throws -> AgentID {
        guard let pk = try Data.fetchOne(cached: db, sql: "SELECT public FROM site_key WHERE id = 1") else {
            throw StoreError.damaged("no site key")
        }
        return try AgentID(publicKey: Array(pk))
    }

    static func address(_ db: Database) throws -> SiteAddress {
        guard let host = try config(db, .siteHost), let portText = try config(db, .sitePort) else {
            throw StoreError.damaged("site.host or site.port is missing")
        }
        for (key, value) in [(ConfigKey.siteHost, host), (.sitePort, portText)] {
            do { try key.validate(value) } catch { throw StoreError.badSetting(key: key.name, reason: error.description) }
        }
        guard let port = Int(portText) else { throw StoreError.badSetting(key: ConfigKey.sitePort.name, reason: "not a number") }
        return try SiteAddress(host: host, port: port)
    }

    static func config(_ db: Database, _ key: ConfigKey) throws -> String? {
        try String.fetchOne(cached: db, sql: "SELECT value FROM config WHERE key = ?", arguments: [key.name])
    }

    static func setConfig(_ db: Database, _ key: ConfigKey, _ value: String) throws {
        try key.validate(value)
        try db.execute(
            cached: "INSERT INTO config (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            arguments: [key.name, value])
    }

    /// Whether secrets in this file are sealed with a passphrase.
    public func isSealed() throws -> Bool {
        try guarded { try database.read { db in try Self.sealCost(db) != nil } }
    }

    static func sealCost(_ db: Database) throws -> (salt: [UInt8], cost: PassphraseCost)? {
        guard let row = try Row.fetchOne(cached: db, sql: "SELECT salt, opslimit, memlimit FROM seal WHERE id = 1") else { return nil }
        let salt: Data = row["salt"]
        let ops: Int64 = row["opslimit"]
        let mem: Int64 = row["memlimit"]
        return (Array(salt), PassphraseCost(opsLimit: UInt64(ops), memLimit: UInt64(mem)))
    }

    /// Everything `chipsite status` shows.
    public func status() throws -> SiteStatus {
        try guarded {
            try database.read { db in
                SiteStatus(
                    path: path, agent: try Self.agent(db), address: try Self.address(db),
                    schemaVersion: try Schema.migrator.appliedIdentifiers(db).count,
                    sealed: try Self.sealCost(db) != nil,
                    users: try Self.count(db, "users"), tickets: try Self.count(db, "tickets"), tallies: try Self.count(db, "tallies"))
            }
        }
    }

    /// Rows in `table`, or 0 while a later migration has not made it yet.
    static func count(_ db: Database, _ table: String) throws -> Int {
        guard try db.tableExists(table) else { return 0 }
        return try Int.fetchOne(cached: db, sql: "SELECT count(*) FROM \(table)") ?? 0
    }

    /// Opens a stored seed into a signing key; a failed seal is a wrong passphrase.
    static func signingKey(from stored: [UInt8], sealingKey: SealingKey?, label: String) throws -> SigningKey {
        var seed: [UInt8]
        do {
            seed = try StoredSecret.open(stored, with: sealingKey, label: label)
        } catch {
            throw StoredSecret.isSealed(stored) ? StoreError.wrongPassphrase : StoreError.damaged("\(label): \(error)")
        }
        defer { Crypto.wipe(&seed) }
        return try SigningKey(seed: seed)
    }

    /// Derives the key-encryption key from `passphrase` and proves it by
    /// opening the site key. Nil when the site is not sealed.
    public func sealingKey(passphrase: [UInt8]) throws -> SealingKey? {
        let (seal, secret) = try guarded {
            try database.read { db in
                (try Self.sealCost(db), try Data.fetchOne(cached: db, sql: "SELECT secret FROM site_key WHERE id = 1"))
            }
        }
        guard let seal else { return nil }
        guard let secret else { throw StoreError.damaged("no site key") }
        let kek = try SealingKey(passphrase: passphrase, salt: seal.salt, cost: seal.cost)
        do {
            var seed = try StoredSecret.open(Array(secret), with: kek, label: Self.siteKeyLabel)
            Crypto.wipe(&seed)
        } catch {
            throw StoreError.wrongPassphrase
        }
        return kek
    }

    /// The site's signing key, opened with `sealingKey` when sealed.
    public func siteKey(sealingKey: SealingKey?) throws -> SigningKey {
        let secret = try guarded {
            try database.read { db in try Data.fetchOne(cached: db, sql: "SELECT secret FROM site_key WHERE id = 1") }
        }
        guard let secret else { throw StoreError.damaged("no site key") }
        let stored = Array(secret)
        if StoredSecret.isSealed(stored), sealingKey == nil { throw StoreError.passphraseNeeded }
        return try Self.signingKey(from: stored, sealingKey: sealingKey, label: Self.siteKeyLabel)
    }
}
