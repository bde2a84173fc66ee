import GRDB

/// The site file's schema. Migrations are append-only and named; a released
/// migration is never edited, a change is a new migration.
enum Schema {
    /// `PRAGMA application_id` of every chipsite site file: "CHIP".
    static let applicationID: Int32 = 0x4348_4950

    static var migrator: DatabaseMigrator {
        var m = DatabaseMigrator()
        m.registerMigration("2026-11-24 site, config, users") { db in
            try db.execute(
                sql: """
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
        m.registerMigration("2026-11-24 tickets, tallies, outbox") { db in
            try db.execute(
                sql: """
                    -- A tally ticket (protocol section 6): a one-time or reusable
                    -- invitation to a tally with one of our users, on given terms.
                    CREATE TABLE tickets (
                        token    TEXT PRIMARY KEY NOT NULL
                                 CHECK (length(token) = 32 AND token NOT GLOB '*[^0-9a-f]*'),
                        cuid     TEXT NOT NULL REFERENCES users(cuid) ON DELETE CASCADE,
                        expires  TEXT NOT NULL,
                        reuse    INTEGER NOT NULL DEFAULT 0 CHECK (reuse IN (0, 1)),
                        bound    TEXT,            -- requester CHAD (text form), when bound
                        terms    TEXT NOT NULL,   -- JSON: side, limits, memo
                        used     TEXT,            -- when a one-time token was consumed
                        created  TEXT NOT NULL
                    );

                    -- A tally with a partner on another site (protocol section 7).
                    CREATE TABLE tallies (
                        uuid          TEXT PRIMARY KEY NOT NULL CHECK (length(uuid) = 36),
                        cuid          TEXT NOT NULL REFERENCES users(cuid),
                        side          TEXT NOT NULL CHECK (side IN ('stock', 'foil')),
                        partner_agent TEXT NOT NULL CHECK (length(partner_agent) = 43),
                        partner_cuid  TEXT NOT NULL,
                        partner_host  TEXT NOT NULL,
                        partner_port  INTEGER NOT NULL CHECK (partner_port BETWEEN 1 AND 65535),
                        state         TEXT NOT NULL
                                      CHECK (state IN ('draft', 'P.draft', 'H.offer', 'P.offer', 'open', 'void', 'C.open', 'close')),
                        revision      INTEGER NOT NULL DEFAULT 1 CHECK (revision >= 1),
                        core          TEXT NOT NULL,   -- canonical JSON of the signed core
                        sign_stock    TEXT,
                        sign_foil     TEXT,
                        hash          TEXT,
                        token         TEXT,            -- the ticket this tally came from
                        balance       INTEGER NOT NULL DEFAULT 0,
                        created       TEXT NOT NULL,
                        updated       TEXT NOT NULL
                    );
                    CREATE INDEX tallies_partner ON tallies(partner_agent, state);
                    CREATE INDEX tallies_user ON tallies(cuid);

                    -- Messages to other sites not yet known to be applied there
                    -- (protocol section 5). Only the daemon sends them.
                    CREATE TABLE outbox (
                        id        INTEGER PRIMARY KEY AUTOINCREMENT,
                        agent     TEXT NOT NULL CHECK (length(agent) = 43),
                        host      TEXT NOT NULL,
                        port      INTEGER NOT NULL CHECK (port BETWEEN 1 AND 65535),
                        first_contact INTEGER NOT NULL DEFAULT 0 CHECK (first_contact IN (0, 1)),
                        topic     TEXT NOT NULL,   -- what the message is about (a tally uuid), for removal
                        message   TEXT NOT NULL,   -- canonical JSON
                        created   TEXT NOT NULL,
                        attempts  INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0)
                    );
                    CREATE INDEX outbox_agent ON outbox(agent, id);
                    CREATE INDEX outbox_topic ON outbox(topic);
                    """)
        }
        m.registerMigration("2026-11-25 admin: user lock") { db in
            try db.execute(
                sql: """
                    -- A locked user's tallies accept no new chits or offers (issue 7).
                    ALTER TABLE users ADD COLUMN locked INTEGER NOT NULL DEFAULT 0 CHECK (locked IN (0, 1));
                    """)
        }
        m.registerMigration("2026-11-25 chits and chains") { db in
            try db.execute(
                sql: """
                    -- Chits (protocol section 8): payments on a tally. A chit is
                    -- 'pending' until the foil's site has placed it in the chain,
                    -- then 'chained' at `idx`; 'refused' when the foil's site would
                    -- not chain it (a limit, a bad signature).
                    CREATE TABLE chits (
                        uuid       TEXT PRIMARY KEY NOT NULL CHECK (length(uuid) = 36),
                        tally      TEXT NOT NULL REFERENCES tallies(uuid),
                        by         TEXT NOT NULL CHECK (by IN ('stock', 'foil')),
                        type       TEXT NOT NULL CHECK (type IN ('tran', 'set')),
                        units      INTEGER NOT NULL CHECK (units > 0 AND units <= 1000000000000000),
                        core       TEXT NOT NULL,   -- canonical JSON of the signed chit core
                        sign       TEXT NOT NULL,
                        hash       TEXT NOT NULL,
                        state      TEXT NOT NULL CHECK (state IN ('pending', 'chained', 'refused')),
                        idx        INTEGER CHECK (idx IS NULL OR idx >= 1),
                        prior      TEXT,
                        chain_hash TEXT,
                        local      INTEGER NOT NULL CHECK (local IN (0, 1)),  -- made by one of our users
                        note       TEXT,
                        created    TEXT NOT NULL,
                        CHECK ((state = 'chained') = (idx IS NOT NULL)),
                        UNIQUE (tally, idx)
                    );
                    CREATE INDEX chits_tally_state ON chits(tally, state);

                    -- The chain of each tally: its length and last hash (the tally
                    -- hash while empty), and how far the partner confirmed it.
                    ALTER TABLE tallies ADD COLUMN chain_length INTEGER NOT NULL DEFAULT 0 CHECK (chain_length >= 0);
                    ALTER TABLE tallies ADD COLUMN chain_head TEXT;
                    ALTER TABLE tallies ADD COLUMN acked_length INTEGER NOT NULL DEFAULT 0 CHECK (acked_length >= 0);
                    """)
        }
        m.registerMigration("2026-11-25 invoices") { db in
            try db.execute(
                sql: """
                    -- An invoice asks the partner's user for a payment on a tally.
                    -- 'out': one of our users asked; 'in': the partner asks ours.
                    -- It is 'open' until paid (a chit whose ref names it) or refused.
                    CREATE TABLE invoices (
                        uuid      TEXT PRIMARY KEY NOT NULL CHECK (length(uuid) = 36),
                        tally     TEXT NOT NULL REFERENCES tallies(uuid),
                        direction TEXT NOT NULL CHECK (direction IN ('out', 'in')),
                        units     INTEGER NOT NULL CHECK (units > 0 AND units <= 1000000000000000),
                        memo      TEXT,
                        object    TEXT NOT NULL,   -- the invoice as sent or received (canonical JSON)
                        state     TEXT NOT NULL CHECK (state IN ('open', 'paid', 'refused')),
                        chit      TEXT,            -- the chit that paid it
                        note      TEXT,
                        created   TEXT NOT NULL,
                        updated   TEXT NOT NULL
                    );
                    CREATE INDEX invoices_tally ON invoices(tally, state);
                    """)
        }
        return m
    }

    /// Number of migrations this build knows: the schema version it writes.
    static var currentVersion: Int { migrator.migrations.count }
}
