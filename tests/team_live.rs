//! The team live, through the release binary against the demo provider and a private
//! PostgreSQL cluster: two members, each with a cache of their own, sync the same
//! provider; an acknowledgement typed in one workstation shows in the other's (tmux, two
//! sessions) and in the other's CLI; the header counts who is connected and the status
//! line names them. With the server stopped mid-session the workstation stays up,
//! says it is offline, refuses decisions and actions, and recovers by itself when the
//! server returns.

mod action_support;
mod team_support;
mod tmux_support;

use action_support::{World, TOKEN};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use team_support::{team_table, Cluster};
use tmux_support::Tmux;

const BIN: &str = env!("CARGO_BIN_EXE_keyaudit");

/// A world whose config has a `[team]` table on a fresh database of `cluster`.
fn team_world(cluster: &Cluster) -> World {
    let w = World::start();
    let db = cluster.database("live");
    let cfg = w.path("config/config.toml");
    let mut text = std::fs::read_to_string(&cfg).unwrap();
    text.push_str(&team_table(&cluster.url("postgres", &db), "1m"));
    // The workstation syncs once when it opens, not again during the test.
    text.push_str("\n[tui]\nsync_interval_secs = 0\n");
    std::fs::write(&cfg, text).unwrap();
    w
}

/// The findings of the member cache `db`, as `findings --status all --format json`.
fn findings(w: &World, db: &Path) -> Vec<Value> {
    let out = w.ok_on(
        None,
        db,
        &["findings", "--status", "all", "--format", "json"],
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The workstation on cache `db`, write mode on, as a shell command line for tmux.
fn workstation(w: &World, db: &Path) -> String {
    format!(
        "env KEYAUDIT_CONFIG={} KEYAUDIT_DB={} XDG_CONFIG_HOME={} XDG_DATA_HOME={} \
         XDG_STATE_HOME={} KA_TEST_TOKEN={TOKEN} {BIN} --write",
        w.path("config/config.toml").display(),
        db.display(),
        w.path("xdg-config").display(),
        w.path("xdg-data").display(),
        w.path("state").display(),
    )
}

/// `findings N · M open` of the findings view's title.
fn open_count(screen: &str) -> Option<usize> {
    let at = screen.find(" open ")?;
    let head = &screen[..at];
    head.rsplit(' ').next()?.replace(',', "").parse().ok()
}

/// The findings table's rows whose status is `acknowledged`.
fn acknowledged_rows(screen: &str) -> usize {
    screen
        .lines()
        .filter(|l| l.starts_with('│') && l.contains(" acknowledged "))
        .count()
}

/// Opens the findings view once the first sync has ended (its gauge, on from the first
/// frame, is gone: the sync read the team's copy, which the CLI syncs published) and the
/// team store is connected with `members` workstations in all.
fn findings_view(t: &Tmux, members: usize) -> String {
    let team = format!("TEAM {members}");
    t.wait_for("the first sync and the team store", |s| {
        !s.contains("sync talentgrid") && s.contains(&team)
    });
    t.send(&["4"]);
    t.wait_for("the findings view", |s| {
        s.contains("[findings]") && open_count(s).is_some()
    })
}

#[test]
fn an_acknowledgement_in_one_workstation_shows_in_the_others() {
    if !tmux_support::available() {
        return;
    }
    let cluster = Cluster::shared();
    let w = team_world(&cluster);
    let (a_db, b_db): (PathBuf, PathBuf) = (w.db(), w.path("data/member-b.db"));
    w.ok_on(None, &a_db, &["sync"]);
    w.ok_on(None, &b_db, &["sync"]);
    let open = |db: &Path| -> Vec<String> {
        findings(&w, db)
            .iter()
            .filter(|f| f["status"] == "open")
            .map(|f| f["id"].as_str().unwrap().to_string())
            .collect()
    };
    let before = open(&b_db);
    assert!(!before.is_empty(), "the demo gives open findings");
    assert_eq!(
        open(&a_db),
        before,
        "both members' caches hold the same findings"
    );

    let socket = format!("keyaudit-team-live-{}", std::process::id());
    let a = Tmux::new(&socket, "a");
    let b = Tmux::new(&socket, "b");
    a.start(&workstation(&w, &a_db), 200, 50);
    b.start(&workstation(&w, &b_db), 200, 50);
    findings_view(&a, 2);
    let screen = findings_view(&b, 2);
    assert_eq!(acknowledged_rows(&screen), 0, "{screen}");
    // The other workstation is named on the status line (the same OS user and host
    // here: both run in this test).
    let me = format!(
        "{}@{}",
        keyaudit::store::journal::os_user(),
        keyaudit::store::journal::host_name()
    );
    assert!(screen.contains(&format!("with {me}")), "{screen}");

    // A acknowledges the selected finding (the first: both caches rank the same
    // findings alike) with a note.
    a.send(&["a"]);
    a.wait_for("the note prompt", |s| s.contains("acknowledge"));
    a.type_text("partner confirmed the new job");
    a.send(&["Enter"]);
    let typed = Instant::now();
    // B applies it by itself and says who decided: polled every 10 ms, so the figure
    // is within 10 ms plus a capture of the screen.
    let (_, seen) = b.wait_every(
        "the acknowledgement in the other workstation",
        Duration::from_secs(10),
        Duration::from_millis(10),
        |s| s.contains(&format!("{me} acknowledged finding")),
    );
    let latency = seen.duration_since(typed);
    eprintln!(
        "team_live: the acknowledgement showed in the other workstation after {} ms",
        latency.as_millis()
    );
    let screen = b.wait_for("the acknowledged row in the other workstation", |s| {
        acknowledged_rows(s) == 1
    });
    assert!(!screen.contains("offline"), "{screen}");
    let a_screen = a.wait_for("the acknowledgement in its own workstation", |s| {
        s.contains(": acknowledged") && acknowledged_rows(s) == 1
    });

    // Which finding: the one A's status line names.
    let acked: Vec<String> = findings(&w, &b_db)
        .iter()
        .filter(|f| f["status"] == "acknowledged")
        .map(|f| {
            assert_eq!(f["note"], "partner confirmed the new job", "{f}");
            f["id"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(acked.len(), 1, "{acked:?}");
    assert!(
        a_screen.contains(&format!("finding {}: acknowledged", acked[0])),
        "{a_screen}"
    );
    // The key's detail lists what the team journal holds of the key: the decision, by
    // A's user and host (its own cache's journal has none of it).
    a.send(&["Enter"]);
    let detail = a.wait_for("the key detail with the team's journal", |s| {
        s.contains("[detail]") && s.contains("finding.ack")
    });
    assert!(detail.contains(&format!("finding.ack {me}")), "{detail}");
    assert!(detail.contains("journal (1)"), "{detail}");
    let in_a = findings(&w, &a_db);
    let f = in_a.iter().find(|f| f["id"] == acked[0].as_str()).unwrap();
    assert_eq!(f["status"], "acknowledged", "{f}");

    // The team journal holds the decision, by A's user and host.
    let out = w.ok_on(None, &b_db, &["journal", "--format", "json"]);
    let journal: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    let entry = journal
        .iter()
        .find(|e| e["action"] == "finding.ack")
        .unwrap_or_else(|| panic!("{journal:?}"));
    assert_eq!(entry["params"]["finding"], acked[0].as_str());
    w.ok_on(None, &b_db, &["journal", "verify"]);

    // A third member, on a cache synced after the decision: its findings come with the
    // team's decision.
    let c_db = w.path("data/member-c.db");
    w.ok_on(None, &c_db, &["sync"]);
    let c: Vec<Value> = findings(&w, &c_db);
    let f = c.iter().find(|f| f["id"] == acked[0].as_str()).unwrap();
    assert_eq!(f["status"], "acknowledged", "{f}");
}

#[test]
fn a_lost_team_store_leaves_the_workstation_read_only_until_it_returns() {
    if !tmux_support::available() {
        return;
    }
    // A cluster of its own: this test stops it.
    let cluster = Cluster::start();
    let w = team_world(&cluster);
    w.ok_on(None, &w.db(), &["sync"]);
    let socket = format!("keyaudit-team-offline-{}", std::process::id());
    let t = Tmux::new(&socket, "a");
    t.start(&workstation(&w, &w.db()), 80, 24);
    findings_view(&t, 1);

    cluster.stop();
    let screen = t.wait_for("the workstation saying the store is lost", |s| {
        s.contains("TEAM OFFLINE") && s.contains("team store offline")
    });
    assert!(screen.contains("[findings]"), "{screen}");
    // Decisions are refused; browsing still works.
    t.send(&["a"]);
    t.wait_for("the refusal", |s| {
        s.contains("decision the team cannot see")
    });
    t.send(&["1"]);
    t.wait_for("the keys view", |s| s.contains("[keys]"));
    t.send(&["4"]);
    let screen = t.wait_for("the findings view again", |s| s.contains("[findings]"));
    assert_eq!(acknowledged_rows(&screen), 0, "{screen}");

    cluster.resume();
    t.wait_for("the reconnection", |s| {
        s.contains("TEAM 1") && s.contains("reachable again")
    });
    t.send(&["a"]);
    t.wait_for("the note prompt", |s| s.contains("acknowledge"));
    t.type_text("seen");
    t.send(&["Enter"]);
    t.wait_for("the acknowledgement", |s| acknowledged_rows(s) == 1);
}
