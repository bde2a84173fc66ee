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
        m.registerMigration("2026-12-01 lifts") { db in
            // Lift chits join the chits table (they are chained like any
            // chit once good), so the table is rebuilt with its new CHECKs:
            // SQLite cannot alter a CHECK in place. Foreign keys are checked
            // at the end of the migration (GRDB's deferred checks).
            try db.execute(
                sql: """
                    -- Chits (protocol sections 8 and 9.5). A `tran` or `set` chit is
                    -- 'pending' until the foil's site places it in the chain, then
                    -- 'chained' at `idx`, or 'refused'. A `lift` chit (its `lift`
                    -- is the header hash H) is 'pend' (reserved, outside the chain),
                    -- then 'good' until chained (the stock's side waits for the foil's
                    -- `upd`), or 'void' (kept as evidence; chained only by a later
                    -- good decision).
                    CREATE TABLE chits_new (
                        uuid       TEXT PRIMARY KEY NOT NULL CHECK (length(uuid) = 36),
                        tally      TEXT NOT NULL REFERENCES tallies(uuid),
                        by         TEXT NOT NULL CHECK (by IN ('stock', 'foil')),
                        type       TEXT NOT NULL CHECK (type IN ('tran', 'set', 'lift')),
                        units      INTEGER NOT NULL CHECK (units > 0 AND units <= 1000000000000000),
                        core       TEXT NOT NULL,   -- canonical JSON of the signed chit core
                        sign       TEXT NOT NULL,
                        hash       TEXT NOT NULL,
                        state      TEXT NOT NULL CHECK (state IN ('pending', 'chained', 'refused', 'pend', 'good', 'void')),
                        idx        INTEGER CHECK (idx IS NULL OR idx >= 1),
                        prior      TEXT,
                        chain_hash TEXT,
                        local      INTEGER NOT NULL CHECK (local IN (0, 1)),  -- made by this site (a user, or its agent for a lift)
                        note       TEXT,
                        created    TEXT NOT NULL,
                        lift       TEXT CHECK (lift IS NULL OR length(lift) = 43),  -- H, for a lift chit
                        CHECK ((state = 'chained') = (idx IS NOT NULL)),
                        CHECK ((type = 'lift') = (lift IS NOT NULL)),
                        CHECK (type = 'lift' OR state IN ('pending', 'chained', 'refused')),
                        CHECK (type <> 'lift' OR state IN ('pend', 'good', 'void', 'chained')),
                        UNIQUE (tally, idx)
                    );
                    INSERT INTO chits_new (uuid, tally, by, type, units, core, sign, hash, state, idx, prior, chain_hash, local, note, created)
                        SELECT uuid, tally, by, type, units, core, sign, hash, state, idx, prior, chain_hash, local, note, created FROM chits;
                    DROP TABLE chits;
                    ALTER TABLE chits_new RENAME TO chits;
                    CREATE INDEX chits_tally_state ON chits(tally, state);
                    CREATE INDEX chits_lift ON chits(lift) WHERE lift IS NOT NULL;

                    -- A tally half's trading variables (9.2), set by its user (or the
                    -- admin for a site-custody user), never sent to the partner.
                    -- Integer milliCHIPs and parts per million; NULL bound: the
                    -- half's limit in the tally terms.
                    ALTER TABLE tallies ADD COLUMN trade_target INTEGER NOT NULL DEFAULT 0 CHECK (trade_target >= 0);
                    ALTER TABLE tallies ADD COLUMN trade_bound INTEGER CHECK (trade_bound IS NULL OR trade_bound >= trade_target);
                    ALTER TABLE tallies ADD COLUMN trade_reward INTEGER NOT NULL DEFAULT 0
                        CHECK (trade_reward BETWEEN -1000000 AND 1000000);
                    ALTER TABLE tallies ADD COLUMN trade_clutch INTEGER NOT NULL DEFAULT 0
                        CHECK (trade_clutch BETWEEN -1000000 AND 1000000 AND trade_reward + trade_clutch >= 0);

                    -- Every lift header this site holds (9.5), by H: from its own
                    -- start, a promise, or a chain entry. Kept at least as long as
                    -- the referee keeps decisions (9.7: 400 days past the deadline).
                    CREATE TABLE lift_headers (
                        lift     TEXT PRIMARY KEY NOT NULL CHECK (length(lift) = 43),  -- H
                        header   TEXT NOT NULL,   -- canonical JSON, with sign and hash
                        kind     TEXT NOT NULL CHECK (kind IN ('circ', 'line')),
                        units    INTEGER NOT NULL CHECK (units > 0 AND units <= 1000000000000000),
                        deadline TEXT NOT NULL,
                        referee  TEXT NOT NULL CHECK (length(referee) = 43),  -- R's agent
                        created  TEXT NOT NULL
                    ) WITHOUT ROWID;

                    -- This site's record of a lift (9.9): originator draft/seek/exec/
                    -- call/good/void; relay and terminus part/good/void.
                    CREATE TABLE lifts (
                        lift     TEXT PRIMARY KEY NOT NULL REFERENCES lift_headers(lift),
                        role     TEXT NOT NULL CHECK (role IN ('origin', 'relay', 'terminus')),
                        state    TEXT NOT NULL CHECK (state IN ('draft', 'seek', 'exec', 'call', 'part', 'good', 'void')),
                        hop      INTEGER CHECK (hop IS NULL OR hop BETWEEN 0 AND 7),  -- the promise's hop (relay, terminus)
                        answer   TEXT,            -- 'ack' or a refusal reason: the stored answer to that promise
                        call     TEXT CHECK (call IS NULL OR call IN ('commit', 'abort')),  -- what O called
                        internal TEXT NOT NULL DEFAULT '[]',  -- JSON array: the segment's internal tallies
                        outgoing TEXT,            -- the outgoing foreign tally (origin, relay)
                        promise_answer TEXT,      -- the answer to our promise on hop+1: 'ack' or a refusal reason
                        origin_secret BLOB CHECK (origin_secret IS NULL OR length(origin_secret) IN (33, 73)),
                                                  -- O's origin key, sealed like the agent key; NULL once final
                        queries  INTEGER NOT NULL DEFAULT 0 CHECK (queries >= 0),  -- timeout queries sent (9.7)
                        created  TEXT NOT NULL,
                        updated  TEXT NOT NULL,
                        CHECK ((role = 'origin') = (hop IS NULL)),
                        CHECK (call IS NULL OR role = 'origin')
                    ) WITHOUT ROWID;
                    CREATE INDEX lifts_state ON lifts(state);

                    -- Decisions this site took for a lift (9.7): the one applied
                    -- (applied = 1) and, after an equivocation, the other as proof.
                    CREATE TABLE lift_decisions (
                        lift     TEXT NOT NULL REFERENCES lift_headers(lift),
                        result   TEXT NOT NULL CHECK (result IN ('good', 'void')),
                        decision TEXT NOT NULL,   -- canonical JSON {"decision","sign"}, as received
                        applied  INTEGER NOT NULL CHECK (applied IN (0, 1)),
                        passed   INTEGER NOT NULL DEFAULT 0 CHECK (passed IN (0, 1)),  -- queued on to the neighbours (9.7)
                        created  TEXT NOT NULL,
                        PRIMARY KEY (lift, result)
                    ) WITHOUT ROWID;

                    -- The referee's one decision per lift (9.7): written once (the
                    -- transaction commits with synchronous=FULL before any answer
                    -- carries it), never changed, kept 400 days past the deadline.
                    CREATE TABLE referee_decisions (
                        lift     TEXT PRIMARY KEY NOT NULL CHECK (length(lift) = 43),
                        result   TEXT NOT NULL CHECK (result IN ('good', 'void')),
                        decision TEXT NOT NULL,   -- canonical JSON {"decision","sign"}: the bytes every answer sends
                        deadline TEXT NOT NULL,
                        created  TEXT NOT NULL
                    ) WITHOUT ROWID;

                    -- What a person asked serve to do about lifts (only the daemon
                    -- speaks to the network; the CLI writes intent and pokes it):
                    -- 'clear' looks for circular lifts now, 'pay' runs a linear lift.
                    CREATE TABLE lift_requests (
                        id      INTEGER PRIMARY KEY AUTOINCREMENT,
                        kind    TEXT NOT NULL CHECK (kind IN ('clear', 'pay')),
                        cuid    TEXT,             -- the user: clear (optional), pay (the payor)
                        params  TEXT NOT NULL DEFAULT '{}',  -- JSON (pay: the payee, units, memo)
                        state   TEXT NOT NULL CHECK (state IN ('new', 'started', 'done')),
                        lifts   TEXT NOT NULL DEFAULT '[]',  -- JSON array: the H of each lift it started
                        note    TEXT,             -- why it ended with no lift
                        created TEXT NOT NULL,
                        updated TEXT NOT NULL
                    );

                    -- Referees caught signing both results for one lift: off the
                    -- accept list whatever `lift.referees` says (9.7).
                    CREATE TABLE referees_dropped (
                        agent   TEXT PRIMARY KEY NOT NULL CHECK (length(agent) = 43),
                        lift    TEXT NOT NULL,    -- the lift that proved it
                        created TEXT NOT NULL
                    ) WITHOUT ROWID;
                    """)
        }
        m.registerMigration("2026-12-02 user port") { db in
            // The user port (protocol section 10). Times in these tables are
            // integer ms since 1970 (the port compares them on every request).
            try db.execute(
                sql: """
                    -- Who holds the user's signing key (10.7): 'site' (every user made
                    -- before the user port, and `user add`'s default) or 'device'.
                    ALTER TABLE users ADD COLUMN custody TEXT NOT NULL DEFAULT 'site' CHECK (custody IN ('site', 'device'));

                    -- A user ticket (10.2): one-time, for one user. Only the token's
                    -- SHA-256 is kept. 'open' until a registration finds it ('used',
                    -- burned whatever the registration comes to) or a newer ticket of
                    -- the user replaces it ('revoked').
                    CREATE TABLE user_tickets (
                        token_hash TEXT PRIMARY KEY NOT NULL
                                   CHECK (length(token_hash) = 64 AND token_hash NOT GLOB '*[^0-9a-f]*'),
                        cuid       TEXT NOT NULL REFERENCES users(cuid),
                        scopes     TEXT NOT NULL,   -- canonical JSON array of scope names, in scope order
                        created    INTEGER NOT NULL,
                        expires    INTEGER NOT NULL CHECK (expires > created),
                        state      TEXT NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'used', 'revoked'))
                    ) WITHOUT ROWID;
                    CREATE INDEX user_tickets_user ON user_tickets(cuid, state);

                    -- A user's registered device (10.1, 10.3): its X25519 key is its
                    -- Noise static key; the id is that key in base64url. A revoked
                    -- device keeps its row, so its key can never register again.
                    CREATE TABLE devices (
                        id        TEXT PRIMARY KEY NOT NULL CHECK (length(id) = 43),
                        cuid      TEXT NOT NULL REFERENCES users(cuid),
                        public    BLOB NOT NULL UNIQUE CHECK (length(public) = 32),
                        name      TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 64),
                        scopes    TEXT NOT NULL,    -- canonical JSON array, from the ticket
                        created   INTEGER NOT NULL,
                        last_seen INTEGER,          -- the last session opened
                        revoked   INTEGER           -- NULL while the device may open sessions
                    ) WITHOUT ROWID;
                    CREATE INDEX devices_user ON devices(cuid);

                    -- Events per user (10.5), `seq` counting from 1 in commit order;
                    -- appended in the transaction of the change they report. Kept 30
                    -- days, and a user's latest always (so seq never restarts).
                    CREATE TABLE user_events (
                        cuid    TEXT NOT NULL REFERENCES users(cuid),
                        seq     INTEGER NOT NULL CHECK (seq >= 1),
                        topic   TEXT NOT NULL CHECK (topic IN ('tally', 'chit', 'invoice', 'lift', 'device', 'sign')),
                        data    TEXT NOT NULL,      -- canonical JSON object
                        created INTEGER NOT NULL,
                        PRIMARY KEY (cuid, seq)
                    ) WITHOUT ROWID;
                    CREATE INDEX user_events_created ON user_events(created);

                    -- The idempotency cache (10.5): a successful command's reply under
                    -- its key (signed object's uuid, or `idem`) with a hash of the
                    -- request, written in the command's transaction; kept 24 h.
                    CREATE TABLE user_replies (
                        cuid         TEXT NOT NULL REFERENCES users(cuid),
                        key          TEXT NOT NULL CHECK (length(key) BETWEEN 1 AND 200),
                        request_hash TEXT NOT NULL,
                        reply        TEXT NOT NULL,  -- canonical JSON: the reply's data
                        created      INTEGER NOT NULL,
                        PRIMARY KEY (cuid, key)
                    ) WITHOUT ROWID;
                    CREATE INDEX user_replies_created ON user_replies(created);
                    """)
        }
        m.registerMigration("2026-12-02 trade date") { db in
            try db.execute(
                sql: """
                    -- The date of the signed trading variables a device last set
                    -- (tally.trade, protocol 10.5: one not newer is refused); NULL
                    -- when they were set by the CLI or never.
                    ALTER TABLE tallies ADD COLUMN trade_date TEXT;
                    """)
        }
        m.registerMigration("2026-12-02 key take") { db in
            // `me.key.take` (protocol 10.7): each fetch of a site-held key by a
            // device, so that the confirmation is accepted only in a session
            // opened after it. Times are integer ms since 1970. Once the key is
            // taken the user's `secret` holds an erased marker (33 bytes, tag
            // 0x02, no seed) since the column cannot be NULL.
            try db.execute(
                sql: """
                    CREATE TABLE key_fetches (
                        cuid    TEXT NOT NULL REFERENCES users(cuid),
                        device  TEXT NOT NULL CHECK (length(device) = 43),
                        session INTEGER NOT NULL,   -- when the fetching session opened
                        fetched INTEGER NOT NULL
                    );
                    CREATE INDEX key_fetches_device ON key_fetches(cuid, device);
                    """)
        }
        return m
    }

    /// Number of migrations this build knows: the schema version it writes.
    static var currentVersion: Int { migrator.migrations.count }
}
