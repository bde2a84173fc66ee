import GRDB

/// The site file's schema. Migrations are append-only and named; a released
/// migration is never edited, a change is a new migration.
enum Schema {
    /// `PRAGMA application_id` of every chipsite site file: "CHIP".
    static let applicationID: Int32 = 0x4348_4950

    static var migrator: DatabaseMigrator {
        var m = DatabaseMigrator()
        m.registerMigration("2026-11-24 site, config, users") { db in
            try db.execute(sql: """
                CREATE TABLE config (
                    key   TEXT PRIMARY KEY NOT NULL CHECK (length(key) BETWEEN 1 AND 64),
                    value TEXT NOT NULL
                ) WITHOUT ROWID;

                -- Present only when secrets are sealed: the Argon2id salt and
                -- cost of the key-encryption key (never the key itself).
                CREATE TABLE seal (
                    id       INTEGER PRIMARY KEY CHECK (id = 1),
                    salt     BLOB NOT NULL CHECK (length(salt) = 16),
                    opslimit INTEGER NOT NULL CHECK (opslimit > 0),
                    memlimit INTEGER NOT NULL CHECK (memlimit > 0)
                );

                CREATE TABLE site_key (
                    id      INTEGER PRIMARY KEY CHECK (id = 1),
                    public  BLOB NOT NULL CHECK (length(public) = 32),
                    secret  BLOB NOT NULL CHECK (length(secret) IN (33, 73)),
                    created TEXT NOT NULL
                );

                CREATE TABLE users (
                    cuid    TEXT PRIMARY KEY NOT NULL CHECK (length(cuid) BETWEEN 1 AND 64),
                    type    TEXT NOT NULL CHECK (type IN ('p', 'o')),
                    name    TEXT NOT NULL CHECK (length(name) > 0),
                    email   TEXT,
                    public  BLOB NOT NULL UNIQUE CHECK (length(public) = 32),
                    secret  BLOB NOT NULL CHECK (length(secret) IN (33, 73)),
                    cert    TEXT NOT NULL,
                    created TEXT NOT NULL
                );
                """)
        }
        return m
    }

    /// Number of migrations this build knows: the schema version it writes.
    static var currentVersion: Int { migrator.migrations.count }
}
