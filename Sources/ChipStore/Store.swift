import GRDB
import ChipModel
public enum StoreProbe { public static func open(_ p: String) throws -> String { let q = try DatabaseQueue(path: p); return try q.read { try String.fetchOne($0, sql: "select sqlite_version()") ?? "" } } }
