//! A team whose events stay in its store (`[team] events = "team"`), through the release
//! binary against the demo provider and a private PostgreSQL cluster. One member syncs
//! and publishes; another reads the team's copy without copying the events into its
//! cache, and its listings, exports, events view pages, hourly counts and key activity,
//! read from PostgreSQL, are the same as those of a cache synced by one person.

mod action_support;
mod team_support;
mod tmux_support;

use action_support::{text, World, TOKEN};
use chrono::{DateTime, Duration, Utc};
use keyaudit::config::Config;
use keyaudit::filter::Network;
use keyaudit::model::{to_millis, Outcome};
use keyaudit::store::reads::{always, CacheEvents, EventReads, Reader};
use keyaudit::store::team::events::TeamEvents;
use keyaudit::store::team::TeamStore;
use keyaudit::store::{ActivityRequest, EventQuery, EventRow, Store};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use team_support::{team_table, Cluster};
use tmux_support::Tmux;

const BIN: &str = env!("CARGO_BIN_EXE_keyaudit");

/// One person's cache, and a member's cache whose events stay in the team store.
struct Team {
    w: World,
    solo_cfg: PathBuf,
    solo: PathBuf,
    member_cfg: PathBuf,
    member: PathBuf,
    /// The `[team]` table the member's config holds.
    team: String,
}

/// The demo synced by one person into `solo`, and by a publishing member into the team
/// store `db`; a second member with `events = "team"` then reads the team's copy.
fn team(cluster: &Cluster, db: &str) -> Team {
    let w = World::start();
    let solo_cfg = w.path("config/config.toml");
    let provider = std::fs::read_to_string(&solo_cfg).unwrap();
    let team =
        team_table(&cluster.url("postgres", db), "1m") + "fresh = \"1h\"\nevents = \"team\"\n";
    let publisher_cfg = w.path("config/publisher.toml");
    std::fs::write(&publisher_cfg, format!("{provider}{team}")).unwrap();
    // The member's provider does not answer: whatever it shows came from the team.
    let dead = provider.replace(&w.demo.url, "http://127.0.0.1:9");
    let member_cfg = w.path("config/member.toml");
    std::fs::write(
        &member_cfg,
        format!("{dead}{team}\n[tui]\nsync_interval_secs = 0\n"),
    )
    .unwrap();
    let (solo, publisher, member) = (
        w.path("data/solo.db"),
        w.path("data/publisher.db"),
        w.path("data/member.db"),
    );
    w.ok_on(Some(&solo_cfg), &solo, &["sync"]);
    w.ok_on(Some(&publisher_cfg), &publisher, &["sync"]);
    let said = text(&w.ok_on(Some(&member_cfg), &member, &["sync"]).stderr);
    assert!(
        said.contains("read the team's copy") && said.contains(" 0 new events"),
        "{said}"
    );
    Team {
        w,
        solo_cfg,
        solo,
        member_cfg,
        member,
        team,
    }
}

impl Team {
    fn out(&self, member: bool, args: &[&str]) -> String {
        let (cfg, db) = if member {
            (&self.member_cfg, &self.member)
        } else {
            (&self.solo_cfg, &self.solo)
        };
        text(&self.w.ok_on(Some(cfg), db, args).stdout)
    }

    fn json(&self, member: bool, args: &[&str]) -> Vec<Value> {
        serde_json::from_str(&self.out(member, args)).unwrap()
    }

    /// The team's events with the member cache's key handles.
    fn team_events(&self) -> TeamEvents {
        let cfg = Config::parse(&self.team, Path::new("team.toml")).unwrap();
        let store = Arc::new(TeamStore::new(cfg.team().unwrap().clone()));
        TeamEvents::new(store, CacheEvents::new(&self.member, Reader::default()))
    }
}

/// The member's workstation, as a shell command line for tmux.
fn member_workstation(t: &Team) -> String {
    format!(
        "env KEYAUDIT_CONFIG={} KEYAUDIT_DB={} XDG_CONFIG_HOME={} XDG_DATA_HOME={} \
         XDG_STATE_HOME={} KA_TEST_TOKEN={TOKEN} {BIN}",
        t.member_cfg.display(),
        t.member.display(),
        t.w.path("xdg-config").display(),
        t.w.path("xdg-data").display(),
        t.w.path("state").display(),
    )
}

fn by_id(mut v: Vec<Value>) -> Vec<Value> {
    v.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
    v
}

#[test]
fn listings_and_exports_read_the_team_store_and_match_one_persons_cache() {
    let cluster = Cluster::shared();
    let db = cluster.database("events");
    let t = team(&cluster, &db);
    // The member's cache holds the keys and findings, and no event.
    let member = Store::open_read_only(&t.member).unwrap();
    assert_eq!(member.event_count().unwrap(), 0);
    assert!(member.key_count().unwrap() > 10);

    let all = ["events", "--format", "json"];
    let expected = by_id(t.json(false, &all));
    assert!(expected.len() > 1000, "{}", expected.len());
    let listed = t.json(true, &all);
    let times: Vec<&str> = listed.iter().map(|e| e["time"].as_str().unwrap()).collect();
    assert!(times.windows(2).all(|p| p[0] <= p[1]), "oldest first");
    assert_eq!(by_id(listed.clone()), expected);

    let key = expected[0]["key_id"].as_str().unwrap().to_string();
    let some = [
        "events",
        "--key",
        &key,
        "--outcome",
        "denied",
        "--format",
        "json",
    ];
    assert_eq!(by_id(t.json(true, &some)), by_id(t.json(false, &some)));

    // Newest first with a limit: the same times (events of the same millisecond may
    // come in another order).
    let newest = ["events", "--limit", "40", "--format", "json"];
    let times = |v: Vec<Value>| -> Vec<String> {
        v.iter()
            .map(|e| e["time"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(times(t.json(true, &newest)), times(t.json(false, &newest)));

    // The export: the same rows.
    let lines = |member: bool| {
        let mut l: Vec<String> = t
            .out(member, &["export", "events", "--format", "csv"])
            .lines()
            .map(str::to_string)
            .collect();
        l.sort();
        l
    };
    let exported = lines(true);
    assert_eq!(exported.len(), expected.len() + 1);
    assert_eq!(exported, lines(false));

    // A finding's key baseline: the team's, as one person's detection has it.
    let findings = t.json(false, &["findings", "--status", "all", "--format", "json"]);
    let mut compared = 0;
    for f in findings.iter().take(12) {
        let id = f["id"].as_str().unwrap();
        let show = ["findings", "show", id, "--format", "json"];
        let baseline = |member: bool| -> Value {
            serde_json::from_str::<Value>(&t.out(member, &show)).unwrap()["baseline"].clone()
        };
        let want = baseline(false);
        assert_eq!(baseline(true), want, "{id}");
        compared += usize::from(want["baseline"] != "no_history");
    }
    assert!(compared > 0, "some keys have a baseline");

    // Detection has no events here to read: it is refused, saying where it runs.
    let out =
        t.w.cmd(&["detect"])
            .env("KEYAUDIT_CONFIG", &t.member_cfg)
            .env("KEYAUDIT_DB", &t.member)
            .output()
            .unwrap();
    assert!(!out.status.success());
    let said = text(&out.stderr);
    assert!(
        said.contains("events = \"team\"")
            && said.contains("runs on the team's copy when a member syncs"),
        "{said}"
    );
}

/// Every row of `q`, page by page from `reads`.
fn walk_all(
    w: &World,
    reads: &dyn EventReads,
    mut q: EventQuery,
    budget: usize,
) -> Vec<(i64, String, String)> {
    let mut out = Vec::new();
    loop {
        let page =
            w.rt.block_on(reads.page(q.clone(), budget, always()))
                .unwrap()
                .unwrap();
        let times: Vec<i64> = page.rows.iter().map(|r| to_millis(r.event.time)).collect();
        // Newest first, whichever way the walk goes.
        let ordered = times.windows(2).all(|p| p[0] >= p[1]);
        assert!(ordered, "{}: a page out of order", reads.describe());
        out.extend(page.rows.iter().map(|r: &EventRow| {
            (
                to_millis(r.event.time),
                r.event.id.clone(),
                r.event.key_id.clone(),
            )
        }));
        match page.resume {
            Some(at) if q.newest_first => q.before = Some(at),
            Some(at) => q.after = Some(at),
            None => break,
        }
    }
    out.sort();
    out
}

#[test]
fn pages_hourly_counts_and_key_activity_from_the_team_store_match_the_cache() {
    let cluster = Cluster::shared();
    let db = cluster.database("reads");
    let t = team(&cluster, &db);
    let solo = CacheEvents::new(&t.solo, Reader::default());
    let pg = t.team_events();
    let s = Store::open_read_only(&t.solo).unwrap();
    let (_, last) = s.event_time_range().unwrap().unwrap();
    let until: DateTime<Utc> = last + Duration::minutes(1);
    // A sample event gives filters that match some events and not others.
    let sample = s
        .events(&EventQuery {
            outcome: Some(Outcome::Success),
            limit: Some(1),
            newest_first: true,
            ..Default::default()
        })
        .unwrap()
        .remove(0)
        .event;
    let ip = sample.source_ip.clone().unwrap();
    let octets: Vec<&str> = ip.split('.').collect();
    let net = Network::parse(&format!("{}.{}.0.0/16", octets[0], octets[1])).unwrap();
    let word: String = sample.action.to_lowercase().chars().take(5).collect();
    // Key handles differ between the caches; the same key by provider and id.
    let handle = |db: &Path| {
        Store::open_read_only(db)
            .unwrap()
            .key_handle(&sample.provider, &sample.key_id)
            .unwrap()
            .unwrap()
    };
    let (solo_ref, member_ref) = (handle(&t.solo), handle(&t.member));

    let queries: Vec<(&str, EventQuery)> = vec![
        ("every event", EventQuery::default()),
        (
            "denied",
            EventQuery {
                outcome: Some(Outcome::Denied),
                ..Default::default()
            },
        ),
        (
            "a network",
            EventQuery {
                source_ip: Some(net),
                ..Default::default()
            },
        ),
        (
            "a word",
            EventQuery {
                text: vec![word.clone()],
                ..Default::default()
            },
        ),
        (
            "an action",
            EventQuery {
                action: Some(word.clone()),
                provider: Some("talentgrid".into()),
                ..Default::default()
            },
        ),
        (
            "a key by id",
            EventQuery {
                key_id: Some(sample.key_id.clone()),
                ..Default::default()
            },
        ),
        (
            "a window",
            EventQuery {
                since: Some(until - Duration::hours(30)),
                until: Some(until - Duration::hours(6)),
                ..Default::default()
            },
        ),
    ];
    let mut nonempty = 0;
    for (what, q) in queries {
        for newest_first in [true, false] {
            for (limit, budget) in [(1000, 50_000), (37, 250)] {
                let q = EventQuery {
                    newest_first,
                    limit: Some(limit),
                    ..q.clone()
                };
                let want = walk_all(&t.w, &solo, q.clone(), budget);
                let got = walk_all(&t.w, &pg, q.clone(), budget);
                assert_eq!(got.len(), want.len(), "{what}, {limit}/{budget}");
                assert_eq!(got, want, "{what}, {limit}/{budget}");
                nonempty += usize::from(!want.is_empty());
            }
        }
        let hours = |reads: &dyn EventReads| {
            t.w.rt
                .block_on(reads.per_hour(q.clone(), until, 24, always()))
                .unwrap()
                .unwrap()
        };
        assert_eq!(hours(&pg), hours(&solo), "hourly counts of {what}");
    }
    assert!(nonempty >= 24, "most queries match something: {nonempty}");

    // One key: its pages, hourly counts and 30 days of activity.
    let keyed = |key_ref: i64| EventQuery {
        key_ref: Some(key_ref),
        newest_first: true,
        limit: Some(50),
        ..Default::default()
    };
    let want = walk_all(&t.w, &solo, keyed(solo_ref), 50_000);
    assert!(!want.is_empty());
    assert_eq!(walk_all(&t.w, &pg, keyed(member_ref), 50_000), want);
    let solo_hours =
        t.w.rt
            .block_on(solo.per_hour(keyed(solo_ref), until, 48, always()));
    let pg_hours =
        t.w.rt
            .block_on(pg.per_hour(keyed(member_ref), until, 48, always()));
    assert_eq!(pg_hours.unwrap(), solo_hours.unwrap());
    let activity = |reads: &dyn EventReads, key_ref: i64| {
        t.w.rt
            .block_on(reads.key_activity(ActivityRequest {
                key_ref,
                until,
                days: 30,
                top: 8,
            }))
            .unwrap()
    };
    let a = activity(&solo, solo_ref);
    assert!(a.total > 0 && !a.networks.is_empty());
    assert_eq!(activity(&pg, member_ref), a);
    // The rows name the member cache's own handles.
    let page =
        t.w.rt
            .block_on(pg.page(keyed(member_ref), 50_000, always()))
            .unwrap()
            .unwrap();
    assert!(page.rows.iter().all(|r| r.key_ref == member_ref));

    // Every key's detection state (its baseline): as the publisher's detection saved it,
    // which is what one person's detection saved over the same events.
    let mut with_state = 0;
    for k in s.keys().unwrap() {
        let member_ref = Store::open_read_only(&t.member)
            .unwrap()
            .key_handle(&k.key.provider, &k.key.id)
            .unwrap()
            .unwrap();
        let want = t.w.rt.block_on(solo.key_state(k.key_ref)).unwrap();
        let got = t.w.rt.block_on(pg.key_state(member_ref)).unwrap();
        assert_eq!(got, want, "{}", k.key.id);
        with_state += usize::from(want.is_some());
    }
    assert!(with_state > 10, "{with_state}");
}

#[test]
fn the_workstation_shows_the_team_stores_events() {
    if !tmux_support::available() {
        return;
    }
    let cluster = Cluster::shared();
    let db = cluster.database("tui");
    let t = team(&cluster, &db);
    let newest = t.json(false, &["events", "--limit", "1", "--format", "json"]);
    let ip = newest[0]["source_ip"].as_str().unwrap().to_string();
    let tmux = Tmux::new("ka-team-events", "member");
    tmux.start(&member_workstation(&t), 80, 24);
    tmux.wait_for("the keys", |s| s.contains("KEYS") || s.contains("keys"));
    tmux.send(&["3"]);
    let screen = tmux.wait_for("the newest event", |s| s.contains(&ip));
    assert!(!screen.contains("cannot read"), "{screen}");
    // A filter walks the team's events too.
    tmux.send(&["/"]);
    tmux.type_text("outcome:denied");
    tmux.send(&["Enter"]);
    let screen = tmux.wait_for("denied events", |s| {
        s.contains("denied") && !s.contains(" success ")
    });
    assert!(!screen.contains("cannot read"), "{screen}");
    tmux.send(&["q"]);
}

#[test]
fn without_the_team_store_the_events_view_says_so_and_recovers() {
    if !tmux_support::available() {
        return;
    }
    // A cluster of its own: this test stops it.
    let cluster = Cluster::start();
    let db = cluster.database("offline");
    let t = team(&cluster, &db);
    let tmux = Tmux::new("ka-team-events-offline", "member");
    tmux.start(&member_workstation(&t), 80, 24);
    tmux.wait_for("the keys", |s| s.contains("[keys]"));
    tmux.send(&["3"]);
    tmux.wait_for("the team's events", |s| s.contains("events of all keys"));

    cluster.stop();
    tmux.wait_for("the workstation saying the store is lost", |s| {
        s.contains("TEAM OFFLINE")
    });
    // A new page of events cannot be read, and the view says from where.
    tmux.send(&["/"]);
    tmux.type_text("outcome:denied");
    tmux.send(&["Enter"]);
    let screen = tmux.wait_for("the failed read", |s| {
        s.contains("cannot read the events from team store")
    });
    assert!(screen.contains("TEAM OFFLINE"), "{screen}");
    // The keys and findings of the cache still show.
    tmux.send(&["1"]);
    tmux.wait_for("the keys view", |s| {
        s.contains("[keys]") && s.contains("prod")
    });

    cluster.resume();
    tmux.wait_for("the reconnection", |s| s.contains("reachable again"));
    tmux.send(&["3"]);
    tmux.send(&["/"]);
    tmux.type_text("outcome:denied");
    tmux.send(&["Enter"]);
    tmux.wait_for("the denied events again", |s| {
        s.contains("denied") && s.contains("matched") && !s.contains("cannot read")
    });
    tmux.send(&["q"]);
}
