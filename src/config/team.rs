//! `[team]`: the shared PostgreSQL store of a team of responders (see docs/team.md).
//! The password is never in the file: `password_env` names an environment variable,
//! `password_command` a command that prints it; a URL that carries one is refused.

use super::{line_of, ConfigError};
use crate::secret::Secret;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The lease of a claim when `lease` is not set: how long a claim of a client that
/// stopped renewing it (crashed, cut off) still counts.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(600);

/// The `[team]` table.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct TeamConfig {
    /// `postgres://USER@HOST:PORT/DATABASE` (no password).
    pub url: String,
    /// Name of the environment variable that holds the role's password.
    pub password_env: Option<String>,
    /// A command whose standard output is the role's password.
    pub password_command: Option<String>,
    /// Seconds `password_command` may run (default 10).
    pub password_command_timeout: Option<u64>,
    /// A PEM file of the CA certificates that sign the server's certificate: the
    /// connection then uses TLS (required for any host but loopback).
    pub ca_file: Option<PathBuf>,
    /// How long a claim counts after its holder last renewed it (`30s`, `10m`; default 10m).
    pub lease: Option<String>,
    /// The lease, parsed.
    #[serde(skip)]
    pub lease_duration: Option<Duration>,
    /// A source a member synced less than this long ago is read from the team's copy
    /// instead of synced again (`0s`: always sync when no one else is; default 30s).
    pub fresh: Option<String>,
    /// `fresh`, parsed.
    #[serde(skip)]
    pub fresh_duration: Option<Duration>,
    /// Where the team's events are kept for the views: `"cache"` (default: each member
    /// copies them into its cache) or `"team"` (they stay in the team store, which the
    /// events view and the key detail read).
    #[serde(default)]
    pub events: EventsHome,
    /// `FILE:LINE` of the table (filled in after parsing).
    #[serde(skip)]
    pub origin: String,
    /// The file and line, for errors found later (password resolution).
    #[serde(skip)]
    pub file: Option<PathBuf>,
    #[serde(skip)]
    pub line: Option<usize>,
}

/// Where a member reads the team's events (`[team] events`).
#[derive(Debug, Clone, Copy, Deserialize, Default, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum EventsHome {
    /// Copied into each member's cache with the keys and findings.
    #[default]
    Cache,
    /// Kept in the team store only; the views read them there.
    Team,
}

/// `[team] fresh` when not set.
pub const DEFAULT_FRESH: Duration = Duration::from_secs(30);

impl TeamConfig {
    /// Checks a parsed `[team]` table; `span_start` is where it begins in `text`.
    pub fn validate(
        &mut self,
        text: &str,
        span_start: usize,
        path: &Path,
    ) -> Result<(), ConfigError> {
        let line = line_of(text, span_start);
        self.origin = format!("{}:{line}", path.display());
        self.file = Some(path.to_path_buf());
        self.line = Some(line);
        let fail = |message: String| ConfigError {
            path: path.to_path_buf(),
            line: Some(line),
            message,
        };
        let parsed = reqwest::Url::parse(&self.url).map_err(|e| {
            fail(format!(
                "[team] `url` = \"{}\" is not a URL ({e}); expected e.g. \"postgres://keyaudit@db.example:5432/keyaudit\"",
                crate::output::sanitize(&self.url)
            ))
        })?;
        if !matches!(parsed.scheme(), "postgres" | "postgresql") {
            return Err(fail(format!(
                "[team] `url` must start with postgres://, not {}://",
                crate::output::sanitize(parsed.scheme())
            )));
        }
        if parsed.password().is_some() {
            return Err(fail(
                "[team] `url` carries a password; remove it from the URL and use \
                 password_env or password_command (a password is never stored in the config)"
                    .into(),
            ));
        }
        if parsed.username().is_empty() {
            return Err(fail(
                "[team] `url` names no role; write it as postgres://ROLE@HOST:PORT/DATABASE".into(),
            ));
        }
        if parsed.path().trim_start_matches('/').is_empty() {
            return Err(fail(
                "[team] `url` names no database; write it as postgres://ROLE@HOST:PORT/DATABASE"
                    .into(),
            ));
        }
        if let Err(e) = self.url.parse::<tokio_postgres::Config>() {
            return Err(fail(format!("[team] `url`: {e}")));
        }
        if self.password_env.is_some() && self.password_command.is_some() {
            return Err(fail(
                "[team] set either `password_env` or `password_command`, not both".into(),
            ));
        }
        if self.password_command_timeout == Some(0) {
            return Err(fail(
                "[team] `password_command_timeout` must be at least 1".into(),
            ));
        }
        match &self.ca_file {
            Some(ca) => {
                crate::store::team::tls::read_roots(ca).map_err(|why| {
                    fail(format!("[team] `ca_file` = \"{}\": {why}", ca.display()))
                })?;
            }
            None => {
                let host = parsed.host_str().unwrap_or("");
                let bare = host.trim_start_matches('[').trim_end_matches(']');
                let loopback = bare.eq_ignore_ascii_case("localhost")
                    || bare
                        .parse::<std::net::IpAddr>()
                        .is_ok_and(|ip| ip.is_loopback());
                if !loopback {
                    return Err(fail(format!(
                        "[team] `url` names the host `{}` but no `ca_file`: the password and the \
                         journal would cross the network unencrypted; set ca_file to the PEM file \
                         of the CA that signs the server's certificate",
                        crate::output::sanitize(host)
                    )));
                }
            }
        }
        let lease = match &self.lease {
            None => DEFAULT_LEASE,
            Some(s) => {
                crate::when::parse_duration(s).map_err(|e| fail(format!("[team] `lease`: {e}")))?
            }
        };
        if lease < Duration::from_secs(1) {
            return Err(fail(
                "[team] `lease` must be at least 1s (a claim is renewed every third of it)".into(),
            ));
        }
        self.lease_duration = Some(lease);
        self.fresh_duration = Some(match &self.fresh {
            None => DEFAULT_FRESH,
            Some(s) => {
                crate::when::parse_duration(s).map_err(|e| fail(format!("[team] `fresh`: {e}")))?
            }
        });
        Ok(())
    }

    /// How recent a team's copy of a source is read rather than synced again.
    pub fn fresh(&self) -> Duration {
        self.fresh_duration.unwrap_or(DEFAULT_FRESH)
    }

    /// The lease of a claim.
    pub fn lease(&self) -> Duration {
        self.lease_duration.unwrap_or(DEFAULT_LEASE)
    }

    /// The role's password, from `password_env` or `password_command`; `None` when
    /// neither is set (trust or certificate authentication).
    pub fn password(&self) -> Result<Option<Secret>, ConfigError> {
        let fail = |message: String| ConfigError {
            path: self.file.clone().unwrap_or_default(),
            line: self.line,
            message,
        };
        if let Some(var) = &self.password_env {
            return match std::env::var(var) {
                Ok(v) if !v.is_empty() => Ok(Some(Secret::new(v))),
                _ => Err(fail(format!(
                    "[team] environment variable `{var}` (password_env) is not set; export it or use password_command"
                ))),
            };
        }
        let Some(cmd) = &self.password_command else {
            return Ok(None);
        };
        let timeout = Duration::from_secs(
            self.password_command_timeout
                .unwrap_or(super::TOKEN_COMMAND_TIMEOUT_SECS),
        );
        super::run_secret_command(cmd, timeout, "password_command_timeout")
            .map(Some)
            .map_err(|why| fail(format!("[team] password_command {why}")))
    }
}

#[cfg(test)]
mod tests {
    use super::super::Config;
    use std::path::Path;
    use std::time::Duration;

    fn parse(text: &str) -> Result<Config, String> {
        Config::parse(text, Path::new("config.toml")).map_err(|e| e.to_string())
    }

    #[test]
    fn a_team_table_parses_with_its_lease() {
        let c = parse("mode = \"write\"\n\n[team]\nurl = \"postgres://alice@127.0.0.1:5432/keyaudit\"\nlease = \"30s\"\n").unwrap();
        let t = c.team().unwrap();
        assert_eq!(t.lease(), Duration::from_secs(30));
        assert_eq!(t.origin, "config.toml:3");
        let c = parse("[team]\nurl = \"postgres://alice@localhost/keyaudit\"\n").unwrap();
        assert_eq!(c.team().unwrap().lease(), super::DEFAULT_LEASE);
        assert!(parse("").unwrap().team().is_none());
        assert_eq!(c.team().unwrap().events, super::EventsHome::Cache);
        let c = parse("[team]\nurl = \"postgres://a@127.0.0.1/k\"\nevents = \"team\"\n").unwrap();
        assert_eq!(c.team().unwrap().events, super::EventsHome::Team);
    }

    #[test]
    fn errors_name_the_line_and_the_field() {
        let e =
            parse("\n[team]\nurl = \"postgres://alice:hunter2@127.0.0.1/keyaudit\"\n").unwrap_err();
        assert!(
            e.starts_with("config.toml:2: [team] `url` carries a password"),
            "{e}"
        );
        assert!(!e.contains("hunter2"), "{e}");
        let e = parse("[team]\nurl = \"postgres://alice@db.example:5432/keyaudit\"\n").unwrap_err();
        assert!(e.contains("no `ca_file`"), "{e}");
        let e = parse("[team]\nurl = \"mysql://alice@127.0.0.1/k\"\n").unwrap_err();
        assert!(e.contains("must start with postgres://"), "{e}");
        let e = parse("[team]\nurl = \"postgres://127.0.0.1/k\"\n").unwrap_err();
        assert!(e.contains("names no role"), "{e}");
        let e = parse("[team]\nurl = \"postgres://a@127.0.0.1/k\"\nlease = \"10 minutes\"\n")
            .unwrap_err();
        assert!(e.starts_with("config.toml:1: [team] `lease`"), "{e}");
        let e = parse("[team]\nurl = \"postgres://a@127.0.0.1/k\"\npassword_env = \"P\"\npassword_command = \"echo p\"\n").unwrap_err();
        assert!(
            e.contains("either `password_env` or `password_command`"),
            "{e}"
        );
        let e = parse(
            "[team]\nurl = \"postgres://a@127.0.0.1/k\"\nca_file = \"/nonexistent/ca.pem\"\n",
        )
        .unwrap_err();
        assert!(
            e.contains("[team] `ca_file` = \"/nonexistent/ca.pem\": cannot read it"),
            "{e}"
        );
        let e =
            parse("[team]\nurl = \"postgres://a@127.0.0.1/k\"\npasword_env = \"P\"\n").unwrap_err();
        assert!(e.contains("pasword_env"), "{e}");
        let e =
            parse("[team]\nurl = \"postgres://a@127.0.0.1/k\"\nevents = \"remote\"\n").unwrap_err();
        assert!(
            e.contains("config.toml:3") && e.contains("`cache`") && e.contains("`team`"),
            "{e}"
        );
    }

    #[test]
    fn the_password_comes_from_the_environment_or_a_command() {
        let c = parse("[team]\nurl = \"postgres://a@127.0.0.1/k\"\npassword_command = \"printf 's3cret\\\\n'\"\n").unwrap();
        assert_eq!(
            c.team().unwrap().password().unwrap().unwrap().expose(),
            "s3cret"
        );
        let c = parse("[team]\nurl = \"postgres://a@127.0.0.1/k\"\npassword_env = \"KEYAUDIT_TEST_UNSET_PW\"\n").unwrap();
        let e = c.team().unwrap().password().unwrap_err().to_string();
        assert!(
            e.contains("`KEYAUDIT_TEST_UNSET_PW` (password_env) is not set"),
            "{e}"
        );
        let c = parse("[team]\nurl = \"postgres://a@127.0.0.1/k\"\npassword_command = \"echo nope >&2; exit 3\"\n").unwrap();
        let e = c.team().unwrap().password().unwrap_err().to_string();
        assert!(e.contains("[team] password_command exited with"), "{e}");
        assert!(e.contains("nope"), "{e}");
    }
}
