//! Secret delivery: a new secret goes to exactly one place the operator chose, once.
//!
//! | spec | where |
//! |---|---|
//! | `stdout` | standard output, only when it is a terminal (or with `--force`) |
//! | `file:PATH` | a new file, mode 0600, written atomically; an existing file is refused without `--force` |
//! | `env-file:PATH:VAR` | one variable of a dotenv file, updated atomically; every other byte is kept; created 0600 when missing |
//! | `aws-secretsmanager:SECRET_ID` | a new version of an existing secret of AWS Secrets Manager: `AWSPENDING`, then `AWSCURRENT` (cargo feature `aws`) |
//! | `screen` | the TUI's one-time secret dialog (in memory only; never parsed from a CLI spec) |
//!
//! Every buffer that holds the secret is zeroized after use. A file sink and Secrets
//! Manager can also be read back ([`Sink::holds`]): a resumed rotation checks whether the
//! sink already holds the new secret by comparing fingerprints, never by storing the
//! secret. Secrets Manager can also take a delivery back ([`Sink::undo`]) when the
//! rotation is rolled back.

mod dotenv;

pub use dotenv::{get_env_var, set_env_var};

use crate::config::ProviderConfig;
#[cfg(feature = "aws")]
use crate::provider::aws::{secrets as aws_secrets, AwsSettings};
use crate::secret::{fingerprint, Secret};
use std::io::{self, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use thiserror::Error;
use zeroize::Zeroizing;

/// The accepted forms, for error messages.
#[cfg(feature = "aws")]
pub const SINK_FORMS: &str = "stdout, file:PATH, env-file:PATH:VAR, aws-secretsmanager:SECRET_ID";
/// The accepted forms, for error messages.
#[cfg(not(feature = "aws"))]
pub const SINK_FORMS: &str =
    "stdout, file:PATH, env-file:PATH:VAR (aws-secretsmanager:SECRET_ID needs a build with the `aws` feature)";

/// The prefix of the Secrets Manager sink.
pub const AWS_SECRETS_PREFIX: &str = "aws-secretsmanager:";

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
    /// An existing secret of AWS Secrets Manager: the new value becomes `AWSCURRENT`.
    #[cfg(feature = "aws")]
    AwsSecretsManager {
        /// The secret's name or ARN.
        secret_id: String,
        /// Where and as whom Secrets Manager is reached (see [`Sink::use_provider`]).
        settings: AwsSettings,
    },
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
    /// A sink behind an API (AWS Secrets Manager) refused or could not be reached. The
    /// message never contains the secret.
    #[error("{message}")]
    Remote {
        /// What the service said, and what to do.
        message: String,
        /// True when trying again later may help.
        transient: bool,
    },
}

impl SinkError {
    /// A provider error of a remote sink, with any copy of `secret` in its text removed.
    #[cfg_attr(not(feature = "aws"), allow(dead_code))]
    fn remote(e: crate::provider::ProviderError, secret: Option<&Secret>) -> SinkError {
        let mut message = e.to_string();
        if let Some(s) = secret.filter(|s| !s.expose().is_empty()) {
            message = message.replace(s.expose(), "[secret]");
        }
        SinkError::Remote {
            message,
            transient: e.is_transient(),
        }
    }
}

/// Checks a Secrets Manager secret id: a name (letters, digits and `/_+=.@-`, at most 512)
/// or an ARN.
#[cfg(feature = "aws")]
fn check_secret_id(id: &str) -> Result<(), String> {
    if id.is_empty() {
        return Err(format!(
            "missing SECRET_ID after `{AWS_SECRETS_PREFIX}`; give the name or ARN of an existing secret"
        ));
    }
    if id.starts_with("arn:") {
        let fields = id.splitn(7, ':').collect::<Vec<_>>();
        let ok = fields.len() == 7
            && fields[2] == "secretsmanager"
            && !fields[3].is_empty()
            && fields[5] == "secret"
            && !fields[6].is_empty()
            && id.len() <= 2048
            && !id.chars().any(char::is_whitespace);
        return if ok {
            Ok(())
        } else {
            Err(format!(
                "SECRET_ID `{id}` is not a secret ARN (arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME); give the full ARN or the secret's name"
            ))
        };
    }
    let ok = id.len() <= 512
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/_+=.@-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "SECRET_ID `{id}` is not a secret name (letters, digits and /_+=.@-, at most 512 characters); give the name or ARN of an existing secret"
        ))
    }
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
        if let Some(id) = spec.strip_prefix(AWS_SECRETS_PREFIX) {
            #[cfg(feature = "aws")]
            {
                check_secret_id(id).map_err(|why| bad(&why))?;
                return Ok(Sink::AwsSecretsManager {
                    secret_id: id.to_string(),
                    settings: AwsSettings {
                        name: "aws-secretsmanager".into(),
                        region: aws_secrets::arn_region(id).map(str::to_string),
                        ..AwsSettings::default()
                    },
                });
            }
            #[cfg(not(feature = "aws"))]
            {
                let _ = id;
                return Err(bad(
                    "the AWS Secrets Manager sink needs keyaudit built with the cargo feature `aws` (cargo build --release --features aws)",
                ));
            }
        }
        Err(bad("unknown sink"))
    }

    /// Lets a sink that reaches a service use the entry of the rotated key's provider: an
    /// `aws-secretsmanager` sink takes the `region`, `endpoint`, `profile` and
    /// `timeout_secs` of an `aws` provider (the account and credentials that manage the
    /// key); the region of a secret ARN still wins. Otherwise the sink keeps the standard
    /// AWS chain (environment, shared config files, instance metadata). Other sinks and
    /// other kinds of provider are unaffected.
    pub fn use_provider(&mut self, cfg: &ProviderConfig) {
        #[cfg(feature = "aws")]
        if let Sink::AwsSecretsManager {
            secret_id,
            settings,
        } = self
        {
            if cfg.kind == "aws" {
                let mut s = AwsSettings::from_config(cfg);
                if let Some(r) = aws_secrets::arn_region(secret_id) {
                    s.region = Some(r.to_string());
                }
                *settings = s;
            }
        }
        #[cfg(not(feature = "aws"))]
        let _ = cfg;
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
            #[cfg(feature = "aws")]
            Sink::AwsSecretsManager { secret_id, .. } => {
                format!("{AWS_SECRETS_PREFIX}{secret_id}")
            }
        }
    }

    /// True when the sink is on this host only (a file, a terminal): another member of
    /// the team cannot read or write it.
    pub fn is_host_local(&self) -> bool {
        matches!(
            self,
            Sink::Stdout | Sink::File(_) | Sink::EnvFile { .. } | Sink::Screen(_)
        )
    }

    /// True when [`Sink::holds`] can tell whether the sink holds a secret.
    pub fn can_read_back(&self) -> bool {
        !matches!(self, Sink::Stdout | Sink::Screen(_))
    }

    /// Checks, before any key is created, that delivery can succeed (for Secrets Manager:
    /// the secret exists and is not scheduled for deletion).
    pub async fn preflight(&self, force: bool) -> Result<(), SinkError> {
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
            #[cfg(feature = "aws")]
            Sink::AwsSecretsManager {
                secret_id,
                settings,
            } => aws_secrets::check_secret(settings, secret_id)
                .await
                .map_err(|e| SinkError::remote(e, None)),
        }
    }

    /// Delivers `secret` (of the key `label`, shown on standard error for stdout).
    pub async fn deliver(
        &self,
        secret: &Secret,
        force: bool,
        label: &str,
    ) -> Result<(), SinkError> {
        match self {
            Sink::Screen(slot) => {
                slot.put(secret);
                Ok(())
            }
            Sink::Stdout => {
                if !force && !io::stdout().is_terminal() {
                    return Err(SinkError::NotATerminal);
                }
                crate::tell!("new secret of {label} (shown once, store it now):");
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
                    crate::fsutil::write_new_atomic(p, &content)
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
            #[cfg(feature = "aws")]
            Sink::AwsSecretsManager {
                secret_id,
                settings,
            } => aws_secrets::put_secret_value_rotating(settings, secret_id, secret)
                .await
                .map_err(|e| SinkError::remote(e, Some(secret))),
        }
    }

    /// Reads the sink back: the secret it holds if its fingerprint is `fp`, `None` when it
    /// holds something else or nothing (always `None` for stdout, which cannot be read).
    /// For Secrets Manager the value read is `AWSCURRENT`'s; an error means the answer is
    /// not known (the service could not be asked), never "not there".
    pub async fn holds(&self, fp: &str) -> Result<Option<Secret>, SinkError> {
        let value: Zeroizing<String> = match self {
            Sink::Stdout | Sink::Screen(_) => return Ok(None),
            Sink::File(p) => {
                let Ok(bytes) = std::fs::read(p).map(Zeroizing::new) else {
                    return Ok(None);
                };
                let Ok(text) = std::str::from_utf8(&bytes) else {
                    return Ok(None);
                };
                Zeroizing::new(text.trim().to_string())
            }
            Sink::EnvFile { path, var } => {
                let Ok(bytes) = std::fs::read(path).map(Zeroizing::new) else {
                    return Ok(None);
                };
                match get_env_var(&bytes, var) {
                    Some(v) => v,
                    None => return Ok(None),
                }
            }
            #[cfg(feature = "aws")]
            Sink::AwsSecretsManager {
                secret_id,
                settings,
            } => {
                return aws_secrets::current_if(settings, secret_id, fp)
                    .await
                    .map_err(|e| SinkError::remote(e, None))
            }
        };
        if !value.is_empty() && fingerprint(&value) == fp {
            Ok(Some(Secret::new(value.to_string())))
        } else {
            Ok(None)
        }
    }

    /// Takes back a delivery of the secret with fingerprint `fp` when its rotation is rolled
    /// back, where the sink can: Secrets Manager's `AWSCURRENT` moves back to the previous
    /// version (and an `AWSPENDING` left by a cut-off delivery is removed). Returns what was
    /// done, `None` for sinks that keep what they got (a file then holds a revoked secret).
    /// Idempotent.
    pub async fn undo(&self, fp: &str) -> Result<Option<String>, SinkError> {
        match self {
            #[cfg(feature = "aws")]
            Sink::AwsSecretsManager {
                secret_id,
                settings,
            } => aws_secrets::undo_delivery(settings, secret_id, fp)
                .await
                .map(Some)
                .map_err(|e| SinkError::remote(e, None)),
            _ => {
                let _ = fp;
                Ok(None)
            }
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
            "aws-secretsmanager:",
            "aws-secretsmanager:a b",
        ] {
            let e = Sink::parse(bad).unwrap_err().to_string();
            assert!(e.contains("file:PATH") && e.contains(bad), "{e}");
        }
        let s = Sink::parse("env-file:/a:b/.env:K").unwrap();
        assert_eq!(s.spec(), "env-file:/a:b/.env:K");
    }

    #[cfg(not(feature = "aws"))]
    #[test]
    fn secrets_manager_sink_names_the_feature_it_needs() {
        let e = Sink::parse("aws-secretsmanager:partners/x")
            .unwrap_err()
            .to_string();
        assert!(e.contains("cargo feature `aws`"), "{e}");
    }

    #[cfg(feature = "aws")]
    #[test]
    fn secrets_manager_ids_are_names_or_arns() {
        let arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:partners/x-AbCdEf";
        for id in ["partners/acme+api@prod_1.key=x-y", arn] {
            let spec = format!("aws-secretsmanager:{id}");
            let s = Sink::parse(&spec).unwrap();
            assert_eq!(s.spec(), spec);
            assert_eq!(Sink::saved(&spec).unwrap(), s);
            assert!(s.can_read_back());
        }
        let Sink::AwsSecretsManager { settings, .. } =
            Sink::parse(&format!("aws-secretsmanager:{arn}")).unwrap()
        else {
            unreachable!()
        };
        assert_eq!(settings.region.as_deref(), Some("eu-west-1"));
        let e = Sink::parse("aws-secretsmanager:").unwrap_err().to_string();
        assert!(e.contains("missing SECRET_ID"), "{e}");
        let e = Sink::parse("aws-secretsmanager:arn:aws:s3:::b")
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a secret ARN"), "{e}");

        // A provider entry of kind aws lends its settings; the ARN's region still wins.
        let entry = ProviderConfig {
            name: "acme-aws".into(),
            kind: "aws".into(),
            region: Some("us-east-1".into()),
            endpoint: Some("http://127.0.0.1:5000".into()),
            profile: Some("rotator".into()),
            ..Default::default()
        };
        let mut s = Sink::parse(&format!("aws-secretsmanager:{arn}")).unwrap();
        s.use_provider(&entry);
        let Sink::AwsSecretsManager { settings, .. } = &s else {
            unreachable!()
        };
        assert_eq!(settings.name, "acme-aws");
        assert_eq!(settings.region.as_deref(), Some("eu-west-1"));
        assert_eq!(settings.profile.as_deref(), Some("rotator"));
        let mut s = Sink::parse("aws-secretsmanager:p/x").unwrap();
        s.use_provider(&ProviderConfig {
            kind: "http".into(),
            ..entry
        });
        assert_eq!(s, Sink::parse("aws-secretsmanager:p/x").unwrap());
    }

    #[test]
    fn remote_errors_never_carry_the_secret() {
        let s = Secret::new("tg_live_abcdefghijklmnopqrstuvwxyz12".into());
        let e = SinkError::remote(
            crate::provider::ProviderError::Conflict {
                provider: "aws-secretsmanager".into(),
                message: format!("bad value {}", s.expose()),
            },
            Some(&s),
        );
        assert_eq!(e.to_string(), "aws-secretsmanager: bad value [secret]");
    }

    #[tokio::test]
    async fn screen_sink_is_code_only_and_cannot_be_read_back() {
        let e = Sink::parse("screen").unwrap_err().to_string();
        assert!(e.contains("only in the TUI"), "{e}");
        let slot = ScreenSlot::new();
        let sink = Sink::Screen(slot.clone());
        assert_eq!(sink.spec(), "screen");
        assert!(!sink.can_read_back());
        assert_eq!(sink, Sink::Screen(slot.clone()));
        assert_ne!(sink, Sink::Screen(ScreenSlot::new()));
        let s = Secret::new("tg_live_abcdefghijklmnopqrstuvwxyz12".into());
        sink.preflight(false).await.unwrap();
        sink.deliver(&s, false, "t/k").await.unwrap();
        let shown = format!("{sink:?}");
        assert!(!shown.contains("abcdefgh"), "{shown}");
        assert!(sink.holds(&s.fingerprint()).await.unwrap().is_none());
        assert!(sink.undo(&s.fingerprint()).await.unwrap().is_none());
        assert_eq!(slot.take().unwrap(), s);
        assert!(slot.take().is_none());
        let resumed = Sink::saved("screen").unwrap();
        assert!(matches!(resumed, Sink::Screen(ref r) if !r.is_filled()));
        assert_eq!(Sink::saved("stdout").unwrap(), Sink::Stdout);
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn file_sink_is_private_refuses_overwrite_and_reads_back() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k.txt");
        let sink = Sink::File(p.clone());
        let s = Secret::new("tg_live_abcdefghijklmnopqrstuvwxyz12".into());
        sink.preflight(false).await.unwrap();
        sink.deliver(&s, false, "t/k").await.unwrap();
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert!(matches!(
            sink.preflight(false).await,
            Err(SinkError::Exists(_))
        ));
        assert!(matches!(
            sink.deliver(&s, false, "t/k").await,
            Err(SinkError::Exists(_))
        ));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        assert_eq!(sink.holds(&s.fingerprint()).await.unwrap().unwrap(), s);
        assert!(sink.holds("sha256:00").await.unwrap().is_none());
        sink.deliver(&s, true, "t/k").await.unwrap();
    }
}
