import ChipModel
import GRDB

/// Every read and write of the site file goes through these: errors come
/// out as `StoreError`s that name the file.
extension SiteStore {
    func guardedRead<T: Sendable>(_ body: @Sendable (Database) throws -> T) throws -> T {
        do { return try dbQueue.read(body) } catch { throw StoreError.from(error, path: path) }
    }

    func guardedWrite<T: Sendable>(_ body: @Sendable (Database) throws -> T) throws -> T {
        do { return try dbQueue.write(body) } catch { throw StoreError.from(error, path: path) }
    }

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
            try Row.fetchAll(db, sql: "SELECT * FROM \(table.rawValue) WHERE uuid LIKE ? || '%' LIMIT 2", arguments: [lowered]).compactMap(record)
        }
        guard let first = rows.first else { throw ModelError.invalid("no \(table.noun) \(lowered)") }
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
