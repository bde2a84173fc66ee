import ChipModel
import ChipProtocol
import GRDB

/// Why the site file could not be used. Each text is one line, fit to follow
/// `chipsite: error: `, and says what to do where there is something to do.
public enum StoreError: Error, Equatable, Sendable, CustomStringConvertible {
    case noSite(path: String)
    case siteExists(path: String)
    case notSQLite(path: String)
    case notASite(path: String)
    case newerSchema(path: String)
    case busy(path: String)
    case cannotCreate(path: String, reason: String)
    case cannotOpen(path: String, reason: String)
    case passphraseNeeded
    case wrongPassphrase
    case userExists(String)
    case unknownUser(String)
    /// The user has 16 devices (10.1): revoke one first.
    case deviceLimit(String)
    case unknownDevice(user: String, device: String)
    /// The user's key is held by its device (10.7): the site signs nothing for it.
    case deviceCustody(String)
    /// The user is locked or the site locked down (10.4 `locked`); the text says how to lift it.
    case locked(String)
    /// A payment or setting that passes a tally's limit (10.5 `limit`); the text says how much fits.
    case overLimit(String)
    /// No tally, invoice, lift or user by that id (10.5 `not_found`).
    case notFound(String)
    case damaged(String)
    case badSetting(key: String, reason: String)
    case database(String)

    public var description: String {
        switch self {
        case .noSite(let p): return "no site at \(p) (create one with `chipsite init`, or give --db)"
        case .siteExists(let p): return "\(p) already exists; refusing to touch it (give another --db to make a new site)"
        case .notSQLite(let p): return "\(p) is not an SQLite database"
        case .notASite(let p): return "\(p) is an SQLite database but not a chipsite site file"
        case .newerSchema(let p): return "\(p) was written by a newer chipsite; upgrade chipsite to use it"
        case .busy(let p): return "\(p) is locked by another process; try again"
        case .cannotCreate(let p, let why): return "cannot create \(p): \(why)"
        case .cannotOpen(let p, let why): return "cannot open \(p): \(why)"
        case .passphraseNeeded:
            return "the site key is sealed: give --passphrase-file, set CHIPSITE_PASSPHRASE_FILE, or run on a terminal to be asked"
        case .wrongPassphrase: return "wrong passphrase"
        case .userExists(let c): return "user \(c) already exists"
        case .unknownUser(let c): return "no user \(c) on this site"
        case .deviceLimit(let c):
            return "user \(c) has \(UserPortDefaults.maxDevicesPerUser) devices; revoke one first (`chipsite user device revoke \(c) DEVICE`)"
        case .unknownDevice(let c, let d): return "user \(c) has no device \(d) (or it is revoked already)"
        case .deviceCustody(let c): return "user \(c) holds its own signing key (custody device): the site signs nothing for it"
        case .locked(let why), .overLimit(let why), .notFound(let why): return why
        case .damaged(let why): return "the site file is damaged: \(why)"
        case .badSetting(let key, let why):
            return
                "the site file holds a bad value for \(key) (\(why)); fix it with `chipsite config set \(key) VALUE` or `chipsite config unset \(key)`"
        case .database(let why): return "database error: \(why)"
        }
    }

    /// The user port's code for this error (10.5): what a device is told.
    /// The site's own failures (its file, its key, its settings) are `internal`.
    public var userErrorCode: UserErrorCode {
        switch self {
        case .unknownUser, .unknownDevice, .notFound: return .notFound
        case .deviceLimit, .overLimit: return .limit
        case .deviceCustody: return .state
        case .locked: return .locked
        case .noSite, .siteExists, .notSQLite, .notASite, .newerSchema, .busy, .cannotCreate, .cannotOpen, .passphraseNeeded,
            .wrongPassphrase, .userExists, .damaged, .badSetting, .database:
            return .internal
        }
    }

    /// Maps what SQLite or GRDB reported to a StoreError about `path`.
    static func from(_ error: any Error, path: String) -> any Error {
        if error is StoreError || error is ModelError || error is UserError { return error }
        guard let db = error as? DatabaseError else { return StoreError.database(String(describing: error)) }
        switch db.resultCode {
        case .SQLITE_NOTADB: return StoreError.notSQLite(path: path)
        case .SQLITE_BUSY, .SQLITE_LOCKED: return StoreError.busy(path: path)
        case .SQLITE_CANTOPEN: return StoreError.cannotOpen(path: path, reason: db.message ?? "unable to open")
        case .SQLITE_READONLY: return StoreError.cannotOpen(path: path, reason: "the file or its directory is read-only")
        case .SQLITE_CORRUPT: return StoreError.damaged(db.message ?? "corrupt")
        case .SQLITE_FULL: return StoreError.database("the disk is full")
        default: return StoreError.database(db.message ?? "\(db.resultCode)")
        }
    }
}
