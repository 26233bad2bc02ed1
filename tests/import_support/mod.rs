//! Helpers shared by the importer tests: run the real binary in a private sandbox.
#![allow(dead_code)]

use flate2::write::GzEncoder;
use flate2::Compression;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A sandbox: a temp dir with an empty config, a cache path and XDG dirs inside it.
pub struct Sandbox {
    pub dir: tempfile::TempDir,
}

impl Sandbox {
    pub fn new() -> Sandbox {
        let s = Sandbox {
            dir: tempfile::tempdir().unwrap(),
        };
        std::fs::write(s.config(), "").unwrap();
        s
    }
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
    pub fn config(&self) -> PathBuf {
        self.path("config.toml")
    }
    pub fn db(&self) -> PathBuf {
        self.path("cache.db")
    }
    pub fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let p = self.path(name);
        if let Some(d) = p.parent() {
            std::fs::create_dir_all(d).unwrap();
        }
        std::fs::write(&p, bytes).unwrap();
        p
    }
    pub fn command(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_keyaudit"));
        c.env("KEYAUDIT_CONFIG", self.config())
            .env("KEYAUDIT_DB", self.db())
            .env("HOME", self.dir.path())
            .env("XDG_STATE_HOME", self.path("state"))
            .env("XDG_DATA_HOME", self.path("data"))
            .env_remove("KEYAUDIT_LOG");
        c
    }
    /// Runs `keyaudit ARGS`; returns (exit code, stdout, stderr).
    pub fn run(&self, args: &[&str]) -> (i32, String, String) {
        let o: Output = self.command().args(args).output().unwrap();
        (
            o.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    }
    pub fn import(&self, paths: &[&Path], extra: &[&str]) -> (i32, String, String) {
        let mut args = vec!["import".to_string()];
        args.extend(extra.iter().map(|s| s.to_string()));
        args.extend(paths.iter().map(|p| p.display().to_string()));
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        self.run(&refs)
    }
    pub fn count(&self) -> i64 {
        count(&self.db())
    }
}

/// Events in a cache file.
pub fn count(db: &Path) -> i64 {
    let c = rusqlite::Connection::open(db).unwrap();
    c.query_row("SELECT count(*) FROM events", [], |r| r.get(0))
        .unwrap()
}

/// SQLite's integrity check of a cache file.
pub fn integrity(db: &Path) -> String {
    let c = rusqlite::Connection::open(db).unwrap();
    c.query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap()
}

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// A sample file of tests/data/import.
pub fn sample(name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/import")
            .join(name),
    )
    .unwrap()
}

/// A CloudTrail event as one JSON line.
pub fn cloudtrail_line(i: u64, key: &str) -> String {
    format!(
        r#"{{"eventVersion":"1.08","userIdentity":{{"type":"IAMUser","arn":"arn:aws:iam::111122223333:user/u{k}","accessKeyId":"{key}"}},"eventTime":"2024-03-01T10:{m:02}:{s:02}Z","eventSource":"s3.amazonaws.com","eventName":"GetObject","sourceIPAddress":"198.51.100.{ip}","userAgent":"aws-cli/2","requestID":"r{i}","eventID":"ev-{i:08}"}}"#,
        k = i % 7,
        m = (i / 60) % 60,
        s = i % 60,
        ip = i % 250
    )
}
