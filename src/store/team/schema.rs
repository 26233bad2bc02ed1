//! The team store's numbered migrations, as the cache's (`store::schema`): the table
//! `keyaudit_schema` holds the number of the last one applied, and all pending ones run
//! in one transaction under an advisory lock, so members starting at once never apply
//! one twice and a database is never left half-migrated.
//!
//! Migrations run as whoever connects; creating tables needs the database's owner. A
//! member role (INSERT and SELECT on the journal only, see docs/team.md) connects to a
//! database that is already current and runs none.

/// The advisory lock that serialises migrations (an arbitrary constant: "ka-schema").
pub const MIGRATE_LOCK: i64 = 0x6b61_2d73_6368_656d;

/// The member role the first migration creates (when missing) and grants to; a DBA who
/// does not give the owner CREATEROLE creates it beforehand.
pub const MEMBER_ROLE: &str = "keyaudit_member";

/// Migrations in order; index + 1 is the schema version they bring the database to.
pub const MIGRATIONS: &[&str] = &[
    // 1: claims and the journal.
    r#"
    -- One row per claim, live or released. The partial unique index is what makes a
    -- second live claim on a key impossible, whatever a client does.
    CREATE TABLE claims (
        id           BIGSERIAL PRIMARY KEY,
        provider     TEXT NOT NULL,
        key_id       TEXT NOT NULL,
        operation    TEXT NOT NULL,
        holder_user  TEXT NOT NULL,
        holder_host  TEXT NOT NULL,
        holder_pid   INTEGER NOT NULL,
        since        TIMESTAMPTZ NOT NULL DEFAULT now(),
        lease_until  TIMESTAMPTZ NOT NULL,
        released_at  TIMESTAMPTZ,
        released_how TEXT
    );
    CREATE UNIQUE INDEX claims_one_live ON claims (provider, key_id) WHERE released_at IS NULL;

    -- The team's journal: one hash chain, the same entries and hashes as the cache's
    -- journal (store::journal::entry_hash). Times are milliseconds since the epoch, UTC.
    CREATE TABLE journal (
        seq        BIGINT PRIMARY KEY,
        time       BIGINT NOT NULL,
        os_user    TEXT NOT NULL,
        host       TEXT NOT NULL,
        action     TEXT NOT NULL,
        target     TEXT NOT NULL,
        reason     TEXT,
        params     TEXT NOT NULL,
        result     TEXT NOT NULL,
        prev_hash  TEXT NOT NULL,
        hash       TEXT NOT NULL UNIQUE
    );
    CREATE INDEX journal_target ON journal (target, seq);

    REVOKE ALL ON claims, journal, keyaudit_schema FROM PUBLIC;
    -- Roles belong to the cluster: another database's first migration may be creating
    -- it at this moment.
    DO $$
    BEGIN
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'keyaudit_member') THEN
            BEGIN
                CREATE ROLE keyaudit_member NOLOGIN;
            EXCEPTION WHEN duplicate_object OR unique_violation THEN
                NULL;
            END;
        END IF;
    END
    $$;
    GRANT SELECT ON keyaudit_schema TO keyaudit_member;
    GRANT SELECT, INSERT, UPDATE ON claims TO keyaudit_member;
    GRANT USAGE ON SEQUENCE claims_id_seq TO keyaudit_member;
    -- History is written once: members may add entries and read them, never change them.
    GRANT SELECT, INSERT ON journal TO keyaudit_member;
    "#,
    // 2: operators' decisions on findings, and the announcements of every change.
    r#"
    -- Decisions are appended, never changed: the latest one for a finding is its state,
    -- and members apply the rows past the last one they read.
    CREATE TABLE decisions (
        id         BIGSERIAL PRIMARY KEY,
        finding    TEXT NOT NULL,
        target     TEXT NOT NULL,
        status     TEXT NOT NULL CHECK (status IN ('acknowledged', 'suppressed')),
        note       TEXT,
        until_ms   BIGINT,
        os_user    TEXT NOT NULL,
        host       TEXT NOT NULL,
        at         TIMESTAMPTZ NOT NULL DEFAULT now()
    );
    CREATE INDEX decisions_finding ON decisions (finding, id);
    REVOKE ALL ON decisions FROM PUBLIC;
    GRANT SELECT, INSERT ON decisions TO keyaudit_member;
    GRANT USAGE ON SEQUENCE decisions_id_seq TO keyaudit_member;

    -- Every change is announced on channel `keyaudit` with the table's name, once per
    -- statement, when its transaction commits; open workstations redraw what it touched.
    CREATE FUNCTION keyaudit_announce() RETURNS trigger LANGUAGE plpgsql AS $fn$
    BEGIN
        PERFORM pg_notify('keyaudit', TG_TABLE_NAME);
        RETURN NULL;
    END
    $fn$;
    CREATE TRIGGER decisions_announce AFTER INSERT ON decisions
        FOR EACH STATEMENT EXECUTE FUNCTION keyaudit_announce();
    CREATE TRIGGER claims_announce AFTER INSERT OR UPDATE OF released_at ON claims
        FOR EACH STATEMENT EXECUTE FUNCTION keyaudit_announce();
    CREATE TRIGGER journal_announce AFTER INSERT ON journal
        FOR EACH STATEMENT EXECUTE FUNCTION keyaudit_announce();
    "#,
    // 3: the team's copy of each source: the keys, events and findings the member that
    // synced it published, for the others to read instead of syncing it themselves.
    r#"
    CREATE TABLE sources (
        provider      TEXT PRIMARY KEY,
        kind          TEXT NOT NULL,
        synced_at     TIMESTAMPTZ,
        synced_by     TEXT,
        syncing_by    TEXT,
        syncing_pid   INTEGER,
        syncing_since TIMESTAMPTZ
    );
    -- Rows published later get larger numbers; one member publishes a source at a time
    -- (under the source's advisory lock), so per source they grow in commit order and a
    -- member reads a source's rows past the last number it read.
    CREATE SEQUENCE changes;
    CREATE TABLE keys (
        provider  TEXT NOT NULL,
        key_id    TEXT NOT NULL,
        doc       TEXT NOT NULL,
        change    BIGINT NOT NULL,
        PRIMARY KEY (provider, key_id)
    );
    CREATE INDEX keys_change ON keys (provider, change);
    CREATE TABLE events (
        id          BIGSERIAL PRIMARY KEY,
        provider    TEXT NOT NULL,
        ext_id      TEXT NOT NULL,
        key_id      TEXT NOT NULL,
        time        BIGINT NOT NULL,
        principal   TEXT,
        action      TEXT NOT NULL,
        scope       TEXT,
        source_ip   TEXT,
        user_agent  TEXT,
        outcome     SMALLINT NOT NULL,
        status_code BIGINT,
        request_id  TEXT,
        records     BIGINT,
        UNIQUE (provider, ext_id)
    );
    CREATE INDEX events_provider_id ON events (provider, id);
    CREATE TABLE findings (
        id        TEXT PRIMARY KEY,
        provider  TEXT NOT NULL,
        doc       TEXT NOT NULL,
        change    BIGINT NOT NULL
    );
    CREATE INDEX findings_change ON findings (provider, change);
    REVOKE ALL ON sources, keys, events, findings FROM PUBLIC;
    GRANT SELECT, INSERT, UPDATE ON sources, keys, events, findings TO keyaudit_member;
    GRANT USAGE ON SEQUENCE changes, events_id_seq TO keyaudit_member;
    -- `sources` when a copy was published (members read it), `syncing` when a member
    -- starts or stops syncing a source (workstations show who).
    CREATE FUNCTION keyaudit_announce_source() RETURNS trigger LANGUAGE plpgsql AS $fn$
    BEGIN
        IF TG_OP = 'INSERT' OR NEW.synced_at IS DISTINCT FROM OLD.synced_at THEN
            PERFORM pg_notify('keyaudit', 'sources');
        END IF;
        IF TG_OP = 'INSERT' OR NEW.syncing_by IS DISTINCT FROM OLD.syncing_by THEN
            PERFORM pg_notify('keyaudit', 'syncing');
        END IF;
        RETURN NULL;
    END
    $fn$;
    CREATE TRIGGER sources_announce AFTER INSERT OR UPDATE ON sources
        FOR EACH ROW EXECUTE FUNCTION keyaudit_announce_source();
    "#,
    // 4: a team that keeps its events in the store reads them there: the events view's
    // pages walk the time order, of every key or of one.
    r#"
    CREATE INDEX events_time ON events (time, id);
    CREATE INDEX events_key_time ON events (key_id, time, id);
    "#,
    // 5: how far the member syncing a source has come (`page 12, 4,800 new events`),
    // announced as `syncing` whenever it changes.
    r#"
    ALTER TABLE sources ADD COLUMN syncing_progress TEXT;
    CREATE OR REPLACE FUNCTION keyaudit_announce_source() RETURNS trigger LANGUAGE plpgsql AS $fn$
    BEGIN
        IF TG_OP = 'INSERT' OR NEW.synced_at IS DISTINCT FROM OLD.synced_at THEN
            PERFORM pg_notify('keyaudit', 'sources');
        END IF;
        IF TG_OP = 'INSERT' OR NEW.syncing_by IS DISTINCT FROM OLD.syncing_by
           OR NEW.syncing_progress IS DISTINCT FROM OLD.syncing_progress THEN
            PERFORM pg_notify('keyaudit', 'syncing');
        END IF;
        RETURN NULL;
    END
    $fn$;
    "#,
    // 6: workflows (rotations), so another member can see them and adopt one whose
    // owner is away. `origin`/`origin_id` name it for good (the cache it was started in
    // and its id there); the owner columns say who drives it now. A member updates a row
    // only while it is the owner; adopting one changes the owner.
    r#"
    CREATE TABLE workflows (
        id           BIGSERIAL PRIMARY KEY,
        origin       TEXT NOT NULL,
        origin_id    BIGINT NOT NULL,
        provider     TEXT NOT NULL,
        key_id       TEXT NOT NULL,
        kind         TEXT NOT NULL,
        state        TEXT NOT NULL,
        doc          TEXT NOT NULL,
        owner_cache  TEXT NOT NULL,
        owner_id     BIGINT NOT NULL,
        owner_user   TEXT NOT NULL,
        owner_host   TEXT NOT NULL,
        published    TIMESTAMPTZ NOT NULL DEFAULT now(),
        UNIQUE (origin, origin_id)
    );
    CREATE INDEX workflows_open ON workflows (id) WHERE state IN ('running', 'grace');
    REVOKE ALL ON workflows FROM PUBLIC;
    GRANT SELECT, INSERT, UPDATE ON workflows TO keyaudit_member;
    GRANT USAGE ON SEQUENCE workflows_id_seq TO keyaudit_member;
    CREATE TRIGGER workflows_announce AFTER INSERT OR UPDATE ON workflows
        FOR EACH STATEMENT EXECUTE FUNCTION keyaudit_announce();
    "#,
    // 7: the provider's event cursor of the member that published a source, and the
    // last event row it covers: a member that has read that far takes the cursor, so
    // when it syncs the source itself it goes on from there instead of from the start.
    r#"
    ALTER TABLE sources ADD COLUMN cursor TEXT, ADD COLUMN cursor_events BIGINT;
    "#,
    // 8: each key's detection state (its baseline) as the member that syncs its source
    // last saved it, for members whose events stay in the team store.
    r#"
    CREATE TABLE detect_states (
        provider  TEXT NOT NULL,
        key_id    TEXT NOT NULL,
        state     BYTEA NOT NULL,
        PRIMARY KEY (provider, key_id)
    );
    REVOKE ALL ON detect_states FROM PUBLIC;
    GRANT SELECT, INSERT, UPDATE ON detect_states TO keyaudit_member;
    "#,
    // 9: how far the published detection states go: the last event row of the copy they
    // cover and the fingerprint of the `[detect]` settings that made them (NULL: not
    // known, and the next member to run detection on the copy replays it whole).
    r#"
    ALTER TABLE sources ADD COLUMN detect_through BIGINT, ADD COLUMN detect_config TEXT;
    "#,
];

/// The schema version this keyaudit needs.
pub fn latest() -> i64 {
    MIGRATIONS.len() as i64
}
