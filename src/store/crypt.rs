//! Encryption at rest of the cache (cargo feature `encryption`): SQLCipher, with the key
//! from the OS keyring or from a `db_key_command`.
//!
//! The configuration names one key source for the process (`[cache] encryption`); every
//! connection the store opens on a file passes through [`unlock`] before its first
//! statement. Whether a file is encrypted is read from its first 16 bytes: a plain SQLite
//! file starts with `SQLite format 3\0`, an SQLCipher file with a random salt. So a plain
//! cache stays readable with no key, an encrypted one without a key is named as such, and
//! a plain cache is refused while the configuration asks for encryption (run
//! `keyaudit encrypt`).
//!
//! [`encrypt`] and [`decrypt`] convert a cache in place, crash-safe: see [`convert`].
//!
//! The key is held in a zeroizing buffer, handed to SQLCipher through `sqlite3_key` (no
//! SQL text carries it), and never logged; the [`KeySource`] names where it came from.

use crate::config::{line_of, ConfigError};
use serde::Deserialize;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use thiserror::Error;
use zeroize::Zeroizing;

/// The keyring entry that holds the cache key (service, user).
pub const KEYRING_SERVICE: &str = "keyaudit";
pub const KEYRING_ENTRY: &str = "cache";
/// Seconds a `db_key_command` may run before it is stopped.
pub const DEFAULT_KEY_TIMEOUT_SECS: u64 = 10;
/// Environment variable of the crash tests: the conversion stops at the named step
/// (`locked`, `exported`, `synced`, `renamed`), says so on stderr and waits to be killed.
pub const PAUSE_ENV: &str = "KEYAUDIT_TEST_PAUSE_AT";

/// `[cache]` in the configuration.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct CacheConfig {
    /// `"none"` (the default), `"keyring"` or `"command"`.
    pub encryption: Option<String>,
    /// With `encryption = "command"`: a shell command whose standard output is the key.
    pub db_key_command: Option<String>,
    /// Seconds the command may run (default 10).
    pub db_key_timeout_secs: Option<u64>,
    /// `FILE:LINE` of the table (filled in after parsing).
    #[serde(skip)]
    origin: String,
}

impl CacheConfig {
    /// Checks a parsed `[cache]` table; `span_start` is where it begins in `text`.
    pub fn validate(
        &mut self,
        text: &str,
        span_start: usize,
        path: &Path,
    ) -> Result<(), ConfigError> {
        let line = line_of(text, span_start);
        self.origin = format!("{}:{line}", path.display());
        let fail = |message: String| ConfigError {
            path: path.to_path_buf(),
            line: Some(line),
            message,
        };
        match self.encryption.as_deref() {
            None | Some("none") => {
                if self.db_key_command.is_some() {
                    return Err(fail(
                        "[cache] `db_key_command` is set but `encryption` is not \"command\"; \
                         add encryption = \"command\" or remove db_key_command"
                            .into(),
                    ));
                }
                return Ok(());
            }
            Some("keyring") => {
                if self.db_key_command.is_some() {
                    return Err(fail(
                        "[cache] encryption = \"keyring\" takes no `db_key_command`; \
                         use encryption = \"command\" to run it"
                            .into(),
                    ));
                }
            }
            Some("command") => match self.db_key_command.as_deref() {
                Some(c) if !c.trim().is_empty() => {}
                _ => {
                    return Err(fail(
                        "[cache] encryption = \"command\" needs `db_key_command`, a command \
                         that prints the key, e.g. db_key_command = \"pass show keyaudit/cache\""
                            .into(),
                    ))
                }
            },
            Some(other) => {
                return Err(fail(format!(
                    "[cache] unknown encryption `{other}`; expected \"none\", \"keyring\" or \"command\""
                )))
            }
        }
        if self.db_key_timeout_secs == Some(0) {
            return Err(fail(
                "[cache] `db_key_timeout_secs` must be at least 1".into(),
            ));
        }
        if !cfg!(feature = "encryption") {
            return Err(fail(
                "[cache] encryption is set, but this keyaudit was built without the \
                 `encryption` feature; install it with `cargo install --path . --features encryption`"
                    .into(),
            ));
        }
        Ok(())
    }

    /// The key source this table configures, if any.
    pub fn key_source(&self) -> Option<KeySource> {
        match self.encryption.as_deref() {
            Some("keyring") => Some(KeySource::Keyring),
            Some("command") => Some(KeySource::Command {
                command: self.db_key_command.clone().unwrap_or_default(),
                timeout: Duration::from_secs(
                    self.db_key_timeout_secs.unwrap_or(DEFAULT_KEY_TIMEOUT_SECS),
                ),
                origin: self.origin.clone(),
            }),
            _ => None,
        }
    }
}

/// Where the cache key comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// The OS keyring: entry `cache` of service `keyaudit`.
    Keyring,
    /// The standard output of a shell command (`db_key_command`).
    Command {
        command: String,
        timeout: Duration,
        /// `FILE:LINE` of the `[cache]` table.
        origin: String,
    },
}

impl fmt::Display for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeySource::Keyring => write!(
                f,
                "the OS keyring (service `{KEYRING_SERVICE}`, entry `{KEYRING_ENTRY}`)"
            ),
            KeySource::Command { origin, .. } => write!(f, "db_key_command ({origin})"),
        }
    }
}

/// A cache key: a passphrase, or 64 hex digits used as the raw 256-bit key.
#[cfg_attr(not(feature = "encryption"), allow(dead_code))]
pub struct CacheKey(Zeroizing<String>);

impl fmt::Debug for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CacheKey(..)")
    }
}

impl CacheKey {
    /// A key from the text a source gave (surrounding whitespace dropped).
    pub fn new(text: Zeroizing<String>) -> Option<CacheKey> {
        let t = text.trim();
        if t.is_empty() {
            return None;
        }
        Some(CacheKey(Zeroizing::new(t.to_string())))
    }

    /// A new random raw key (256 bits, hex).
    pub fn generate() -> CacheKey {
        let mut bytes = Zeroizing::new([0u8; 32]);
        rand::Rng::fill(&mut rand::rng(), &mut bytes[..]);
        CacheKey(Zeroizing::new(hex::encode(&bytes[..])))
    }

    /// What SQLCipher is given: `x'…'` (a raw key, no key derivation) for 64 hex
    /// digits, else the passphrase itself (SQLCipher derives the key with PBKDF2).
    #[cfg(feature = "encryption")]
    fn sqlcipher_text(&self) -> Zeroizing<String> {
        let t = self.0.as_str();
        if t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit()) {
            Zeroizing::new(format!("x'{t}'"))
        } else {
            Zeroizing::new(t.to_string())
        }
    }
}

/// What went wrong with an encrypted (or supposedly encrypted) cache.
#[derive(Debug, Error)]
pub enum CryptError {
    #[error("the cache {path} is encrypted; the key from {source_name} does not open it: {why}")]
    WrongKey {
        path: PathBuf,
        source_name: String,
        why: String,
    },
    #[error(
        "the cache {path} is encrypted (or is not a SQLite database), and no key is \
         configured: set [cache] encryption = \"keyring\" or \"command\" in the configuration{}",
        if cfg!(feature = "encryption") { "" } else { " (and use a keyaudit built with the `encryption` feature)" }
    )]
    NoKey { path: PathBuf },
    #[error(
        "the cache {path} is not encrypted, but the configuration asks for encryption \
         (key from {source_name}); run `keyaudit encrypt` to convert it, or remove \
         [cache] encryption"
    )]
    NotEncrypted { path: PathBuf, source_name: String },
    #[error("cannot get the cache key from {source_name}: {why}")]
    KeyUnavailable { source_name: String, why: String },
    #[error("cannot convert the cache {path}: {why}")]
    Convert { path: PathBuf, why: String },
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// What the first bytes of a cache file say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileState {
    /// No file, or an empty one: a new cache.
    New,
    /// A plain SQLite database.
    Plain,
    /// Anything else: an SQLCipher database (or not a database at all).
    Encrypted,
}

/// Reads the first 16 bytes of `path`.
pub fn file_state(path: &Path) -> Result<FileState, CryptError> {
    // Read without closing a descriptor of the file: that would drop the SQLite locks
    // of this process's open connections on it (see `fsutil::read_head`).
    let mut head = [0u8; 16];
    let n = match crate::fsutil::read_head(path, &mut head) {
        Ok(n) => n,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(FileState::New),
        Err(source) => {
            return Err(CryptError::Io {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    Ok(match n {
        0 => FileState::New,
        16 if &head == b"SQLite format 3\0" => FileState::Plain,
        _ => FileState::Encrypted,
    })
}

/// The process's key source and, once fetched, its key.
struct Active {
    source: KeySource,
    key: Mutex<Option<Arc<CacheKey>>>,
}

static ACTIVE: Mutex<Option<Arc<Active>>> = Mutex::new(None);

/// Sets the key source of every cache this process opens (`None`: caches are plain).
pub fn configure(source: Option<KeySource>) {
    let active = source.map(|source| {
        Arc::new(Active {
            source,
            key: Mutex::new(None),
        })
    });
    *ACTIVE.lock().unwrap_or_else(|p| p.into_inner()) = active;
}

/// The configured key source, if any.
pub fn configured() -> Option<KeySource> {
    active().map(|a| a.source.clone())
}

/// One line for `keyaudit info`: whether caches are encrypted, and with which key.
pub fn describe() -> String {
    match configured() {
        Some(s) => format!("on, key from {s}"),
        None if cfg!(feature = "encryption") => "off ([cache] encryption is not set)".into(),
        None => "off (built without the `encryption` feature)".into(),
    }
}

fn active() -> Option<Arc<Active>> {
    ACTIVE.lock().unwrap_or_else(|p| p.into_inner()).clone()
}

impl Active {
    /// The key, fetched once per process. `create`: a keyring without the entry gets a
    /// new random key (a new cache, `keyaudit encrypt`).
    fn key(&self, create: bool) -> Result<Arc<CacheKey>, CryptError> {
        let mut held = self.key.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(k) = held.as_ref() {
            return Ok(k.clone());
        }
        let k = Arc::new(fetch(&self.source, create)?);
        *held = Some(k.clone());
        Ok(k)
    }
}

/// Gets the key from its source.
pub fn fetch(source: &KeySource, create: bool) -> Result<CacheKey, CryptError> {
    let unavailable = |why: String| CryptError::KeyUnavailable {
        source_name: source.to_string(),
        why,
    };
    match source {
        KeySource::Command {
            command, timeout, ..
        } => {
            let out = run_key_command(command, *timeout).map_err(unavailable)?;
            CacheKey::new(out).ok_or_else(|| unavailable("the command printed nothing".into()))
        }
        KeySource::Keyring => keyring_key(create).map_err(unavailable),
    }
}

/// Said after every keyring failure but a missing entry.
#[cfg(feature = "encryption")]
const KEYRING_HINT: &str = "the keyring may be unavailable here (containers and some \
     SSH sessions have no kernel session keyring); use encryption = \"command\" instead";

#[cfg(feature = "encryption")]
fn keyring_key(create: bool) -> Result<CacheKey, String> {
    let entry = keyring::Entry::new(KEYRING_SERVICE, KEYRING_ENTRY)
        .map_err(|e| format!("{e}; {KEYRING_HINT}"))?;
    match entry.get_password() {
        Ok(p) => {
            CacheKey::new(Zeroizing::new(p)).ok_or_else(|| "the keyring entry is empty".to_string())
        }
        Err(keyring::Error::NoEntry) if create => {
            let k = CacheKey::generate();
            entry
                .set_password(k.0.as_str())
                .map_err(|e| format!("cannot store a new key: {e}; {KEYRING_HINT}"))?;
            tracing::info!("a new cache key was stored in the OS keyring");
            Ok(k)
        }
        Err(keyring::Error::NoEntry) => Err(
            "the keyring holds no such entry (on Linux the kernel keyring forgets it at reboot); \
             restore it, or use encryption = \"command\""
                .into(),
        ),
        Err(e) => Err(format!("{e}; {KEYRING_HINT}")),
    }
}

#[cfg(not(feature = "encryption"))]
fn keyring_key(_create: bool) -> Result<CacheKey, String> {
    Err("this keyaudit was built without the `encryption` feature".into())
}

/// Runs `command` through `sh -c`; its standard output is the key. Stopped after
/// `timeout`; on failure the error carries its standard error (never its output).
fn run_key_command(command: &str, timeout: Duration) -> Result<Zeroizing<String>, String> {
    use std::io::Read;
    use std::process::{Command, Stdio};
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(command)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run it: {e}"))?;
    let mut stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    let out = std::thread::spawn(move || {
        let mut buf = Zeroizing::new(Vec::with_capacity(4096));
        let r = stdout.read_to_end(&mut buf);
        r.map(|_| buf)
    });
    let err = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = (&mut stderr).take(4096).read_to_end(&mut buf);
        buf
    });
    let deadline = std::time::Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) if std::time::Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "the command did not finish within {} s (db_key_timeout_secs)",
                    timeout.as_secs()
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => return Err(format!("cannot wait for it: {e}")),
        }
    };
    let stderr_text = err.join().unwrap_or_default();
    let stderr_text = crate::output::sanitize(String::from_utf8_lossy(&stderr_text).trim());
    let stdout = out
        .join()
        .map_err(|_| "cannot read its output".to_string())?
        .map_err(|e| format!("cannot read its output: {e}"))?;
    if !status.success() {
        return Err(if stderr_text.is_empty() {
            format!("the command exited with {status}")
        } else {
            format!("the command exited with {status}: {stderr_text}")
        });
    }
    let text = std::str::from_utf8(&stdout)
        .map_err(|_| "the command printed invalid UTF-8".to_string())?;
    Ok(Zeroizing::new(text.to_string()))
}

/// Prepares a connection just opened on the cache file `path`, before any other
/// statement: gives SQLCipher the key when the file is encrypted (or new, with a key
/// source configured) and checks that it opens the file.
pub fn unlock(conn: &rusqlite::Connection, path: &Path) -> Result<(), CryptError> {
    let state = file_state(path)?;
    let Some(active) = active() else {
        return match state {
            FileState::Encrypted => Err(CryptError::NoKey {
                path: path.to_path_buf(),
            }),
            _ => Ok(()),
        };
    };
    match state {
        FileState::Plain => Err(CryptError::NotEncrypted {
            path: path.to_path_buf(),
            source_name: active.source.to_string(),
        }),
        FileState::New => apply_key(conn, path, &*active.key(true)?, &active.source),
        FileState::Encrypted => {
            apply_key(conn, path, &*active.key(false)?, &active.source)?;
            check_opens(conn, path, &active.source)
        }
    }
}

#[cfg(feature = "encryption")]
fn apply_key(
    conn: &rusqlite::Connection,
    path: &Path,
    key: &CacheKey,
    source: &KeySource,
) -> Result<(), CryptError> {
    quiet_sqlcipher();
    let text = key.sqlcipher_text();
    let len = std::os::raw::c_int::try_from(text.len()).map_err(|_| CryptError::WrongKey {
        path: path.to_path_buf(),
        source_name: source.to_string(),
        why: "the key is too long".into(),
    })?;
    // SAFETY: the handle is the live connection's; SQLCipher copies the key bytes
    // (and wipes its copy when the connection closes).
    let rc = unsafe { rusqlite::ffi::sqlite3_key(conn.handle(), text.as_ptr().cast(), len) };
    if rc != rusqlite::ffi::SQLITE_OK {
        return Err(CryptError::WrongKey {
            path: path.to_path_buf(),
            source_name: source.to_string(),
            why: format!("SQLCipher refused the key (code {rc})"),
        });
    }
    Ok(())
}

/// SQLCipher writes its own warnings (a failed page check, a wrong key) to stderr,
/// where they would reach the terminal or the TUI's screen; keyaudit reports every
/// failure itself.
#[cfg(feature = "encryption")]
fn quiet_sqlcipher() {
    static QUIET: std::sync::Once = std::sync::Once::new();
    QUIET.call_once(|| {
        if let Ok(c) = rusqlite::Connection::open_in_memory() {
            let _ = c.execute_batch("PRAGMA cipher_log_level = NONE;");
        }
    });
}

#[cfg(not(feature = "encryption"))]
fn apply_key(
    _conn: &rusqlite::Connection,
    path: &Path,
    _key: &CacheKey,
    _source: &KeySource,
) -> Result<(), CryptError> {
    // `configure` is only ever given a source by a configuration that passed
    // `CacheConfig::validate`, which refuses encryption in this build.
    Err(CryptError::NoKey {
        path: path.to_path_buf(),
    })
}

/// Reads the schema: the first read decrypts page 1, so a wrong key fails here.
fn check_opens(
    conn: &rusqlite::Connection,
    path: &Path,
    source: &KeySource,
) -> Result<(), CryptError> {
    conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| {
        r.get::<_, i64>(0)
    })
    .map(|_| ())
    .map_err(|e| CryptError::WrongKey {
        path: path.to_path_buf(),
        source_name: source.to_string(),
        why: e.to_string(),
    })
}

#[cfg(feature = "encryption")]
mod convert;
#[cfg(feature = "encryption")]
pub use convert::{decrypt, encrypt, Converted};

#[cfg(test)]
mod tests {
    use super::*;

    fn cache_config(text: &str) -> Result<CacheConfig, ConfigError> {
        let mut c: CacheConfig = toml::from_str(text).unwrap();
        c.validate(text, 0, Path::new("config.toml")).map(|_| c)
    }

    #[test]
    fn a_command_source_needs_its_command() {
        let e = cache_config("encryption = \"command\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("config.toml:1: [cache] encryption = \"command\" needs `db_key_command`"),
            "{e}"
        );
        let e = cache_config("encryption = \"vault\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown encryption `vault`"), "{e}");
        let e = cache_config("db_key_command = \"echo k\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("`encryption` is not \"command\""), "{e}");
        assert!(cache_config("encryption = \"none\"\n")
            .unwrap()
            .key_source()
            .is_none());
    }

    #[cfg(feature = "encryption")]
    #[test]
    fn a_command_source_names_its_line_and_timeout() {
        let c = cache_config("encryption = \"command\"\ndb_key_command = \"echo k\"\n").unwrap();
        match c.key_source().unwrap() {
            KeySource::Command {
                command, timeout, ..
            } => {
                assert_eq!(command, "echo k");
                assert_eq!(timeout, Duration::from_secs(DEFAULT_KEY_TIMEOUT_SECS));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            c.key_source().unwrap().to_string(),
            "db_key_command (config.toml:1)"
        );
    }

    #[cfg(not(feature = "encryption"))]
    #[test]
    fn encryption_without_the_feature_is_a_configuration_error() {
        let e = cache_config("encryption = \"keyring\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("built without the `encryption` feature"), "{e}");
    }

    fn command(cmd: &str, secs: u64) -> KeySource {
        KeySource::Command {
            command: cmd.into(),
            timeout: Duration::from_secs(secs),
            origin: "config.toml:3".into(),
        }
    }

    #[test]
    fn the_key_is_the_command_output_trimmed() {
        let k = fetch(&command("printf '  s3cret pass\\n'", 10), false).unwrap();
        assert_eq!(k.0.as_str(), "s3cret pass");
        assert_eq!(format!("{k:?}"), "CacheKey(..)");
    }

    #[test]
    fn a_failing_command_reports_its_stderr_never_its_stdout() {
        let e = fetch(
            &command("echo LEAKED-OUTPUT; echo 'vault is sealed' >&2; exit 3", 10),
            false,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("cannot get the cache key from db_key_command (config.toml:3)"),
            "{e}"
        );
        assert!(
            e.contains("vault is sealed") && e.contains("exit status: 3"),
            "{e}"
        );
        assert!(!e.contains("LEAKED-OUTPUT"), "{e}");
        let e = fetch(&command("true", 10), false).unwrap_err().to_string();
        assert!(e.contains("printed nothing"), "{e}");
    }

    #[test]
    fn a_hanging_command_is_stopped() {
        let e = fetch(&command("sleep 30", 1), false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("did not finish within 1 s"), "{e}");
    }

    #[cfg(feature = "encryption")]
    #[test]
    fn sixty_four_hex_digits_are_a_raw_key() {
        let raw = CacheKey::generate();
        assert_eq!(raw.0.len(), 64);
        assert!(raw.sqlcipher_text().starts_with("x'"));
        let pass = CacheKey::new(Zeroizing::new("correct horse".into())).unwrap();
        assert_eq!(pass.sqlcipher_text().as_str(), "correct horse");
    }

    #[test]
    fn the_header_tells_plain_from_encrypted() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.db");
        assert_eq!(file_state(&p).unwrap(), FileState::New);
        std::fs::write(&p, b"").unwrap();
        assert_eq!(file_state(&p).unwrap(), FileState::New);
        drop(super::super::Store::open(&p).unwrap());
        assert_eq!(file_state(&p).unwrap(), FileState::Plain);
        std::fs::write(&p, [7u8; 4096]).unwrap();
        assert_eq!(file_state(&p).unwrap(), FileState::Encrypted);
    }
}
