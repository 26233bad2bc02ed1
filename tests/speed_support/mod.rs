//! The providers' sync-speed measurements (ignored tests, run by hand): one timed
//! `keyaudit sync` with a config that goes straight to the fake, then the cached keys.

use std::path::Path;
use std::process::Command;

/// Runs `keyaudit sync` (made by `cmd`) with the config `direct`; returns the seconds it
/// took, the cached keys and the sync's error output (its summary line). Panics when
/// the sync fails.
pub fn timed_sync(
    cmd: impl Fn(&[&str]) -> Command,
    direct: &Path,
) -> (f64, Vec<serde_json::Value>, String) {
    let started = std::time::Instant::now();
    let out = cmd(&["sync"])
        .env("KEYAUDIT_CONFIG", direct)
        .output()
        .unwrap();
    let took = started.elapsed().as_secs_f64();
    let said = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{said}");
    let keys = cmd(&["keys", "--format", "json"])
        .env("KEYAUDIT_CONFIG", direct)
        .output()
        .unwrap();
    (took, serde_json::from_slice(&keys.stdout).unwrap(), said)
}
