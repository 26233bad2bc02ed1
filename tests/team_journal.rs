//! The team journal on a private PostgreSQL cluster: two writers appending 1,000
//! entries at once keep one chain that `journal verify` (the release binary) accepts and
//! whose tampering it names; a member role (the grants of docs/team.md) can add entries,
//! claim keys and decide findings but cannot change or remove history or decisions.

mod team_support;

use keyaudit::config::Config;
use keyaudit::model::FindingStatus;
use keyaudit::store::journal::{ChainCheck, NewEntry};
use keyaudit::store::shared::{ClaimRequest, Decision, Shared};
use keyaudit::store::team::TeamStore;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;
use team_support::{team_table, Cluster};

fn store(url: &str) -> TeamStore {
    let cfg = Config::parse(&team_table(url, "1m"), Path::new("team.toml")).unwrap();
    TeamStore::new(cfg.team().unwrap().clone())
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// `keyaudit ARGS` with a config holding only `[team]` at `url`.
fn keyaudit(dir: &Path, url: &str, args: &[&str]) -> std::process::Output {
    let cfg = dir.join("config.toml");
    std::fs::write(&cfg, team_table(url, "1m")).unwrap();
    Command::new(env!("CARGO_BIN_EXE_keyaudit"))
        .args(args)
        .env("KEYAUDIT_CONFIG", &cfg)
        .env("KEYAUDIT_DB", dir.join("cache.db"))
        .env("XDG_CONFIG_HOME", dir.join("xdg-config"))
        .env("XDG_DATA_HOME", dir.join("xdg-data"))
        .env("XDG_STATE_HOME", dir.join("state"))
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn two_writers_append_1000_entries_to_one_chain_that_verifies() {
    let cluster = Cluster::shared();
    let db = cluster.database("journal");
    let url = cluster.url("postgres", &db);
    let rt = rt();
    // Two members, each with its own connections, 500 entries each, at once.
    rt.block_on(async {
        let writers: Vec<_> = (0..2)
            .map(|w| {
                let s = store(&url);
                tokio::spawn(async move {
                    for i in 0..500 {
                        s.append_journal(&NewEntry {
                            action: "revoke",
                            target: &format!("tg/key_{w}_{i}"),
                            reason: Some("incident 7"),
                            params: serde_json::json!({"writer": w, "i": i}),
                            result: "ok: status revoked",
                        })
                        .await
                        .unwrap();
                    }
                })
            })
            .collect();
        for w in writers {
            w.await.unwrap();
        }
    });
    let entries = rt.block_on(store(&url).journal()).unwrap();
    assert_eq!(entries.len(), 1000);
    let mut chain = ChainCheck::default();
    for e in &entries {
        chain.push(e).unwrap();
    }
    // Both writers interleaved (a chain of one writer after the other would not show
    // that appends were serialised).
    let switches = entries
        .windows(2)
        .filter(|p| p[0].params["writer"] != p[1].params["writer"])
        .count();
    assert!(switches > 1, "the writers did not overlap");

    let dir = tempfile::tempdir().unwrap();
    let out = keyaudit(dir.path(), &url, &["journal", "verify"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).starts_with("team journal ok: 1000 entries, hash chain intact"),
        "{}",
        text(&out.stdout)
    );
    let listed = keyaudit(dir.path(), &url, &["journal", "--format", "jsonl"]);
    assert_eq!(text(&listed.stdout).lines().count(), 1000);

    // The owner can still tamper (it owns the table); verify names where.
    cluster.value(
        &db,
        "UPDATE journal SET reason = 'incident 8' WHERE seq = 417",
    );
    let out = keyaudit(dir.path(), &url, &["journal", "verify"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stdout).starts_with("team journal BROKEN at entry 417"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn a_member_role_adds_and_claims_but_cannot_alter_history() {
    let cluster = Cluster::shared();
    let db = cluster.database("grants");
    let rt = rt();
    // The owner's first connection creates the tables and the member role's grants.
    let owner = store(&cluster.url("postgres", &db));
    rt.block_on(owner.append_journal(&NewEntry {
        action: "revoke",
        target: "tg/key_1",
        reason: None,
        params: serde_json::json!({}),
        result: "ok: status revoked",
    }))
    .unwrap();
    // docs/team.md: one login role per responder, member of keyaudit_member.
    cluster.value(
        "postgres",
        "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'bob') THEN \
         CREATE ROLE bob LOGIN; END IF; END $$",
    );
    cluster.value("postgres", "GRANT keyaudit_member TO bob");
    let bob = store(&cluster.url("bob", &db));
    let e = rt
        .block_on(bob.append_journal(&NewEntry {
            action: "disable",
            target: "tg/key_2",
            reason: Some("suspicious"),
            params: serde_json::json!({}),
            result: "ok: status inactive",
        }))
        .unwrap();
    assert_eq!(e.seq, 2);
    let claim = rt
        .block_on(bob.claim(&ClaimRequest {
            provider: "tg".into(),
            key_id: "key_2".into(),
            operation: "disable".into(),
            lease: Duration::from_secs(60),
        }))
        .unwrap();
    rt.block_on(bob.release(&claim, "ok")).unwrap();
    // A decision on a finding, with its journal entry.
    let decision = Decision::new(
        "f-stale-1",
        "tg/key_2",
        FindingStatus::Suppressed,
        Some("rotation booked"),
        None,
    );
    rt.block_on(bob.decide(
        &decision,
        &NewEntry {
            action: "finding.suppress",
            target: "tg/key_2",
            reason: Some("rotation booked"),
            params: serde_json::json!({ "finding": "f-stale-1" }),
            result: "ok",
        },
    ))
    .unwrap();
    let seen = rt.block_on(owner.decisions_since(0)).unwrap();
    assert_eq!(seen.len(), 1);
    assert_eq!(
        (
            seen[0].finding.as_str(),
            seen[0].status,
            seen[0].note.as_deref()
        ),
        (
            "f-stale-1",
            FindingStatus::Suppressed,
            Some("rotation booked")
        )
    );
    assert_eq!(
        rt.block_on(bob.decisions_since(seen[0].id)).unwrap(),
        vec![]
    );

    // bob's own connection: UPDATE and DELETE of history are refused by the database.
    rt.block_on(async {
        let (client, conn) =
            tokio_postgres::connect(&cluster.url("bob", &db), tokio_postgres::NoTls)
                .await
                .unwrap();
        tokio::spawn(conn);
        for sql in [
            "UPDATE journal SET reason = 'nothing happened' WHERE seq = 1",
            "DELETE FROM journal WHERE seq = 2",
            "TRUNCATE journal",
            "UPDATE decisions SET status = 'acknowledged'",
            "DELETE FROM decisions",
        ] {
            let err = client.batch_execute(sql).await.unwrap_err();
            assert_eq!(
                err.code(),
                Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE),
                "{sql}: {err:?}"
            );
        }
    });
    let entries = rt.block_on(bob.journal()).unwrap();
    assert_eq!(entries.len(), 3);
    assert_eq!(entries[2].action, "finding.suppress");
    assert_eq!(entries[0].reason, None);
    let mut chain = ChainCheck::default();
    for e in &entries {
        chain.push(e).unwrap();
    }
}

#[test]
fn tls_with_the_configured_ca_and_a_refusal_without_it() {
    let (cluster, ca_pem) = Cluster::start_tls();
    let db = cluster.database("tls");
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &ca_pem).unwrap();
    let table = |ca: &Path| {
        format!(
            "[team]\nurl = \"{}\"\nca_file = \"{}\"\n",
            cluster.url("postgres", &db),
            ca.display()
        )
    };
    let rt = rt();
    let cfg = Config::parse(&table(&ca), Path::new("tls.toml")).unwrap();
    let s = TeamStore::new(cfg.team().unwrap().clone());
    rt.block_on(s.append_journal(&NewEntry {
        action: "revoke",
        target: "tg/key_1",
        reason: None,
        params: serde_json::json!({}),
        result: "ok: status revoked",
    }))
    .unwrap();
    // The server saw an encrypted connection from us.
    assert_eq!(
        cluster.value(
            &db,
            "SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
             WHERE a.application_name = 'keyaudit' AND s.ssl"
        ),
        "1"
    );
    // Another CA: the handshake is refused and nothing is written.
    let other_pem = team_support::unrelated_ca();
    let other = dir.path().join("other-ca.pem");
    std::fs::write(&other, other_pem).unwrap();
    let cfg = Config::parse(&table(&other), Path::new("tls.toml")).unwrap();
    let s = TeamStore::new(cfg.team().unwrap().clone());
    let e = rt.block_on(s.journal()).unwrap_err().to_string();
    assert!(e.contains("cannot connect"), "{e}");
    assert!(e.to_lowercase().contains("certificate"), "{e}");
    assert_eq!(cluster.value(&db, "SELECT count(*) FROM journal"), "1");
}
