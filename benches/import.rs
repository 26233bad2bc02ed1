//! Import benchmark: N CloudTrail-like events (~690 bytes each, JSON lines), from
//! start until the cache is queryable (indexes maintained, dedup guaranteed), against
//! SQLite's own floor for the same rows (the sqlite3 shell's `INSERT ... SELECT` of
//! exactly the rows the import stored, from a staging database without indexes, into a
//! fresh database with keyaudit's schema and indexes, measured right after each import),
//! `sqlite3 .import` of the same rows from CSV, and lnav opening the same file.
//!
//! Run: `cargo bench --bench import` (N from `KEYAUDIT_BENCH_EVENTS`, default
//! 1,000,000; `KEYAUDIT_BENCH_INPUT=DIR` keeps the generated files in DIR for the next
//! run; `KEYAUDIT_BENCH_PEERS=0` measures keyaudit and its SQLite floor alone). Needs
//! `/usr/bin/time` and the `sqlite3` shell on the PATH (Debian/Ubuntu: `apt-get install
//! -y sqlite3 time`), and optionally `lnav`. Built with `--features encryption`, the
//! keyaudit imports run a second time into an encrypted cache.
//! Figures are written to stdout; docs/PERFORMANCE.md records a run.

use std::fmt::Write as _;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::process::Command;
use std::time::Instant;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[(self.next() % xs.len() as u64) as usize]
    }
}

const SOURCES: &[(&str, &[&str])] = &[
    (
        "s3.amazonaws.com",
        &["GetObject", "PutObject", "ListBucket", "DeleteObject"],
    ),
    (
        "iam.amazonaws.com",
        &[
            "CreateUser",
            "ListUsers",
            "CreateAccessKey",
            "AttachUserPolicy",
        ],
    ),
    (
        "ec2.amazonaws.com",
        &["DescribeInstances", "RunInstances", "TerminateInstances"],
    ),
    (
        "dynamodb.amazonaws.com",
        &["Scan", "Query", "PutItem", "DeleteTable"],
    ),
];
const AGENTS: &[&str] = &[
    "aws-cli/2.15.30 Python/3.11.8",
    "aws-sdk-go/1.44.0 (go1.21.5)",
    "Boto3/1.34.0 Python/3.11.8",
    "aws-sdk-java/2.20.0 Linux/6.1",
];

/// One event as a JSON line, plus the CSV row of what keyaudit stores for it.
fn event(rng: &mut Rng, i: u64, json: &mut String, csv: &mut String, csv_raw: &mut String) {
    json.clear();
    csv.clear();
    let key = rng.next() % 500;
    let user = format!("partner-{:03}", key % 120);
    let (src, names) = SOURCES[(rng.next() % SOURCES.len() as u64) as usize];
    let name = rng.pick(names);
    let ip = format!("198.51.{}.{}", rng.next() % 256, rng.next() % 256);
    let agent = rng.pick(AGENTS);
    let secs = 1_709_280_000 + i * 2;
    let time = chrono::DateTime::from_timestamp(secs as i64, 0)
        .unwrap()
        .format("%Y-%m-%dT%H:%M:%SZ");
    let denied = rng.next() % 50 == 0;
    let event_id = format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        rng.next() as u32,
        rng.next() as u16,
        rng.next() % 4096,
        rng.next() % 4096,
        i
    );
    let request_id = format!("{:016X}", rng.next());
    let error = if denied {
        r#","errorCode":"AccessDenied","errorMessage":"User is not authorized to perform this operation""#
    } else {
        ""
    };
    write!(
        json,
        r#"{{"eventVersion":"1.08","userIdentity":{{"type":"IAMUser","principalId":"AIDA{key:016}","arn":"arn:aws:iam::111122223333:user/{user}","accountId":"111122223333","accessKeyId":"AKIA{key:016}","userName":"{user}"}},"eventTime":"{time}","eventSource":"{src}","eventName":"{name}","awsRegion":"eu-west-1","sourceIPAddress":"{ip}","userAgent":"{agent}","requestParameters":{{"bucketName":"hr-exports-{k}","key":"payroll/{i}.csv"}},"responseElements":null{error},"requestID":"{request_id}","eventID":"{event_id}","readOnly":true,"eventType":"AwsApiCall","recipientAccountId":"111122223333"}}"#,
        k = key % 7,
    )
    .unwrap();
    let outcome = if denied { 1 } else { 0 };
    write!(
        csv,
        "{event_id},AKIA{key:016},{},arn:aws:iam::111122223333:user/{user},{src}:{name},{ip},\"{agent}\",{outcome},{request_id}",
        secs * 1000
    )
    .unwrap();
    csv_raw.clear();
    csv_raw.push_str(csv);
    csv_raw.push_str(",\"");
    csv_raw.push_str(&json.replace('"', "\"\""));
    csv_raw.push('"');
}

/// Runs a command under /usr/bin/time; returns (seconds, peak RSS in MB, CPU seconds).
/// Pending writes of earlier contenders are flushed first, so each starts from the same
/// state of the disk.
fn timed(cmd: &mut Command, what: &str) -> (f64, f64, f64) {
    let _ = Command::new("sync").status();
    std::thread::sleep(std::time::Duration::from_secs(1));
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("time.txt");
    let program = cmd.get_program().to_owned();
    let args: Vec<_> = cmd.get_args().map(|a| a.to_owned()).collect();
    let mut t = Command::new("/usr/bin/time");
    t.arg("-f")
        .arg("%e %M %U %S")
        .arg("-o")
        .arg(&out)
        .arg(program)
        .args(args);
    for (k, v) in cmd.get_envs() {
        if let Some(v) = v {
            t.env(k, v);
        }
    }
    let started = Instant::now();
    let o = t.output().unwrap();
    let wall = started.elapsed().as_secs_f64();
    if !o.status.success() {
        eprintln!(
            "{what} failed: {}\n{}",
            o.status,
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let text = std::fs::read_to_string(&out).unwrap_or_default();
    let field = |i: usize| -> f64 {
        text.split_whitespace()
            .nth(i)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0.0)
    };
    (wall, field(1) / 1024.0, field(2) + field(3))
}

/// Removes a measured database (and its WAL), so its pages are not written back while
/// the next contender runs.
fn remove_db(db: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let mut p = db.as_os_str().to_owned();
        p.push(suffix);
        let _ = std::fs::remove_file(p);
    }
}

/// Runs an SQL script with the sqlite3 shell (untimed set-up steps); panics on failure.
fn sqlite3(db: &Path, sql: &str) -> String {
    let mut child = Command::new("sqlite3")
        .arg("-bail")
        .arg(db)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("sqlite3 runs (apt-get install -y sqlite3)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(sql.as_bytes())
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(
        o.status.success(),
        "sqlite3 {}: {}",
        db.display(),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The columns keyaudit's import writes into `events` (the row id is assigned).
const EVENT_COLUMNS: &str = "provider_id, ext_id, key_ref, time, principal, action, scope, \
    source_ip, user_agent, outcome, status_code, request_id, records, raw_block, raw_at";

/// Events per transaction of keyaudit's import (`--batch`'s default).
const TRANSACTION: u64 = 250_000;

/// SQLite's own floor for what a keyaudit import stored in `ka_db`: the sqlite3 shell's
/// `INSERT ... SELECT` of exactly those rows (events and raw record blocks, byte for
/// byte, in the order the import wrote them) into a fresh database with keyaudit's
/// schema, indexes included, in transactions of the import's size, with the import
/// connection's settings (WAL, `synchronous = NORMAL`, 64 MiB page cache). The rows come
/// from a staging database without indexes; only the `INSERT ... SELECT`s are timed.
/// Returns (seconds, peak RSS MB, CPU seconds, rows).
fn sqlite_floor(dir: &Path, ka_db: &Path, label: &str) -> (f64, f64, f64, String) {
    let staging = dir.join("floor-staging.db");
    let floor = dir.join("floor.db");
    remove_db(&staging);
    remove_db(&floor);
    sqlite3(
        &staging,
        &format!(
            "ATTACH '{ka}' AS ka;
             CREATE TABLE events AS SELECT {EVENT_COLUMNS} FROM ka.events ORDER BY id;
             CREATE TABLE raw_blocks AS SELECT id, data FROM ka.raw_blocks ORDER BY id;",
            ka = ka_db.display()
        ),
    );
    let schema = sqlite3(
        ka_db,
        "SELECT sql || ';' FROM sqlite_master WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite_%' ORDER BY rowid;",
    );
    sqlite3(
        &floor,
        &format!(
            "PRAGMA journal_mode = WAL;\n{schema}\nATTACH '{ka}' AS ka;
             INSERT INTO providers SELECT * FROM ka.providers;
             INSERT INTO keys SELECT * FROM ka.keys;",
            ka = ka_db.display()
        ),
    );
    let rows: u64 = sqlite3(&staging, "SELECT count(*) FROM events;")
        .trim()
        .parse()
        .unwrap();
    // Each transaction takes its events and the raw blocks they point into.
    let mut script = format!(
        "PRAGMA synchronous = NORMAL;\nPRAGMA cache_size = -65536;\nATTACH '{}' AS s;\n",
        staging.display()
    );
    let mut blocks_done: i64 = 0;
    let mut first = 1;
    while first <= rows {
        let last = (first + TRANSACTION - 1).min(rows);
        let top: i64 = sqlite3(
            &staging,
            &format!(
                "SELECT coalesce(max(raw_block), 0) FROM events WHERE rowid BETWEEN {first} AND {last};"
            ),
        )
        .trim()
        .parse()
        .unwrap();
        let top = top.max(blocks_done);
        writeln!(
            script,
            "BEGIN;
INSERT INTO raw_blocks (id, data) SELECT id, data FROM s.raw_blocks WHERE id > {blocks_done} AND id <= {top};
INSERT INTO events ({EVENT_COLUMNS}) SELECT {EVENT_COLUMNS} FROM s.events WHERE rowid BETWEEN {first} AND {last};
COMMIT;"
        )
        .unwrap();
        blocks_done = top;
        first = last + 1;
    }
    let sql = dir.join("floor.sql");
    std::fs::write(&sql, script).unwrap();
    let mut cmd = Command::new("sh");
    cmd.arg("-c").arg(format!(
        "sqlite3 -bail {} < {}",
        floor.display(),
        sql.display()
    ));
    let (secs, rss, cpu) = timed(&mut cmd, label);
    let c = count(&floor, "events");
    remove_db(&floor);
    remove_db(&staging);
    (secs, rss, cpu, c)
}

fn count(db: &Path, table: &str) -> String {
    let o = Command::new("sqlite3")
        .arg(db)
        .arg(format!("SELECT count(*) FROM {table}"))
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

const SCHEMA: &str = "CREATE TABLE events (ext_id TEXT NOT NULL UNIQUE, key_id TEXT NOT NULL, time INTEGER NOT NULL,
    principal TEXT, action TEXT NOT NULL, source_ip TEXT, user_agent TEXT, outcome INTEGER NOT NULL, request_id TEXT RAWCOL);
CREATE INDEX events_key_time ON events(key_id, time);
CREATE INDEX events_time ON events(time);";

fn main() {
    let n: u64 = std::env::var("KEYAUDIT_BENCH_EVENTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir().unwrap();
    // KEYAUDIT_BENCH_INPUT=DIR keeps the generated files there and reuses them.
    let input = std::env::var_os("KEYAUDIT_BENCH_INPUT").map(std::path::PathBuf::from);
    let inputs = input.clone().unwrap_or_else(|| dir.path().to_path_buf());
    std::fs::create_dir_all(&inputs).unwrap();
    let jsonl = inputs.join(format!("cloudtrail-{n}.jsonl"));
    let csv_path = inputs.join(format!("events-{n}.csv"));
    let csv_raw_path = inputs.join(format!("events-raw-{n}.csv"));
    let t0 = Instant::now();
    if input.is_none() || !csv_raw_path.exists() {
        let mut j = BufWriter::new(std::fs::File::create(&jsonl).unwrap());
        let mut c = BufWriter::new(std::fs::File::create(&csv_path).unwrap());
        let mut cr = BufWriter::new(std::fs::File::create(&csv_raw_path).unwrap());
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let (mut a, mut b, mut r) = (String::new(), String::new(), String::new());
        for i in 0..n {
            event(&mut rng, i, &mut a, &mut b, &mut r);
            writeln!(j, "{a}").unwrap();
            writeln!(c, "{b}").unwrap();
            writeln!(cr, "{r}").unwrap();
        }
    }
    let size = std::fs::metadata(&jsonl).unwrap().len();
    println!(
        "{n} events, {:.0} MB of JSON lines ({:.0} bytes/event), ready in {:.1}s",
        size as f64 / 1e6,
        size as f64 / n as f64,
        t0.elapsed().as_secs_f64()
    );
    // Warm the page cache for every contender alike.
    for p in [&jsonl, &csv_path, &csv_raw_path] {
        let _ = std::fs::read(p).map(|v| v.len());
    }

    let bin = env!("CARGO_BIN_EXE_keyaudit");
    let mut results = Vec::new();
    let mut floors: Vec<(String, f64)> = Vec::new();
    for (label, extra) in [
        ("keyaudit import --no-raw", Some("--no-raw")),
        ("keyaudit import (raw kept)", None),
    ] {
        let db = dir.path().join(format!("ka-{}.db", results.len()));
        let mut cmd = Command::new(bin);
        cmd.arg("--db")
            .arg(&db)
            .arg("import")
            .arg("--format")
            .arg("cloudtrail")
            .arg(&jsonl);
        if let Some(x) = extra {
            cmd.arg(x);
        }
        std::fs::write(dir.path().join("empty.toml"), "").unwrap();
        cmd.env("KEYAUDIT_CONFIG", dir.path().join("empty.toml"));
        let (secs, rss, cpu) = timed(&mut cmd, label);
        let c = count(&db, "events");
        let mb = std::fs::metadata(&db).map(|m| m.len()).unwrap_or(0) as f64 / 1e6;
        println!("{label:<36} {secs:>6.2}s (cpu {cpu:>5.2}s) {:>9.0} events/s  peak RSS {rss:>5.0} MB  cache {mb:.0} MB  events={c}", n as f64 / secs);
        // SQLite's floor for the same rows, measured right after.
        let floor_label = format!("sqlite3 INSERT..SELECT, {}", &label[16..]);
        let (fsecs, frss, fcpu, fc) = sqlite_floor(dir.path(), &db, &floor_label);
        remove_db(&db);
        println!(
            "{floor_label:<36} {fsecs:>6.2}s (cpu {fcpu:>5.2}s) {:>9.0} rows/s    peak RSS {frss:>5.0} MB  rows={fc}",
            n as f64 / fsecs
        );
        println!("{:<36} {:.2}x the floor", format!("{label}:"), secs / fsecs);
        floors.push((floor_label, fsecs));
        results.push((label.to_string(), secs));
    }

    // Built with `--features encryption`: the same imports into an encrypted cache
    // (SQLCipher, a raw key from db_key_command), in the same run.
    if cfg!(feature = "encryption") {
        let key = dir.path().join("bench.key");
        std::fs::write(&key, format!("{}\n", "5a".repeat(32))).unwrap();
        let cfg = dir.path().join("encrypted.toml");
        std::fs::write(
            &cfg,
            format!(
                "[cache]\nencryption = \"command\"\ndb_key_command = \"cat '{}'\"\n",
                key.display()
            ),
        )
        .unwrap();
        for (i, (label, extra)) in [
            ("keyaudit import --no-raw, encrypted", Some("--no-raw")),
            ("keyaudit import (raw kept), encrypted", None),
        ]
        .into_iter()
        .enumerate()
        {
            let db = dir.path().join(format!("ka-enc-{i}.db"));
            let mut cmd = Command::new(bin);
            cmd.arg("--db")
                .arg(&db)
                .arg("import")
                .arg("--format")
                .arg("cloudtrail")
                .arg(&jsonl);
            if let Some(x) = extra {
                cmd.arg(x);
            }
            cmd.env("KEYAUDIT_CONFIG", &cfg);
            let (secs, rss, cpu) = timed(&mut cmd, label);
            let mb = std::fs::metadata(&db).map(|m| m.len()).unwrap_or(0) as f64 / 1e6;
            remove_db(&db);
            println!(
                "{label:<36} {secs:>6.2}s (cpu {cpu:>5.2}s) {:>9.0} events/s  peak RSS {rss:>5.0} MB  cache {mb:.0} MB  ({:.2}x the plain import's time)",
                n as f64 / secs,
                secs / results[i].1
            );
        }
    }

    // KEYAUDIT_BENCH_PEERS=0 measures keyaudit alone.
    if std::env::var("KEYAUDIT_BENCH_PEERS").is_ok_and(|v| v == "0") {
        return;
    }
    for (label, csv, raw) in [
        ("sqlite3 .import (same rows, no raw)", &csv_path, false),
        ("sqlite3 .import (same rows + raw)", &csv_raw_path, true),
    ] {
        let db = dir.path().join(format!("sq-{}.db", results.len()));
        let schema = SCHEMA.replace("RAWCOL", if raw { ", raw TEXT" } else { "" });
        let script = format!(
            "PRAGMA journal_mode=WAL;\nPRAGMA synchronous=NORMAL;\n{schema}\n.mode csv\n.import {} events\n",
            csv.display()
        );
        let sql = dir.path().join("load.sql");
        std::fs::write(&sql, script).unwrap();
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(format!("sqlite3 {} < {}", db.display(), sql.display()));
        let (secs, rss, cpu) = timed(&mut cmd, label);
        println!(
            "{label:<36} {secs:>6.2}s (cpu {cpu:>5.2}s) {:>9.0} rows/s    peak RSS {rss:>5.0} MB  rows={}",
            n as f64 / secs,
            count(&db, "events")
        );
        remove_db(&db);
        results.push((label.to_string(), secs));
    }

    let lnav_ok = Command::new("lnav")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success());
    if lnav_ok {
        let cfg = dir.path().join("lnav");
        std::fs::create_dir_all(cfg.join("formats/installed")).unwrap();
        std::fs::write(
            cfg.join("formats/installed/cloudtrail_jsonl.json"),
            r#"{"cloudtrail_jsonl": {"title": "CloudTrail events (JSON lines)", "description": "One CloudTrail record per line",
                "json": true, "file-pattern": ".*\\.jsonl", "timestamp-field": "eventTime", "body-field": "eventName",
                "value": {"eventName": {"kind": "string", "identifier": true}, "eventSource": {"kind": "string", "identifier": true},
                          "eventID": {"kind": "string"}, "sourceIPAddress": {"kind": "string", "identifier": true},
                          "userIdentity": {"kind": "json"}}}}"#,
        )
        .unwrap();
        let mut cmd = Command::new("lnav");
        cmd.arg("-I")
            .arg(&cfg)
            .arg("-n")
            .arg("-c")
            .arg(";SELECT count(*) FROM cloudtrail_jsonl")
            .arg(&jsonl);
        cmd.env("HOME", dir.path());
        let label = "lnav -n -c ';SELECT count(*) ...'";
        let (secs, rss, cpu) = timed(&mut cmd, label);
        println!(
            "{label:<36} {secs:>6.2}s (cpu {cpu:>5.2}s) {:>9.0} events/s  peak RSS {rss:>5.0} MB",
            n as f64 / secs
        );
        results.push((label.to_string(), secs));
    } else {
        println!("lnav not installed: skipped");
    }
    println!(
        "keyaudit (--no-raw) vs its SQLite floor: {:.2}x; keyaudit (raw kept) vs its SQLite floor: {:.2}x (target at most 1.30x)",
        results[0].1 / floors[0].1,
        results[1].1 / floors[1].1
    );
    let ka = results[0].1;
    for (label, secs) in &results[2..] {
        println!("keyaudit (--no-raw) vs {label}: {:.2}x faster", secs / ka);
    }
    let ka_raw = results[1].1;
    println!(
        "keyaudit (raw kept) vs {}: {:.2}x faster",
        results[3].0,
        results[3].1 / ka_raw
    );
}
