//! The anchored journal through the binary: `journal verify` on an untouched journal, and
//! on the three ways someone who can write the cache rewrites history — one byte
//! changed, the last entries deleted, the whole chain recomputed after an edit — and an
//! exported journal verified with the public key alone.

mod action_support;

use action_support::{text, World};
use keyaudit::model::JournalEntry;
use keyaudit::store::journal::entry_hash;

/// A world with a journal of several entries, all made by the binary.
fn journaled() -> World {
    let w = World::start();
    let ids: Vec<String> = (0..4)
        .map(|i| w.create(&format!("anchor-{i}"), "Anchor Partner").0.id)
        .collect();
    w.ok(&["sync"]);
    for id in &ids {
        w.ok(&["disable", id, "--reason", "INC-7 containment", "--yes"]);
    }
    assert!(w.journal().len() >= 8, "{:?}", w.journal().len());
    w
}

fn verify(w: &World, extra: &[&str]) -> (Option<i32>, String) {
    let mut args = vec!["journal", "verify"];
    args.extend_from_slice(extra);
    let out = w.run(&args);
    (out.status.code(), text(&out.stdout) + &text(&out.stderr))
}

fn entries(w: &World) -> Vec<JournalEntry> {
    let conn = rusqlite::Connection::open(w.db()).unwrap();
    let mut stmt = conn
        .prepare("SELECT seq, time, os_user, host, action, target, reason, params, result, prev_hash, hash FROM journal ORDER BY seq")
        .unwrap();
    let rows = stmt
        .query_map([], |r| {
            let params: String = r.get(7)?;
            Ok(JournalEntry {
                seq: r.get(0)?,
                time: keyaudit::model::from_millis(r.get(1)?),
                os_user: r.get(2)?,
                host: r.get(3)?,
                action: r.get(4)?,
                target: r.get(5)?,
                reason: r.get(6)?,
                params: serde_json::from_str(&params).unwrap(),
                result: r.get(8)?,
                prev_hash: r.get(9)?,
                hash: r.get(10)?,
            })
        })
        .unwrap();
    rows.map(Result::unwrap).collect()
}

#[test]
fn untouched_journal_verifies_and_names_its_signed_checkpoint() {
    let w = journaled();
    let n = w.journal().len();
    let (code, out) = verify(&w, &[]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains(&format!("{n} entries")), "{out}");
    assert!(
        out.contains(&format!("signed checkpoint of entry {n}")),
        "{out}"
    );
    let key = w.path("config/journal-signing.key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    // The signing key is nowhere in the cache.
    let seed = std::fs::read_to_string(&key).unwrap();
    let db = std::fs::read(w.db()).unwrap();
    assert!(!action_support::contains(&db, seed.trim().as_bytes()));
}

#[test]
fn one_byte_changed_is_named() {
    let w = journaled();
    let conn = rusqlite::Connection::open(w.db()).unwrap();
    conn.execute(
        "UPDATE journal SET reason = 'INC-7 containmenT' WHERE seq = 3",
        [],
    )
    .unwrap();
    let (code, out) = verify(&w, &[]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("BROKEN at entry 3"), "{out}");
}

#[test]
fn the_last_three_entries_deleted_are_seen() {
    let w = journaled();
    let n = w.journal().len() as i64;
    let conn = rusqlite::Connection::open(w.db()).unwrap();
    conn.execute("DELETE FROM journal WHERE seq > ?1", [n - 3])
        .unwrap();
    drop(conn);
    let (code, out) = verify(&w, &[]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains(&format!(
            "entries {}–{} were deleted from its end",
            n - 2,
            n
        )),
        "{out}"
    );
}

#[test]
fn a_chain_recomputed_after_an_edit_is_seen() {
    let w = journaled();
    let mut all = entries(&w);
    // The attacker edits entry 2 and recomputes every hash after it, so the chain on its
    // own is intact again.
    all[1].reason = Some("routine maintenance".into());
    let mut prev = keyaudit::store::journal::GENESIS.to_string();
    for e in &mut all {
        e.prev_hash = prev.clone();
        e.hash = entry_hash(e);
        prev = e.hash.clone();
    }
    let conn = rusqlite::Connection::open(w.db()).unwrap();
    for e in &all {
        conn.execute(
            "UPDATE journal SET reason = ?1, prev_hash = ?2, hash = ?3 WHERE seq = ?4",
            rusqlite::params![e.reason, e.prev_hash, e.hash, e.seq],
        )
        .unwrap();
    }
    drop(conn);
    let (code, out) = verify(&w, &[]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("BROKEN at entry 2"), "{out}");
    assert!(out.contains("rewritten"), "{out}");
    // Removing the anchor file as well does not help.
    std::fs::remove_file(format!("{}.anchors", w.db().display())).unwrap();
    let (code, out) = verify(&w, &[]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("no signed checkpoint"), "{out}");
}

#[test]
fn an_export_verifies_with_the_public_key_alone() {
    let w = journaled();
    let export = w.path("journal.jsonl");
    w.ok(&[
        "export",
        "journal",
        "--format",
        "jsonl",
        "-o",
        export.to_str().unwrap(),
    ]);
    let anchors = format!("{}.anchors", export.display());
    assert!(std::path::Path::new(&anchors).exists());
    // The public key, as an auditor receives it.
    let seed = std::fs::read_to_string(w.path("config/journal-signing.key")).unwrap();
    let seed: [u8; 32] = hex::decode(seed.trim()).unwrap().try_into().unwrap();
    let public = hex::encode(
        ed25519_dalek::SigningKey::from_bytes(&seed)
            .verifying_key()
            .as_bytes(),
    );
    // Verified without the cache: the cache is gone.
    std::fs::remove_file(w.db()).unwrap();
    let (code, out) = verify(
        &w,
        &[
            "--export",
            export.to_str().unwrap(),
            "--public-key",
            &public,
        ],
    );
    assert_eq!(code, Some(0), "{out}");
    // Another key is not trusted.
    let (code, out) = verify(
        &w,
        &[
            "--export",
            export.to_str().unwrap(),
            "--public-key",
            &hex::encode(
                ed25519_dalek::SigningKey::from_bytes(&[7u8; 32])
                    .verifying_key()
                    .as_bytes(),
            ),
        ],
    );
    assert_eq!(code, Some(1), "{out}");
    // The export's last line removed.
    let text = std::fs::read_to_string(&export).unwrap();
    let cut: Vec<&str> = text.lines().collect();
    std::fs::write(&export, cut[..cut.len() - 1].join("\n")).unwrap();
    let (code, out) = verify(
        &w,
        &[
            "--export",
            export.to_str().unwrap(),
            "--public-key",
            &public,
        ],
    );
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("deleted from its end"), "{out}");
}
