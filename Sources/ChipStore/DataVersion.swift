import GRDB

extension SiteStore {
    /// SQLite's `PRAGMA data_version` on this store's connection. It changes
    /// when another connection (a CLI command, another process) has committed
    /// to the file since this connection last looked, never for this
    /// connection's own commits; reading it touches no page. `serve` reads it
    /// when the file watch sees a write, to wake only for others' commits.
    public func dataVersion() throws -> Int64 {
        // On the writer: a reader's data_version also moves for our own commits.
        try database.writeWithoutTransaction { db in try Int64.fetchOne(cached: db, sql: "PRAGMA data_version") ?? 0 }
    }

    /// Rows this connection has changed since it was opened (SQLite's
    /// `total_changes()`): the engine compares it before and after a received
    /// message to tell whether the message changed anything.
    public func changeCount() throws -> Int {
        try database.writeWithoutTransaction { db in db.totalChangesCount }
    }
}
