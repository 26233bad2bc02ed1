//! Sync once per team, through the release binary against the demo provider and a
//! private PostgreSQL cluster: the first member syncs the provider and publishes it; a
//! second member, whose own configuration points at a provider that does not answer,
//! reads the team's copy instead and ends with the same keys, events and findings as
//! a cache synced by one person without any team store; the team's decisions come with
//! them. While one member holds a source's lock, another reads rather than syncing.

mod action_support;
mod team_support;

use action_support::{text, World};
use keyaudit::store::shared::Shared;
use serde_json::Value;
use std::path::Path;
use team_support::{team_table, Cluster};

/// Runs keyaudit with `config` on the cache `db`; asserts success; returns standard
/// output and standard error.
fn run(w: &World, config: &Path, db: &Path, args: &[&str]) -> (String, String) {
    let out = w.ok_on(Some(config), db, args);
    (text(&out.stdout), text(&out.stderr))
}

fn json(w: &World, config: &Path, db: &Path, args: &[&str]) -> Vec<Value> {
    serde_json::from_str(&run(w, config, db, args).0).unwrap()
}

/// Keys, events and findings of a cache, in a stable order.
fn contents(w: &World, config: &Path, db: &Path) -> (Vec<Value>, Vec<Value>, Vec<Value>) {
    let keys = json(w, config, db, &["keys", "--format", "json"]);
    let mut events = json(w, config, db, &["events", "--format", "json"]);
    events.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
    let mut findings = json(
        w,
        config,
        db,
        &["findings", "--status", "all", "--format", "json"],
    );
    findings.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
    (keys, events, findings)
}

#[test]
fn one_member_syncs_and_another_reads_the_same_keys_events_and_findings() {
    let cluster = Cluster::shared();
    let w = World::start();
    let db = cluster.database("sync");
    let solo_cfg = w.path("config/config.toml");
    let provider = std::fs::read_to_string(&solo_cfg).unwrap();
    let team = team_table(&cluster.url("postgres", &db), "1m") + "fresh = \"1h\"\n";
    let a_cfg = w.path("config/a.toml");
    std::fs::write(&a_cfg, format!("{provider}{team}")).unwrap();
    // The second member's provider does not answer: anything it shows came from the team.
    let dead = provider.replace(&w.demo.url, "http://127.0.0.1:9");
    assert_ne!(dead, provider);
    let b_cfg = w.path("config/b.toml");
    std::fs::write(&b_cfg, format!("{dead}{team}")).unwrap();
    let (solo, a, b) = (
        w.path("data/solo.db"),
        w.path("data/a.db"),
        w.path("data/b.db"),
    );

    let (_, said) = run(&w, &solo_cfg, &solo, &["sync"]);
    assert!(!said.contains("team"), "{said}");
    let (_, said) = run(&w, &a_cfg, &a, &["sync"]);
    assert!(!said.contains("read the team's copy"), "{said}");
    let (_, said) = run(&w, &b_cfg, &b, &["sync"]);
    assert!(
        said.contains("talentgrid: read the team's copy") && said.contains("new events"),
        "{said}"
    );

    let expected = contents(&w, &solo_cfg, &solo);
    assert!(expected.0.len() > 10 && expected.1.len() > 1000 && !expected.2.is_empty());
    let from_team = contents(&w, &b_cfg, &b);
    assert_eq!(from_team.0, expected.0, "keys");
    assert_eq!(from_team.1.len(), expected.1.len(), "events");
    assert_eq!(from_team.1, expected.1, "events");
    // Findings: the same ones as one person's detection finds (their times are each
    // detection's own), and exactly the syncing member's.
    let brief = |fs: &[Value]| -> Vec<(String, String, String)> {
        fs.iter()
            .map(|f| {
                (
                    f["id"].as_str().unwrap().to_string(),
                    f["rule"].as_str().unwrap().to_string(),
                    f["status"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    assert_eq!(brief(&from_team.2), brief(&expected.2), "findings");
    let synced_by_a = contents(&w, &a_cfg, &a);
    assert_eq!(synced_by_a.0, expected.0);
    assert_eq!(synced_by_a.1, expected.1);
    assert_eq!(from_team.2, synced_by_a.2, "findings");

    // A decision by the first member, and new traffic it syncs: the second member reads
    // both, and reading twice adds nothing.
    let finding = expected.2[0]["id"].as_str().unwrap().to_string();
    run(
        &w,
        &a_cfg,
        &a,
        &["findings", "ack", &finding, "--note", "known batch job"],
    );
    let a_fresh = w.path("config/a-fresh.toml");
    std::fs::write(&a_fresh, format!("{provider}{}", team.replace("1h", "0s"))).unwrap();
    w.create("fresh-key", "Acme Fresh");
    run(&w, &a_fresh, &a, &["sync"]);
    let (_, said) = run(&w, &b_cfg, &b, &["sync"]);
    assert!(said.contains("read the team's copy"), "{said}");
    let (keys, _, findings) = contents(&w, &b_cfg, &b);
    assert!(keys.iter().any(|k| k["name"] == "fresh-key"), "{keys:?}");
    let f = findings
        .iter()
        .find(|f| f["id"] == finding.as_str())
        .unwrap();
    assert_eq!(f["status"], "acknowledged", "{f}");
    let (_, said) = run(&w, &b_cfg, &b, &["sync"]);
    assert!(said.contains(" 0 new events"), "{said}");
    assert_eq!(
        cluster.value(&db, "SELECT count(*) FROM events"),
        expected.1.len().to_string()
    );
}

#[test]
fn a_member_reads_while_another_holds_the_source() {
    let cluster = Cluster::shared();
    let w = World::start();
    let db = cluster.database("held");
    let cfg = w.path("config/config.toml");
    let provider = std::fs::read_to_string(&cfg).unwrap();
    // Syncing always (`fresh = 0s`) unless another member holds the source.
    let team = team_table(&cluster.url("postgres", &db), "1m") + "fresh = \"0s\"\n";
    std::fs::write(&cfg, format!("{provider}{team}")).unwrap();
    w.ok(&["sync"]);
    // alice holds talentgrid's lock from another connection.
    let lock = keyaudit_lock_key("talentgrid");
    let mut holder = std::process::Command::new(team_support::pg_bin().join("psql"))
        .args([
            "-X",
            "-q",
            "-h",
            "127.0.0.1",
            "-p",
            &cluster.port.to_string(),
            "-U",
            "postgres",
            "-d",
            &db,
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let stdin = holder.stdin.as_mut().unwrap();
        writeln!(
            stdin,
            "SELECT pg_advisory_lock({lock}); UPDATE sources SET syncing_by = 'alice@ws-12', syncing_since = now() \
             WHERE provider = 'talentgrid'; SELECT 'locked';"
        )
        .unwrap();
        stdin.flush().unwrap();
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while cluster.value(
        &db,
        &format!("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = ({lock} & x'FFFFFFFF'::bigint)::oid"),
    ) != "1"
    {
        assert!(std::time::Instant::now() < deadline, "the lock was not taken");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let out = w.ok(&["sync"]);
    let said = text(&out.stderr);
    assert!(
        said.contains("read the team's copy (alice@ws-12 is syncing it)"),
        "{said}"
    );
    // Workstations name alice among the members, syncing the source.
    let config = keyaudit::config::Config::parse(&team, Path::new("team.toml")).unwrap();
    let store = keyaudit::store::team::TeamStore::new(config.team().unwrap().clone());
    let members = w.rt.block_on(store.members()).unwrap();
    let alice = members
        .iter()
        .find(|m| m.user == "alice" && m.host == "ws-12")
        .unwrap_or_else(|| panic!("{members:?}"));
    assert_eq!(alice.describe(), "alice@ws-12 (syncing talentgrid)");
    holder.kill().unwrap();
    let _ = holder.wait();
}

/// The advisory lock key of a source's sync, as `store::team::replica` computes it.
fn keyaudit_lock_key(provider: &str) -> i64 {
    keyaudit::store::team::replica::lock_key(provider)
}

#[test]
fn without_the_team_store_a_member_still_syncs_for_itself() {
    let w = World::start();
    let cfg = w.path("config/config.toml");
    // Nothing listens on the discard port of loopback.
    let config = std::fs::read_to_string(&cfg).unwrap()
        + &team_table("postgres://postgres@127.0.0.1:9/keyaudit", "1m");
    std::fs::write(&cfg, config).unwrap();
    let out = w.ok(&["sync"]);
    let said = text(&out.stderr);
    assert!(
        said.contains("note: synced here only, not shared with the team"),
        "{said}"
    );
    let keys: Vec<Value> =
        serde_json::from_slice(&w.ok(&["keys", "--format", "json"]).stdout).unwrap();
    assert!(keys.len() > 10, "{keys:?}");
}

#[test]
fn a_member_syncing_tells_the_others_how_far_it_has_come() {
    let cluster = Cluster::shared();
    // Every provider answer takes 200 ms: the sync lasts a few seconds.
    let w = World::start_faulty("latency=1");
    let db = cluster.database("progress");
    let cfg = w.path("config/config.toml");
    let provider = std::fs::read_to_string(&cfg).unwrap();
    let team = team_table(&cluster.url("postgres", &db), "1m") + "fresh = \"0s\"\n";
    std::fs::write(&cfg, format!("{provider}{team}")).unwrap();
    let config = keyaudit::config::Config::parse(&team, Path::new("team.toml")).unwrap();
    let store = keyaudit::store::team::TeamStore::new(config.team().unwrap().clone());
    let mut sync = w
        .cmd(&["sync"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Another workstation sees the member syncing, with how far it has come.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let seen = loop {
        let members = w.rt.block_on(store.members()).unwrap();
        let told: Vec<String> = members
            .iter()
            .map(|m| m.describe())
            .filter(|d| d.contains("(syncing talentgrid: "))
            .collect();
        if let Some(d) = told.into_iter().next() {
            break d;
        }
        assert!(
            sync.try_wait().unwrap().is_none(),
            "the sync ended before announcing its progress"
        );
        assert!(std::time::Instant::now() < deadline, "{members:?}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert!(
        seen.contains(" new events)") || seen.contains("publishing, "),
        "{seen}"
    );
    assert!(sync.wait().unwrap().success());
    // Done: no one syncs, and nothing is left announced.
    let members = w.rt.block_on(store.members()).unwrap();
    assert!(
        members.iter().all(|m| !m.describe().contains("syncing")),
        "{members:?}"
    );
    assert_eq!(
        cluster.value(&db, "SELECT count(syncing_progress) FROM sources"),
        "0"
    );
}

#[test]
fn a_member_that_read_the_copy_syncs_on_from_the_team_s_cursor() {
    let cluster = Cluster::shared();
    let w = World::start();
    let db = cluster.database("cursor");
    let config = member_configs(&w, &cluster, &db, "");
    let a = config("a", "fresh = \"1h\"\n");
    // The same members, later, when the copy is no longer fresh for them: they sync the
    // provider themselves.
    let (read, read_team) = (
        config("read", "fresh = \"1h\"\n"),
        config("read-team", "fresh = \"1h\"\nevents = \"team\"\n"),
    );
    let (own, own_team) = (
        config("own", "fresh = \"0s\"\n"),
        config("own-team", "fresh = \"0s\"\nevents = \"team\"\n"),
    );
    let (a_db, b_db, c_db) = (
        w.path("data/a.db"),
        w.path("data/b.db"),
        w.path("data/c.db"),
    );
    let (_, said) = run(&w, &a, &a_db, &["sync"]);
    assert!(said.contains("new events (0 already cached)"), "{said}");
    let cached = json(&w, &a, &a_db, &["events", "--format", "json"]).len();
    assert!(cached > 1000);
    let (_, said) = run(&w, &read, &b_db, &["sync"]);
    assert!(said.contains("read the team's copy"), "{said}");
    // Syncing the provider itself, it goes on from where the team's copy ends: nothing
    // is fetched again, and its detection (on the events it read) resolves nothing.
    let (_, said) = run(&w, &own, &b_db, &["sync"]);
    assert!(
        said.contains("talentgrid: ")
            && said.contains(" 0 new events (0 already cached)")
            && said.contains("0 resolved")
            && !said.contains("read the team's copy"),
        "{said}"
    );
    // A member that leaves the events in the team store takes the cursor too: its
    // detection reads the team's copy, going on from the states the team's last
    // publisher left, so nothing is fetched again and nothing of the team's is resolved.
    let (_, said) = run(&w, &read_team, &c_db, &["sync"]);
    assert!(said.contains("read the team's copy"), "{said}");
    let (_, said) = run(&w, &own_team, &c_db, &["sync"]);
    assert!(
        said.contains(" 0 new events (0 already cached)")
            && said.contains("going on from the team's baselines over 0 new events")
            && said.contains("0 new findings")
            && said.contains("0 resolved"),
        "{said}"
    );
    assert_eq!(cached_events(&c_db), 0);
    assert_eq!(cached_events(&b_db), cached);
}

#[test]
fn a_new_member_syncing_a_source_the_team_holds_reads_its_copy_first() {
    let cluster = Cluster::shared();
    let w = World::start();
    let db = cluster.database("first");
    let config = member_configs(&w, &cluster, &db, "fresh = \"0s\"\n");
    let (a, b, c) = (
        config("a", ""),
        config("b", ""),
        config("c", "events = \"team\"\n"),
    );
    let (a_db, b_db, c_db) = (
        w.path("data/a.db"),
        w.path("data/b.db"),
        w.path("data/c.db"),
    );
    run(&w, &a, &a_db, &["sync"]);
    let cached = json(&w, &a, &a_db, &["events", "--format", "json"]).len();
    assert!(cached > 1000);
    let copy = format!(
        "read the team's copy first (75 keys, {} new events",
        thousands(cached)
    );
    // Bob has never read the copy; syncing the provider himself, he reads it first and
    // asks the provider only for what is newer: nothing.
    let (_, said) = run(&w, &b, &b_db, &["sync"]);
    assert!(
        said.contains(&copy) && said.contains(" 0 new events (0 already cached)"),
        "{said}"
    );
    assert_eq!(cached_events(&b_db), cached);
    // New traffic: the next member to sync fetches only that.
    assert_eq!(w.rt.block_on(async { w.demo.append_traffic(50) }), 50);
    let (_, said) = run(&w, &a, &a_db, &["sync"]);
    assert!(said.contains(" 50 new events (0 already cached)"), "{said}");
    // Carol keeps the events in the team store: she takes the keys, findings and cursor,
    // no events, and her detection goes on from the team's baselines.
    let (_, said) = run(&w, &c, &c_db, &["sync"]);
    assert!(
        said.contains("read the team's copy first (75 keys, 0 new events")
            && said.contains(" 0 new events (0 already cached)")
            && said.contains("going on from the team's baselines over 0 new events")
            && said.contains("0 resolved"),
        "{said}"
    );
    assert_eq!(cached_events(&c_db), 0);
    // The team's copy holds each event once.
    assert_eq!(
        cluster.value(&db, "SELECT count(*) FROM events"),
        (cached + 50).to_string()
    );
}

fn thousands(n: usize) -> String {
    keyaudit::import::coverage::thousands(n as u64)
}

/// How many events the cache `db` holds.
fn cached_events(db: &Path) -> usize {
    let store = keyaudit::store::Store::open_read_only(db).unwrap();
    store.event_count().unwrap() as usize
}

/// Writes member configurations: the World's provider and the team store `db` of
/// `cluster`, whose `[team]` table gets `common` and then each member's `extra` lines;
/// returns the path written for a member's name.
fn member_configs<'a>(
    w: &'a World,
    cluster: &Cluster,
    db: &str,
    common: &'a str,
) -> impl Fn(&str, &str) -> std::path::PathBuf + 'a {
    let provider = std::fs::read_to_string(w.path("config/config.toml")).unwrap();
    let team = team_table(&cluster.url("postgres", db), "1m");
    move |name, extra| {
        let p = w.path(&format!("config/{name}.toml"));
        std::fs::write(&p, format!("{provider}{team}{common}{extra}")).unwrap();
        p
    }
}

/// Each key's detection state as hex, by key id: `states` rows of `(key id, state)`.
fn hex_states(states: Vec<(String, Vec<u8>)>) -> Vec<String> {
    let mut out: Vec<String> = states
        .into_iter()
        .map(|(k, s)| format!("{k}:{}", hex::encode(s)))
        .collect();
    out.sort();
    out
}

/// What of a finding two detection runs over the same events agree on, whenever they ran.
fn finding_facts(findings: &[Value]) -> Vec<String> {
    findings
        .iter()
        .map(|f| {
            format!(
                "{} {} {} {} {}",
                f["id"], f["status"], f["severity"], f["title"], f["evidence"]
            )
        })
        .collect()
}

#[test]
fn a_member_keeping_the_events_in_the_team_store_goes_on_from_the_team_s_baselines() {
    let cluster = Cluster::shared();
    let w = World::start();
    let db = cluster.database("baselines");
    let config = member_configs(&w, &cluster, &db, "");
    let a = config("a", "fresh = \"0s\"\n");
    let b_read = config("b-read", "fresh = \"1h\"\nevents = \"team\"\n");
    let b_own = config("b-own", "fresh = \"0s\"\nevents = \"team\"\n");
    let alone = w.path("config/config.toml");
    let (a_db, b_db, one_db) = (
        w.path("data/a.db"),
        w.path("data/b.db"),
        w.path("data/one.db"),
    );
    // Alice syncs the source and publishes it with the baselines her detection made.
    run(&w, &a, &a_db, &["sync"]);
    assert_eq!(
        cluster.value(&db, "SELECT detect_through IS NOT NULL FROM sources"),
        "t"
    );
    let (_, said) = run(&w, &b_read, &b_db, &["sync"]);
    assert!(said.contains("read the team's copy"), "{said}");
    // New traffic at the provider; Bob, whose events stay in the team store, syncs it.
    assert_eq!(w.rt.block_on(async { w.demo.append_traffic(400) }), 400);
    let (_, said) = run(&w, &b_own, &b_db, &["sync"]);
    assert!(
        said.contains(" 400 new events (0 already cached)")
            && said.contains("going on from the team's baselines over 400 new events"),
        "{said}"
    );
    // One person syncing everything into one cache, detection over all of it.
    run(&w, &alone, &one_db, &["sync"]);
    let one = keyaudit::store::Store::open_read_only(&one_db).unwrap();
    let b = keyaudit::store::Store::open_read_only(&b_db).unwrap();
    // Bob's cache holds only the events he fetched; his detection read the rest (and
    // every key's state) in the team store, and ends where one person's does.
    assert_eq!(b.event_count().unwrap(), 400);
    let team_states = cluster.value(
        &db,
        "SELECT string_agg(key_id || ':' || encode(state, 'hex'), ' ' ORDER BY key_id) \
         FROM detect_states",
    );
    let mut team_states: Vec<String> = team_states.split(' ').map(str::to_string).collect();
    team_states.sort();
    let one_states = hex_states(one.detect_states_saved_after("talentgrid", -1).unwrap().0);
    assert_eq!(team_states.len(), one_states.len());
    assert!(
        team_states == one_states,
        "the team's baselines differ from one person's"
    );
    let findings = |config: &Path, db: &Path| {
        let mut f = json(
            &w,
            config,
            db,
            &["findings", "--status", "all", "--format", "json"],
        );
        f.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
        finding_facts(&f)
    };
    let (b_findings, one_findings) = (findings(&b_own, &b_db), findings(&alone, &one_db));
    assert!(!one_findings.is_empty());
    assert_eq!(b_findings, one_findings);
    // The publication says how far the baselines go: the whole copy.
    assert_eq!(
        cluster.value(
            &db,
            "SELECT detect_through = (SELECT max(id) FROM events) FROM sources"
        ),
        "t"
    );
}
