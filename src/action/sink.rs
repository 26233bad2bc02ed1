//! Secret delivery: a new secret goes to exactly one place the operator chose, once.
//!
//! | spec | where |
//! |---|---|
//! | `stdout` | standard output, only when it is a terminal (or with `--force`) |
//! | `file:PATH` | a new file, mode 0600, written atomically; an existing file is refused without `--force` |
//! | `env-file:PATH:VAR` | one variable of a dotenv file, updated atomically; every other byte is kept; created 0600 when missing |
//! | `screen` | the TUI's one-time secret dialog (in memory only; never parsed from a CLI spec) |
//!
//! Every buffer that holds the secret is zeroized after use. A file sink can also be read
//! back ([`Sink::holds`]): a resumed rotation checks whether the sink already holds the new
//! secret by comparing fingerprints, never by storing the secret.

use crate::secret::{fingerprint, Secret};
use std::io::{self, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use thiserror::Error;
use zeroize::Zeroizing;

/// The accepted forms, for error messages.
pub const SINK_FORMS: &str =
    "stdout, file:PATH, env-file:PATH:VAR (aws-secretsmanager:SECRET_ID is not available in this build)";

/// Where a new secret goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sink {
    /// Standard output (a terminal, or anything with `--force`).
    Stdout,
    /// A file of its own.
    File(PathBuf),
    /// One variable of a dotenv file.
    EnvFile {
        /// The dotenv file.
        path: PathBuf,
        /// The variable that gets the secret.
        var: String,
    },
    /// The TUI's secret dialog: the secret is handed over in memory, once.
    Screen(ScreenSlot),
}

/// Where the TUI picks up a secret delivered to [`Sink::Screen`]: shared memory that
/// holds it until taken. Compared by identity; `Debug` never shows the secret.
#[derive(Clone, Default)]
pub struct ScreenSlot(Arc<Mutex<Option<Secret>>>);

impl ScreenSlot {
    /// An empty slot.
    pub fn new() -> ScreenSlot {
        ScreenSlot::default()
    }

    /// Takes the delivered secret out of the slot (it is then no longer held here).
    pub fn take(&self) -> Option<Secret> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    fn put(&self, secret: &Secret) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(secret.clone());
    }

    /// True when a secret was delivered and not taken yet.
    pub fn is_filled(&self) -> bool {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).is_some()
    }
}

impl PartialEq for ScreenSlot {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for ScreenSlot {}

impl std::fmt::Debug for ScreenSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = if self.is_filled() { "filled" } else { "empty" };
        write!(f, "ScreenSlot({state})")
    }
}

/// A malformed sink spec (a usage error).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("invalid --deliver `{spec}`: {why}; use one of: {SINK_FORMS}")]
pub struct BadSinkSpec {
    /// The spec as given.
    pub spec: String,
    /// What is wrong with it.
    pub why: String,
}

/// Why a secret could not be delivered.
#[derive(Debug, Error)]
pub enum SinkError {
    /// stdout is not a terminal and `--force` was not given.
    #[error("refusing to print the secret: standard output is not a terminal (it may be a log or a pipe); use --force if that is intended, or deliver to file:PATH")]
    NotATerminal,
    #[error(
        "refusing to overwrite {0}: it exists; use --force to replace it, or choose a new path"
    )]
    /// The file sink exists and `--force` was not given.
    Exists(PathBuf),
    #[error(
        "cannot write the secret to {path}: {source}; check the directory exists and is writable"
    )]
    /// Reading or writing the sink failed.
    Io {
        /// The sink's path.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: io::Error,
    },
}

fn valid_var(v: &str) -> bool {
    v.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && v.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl Sink {
    /// Parses a sink spec.
    pub fn parse(spec: &str) -> Result<Sink, BadSinkSpec> {
        let bad = |why: &str| BadSinkSpec {
            spec: spec.to_string(),
            why: why.to_string(),
        };
        if spec == "stdout" || spec == "-" {
            return Ok(Sink::Stdout);
        }
        if let Some(p) = spec.strip_prefix("file:") {
            if p.is_empty() {
                return Err(bad("missing PATH after `file:`"));
            }
            return Ok(Sink::File(PathBuf::from(p)));
        }
        if let Some(rest) = spec.strip_prefix("env-file:") {
            let Some((p, var)) = rest.rsplit_once(':') else {
                return Err(bad("expected env-file:PATH:VAR"));
            };
            if p.is_empty() {
                return Err(bad("missing PATH in env-file:PATH:VAR"));
            }
            if !valid_var(var) {
                return Err(bad(&format!(
                    "`{var}` is not a variable name (letters, digits and `_`, not starting with a digit)"
                )));
            }
            return Ok(Sink::EnvFile {
                path: PathBuf::from(p),
                var: var.to_string(),
            });
        }
        if spec == "screen" {
            return Err(bad(
                "the screen sink exists only in the TUI (press r on a key there)",
            ));
        }
        if spec.starts_with("aws-secretsmanager:") {
            return Err(bad(
                "the AWS Secrets Manager sink is not available in this build",
            ));
        }
        Err(bad("unknown sink"))
    }

    /// The sink of a saved workflow spec, for `resume`: like [`Sink::parse`], but a
    /// `screen` spec gives an empty screen slot (the dialog is gone: like stdout, it cannot
    /// be read back, so an undelivered secret is lost and the rotation rolls back).
    pub fn saved(spec: &str) -> Result<Sink, BadSinkSpec> {
        if spec == "screen" {
            return Ok(Sink::Screen(ScreenSlot::new()));
        }
        Sink::parse(spec)
    }

    /// The spec as recorded in the workflow (never the secret).
    pub fn spec(&self) -> String {
        match self {
            Sink::Screen(_) => "screen".into(),
            Sink::Stdout => "stdout".into(),
            Sink::File(p) => format!("file:{}", p.display()),
            Sink::EnvFile { path, var } => format!("env-file:{}:{var}", path.display()),
        }
    }

    /// True when [`Sink::holds`] can tell whether the sink holds a secret.
    pub fn can_read_back(&self) -> bool {
        !matches!(self, Sink::Stdout | Sink::Screen(_))
    }

    /// Checks, before any key is created, that delivery can succeed.
    pub fn preflight(&self, force: bool) -> Result<(), SinkError> {
        match self {
            Sink::Screen(_) => Ok(()),
            Sink::Stdout => {
                if force || io::stdout().is_terminal() {
                    Ok(())
                } else {
                    Err(SinkError::NotATerminal)
                }
            }
            Sink::File(p) => {
                if p.exists() && !force {
                    return Err(SinkError::Exists(p.clone()));
                }
                check_dir(p)
            }
            Sink::EnvFile { path, .. } => {
                if path.exists() {
                    std::fs::read(path)
                        .map(drop)
                        .map_err(|source| SinkError::Io {
                            path: path.clone(),
                            source,
                        })?;
                }
                check_dir(path)
            }
        }
    }

    /// Delivers `secret` (of the key `label`, shown on standard error for stdout).
    pub fn deliver(&self, secret: &Secret, force: bool, label: &str) -> Result<(), SinkError> {
        match self {
            Sink::Screen(slot) => {
                slot.put(secret);
                Ok(())
            }
            Sink::Stdout => {
                if !force && !io::stdout().is_terminal() {
                    return Err(SinkError::NotATerminal);
                }
                eprintln!("new secret of {label} (shown once, store it now):");
                let mut out = io::stdout().lock();
                let mut line = Zeroizing::new(Vec::with_capacity(secret.expose().len() + 1));
                line.extend_from_slice(secret.expose().as_bytes());
                line.push(b'\n');
                out.write_all(&line)
                    .and_then(|_| out.flush())
                    .map_err(|source| SinkError::Io {
                        path: "stdout".into(),
                        source,
                    })
            }
            Sink::File(p) => {
                let mut content = Zeroizing::new(Vec::with_capacity(secret.expose().len() + 1));
                content.extend_from_slice(secret.expose().as_bytes());
                content.push(b'\n');
                let r = if force {
                    crate::fsutil::write_atomic(p, &content)
                } else {
                    write_new_atomic(p, &content)
                };
                r.map_err(|source| {
                    if source.kind() == io::ErrorKind::AlreadyExists {
                        SinkError::Exists(p.clone())
                    } else {
                        SinkError::Io {
                            path: p.clone(),
                            source,
                        }
                    }
                })
            }
            Sink::EnvFile { path, var } => {
                let old = match std::fs::read(path) {
                    Ok(b) => Zeroizing::new(b),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => Zeroizing::new(Vec::new()),
                    Err(source) => {
                        return Err(SinkError::Io {
                            path: path.clone(),
                            source,
                        })
                    }
                };
                let new = set_env_var(&old, var, secret.expose());
                crate::fsutil::write_atomic(path, &new).map_err(|source| SinkError::Io {
                    path: path.clone(),
                    source,
                })
            }
        }
    }

    /// Reads the sink back: the secret it holds if its fingerprint is `fp`, `None` when it
    /// holds something else or nothing (always `None` for stdout, which cannot be read).
    pub fn holds(&self, fp: &str) -> Option<Secret> {
        let value: Zeroizing<String> = match self {
            Sink::Stdout | Sink::Screen(_) => return None,
            Sink::File(p) => {
                let bytes = Zeroizing::new(std::fs::read(p).ok()?);
                let text = std::str::from_utf8(&bytes).ok()?;
                Zeroizing::new(text.trim().to_string())
            }
            Sink::EnvFile { path, var } => {
                let bytes = Zeroizing::new(std::fs::read(path).ok()?);
                get_env_var(&bytes, var)?
            }
        };
        if !value.is_empty() && fingerprint(&value) == fp {
            Some(Secret::new(value.to_string()))
        } else {
            None
        }
    }
}

fn check_dir(p: &Path) -> Result<(), SinkError> {
    let dir = p
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if dir.is_dir() {
        Ok(())
    } else {
        Err(SinkError::Io {
            path: p.to_path_buf(),
            source: io::Error::new(io::ErrorKind::NotFound, "the directory does not exist"),
        })
    }
}

/// Writes a new private file atomically and refuses to replace an existing one: the
/// content goes to a temporary file that is then hard-linked to `path` (which fails if
/// `path` exists, with no window for a race) and unlinked.
fn write_new_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".new{}", std::process::id()));
    let tmp = dir.join(tmp_name);
    let result = (|| {
        let mut f = crate::fsutil::create_private_file(&tmp, true)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::hard_link(&tmp, path)
    })();
    let _ = std::fs::remove_file(&tmp);
    result
}

/// Splits a dotenv line into (everything up to and including `=`, value) when it
/// assigns `var` (`VAR=`, `export VAR=`, spaces around `=` allowed).
fn assignment<'a>(line: &'a [u8], var: &str) -> Option<(&'a [u8], &'a [u8])> {
    let mut i = 0;
    while i < line.len() && (line[i] == b' ' || line[i] == b'\t') {
        i += 1;
    }
    if line[i..].starts_with(b"export ") {
        i += 7;
        while i < line.len() && line[i] == b' ' {
            i += 1;
        }
    }
    let rest = line[i..].strip_prefix(var.as_bytes())?;
    let mut j = 0;
    while j < rest.len() && (rest[j] == b' ' || rest[j] == b'\t') {
        j += 1;
    }
    if rest.get(j) != Some(&b'=') {
        return None;
    }
    let mut split = i + var.len() + j + 1;
    while split < line.len() && (line[split] == b' ' || line[split] == b'\t') {
        split += 1;
    }
    Some((&line[..split], &line[split..]))
}

fn quote_value(v: &str) -> Zeroizing<String> {
    let plain = v
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "_-.:/+=@,".contains(c));
    let mut out = Zeroizing::new(String::with_capacity(v.len() + 2));
    if plain {
        out.push_str(v);
    } else {
        out.push('"');
        for c in v.chars() {
            if matches!(c, '"' | '\\' | '$' | '`') {
                out.push('\\');
            }
            out.push(c);
        }
        out.push('"');
    }
    out
}

/// Sets `var` to `value` in dotenv `content`: every assignment of `var` gets the new
/// value, every other byte is kept; when there is none, `VAR=value` is appended.
pub fn set_env_var(content: &[u8], var: &str, value: &str) -> Zeroizing<Vec<u8>> {
    let quoted = quote_value(value);
    let mut out = Zeroizing::new(Vec::with_capacity(
        content.len() + quoted.len() + var.len() + 2,
    ));
    let mut found = false;
    for line in content.split_inclusive(|b| *b == b'\n') {
        let (body, eol): (&[u8], &[u8]) = match line.strip_suffix(b"\r\n") {
            Some(b) => (b, b"\r\n"),
            None => match line.strip_suffix(b"\n") {
                Some(b) => (b, b"\n"),
                None => (line, b""),
            },
        };
        match assignment(body, var) {
            Some((head, _)) => {
                found = true;
                out.extend_from_slice(head);
                out.extend_from_slice(quoted.as_bytes());
                out.extend_from_slice(eol);
            }
            None => out.extend_from_slice(line),
        }
    }
    if !found {
        if !content.is_empty() && !content.ends_with(b"\n") {
            out.push(b'\n');
        }
        out.extend_from_slice(var.as_bytes());
        out.push(b'=');
        out.extend_from_slice(quoted.as_bytes());
        out.push(b'\n');
    }
    out
}

/// The value of the last assignment of `var` in dotenv `content` (quotes removed).
pub fn get_env_var(content: &[u8], var: &str) -> Option<Zeroizing<String>> {
    let mut found = None;
    for line in content.split(|b| *b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if let Some((_, v)) = assignment(line, var) {
            found = Some(v);
        }
    }
    let raw = std::str::from_utf8(found?).ok()?.trim();
    let mut out = Zeroizing::new(String::with_capacity(raw.len()));
    if let Some(inner) = raw.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
        let mut esc = false;
        for c in inner.chars() {
            if esc || c != '\\' {
                out.push(c);
                esc = false;
            } else {
                esc = true;
            }
        }
    } else if let Some(inner) = raw.strip_prefix('\'').and_then(|r| r.strip_suffix('\'')) {
        out.push_str(inner);
    } else {
        out.push_str(raw);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_and_bad_ones_name_the_forms() {
        assert_eq!(Sink::parse("stdout").unwrap(), Sink::Stdout);
        assert_eq!(
            Sink::parse("file:/run/k.txt").unwrap(),
            Sink::File("/run/k.txt".into())
        );
        assert_eq!(
            Sink::parse("env-file:/srv/app/.env:TG_KEY").unwrap(),
            Sink::EnvFile {
                path: "/srv/app/.env".into(),
                var: "TG_KEY".into()
            }
        );
        for bad in [
            "ftp:x",
            "file:",
            "env-file:/x",
            "env-file:/x:9BAD",
            "aws-secretsmanager:s",
        ] {
            let e = Sink::parse(bad).unwrap_err().to_string();
            assert!(e.contains("file:PATH") && e.contains(bad), "{e}");
        }
        let s = Sink::parse("env-file:/a:b/.env:K").unwrap();
        assert_eq!(s.spec(), "env-file:/a:b/.env:K");
    }

    #[test]
    fn screen_sink_is_code_only_and_cannot_be_read_back() {
        let e = Sink::parse("screen").unwrap_err().to_string();
        assert!(e.contains("only in the TUI"), "{e}");
        let slot = ScreenSlot::new();
        let sink = Sink::Screen(slot.clone());
        assert_eq!(sink.spec(), "screen");
        assert!(!sink.can_read_back());
        assert_eq!(sink, Sink::Screen(slot.clone()));
        assert_ne!(sink, Sink::Screen(ScreenSlot::new()));
        let s = Secret::new("tg_live_abcdefghijklmnopqrstuvwxyz12".into());
        sink.preflight(false).unwrap();
        sink.deliver(&s, false, "t/k").unwrap();
        let shown = format!("{sink:?}");
        assert!(!shown.contains("abcdefgh"), "{shown}");
        assert!(sink.holds(&s.fingerprint()).is_none());
        assert_eq!(slot.take().unwrap(), s);
        assert!(slot.take().is_none());
        let resumed = Sink::saved("screen").unwrap();
        assert!(matches!(resumed, Sink::Screen(ref r) if !r.is_filled()));
        assert_eq!(Sink::saved("stdout").unwrap(), Sink::Stdout);
    }

    #[test]
    fn env_file_update_keeps_every_other_byte() {
        let before = b"# partner keys\r\nA=1\nexport TG_KEY = old\n\nB='x y' # note\nC=3";
        let after = set_env_var(before, "TG_KEY", "tg_live_NEW");
        assert_eq!(
            &after[..],
            &b"# partner keys\r\nA=1\nexport TG_KEY = tg_live_NEW\n\nB='x y' # note\nC=3"[..]
        );
        let appended = set_env_var(b"A=1", "TG_KEY", "v$1 \"q\"");
        assert_eq!(&appended[..], &b"A=1\nTG_KEY=\"v\\$1 \\\"q\\\"\"\n"[..]);
        assert_eq!(
            get_env_var(&appended, "TG_KEY").unwrap().as_str(),
            "v$1 \"q\""
        );
        assert_eq!(
            get_env_var(&after, "TG_KEY").unwrap().as_str(),
            "tg_live_NEW"
        );
        assert!(get_env_var(&after, "TG").is_none());
    }

    #[cfg(unix)]
    #[test]
    fn file_sink_is_private_refuses_overwrite_and_reads_back() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k.txt");
        let sink = Sink::File(p.clone());
        let s = Secret::new("tg_live_abcdefghijklmnopqrstuvwxyz12".into());
        sink.preflight(false).unwrap();
        sink.deliver(&s, false, "t/k").unwrap();
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert!(matches!(sink.preflight(false), Err(SinkError::Exists(_))));
        assert!(matches!(
            sink.deliver(&s, false, "t/k"),
            Err(SinkError::Exists(_))
        ));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        assert_eq!(sink.holds(&s.fingerprint()).unwrap(), s);
        assert!(sink.holds("sha256:00").is_none());
        sink.deliver(&s, true, "t/k").unwrap();
    }
}
