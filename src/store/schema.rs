//! Numbered migrations. `PRAGMA user_version` holds the number of the last one applied;
//! each runs in its own transaction, so a cache is never left half-migrated.

use rusqlite::Connection;

/// Migrations in order; index + 1 is the schema version they bring the cache to.
pub const MIGRATIONS: &[&str] = &[
    // 1: the foundation schema.
    r#"
    CREATE TABLE providers (
        id          INTEGER PRIMARY KEY,
        name        TEXT NOT NULL UNIQUE,
        kind        TEXT NOT NULL,
        url         TEXT,
        last_sync   INTEGER,
        last_error  TEXT
    );

    -- Keys are keyed by (provider, provider id); `id` is the cache's own compact handle.
    CREATE TABLE keys (
        id           INTEGER PRIMARY KEY,
        provider_id  INTEGER NOT NULL REFERENCES providers(id),
        ext_id       TEXT NOT NULL,
        name         TEXT NOT NULL,
        owner        TEXT NOT NULL DEFAULT '',
        environment  TEXT,
        purpose      TEXT,
        prefix       TEXT NOT NULL DEFAULT '',
        fingerprint  TEXT NOT NULL DEFAULT '',
        scopes       TEXT NOT NULL DEFAULT '[]',   -- JSON array of strings
        status       TEXT NOT NULL,
        created      INTEGER,
        expires      INTEGER,
        last_used    INTEGER,
        rotated_to   TEXT,
        source       TEXT NOT NULL DEFAULT 'provider',
        synced_at    INTEGER,
        UNIQUE (provider_id, ext_id)
    );
    CREATE INDEX keys_owner ON keys(owner);

    -- Events are keyed by (provider, provider id), so a re-sync or re-import never
    -- duplicates. Times are milliseconds since the epoch, UTC.
    CREATE TABLE events (
        id           INTEGER PRIMARY KEY,
        provider_id  INTEGER NOT NULL REFERENCES providers(id),
        ext_id       TEXT NOT NULL,
        key_ref      INTEGER NOT NULL REFERENCES keys(id),
        time         INTEGER NOT NULL,
        principal    TEXT,
        action       TEXT NOT NULL,
        scope        TEXT,
        source_ip    TEXT,
        user_agent   TEXT,
        outcome      INTEGER NOT NULL,             -- 0 success, 1 denied, 2 error
        status_code  INTEGER,
        request_id   TEXT,
        records      INTEGER,
        raw          TEXT,
        UNIQUE (provider_id, ext_id)
    );
    CREATE INDEX events_key_time ON events(key_ref, time);
    CREATE INDEX events_time ON events(time);

    -- Per-provider, per-stream cursors of the sync engine and importers.
    CREATE TABLE sync_state (
        provider_id  INTEGER NOT NULL REFERENCES providers(id),
        stream       TEXT NOT NULL,
        cursor       TEXT NOT NULL,
        updated      INTEGER NOT NULL,
        PRIMARY KEY (provider_id, stream)
    );

    CREATE TABLE findings (
        id               TEXT PRIMARY KEY,        -- stable: hash of rule, key and subject
        rule             TEXT NOT NULL,
        category         TEXT NOT NULL,
        severity         INTEGER NOT NULL,        -- 0 low .. 3 critical
        key_ref          INTEGER NOT NULL REFERENCES keys(id),
        title            TEXT NOT NULL,
        explanation      TEXT NOT NULL,
        evidence         TEXT NOT NULL DEFAULT '[]',  -- JSON array of event ext ids
        first_seen       INTEGER NOT NULL,
        last_seen        INTEGER NOT NULL,
        status           TEXT NOT NULL DEFAULT 'open',
        note             TEXT,
        suppressed_until INTEGER
    );
    CREATE INDEX findings_key ON findings(key_ref);
    CREATE INDEX findings_rank ON findings(status, severity DESC, last_seen DESC);

    -- Append-only, hash-chained record of operator actions.
    CREATE TABLE journal (
        seq        INTEGER PRIMARY KEY,
        time       INTEGER NOT NULL,
        os_user    TEXT NOT NULL,
        host       TEXT NOT NULL,
        action     TEXT NOT NULL,
        target     TEXT NOT NULL,
        reason     TEXT,
        params     TEXT NOT NULL DEFAULT '{}',
        result     TEXT NOT NULL,
        prev_hash  TEXT NOT NULL,
        hash       TEXT NOT NULL
    );
    "#,
    // Rotation workflows: persisted state machines (see src/action/workflow.rs). The
    // secret is never here; `sink` is where it was sent, `new_fingerprint` lets a resume
    // check that the sink holds it.
    r#"
    CREATE TABLE workflows (
        id               INTEGER PRIMARY KEY,
        kind             TEXT NOT NULL,
        provider         TEXT NOT NULL,
        key_id           TEXT NOT NULL,
        old_status       TEXT,
        prior_successor  TEXT,
        new_key_id       TEXT,
        new_fingerprint  TEXT,
        step             TEXT NOT NULL,
        state            TEXT NOT NULL,
        sink             TEXT NOT NULL,
        grace_seconds    INTEGER NOT NULL DEFAULT 0,
        grace_until      INTEGER,
        switched_at      INTEGER,
        reason           TEXT,
        created          INTEGER NOT NULL,
        updated          INTEGER NOT NULL,
        error            TEXT
    );
    CREATE INDEX workflows_state ON workflows(state);
    "#,
    // 3: detection state: per-key baselines and the incremental checkpoint.
    r#"
    CREATE TABLE detect_state (
        key_ref    INTEGER PRIMARY KEY REFERENCES keys(id),
        last_time  INTEGER NOT NULL,            -- time of the key's last analysed event
        scopes     TEXT NOT NULL DEFAULT '[]',  -- JSON [[scope, last successful use]]
        state      TEXT NOT NULL                -- JSON of detect::baseline::KeyState
    );
    CREATE TABLE detect_checkpoint (
        id          INTEGER PRIMARY KEY CHECK (id = 1),
        last_event  INTEGER NOT NULL,           -- highest events.id analysed
        config      TEXT NOT NULL,              -- fingerprint of the [detect] settings
        ran_at      INTEGER NOT NULL
    );
    "#,
    // 4: the order of the keys list (provider, name, id) as an index, so the first screen
    // of a large list is read without scanning and sorting the keys table.
    r#"
    CREATE INDEX IF NOT EXISTS keys_list ON keys(provider_id, name, ext_id);
    "#,
    // 5: per-key detection state in a compact binary form instead of JSON. The JSON
    // states go with the checkpoint, so the next detection run is a full replay that
    // saves every state anew.
    r#"
    DROP TABLE detect_state;
    CREATE TABLE detect_state (
        key_ref    INTEGER PRIMARY KEY REFERENCES keys(id),
        last_time  INTEGER NOT NULL,            -- time of the key's last analysed event
        scopes     TEXT NOT NULL DEFAULT '[]',  -- JSON [[scope, last successful use]]
        state      BLOB NOT NULL                -- detect::baseline::KeyState::encode
    );
    DELETE FROM detect_checkpoint;
    "#,
    // 6: raw records compressed in blocks (src/store/raw.rs). Older rows keep their text
    // in `events.raw`.
    r#"
    CREATE TABLE raw_blocks (
        id    INTEGER PRIMARY KEY,
        data  BLOB NOT NULL
    );
    ALTER TABLE events ADD COLUMN raw_block INTEGER;   -- raw_blocks.id
    ALTER TABLE events ADD COLUMN raw_at INTEGER;
    "#,
    // 7: the idempotency key of a workflow's changes (provider::OpKey), so a resume
    // sends the same key as the first run.
    r#"
    ALTER TABLE workflows ADD COLUMN op_key TEXT;
    "#,
    // 8: the watermark of the Sigma rules (src/sigma/): the last event row they were run
    // over, and which rule set that was.
    r#"
    CREATE TABLE IF NOT EXISTS sigma_checkpoint (
        id          INTEGER PRIMARY KEY CHECK (id = 1),
        last_event  INTEGER NOT NULL,           -- highest events.id evaluated
        rules       TEXT NOT NULL,              -- fingerprint of the rule files
        ran_at      INTEGER NOT NULL
    );
    "#,
    // 9: what was imported from which file (the providers view and `keyaudit cases`
    // list them), and a small key-value table of the cache itself (a case's last
    // opening).
    r#"
    CREATE TABLE import_files (
        provider_id  INTEGER NOT NULL REFERENCES providers(id),
        stream       TEXT NOT NULL,             -- the file's content id (sync_state.stream)
        path         TEXT NOT NULL,             -- as last imported
        format       TEXT NOT NULL,
        records      INTEGER NOT NULL DEFAULT 0,
        events       INTEGER NOT NULL DEFAULT 0, -- new events it brought
        first_time   INTEGER,
        last_time    INTEGER,
        imported_at  INTEGER NOT NULL,
        PRIMARY KEY (provider_id, stream)
    );
    CREATE TABLE cache_meta (
        name   TEXT PRIMARY KEY,
        value  TEXT NOT NULL
    );
    "#,
    // 10: when a key stopped working (deactivated, revoked), when known: the provider's
    // own time of the change or keyaudit's action. Detection compares refusals with it.
    r#"
    ALTER TABLE keys ADD COLUMN stopped_at INTEGER;
    "#,
    // 11: a workflow adopted from another member of a team keeps the team's name for it:
    // the cache it was started in and its id there (`cache_meta.cache_id` names this
    // cache). A workflow started here has no row: its name is this cache and its id.
    r#"
    CREATE TABLE workflow_origins (
        workflow   INTEGER PRIMARY KEY REFERENCES workflows(id),
        origin     TEXT NOT NULL,
        origin_id  INTEGER NOT NULL
    );
    "#,
    // 12: when each key's detection state was last saved, so the member that syncs a
    // source for a team publishes the states that changed since it last did.
    r#"
    ALTER TABLE detect_state ADD COLUMN saved_at INTEGER NOT NULL DEFAULT 0;
    "#,
];

/// Applies every migration newer than the cache's `user_version`.
pub fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    let current: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if current >= latest_version() {
        return Ok(());
    }
    for (i, sql) in MIGRATIONS.iter().enumerate() {
        let version = i as i64 + 1;
        // The write lock is taken before the version is read, so two processes (or two
        // connections of one) opening a new cache at once migrate it exactly once.
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let current: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if version <= current {
            continue;
        }
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", version)?;
        tx.commit()?;
    }
    Ok(())
}

/// The schema version this build writes.
pub fn latest_version() -> i64 {
    MIGRATIONS.len() as i64
}
