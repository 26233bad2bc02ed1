//! `keyaudit encrypt` / `keyaudit decrypt`: converting a cache in place, crash-safe.
//!
//! 1. Open the cache, leave WAL for a rollback journal (SQLite checkpoints the WAL into
//!    the file and removes `-wal` and `-shm`; it refuses while another connection has
//!    the cache open) and take an exclusive lock that is held to the end.
//! 2. Export every table, index and the schema version into a new file in the same
//!    directory (`sqlcipher_export` through `ATTACH … KEY`), with an unpredictable
//!    name, mode 0600.
//! 3. Check the new file with the new key (`PRAGMA integrity_check`), fsync it.
//! 4. Rename it over the cache (atomic), fsync the directory.
//!
//! Killed before step 4, the old file is whole (in rollback-journal mode, which the next
//! open turns back to WAL) and a stray temporary file may be left beside it (removed by
//! the next conversion); killed after, the new file is whole. There is no `-wal` of the
//! old file that could be replayed into the new one.

use super::{file_state, CacheKey, CryptError, FileState, KeySource, PAUSE_ENV};
use rusqlite::{params, Connection, OpenFlags};
use std::path::{Path, PathBuf};

/// What a conversion did.
#[derive(Debug, Clone)]
pub struct Converted {
    pub path: PathBuf,
    /// Size of the new file.
    pub bytes: u64,
    /// Where the key came from.
    pub source: KeySource,
}

/// Encrypts the plain cache at `path` with the key from `source` (a keyring without
/// the entry gets a new random key).
pub fn encrypt(path: &Path, source: &KeySource) -> Result<Converted, CryptError> {
    match file_state(path)? {
        FileState::Plain => {}
        FileState::New => return Err(fail(path, "there is no cache there yet; nothing to encrypt (a new cache is created encrypted while [cache] encryption is set)")),
        FileState::Encrypted => return Err(fail(path, "it is already encrypted")),
    }
    let key = super::fetch(source, true)?;
    convert(path, None, Some(&key), source)
}

/// Decrypts the encrypted cache at `path` with the key from `source`.
pub fn decrypt(path: &Path, source: &KeySource) -> Result<Converted, CryptError> {
    match file_state(path)? {
        FileState::Encrypted => {}
        FileState::New => return Err(fail(path, "there is no cache there; nothing to decrypt")),
        FileState::Plain => return Err(fail(path, "it is not encrypted")),
    }
    let key = super::fetch(source, false)?;
    convert(path, Some(&key), None, source)
}

fn fail(path: &Path, why: impl Into<String>) -> CryptError {
    CryptError::Convert {
        path: path.to_path_buf(),
        why: why.into(),
    }
}

/// The crash tests' hook: stop at `step` when asked, and wait to be killed.
fn pause(step: &str) {
    if std::env::var_os(PAUSE_ENV).is_some_and(|v| v == step) {
        eprintln!("keyaudit: paused at {step}");
        loop {
            std::thread::sleep(std::time::Duration::from_secs(3600));
        }
    }
}

fn convert(
    path: &Path,
    from: Option<&CacheKey>,
    to: Option<&CacheKey>,
    source: &KeySource,
) -> Result<Converted, CryptError> {
    let sql = |e: rusqlite::Error| fail(path, e.to_string());
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| fail(path, "the file name is not valid UTF-8"))?;
    super::quiet_sqlcipher();
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(sql)?;
    if let Some(k) = from {
        super::apply_key(&conn, path, k, source)?;
        super::check_opens(&conn, path, source)?;
    }
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(sql)?;
    conn.execute_batch("PRAGMA temp_store = MEMORY")
        .map_err(sql)?;

    // 1. Out of WAL, then hold the file exclusively.
    let in_use = |why: String| {
        fail(
            path,
            format!(
                "another process has the cache open ({why}); close keyaudit everywhere, then retry"
            ),
        )
    };
    let mode: String = conn
        .query_row("PRAGMA journal_mode = DELETE", [], |r| r.get(0))
        .map_err(|e| in_use(e.to_string()))?;
    if !mode.eq_ignore_ascii_case("delete") {
        return Err(in_use(format!("it stays in {mode} mode")));
    }
    for suffix in ["-wal", "-journal"] {
        let side = sibling(path, suffix);
        if std::fs::metadata(&side).is_ok_and(|m| m.len() > 0) {
            return Err(fail(
                path,
                format!(
                    "{} is still there after the checkpoint; open the cache with keyaudit once and retry",
                    side.display()
                ),
            ));
        }
    }
    conn.execute_batch("PRAGMA locking_mode = EXCLUSIVE; BEGIN EXCLUSIVE; COMMIT;")
        .map_err(|e| {
            fail(
                path,
                format!("cannot lock it ({e}); close keyaudit everywhere, then retry"),
            )
        })?;
    let version: i64 = conn
        .query_row("PRAGMA main.user_version", [], |r| r.get(0))
        .map_err(sql)?;
    pause("locked");

    // 2. Export into a new file beside it.
    remove_stale_temporaries(&dir, name);
    let tmp = tempfile::Builder::new()
        .prefix(&temp_prefix(name))
        .tempfile_in(&dir)
        .map_err(|e| {
            fail(
                path,
                format!("cannot create a file in {}: {e}", dir.display()),
            )
        })?
        .into_temp_path();
    let tmp_str = tmp
        .to_str()
        .ok_or_else(|| fail(path, "the directory's name is not valid UTF-8"))?
        .to_string();
    let new_key = to.map(|k| k.sqlcipher_text());
    conn.execute(
        "ATTACH DATABASE ?1 AS conv KEY ?2",
        params![
            tmp_str,
            new_key.as_deref().map(|k| k.as_str()).unwrap_or("")
        ],
    )
    .map_err(sql)?;
    conn.execute_batch("PRAGMA conv.synchronous = FULL; PRAGMA conv.journal_mode = DELETE;")
        .map_err(sql)?;
    conn.query_row("SELECT sqlcipher_export('conv')", [], |_| Ok(()))
        .map_err(sql)?;
    conn.pragma_update(Some("conv"), "user_version", version)
        .map_err(sql)?;
    conn.execute("DETACH DATABASE conv", []).map_err(sql)?;
    pause("exported");

    // 3. Check the new file with its own key, then make it durable.
    check_new(&tmp, to, source).map_err(|why| fail(path, why))?;
    std::fs::File::open(&tmp)
        .and_then(|f| f.sync_all())
        .map_err(|e| fail(path, format!("cannot sync the new file: {e}")))?;
    pause("synced");

    // 4. Atomic swap, then the directory entry.
    let bytes = std::fs::metadata(&tmp).map(|m| m.len()).unwrap_or(0);
    tmp.persist(path).map_err(|e| {
        fail(
            path,
            format!("cannot rename the new file over it: {}", e.error),
        )
    })?;
    pause("renamed");
    std::fs::File::open(&dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| fail(path, format!("cannot sync {}: {e}", dir.display())))?;
    drop(conn);
    Ok(Converted {
        path: path.to_path_buf(),
        bytes,
        source: source.clone(),
    })
}

/// Opens the new file as the next keyaudit will, and runs SQLite's consistency check.
fn check_new(tmp: &Path, key: Option<&CacheKey>, source: &KeySource) -> Result<(), String> {
    let conn = Connection::open_with_flags(
        tmp,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| e.to_string())?;
    if let Some(k) = key {
        super::apply_key(&conn, tmp, k, source).map_err(|e| e.to_string())?;
    }
    let verdict: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .map_err(|e| format!("the new file does not check out: {e}"))?;
    if verdict != "ok" {
        return Err(format!("the new file does not check out: {verdict}"));
    }
    Ok(())
}

fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(suffix);
    PathBuf::from(p)
}

fn temp_prefix(name: &str) -> String {
    format!(".{name}.convert-")
}

/// Removes what an interrupted conversion left (only names of its own pattern).
fn remove_stale_temporaries(dir: &Path, name: &str) {
    let prefix = temp_prefix(name);
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        if e.file_name()
            .to_str()
            .is_some_and(|n| n.starts_with(&prefix))
        {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn source() -> KeySource {
        KeySource::Command {
            command: "echo 'a test passphrase'".into(),
            timeout: Duration::from_secs(10),
            origin: "test".into(),
        }
    }

    fn plain_cache(dir: &Path) -> PathBuf {
        let p = dir.join("cache.db");
        let c = Connection::open(&p).unwrap();
        c.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA user_version = 7;
             CREATE TABLE t (x TEXT); CREATE INDEX t_x ON t (x);
             INSERT INTO t VALUES ('first row'), ('second row');",
        )
        .unwrap();
        drop(c);
        p
    }

    #[test]
    fn encrypt_then_decrypt_keeps_rows_and_version_and_leaves_no_temporaries() {
        let dir = tempfile::tempdir().unwrap();
        let p = plain_cache(dir.path());
        let c = encrypt(&p, &source()).unwrap();
        assert_eq!(file_state(&p).unwrap(), FileState::Encrypted);
        assert!(c.bytes > 0);
        let bytes = std::fs::read(&p).unwrap();
        assert!(!bytes.windows(9).any(|w| w == b"first row"));
        assert!(!sibling(&p, "-wal").exists());
        decrypt(&p, &source()).unwrap();
        assert_eq!(file_state(&p).unwrap(), FileState::Plain);
        let conn = Connection::open(&p).unwrap();
        let n: i64 = conn
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        let v: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!((n, v), (2, 7));
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(names.iter().all(|n| !n.contains(".convert-")), "{names:?}");
    }

    #[test]
    fn a_cache_open_elsewhere_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let p = plain_cache(dir.path());
        let other = Connection::open(&p).unwrap();
        other
            .query_row("SELECT count(*) FROM t", [], |_| Ok(()))
            .unwrap();
        let e = encrypt(&p, &source()).unwrap_err().to_string();
        assert!(e.contains("another process has the cache open"), "{e}");
        assert_eq!(file_state(&p).unwrap(), FileState::Plain);
        drop(other);
        encrypt(&p, &source()).unwrap();
    }

    #[test]
    fn converting_twice_or_the_wrong_way_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = plain_cache(dir.path());
        let e = decrypt(&p, &source()).unwrap_err().to_string();
        assert!(e.ends_with("it is not encrypted"), "{e}");
        encrypt(&p, &source()).unwrap();
        let e = encrypt(&p, &source()).unwrap_err().to_string();
        assert!(e.ends_with("it is already encrypted"), "{e}");
        let wrong = KeySource::Command {
            command: "echo another".into(),
            timeout: Duration::from_secs(10),
            origin: "elsewhere".into(),
        };
        let e = decrypt(&p, &wrong).unwrap_err().to_string();
        assert!(
            e.contains("is encrypted; the key from db_key_command (elsewhere) does not open it"),
            "{e}"
        );
    }
}
