//! Nothing lost, nothing doubled: re-imports add nothing, and an import killed with
//! SIGKILL resumes from its last committed batch and ends with exactly the right count.

#[path = "import_support/mod.rs"]
mod support;

use std::io::Write;
use std::time::{Duration, Instant};
use support::*;

fn cursor_seq(db: &std::path::Path) -> Option<u64> {
    let c = rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .ok()?;
    let s: String = c
        .query_row(
            "SELECT cursor FROM sync_state WHERE stream LIKE 'import:%'",
            [],
            |r| r.get(0),
        )
        .ok()?;
    s.split_whitespace()
        .find_map(|p| p.strip_prefix("seq="))
        .and_then(|n| n.parse().ok())
}

#[test]
fn killed_import_resumes_without_loss_or_duplicates() {
    let sb = Sandbox::new();
    let n: u64 = 20_000;
    let path = sb.path("big.jsonl");
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
        for i in 0..n {
            writeln!(
                f,
                "{}",
                cloudtrail_line(i, &format!("AKIARESUME{:010}", i % 40))
            )
            .unwrap();
        }
    }
    // Small batches so several commit before the kill.
    let mut child = sb
        .command()
        .args(["import", "--batch", "500", path.to_str().unwrap()])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let mut killed_at = None;
    while started.elapsed() < Duration::from_secs(60) {
        if let Some(seq) = cursor_seq(&sb.db()) {
            if seq >= 2000 {
                killed_at = Some(seq);
                break;
            }
        }
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let partial = count(&sb.db());
    assert!(
        killed_at.is_some(),
        "the import finished before it could be killed"
    );
    assert!(partial > 0 && (partial as u64) < n, "partial = {partial}");
    assert_eq!(integrity(&sb.db()), "ok");

    let (code, _, err) = sb.import(&[&path], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("resumed after record"), "{err}");
    assert_eq!(count(&sb.db()), n as i64, "{err}");

    // And once more: nothing added.
    let (code, _, err) = sb.import(&[&path], &[]);
    assert_eq!(code, 0);
    assert!(err.contains("already imported"), "{err}");
    assert_eq!(count(&sb.db()), n as i64);
}

#[test]
fn the_same_records_in_another_file_are_not_doubled() {
    let sb = Sandbox::new();
    let text: String = (0..50)
        .map(|i| cloudtrail_line(i, "AKIADUP0000000000001") + "\n")
        .collect();
    let a = sb.write("a.jsonl", text.as_bytes());
    let b = sb.write("b.jsonl.gz", &gzip(text.as_bytes()));
    assert_eq!(sb.import(&[&a], &[]).0, 0);
    let (code, _, err) = sb.import(&[&b], &[]);
    assert_eq!(code, 0);
    assert!(err.contains("0 imported, 50 duplicates"), "{err}");
    assert_eq!(sb.count(), 50);
    // Records without an id of their own are deduplicated by a content hash.
    let csv =
        "timestamp,key_id,action\n2024-03-05 08:00:00,k1,GET /a\n2024-03-05 08:00:01,k1,GET /b\n";
    let c1 = sb.write("c1.csv", csv.as_bytes());
    let c2 = sb.write(
        "c2.csv",
        format!("{csv}2024-03-05 08:00:02,k1,GET /c\n").as_bytes(),
    );
    assert_eq!(sb.import(&[&c1], &[]).0, 0);
    let (_, _, err) = sb.import(&[&c2], &[]);
    assert!(err.contains("1 imported, 2 duplicates"), "{err}");
}
