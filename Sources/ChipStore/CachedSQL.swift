import GRDB

// The store's hot statements are prepared once per connection and kept
// (GRDB's statement cache), not parsed by SQLite and authorized by GRDB on
// every call: a message runs the same few dozen statements each time
// (issue 15's profile: preparing them was about a tenth of serve's CPU).
// Only fixed SQL goes through here; SQL built with a variable number of
// placeholders is prepared each time, so the cache cannot grow without bound.
// The fetches below run their statement to the end before they return, so a
// cached statement is never in use twice at once.

extension Row {
    static func fetchOne(cached db: Database, sql: String, arguments: StatementArguments = StatementArguments()) throws -> Row? {
        try fetchOne(db.cachedStatement(sql: sql), arguments: arguments)
    }

    static func fetchAll(cached db: Database, sql: String, arguments: StatementArguments = StatementArguments()) throws -> [Row] {
        try fetchAll(db.cachedStatement(sql: sql), arguments: arguments)
    }
}

extension DatabaseValueConvertible where Self: StatementColumnConvertible {
    static func fetchOne(cached db: Database, sql: String, arguments: StatementArguments = StatementArguments()) throws -> Self? {
        try fetchOne(db.cachedStatement(sql: sql), arguments: arguments)
    }

    static func fetchAll(cached db: Database, sql: String, arguments: StatementArguments = StatementArguments()) throws -> [Self] {
        try fetchAll(db.cachedStatement(sql: sql), arguments: arguments)
    }
}

extension Database {
    /// Runs one fixed statement from the cache.
    func execute(cached sql: String, arguments: StatementArguments = StatementArguments()) throws {
        try cachedStatement(sql: sql).execute(arguments: arguments)
    }
}
