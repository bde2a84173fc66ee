import ChipModel
import GRDB
import Synchronization

/// Every read and write of the site file goes through these: errors come
/// out as `StoreError`s that name the file.
extension SiteStore {
    func guardedRead<T: Sendable>(_ body: @Sendable (Database) throws -> T) throws -> T {
        do { return try database.read(body) } catch { throw StoreError.from(error, path: path) }
    }

    func guardedWrite<T: Sendable>(_ body: @Sendable (Database) throws -> T) throws -> T {
        let rider = Self.rider
        do {
            return try database.write { db in
                let result = try body(db)
                try rider?.ride(db, result)
                return result
            }
        } catch { throw StoreError.from(error, path: path) }
    }

    /// Work a caller adds to the next write transaction of the operation it
    /// runs (``TransactionRider``): set with `SiteStore.$rider.withValue`.
    @TaskLocal public static var rider: TransactionRider?

    /// The one row of `table` whose uuid is `id` or starts with it (at least
    /// 4 characters), mapped by `record`.
    func byUUIDPrefix<T: Sendable>(
        _ id: String, table: UUIDTable,
        record: @escaping @Sendable (Row) throws -> T?
    ) throws -> T {
        let lowered = id.lowercased()
        guard lowered.utf8.count >= 4, lowered.utf8.count <= 36,
            lowered.utf8.allSatisfy({ (0x30...0x39).contains($0) || (0x61...0x66).contains($0) || $0 == UInt8(ascii: "-") })
        else { throw ModelError.invalid("\(table.article) \(table.noun) id is a uuid or at least its first 4 characters") }
        let rows = try guardedRead { db in
            // A whole uuid is looked up by the primary key; a prefix scans.
            lowered.utf8.count == 36
                ? try Row.fetchAll(cached: db, sql: "SELECT * FROM \(table.rawValue) WHERE uuid = ?", arguments: [lowered]).compactMap(record)
                : try Row.fetchAll(cached: db, sql: "SELECT * FROM \(table.rawValue) WHERE uuid LIKE ? || '%' LIMIT 2", arguments: [lowered])
                    .compactMap(record)
        }
        guard let first = rows.first else { throw StoreError.notFound("no \(table.noun) \(lowered)") }
        guard rows.count == 1 else { throw ModelError.invalid("\(lowered) matches more than one \(table.noun); give more of its id") }
        return first
    }
}

/// The tables whose rows are named by uuid (and so by a uuid prefix).
enum UUIDTable: String {
    case tallies, invoices

    var noun: String { self == .tallies ? "tally" : "invoice" }
    var article: String { self == .tallies ? "a" : "an" }
}

/// Work that commits in the same transaction as an operation's own write:
/// the user port remembers a command's reply with the change it made (10.5),
/// so a retry after a crash finds either both or neither. It rides the first
/// write transaction the operation opens, once, and sees its result.
public final class TransactionRider: Sendable {
    private let body: @Sendable (Database, any Sendable) throws -> Void
    private let done = Mutex(false)

    public init(_ body: @escaping @Sendable (Database, any Sendable) throws -> Void) {
        self.body = body
    }

    /// Whether it rode a transaction (that then committed, unless it threw).
    public var rode: Bool { done.withLock { $0 } }

    func ride(_ db: Database, _ result: any Sendable) throws {
        guard
            done.withLock({ d in
                defer { d = true }; return !d
            })
        else { return }
        do { try body(db, result) } catch {
            done.withLock { $0 = false }
            throw error
        }
    }
}
