//! Configuration: TOML under the XDG config dir, overridable by `--config` /
//! `KEYAUDIT_CONFIG`. Credentials are never in the file: only the name of an environment
//! variable or a command that prints them.
//!
//! Every error names the file, the line and the key, and says what is expected.

use crate::secret::Secret;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use thiserror::Error;
use toml::Spanned;

mod team;
pub use team::{EventsHome, TeamConfig, DEFAULT_LEASE};

/// Kinds of provider a config may name. The embedded demo (kind `demo`) is not one of
/// them: it generates new keys, tokens and history at every start, so it only runs with
/// its own throw-away cache (`keyaudit demo`, or `keyaudit` with no provider configured);
/// configured, it would fill the operator's cache with keys the next start never gave out.
pub const KINDS: &[&str] = &[
    "http",
    "aws",
    "vault",
    "gitlab",
    "openai",
    "cloudflare",
    "github",
];

/// A configuration error, one line: `FILE:LINE: what is wrong; what to do`.
#[derive(Debug, Error)]
#[error("{}{}: {message}", path.display(), line.map(|l| format!(":{l}")).unwrap_or_default())]
pub struct ConfigError {
    pub path: PathBuf,
    pub line: Option<usize>,
    pub message: String,
}

/// How the workstation starts: read-only (the TUI's default) or able to act.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// The TUI starts read-only; CLI commands may act.
    #[default]
    Default,
    /// Nothing changes at any provider: acting on keys and deciding findings refuse;
    /// sync, detect and import still update the local cache.
    ReadOnly,
    /// The TUI starts able to act.
    Write,
}

/// One `[[provider]]` entry.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    /// The user's label, unique.
    pub name: String,
    /// `http`, `aws`, `vault`, `gitlab`, `openai` or `cloudflare` (`demo` only for the embedded demo, never from a file).
    pub kind: String,
    /// Base URL (http, vault).
    pub url: Option<String>,
    /// Name of the environment variable that holds the credential.
    pub token_env: Option<String>,
    /// A command whose standard output is the credential.
    pub token_command: Option<String>,
    /// Seconds `token_command` may run before it is stopped (default 10).
    pub token_command_timeout: Option<u64>,
    /// A PEM file of CA certificates to trust besides the public roots (an internal
    /// PKI). Without it, `SSL_CERT_FILE` (and, for kind `vault`, `VAULT_CACERT`; for
    /// kind `aws`, `AWS_CA_BUNDLE` first) is used.
    pub ca_file: Option<PathBuf>,
    /// Allow a plain `http://` URL to a host other than loopback (the token then
    /// crosses the network unencrypted). Default false.
    #[serde(default)]
    pub allow_insecure_http: bool,
    /// Seconds before one request is abandoned (default 30).
    pub timeout_secs: Option<u64>,
    /// Attempts per request before giving up on transient errors (default 6).
    pub max_attempts: Option<u32>,
    /// Keys per page and events per page asked for (defaults 500 and 5000).
    pub page_size: Option<u32>,
    // AWS
    pub region: Option<String>,
    pub endpoint: Option<String>,
    pub profile: Option<String>,
    pub cloudtrail_bucket: Option<String>,
    pub cloudtrail_prefix: Option<String>,
    // Vault / OpenBao
    pub namespace: Option<String>,
    pub audit_log: Option<PathBuf>,
    pub audit_device: Option<String>,
    // GitLab
    /// Projects (numeric ids or full paths) whose project access tokens and audit events
    /// are read (kind `gitlab`); for kind `openai`, the project ids (`proj_…`) whose API
    /// keys are read (default: every project of the organization).
    #[serde(default)]
    pub projects: Vec<String>,
    /// Groups (numeric ids or full paths) whose group access tokens and audit events are
    /// read (kind `gitlab`).
    #[serde(default)]
    pub groups: Vec<String>,
    /// Read the instance audit events too (`GET /audit_events`; administrators of a
    /// self-managed instance only). Default false.
    #[serde(default)]
    pub instance_audit: bool,
    // Cloudflare
    /// Account ids (32 hex digits) whose account-owned API tokens and audit logs are
    /// read (kind `cloudflare`). The user's own tokens are always read.
    #[serde(default)]
    pub accounts: Vec<String>,
    // GitHub
    /// The organisation whose token grants, audit log and secret-scanning alerts are read
    /// (kind `github`).
    pub org: Option<String>,
    /// The GitHub App's id (kind `github`, App authentication).
    pub app_id: Option<u64>,
    /// The App's installation on the organisation (kind `github`).
    pub installation_id: Option<u64>,
    /// The App's private key, PEM as GitHub issues it; mode 0600 (kind `github`).
    pub private_key_file: Option<PathBuf>,
    /// A credential handed over in memory (the embedded demo); never read from a file.
    /// A [`Secret`]: zeroized on drop, and `Debug` of this entry does not show it.
    #[serde(skip)]
    pub token: Option<Secret>,
    /// Line of the entry in its file (filled in after parsing).
    #[serde(skip)]
    pub line: Option<usize>,
    /// The config file this entry came from (filled in after parsing).
    #[serde(skip)]
    pub file: Option<PathBuf>,
}

impl ProviderConfig {
    /// Where this entry is, for error messages: `FILE:LINE` or `--demo`.
    pub fn origin(&self) -> String {
        match (&self.file, self.line) {
            (Some(f), Some(l)) => format!("{}:{l}", f.display()),
            (Some(f), None) => f.display().to_string(),
            _ => "built-in".to_string(),
        }
    }
}

/// `[tui]`: the workstation's comfort settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TuiConfig {
    /// Mouse support (click to select, wheel to scroll).
    pub mouse: bool,
    /// `dark` or `light`.
    pub theme: String,
    /// Seconds between background syncs (0 turns them off).
    pub sync_interval_secs: u64,
    /// Key rebinding: `"ctrl-r" = "sync"` (see docs/keys.md for action names).
    pub keys: BTreeMap<String, String>,
}

impl Default for TuiConfig {
    fn default() -> Self {
        TuiConfig {
            mouse: true,
            theme: "dark".into(),
            sync_interval_secs: 60,
            keys: BTreeMap::new(),
        }
    }
}

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub mode: Mode,
    /// Cache file (overridden by `--db` / `KEYAUDIT_DB`).
    pub db: Option<PathBuf>,
    #[serde(default, rename = "provider")]
    providers: Vec<Spanned<ProviderConfig>>,
    #[serde(default)]
    pub tui: TuiConfig,
    /// Detection thresholds; read by the detection engine.
    #[serde(default)]
    pub detect: toml::Table,
    /// Import settings (field mappings); read by the importers.
    #[serde(default)]
    pub import: toml::Table,
    /// `[cache]`: encryption at rest (see `store::crypt`).
    #[serde(default)]
    pub cache: Option<Spanned<crate::store::crypt::CacheConfig>>,
    /// `[team]`: the team's shared PostgreSQL store (claims, journal); see docs/team.md.
    #[serde(default)]
    pub team: Option<Spanned<TeamConfig>>,
    /// The file this configuration came from, if any.
    #[serde(skip)]
    pub path: Option<PathBuf>,
}

/// Converts a byte offset in `text` to a 1-based line number.
pub fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())]
        .bytes()
        .filter(|b| *b == b'\n')
        .count()
        + 1
}

impl Config {
    /// Reads the configuration at `path`. A missing file is an empty configuration only
    /// when `must_exist` is false (the default location); a path the user named must exist.
    pub fn load(path: &Path, must_exist: bool) -> Result<Config, ConfigError> {
        let err = |line: Option<usize>, message: String| ConfigError {
            path: path.to_path_buf(),
            line,
            message,
        };
        let text = match std::fs::read_to_string(path) {
            Ok(t) => {
                refuse_writable_by_others(path)?;
                t
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !must_exist => {
                return Ok(Config::default())
            }
            Err(e) => {
                return Err(err(
                    None,
                    format!("cannot read the configuration: {e}; check the path given by --config or KEYAUDIT_CONFIG"),
                ))
            }
        };
        Config::parse(&text, path)
    }

    /// Parses configuration text; `path` is used in messages.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let mut cfg: Config = toml::from_str(text).map_err(|e| ConfigError {
            path: path.to_path_buf(),
            line: e.span().map(|s| line_of(text, s.start)),
            message: e.message().trim().replace('\n', " "),
        })?;
        cfg.path = Some(path.to_path_buf());
        if let Some(c) = cfg.cache.as_mut() {
            let start = c.span().start;
            c.get_mut().validate(text, start, path)?;
        }
        if let Some(t) = cfg.team.as_mut() {
            let start = t.span().start;
            t.get_mut().validate(text, start, path)?;
        }
        let mut names: BTreeMap<String, usize> = BTreeMap::new();
        for p in cfg.providers.iter_mut() {
            let line = line_of(text, p.span().start);
            let entry = p.get_mut();
            entry.line = Some(line);
            entry.file = Some(path.to_path_buf());
            let fail = |message: String| ConfigError {
                path: path.to_path_buf(),
                line: Some(line),
                message,
            };
            if entry.name.trim().is_empty() {
                return Err(fail(
                    "provider `name` is empty; give each provider a unique label".into(),
                ));
            }
            if let Some(first) = names.insert(entry.name.clone(), line) {
                return Err(fail(format!(
                    "provider name `{}` is used twice (first at line {first}); names must be unique",
                    entry.name
                )));
            }
            if entry.kind == "demo" {
                return Err(fail(format!(
                    "provider `{}`: kind `demo` cannot be configured: the embedded demo runs with \
                     its own cache; run `keyaudit demo`, or serve it with `keyaudit demo --serve-only \
                     --port 8088 --token T` and configure kind = \"http\", url = \"http://127.0.0.1:8088\"",
                    entry.name
                )));
            }
            if !KINDS.contains(&entry.kind.as_str()) {
                return Err(fail(format!(
                    "provider `{}`: unknown kind `{}`; expected one of: {}",
                    entry.name,
                    entry.kind,
                    KINDS.join(", ")
                )));
            }
            // kind `vault` may take its address from VAULT_ADDR / BAO_ADDR instead.
            if entry.kind == "http" && entry.url.is_none() {
                return Err(fail(format!(
                    "provider `{}`: missing key `url`; kind `{}` needs the base URL, e.g. url = \"http://127.0.0.1:8088\"",
                    entry.name, entry.kind
                )));
            }
            if let Some(url) = &entry.url {
                let Ok(parsed) = reqwest::Url::parse(url) else {
                    return Err(fail(format!(
                        "provider `{}`: `url` = \"{url}\" is not a valid URL; expected e.g. \"http://127.0.0.1:8088\"",
                        entry.name
                    )));
                };
                if let Err(why) = check_transport(&parsed, entry.allow_insecure_http) {
                    return Err(fail(format!(
                        "provider `{}`: `url` = \"{url}\": {why}",
                        entry.name
                    )));
                }
            }
            if let Some(ca) = &entry.ca_file {
                if let Err(why) = read_ca_file(ca) {
                    return Err(fail(format!(
                        "provider `{}`: `ca_file` = \"{}\": {why}",
                        entry.name,
                        ca.display()
                    )));
                }
            }
            if entry.token_env.is_some() && entry.token_command.is_some() {
                return Err(fail(format!(
                    "provider `{}`: set either `token_env` or `token_command`, not both",
                    entry.name
                )));
            }
            if !entry.accounts.is_empty() && entry.kind != "cloudflare" {
                return Err(fail(format!(
                    "provider `{}`: `accounts` is read by kind `cloudflare` only; remove it",
                    entry.name
                )));
            }
            if let Some(bad) = entry
                .accounts
                .iter()
                .find(|a| a.len() != 32 || !a.bytes().all(|b| b.is_ascii_hexdigit()))
            {
                return Err(fail(format!(
                    "provider `{}`: `accounts` entry \"{}\" is not a Cloudflare account id; \
                     expected 32 hex digits (the dashboard's account home shows it as Account ID)",
                    entry.name,
                    crate::output::sanitize(bad)
                )));
            }
        }
        Ok(cfg)
    }

    /// The `[team]` table, when the team store is configured.
    pub fn team(&self) -> Option<&TeamConfig> {
        self.team.as_ref().map(|t| t.get_ref())
    }

    /// The configured providers, in file order.
    pub fn providers(&self) -> impl Iterator<Item = &ProviderConfig> {
        self.providers.iter().map(|p| p.get_ref())
    }

    /// The same settings with no provider (an offline case file is never synced).
    pub fn without_providers(&self) -> Config {
        let mut c = self.clone();
        c.providers.clear();
        c
    }

    /// Adds a provider that was not in the file (the embedded demo).
    pub fn add_provider(&mut self, p: ProviderConfig) {
        self.providers.push(Spanned::new(0..0, p));
    }
}

/// Refuses a plain `http://` URL to a host other than loopback (127.0.0.0/8, ::1,
/// `localhost`) unless `allow_insecure_http`: the token would cross the network in clear.
pub fn check_transport(url: &reqwest::Url, allow_insecure_http: bool) -> Result<(), String> {
    if url.scheme() != "http" || allow_insecure_http {
        return Ok(());
    }
    let host = url.host_str().unwrap_or("");
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let loopback = bare.eq_ignore_ascii_case("localhost")
        || bare
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if loopback {
        return Ok(());
    }
    Err(format!(
        "plain http to `{}` would send the token unencrypted; use https:// (with `ca_file` \
         for an internal CA), or set allow_insecure_http = true in this provider to accept that",
        url.host_str().unwrap_or("")
    ))
}

/// Reads a PEM bundle of CA certificates; an error says what is wrong with it.
pub fn read_ca_file(path: &Path) -> Result<Vec<reqwest::Certificate>, String> {
    let pem = std::fs::read(path).map_err(|e| format!("cannot read it: {e}"))?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem)
        .map_err(|e| format!("not a PEM certificate bundle: {e}"))?;
    if certs.is_empty() {
        return Err("holds no PEM certificate (-----BEGIN CERTIFICATE-----)".into());
    }
    Ok(certs)
}

/// The extra CA certificates of a provider: its `ca_file`, else the first of the
/// environment variables `env` (e.g. `VAULT_CACERT`) and `SSL_CERT_FILE` that is set.
/// Errors name where the file was named.
pub fn extra_roots(
    p: &ProviderConfig,
    env: &[&str],
) -> Result<Vec<reqwest::Certificate>, ConfigError> {
    let named = match &p.ca_file {
        Some(f) => Some((f.clone(), "`ca_file`".to_string())),
        None => env.iter().chain(["SSL_CERT_FILE"].iter()).find_map(|v| {
            std::env::var_os(v)
                .filter(|s| !s.is_empty())
                .map(|f| (PathBuf::from(f), format!("${v}")))
        }),
    };
    let Some((file, from)) = named else {
        return Ok(Vec::new());
    };
    read_ca_file(&file).map_err(|why| ConfigError {
        path: p.file.clone().unwrap_or_default(),
        line: p.line,
        message: format!(
            "provider `{}`: {from} = \"{}\": {why}",
            p.name,
            file.display()
        ),
    })
}

/// Refuses a configuration file that another user could write (group- or
/// world-writable, or owned by someone else), as ssh does with its keys: whoever writes
/// it chooses the commands keyaudit runs (`token_command`) and the servers it trusts.
pub fn refuse_writable_by_others(path: &Path) -> Result<(), ConfigError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let Ok(meta) = std::fs::metadata(path) else {
            return Ok(());
        };
        let mode = meta.mode() & 0o777;
        let fail = |message: String| ConfigError {
            path: path.to_path_buf(),
            line: None,
            message,
        };
        if mode & 0o022 != 0 {
            return Err(fail(format!(
                "the configuration is writable by others (mode {mode:04o}), and it names the \
                 commands keyaudit runs; refusing to read it. Fix: chmod go-w {}",
                path.display()
            )));
        }
        let me = nix::unistd::getuid().as_raw();
        if meta.uid() != me && meta.uid() != 0 {
            return Err(fail(format!(
                "the configuration belongs to uid {}, not to you (uid {me}); refusing to read \
                 it. Fix: chown {me} {} (or use a configuration of your own)",
                meta.uid(),
                path.display()
            )));
        }
    }
    Ok(())
}

/// The default time `token_command` may run.
pub const TOKEN_COMMAND_TIMEOUT_SECS: u64 = 10;

/// Resolves a provider's credential from its `token_env` or `token_command`.
/// Returns `Ok(None)` when neither is configured.
///
/// `token_command` runs under `sh -c` with no standard input, for at most
/// `token_command_timeout` seconds (default 10); its standard error, sanitized and cut,
/// goes into the error message, its standard output (the credential) never does. Called
/// on a worker of a multi-threaded tokio runtime, the wait is moved off the async
/// threads (`block_in_place`).
pub fn resolve_token(p: &ProviderConfig) -> Result<Option<Secret>, ConfigError> {
    let fail = |message: String| ConfigError {
        path: p.file.clone().unwrap_or_default(),
        line: p.line,
        message,
    };
    if let Some(var) = &p.token_env {
        return match std::env::var(var) {
            Ok(v) if !v.trim().is_empty() => Ok(Some(Secret::new(v.trim().to_string()))),
            _ => Err(fail(format!(
                "provider `{}`: environment variable `{var}` (token_env) is not set; export it or use token_command",
                p.name
            ))),
        };
    }
    let Some(cmd) = &p.token_command else {
        return Ok(None);
    };
    let timeout = std::time::Duration::from_secs(
        p.token_command_timeout
            .unwrap_or(TOKEN_COMMAND_TIMEOUT_SECS),
    );
    run_secret_command(cmd, timeout, "token_command_timeout")
        .map(Some)
        .map_err(|why| fail(format!("provider `{}`: token_command {why}", p.name)))
}

/// Runs a command that prints a credential (`token_command`, `[team] password_command`)
/// under `sh -c`, with no standard input, for at most `timeout`, and returns its trimmed
/// standard output. The error text follows the command's name: "exited with …". Its
/// standard error, sanitized and cut, goes into the error; its standard output never does.
/// On a worker of a multi-threaded tokio runtime the wait is moved off the async threads
/// (`block_in_place`).
pub(crate) fn run_secret_command(
    cmd: &str,
    timeout: std::time::Duration,
    timeout_key: &str,
) -> Result<Secret, String> {
    let run = || run_token_command(cmd, timeout);
    let outcome = match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(run)
        }
        _ => run(),
    };
    let stderr_note = |stderr: &[u8]| {
        let text = String::from_utf8_lossy(stderr);
        let text = text.trim();
        if text.is_empty() {
            String::new()
        } else {
            const SHOWN: usize = 500;
            let cut: String = text.chars().take(SHOWN).collect();
            let more = if text.chars().count() > SHOWN {
                "…"
            } else {
                ""
            };
            format!(
                "; its standard error: {}{more}",
                crate::output::sanitize(&cut.replace('\n', " | "))
            )
        }
    };
    match outcome {
        Err(e) => Err(format!("could not be started: {e}")),
        Ok(TokenRun::TimedOut { stderr }) => Err(format!(
            "did not finish within {} s and was stopped (raise `{timeout_key}` if it waits \
             for something slow){}",
            timeout.as_secs(),
            stderr_note(&stderr)
        )),
        Ok(TokenRun::Exited {
            status,
            stdout,
            stderr,
        }) => {
            if !status.success() {
                return Err(format!("exited with {status}{}", stderr_note(&stderr)));
            }
            let Ok(token) = std::str::from_utf8(&stdout) else {
                return Err("printed invalid UTF-8".into());
            };
            let token = token.trim();
            if token.is_empty() {
                return Err(format!("printed nothing{}", stderr_note(&stderr)));
            }
            Ok(Secret::new(token.to_string()))
        }
    }
}

/// How a `token_command` ended.
enum TokenRun {
    Exited {
        status: std::process::ExitStatus,
        /// Zeroized when dropped: it holds the credential.
        stdout: zeroize::Zeroizing<Vec<u8>>,
        stderr: Vec<u8>,
    },
    TimedOut {
        stderr: Vec<u8>,
    },
}

/// Runs `cmd` under `sh -c`, reading its output on two threads, and stops it (and
/// the process group it started) after `timeout`.
fn run_token_command(cmd: &str, timeout: std::time::Duration) -> std::io::Result<TokenRun> {
    use std::io::Read;
    use std::process::{Command, Stdio};
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg(cmd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        // Its own process group, so that a timeout stops what it started too.
        command.process_group(0);
    }
    let mut child = command.spawn()?;
    let mut out = child.stdout.take().expect("piped");
    let mut err = child.stderr.take().expect("piped");
    // The readers hand over what they read through channels, so that a process that
    // keeps a pipe open after the timeout cannot hold keyaudit.
    let (out_tx, out_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = zeroize::Zeroizing::new(Vec::new());
        let _ = out.read_to_end(&mut buf);
        let _ = out_tx.send(buf);
    });
    let (err_tx, err_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        // Bounded: only the start is shown, the rest is drained.
        let _ = (&mut err).take(64 * 1024).read_to_end(&mut buf);
        let _ = err_tx.send(buf.clone());
        let _ = std::io::copy(&mut err, &mut std::io::sink());
    });
    let grace = std::time::Duration::from_millis(500);
    let start = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break Some(status);
        }
        if start.elapsed() >= timeout {
            break None;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    match status {
        Some(status) => Ok(TokenRun::Exited {
            status,
            stdout: out_rx.recv_timeout(grace).unwrap_or_default(),
            stderr: err_rx.recv_timeout(grace).unwrap_or_default(),
        }),
        None => {
            #[cfg(unix)]
            {
                let group = nix::unistd::Pid::from_raw(-(child.id() as i32));
                let _ = nix::sys::signal::kill(group, nix::sys::signal::Signal::SIGKILL);
            }
            let _ = child.kill();
            let _ = child.wait();
            Ok(TokenRun::TimedOut {
                stderr: err_rx.recv_timeout(grace).unwrap_or_default(),
            })
        }
    }
}

/// Every path keyaudit uses, resolved once at start.
#[derive(Debug, Clone)]
pub struct Paths {
    pub config: PathBuf,
    /// True when the config path was given explicitly (then it must exist).
    pub config_explicit: bool,
    pub db: PathBuf,
    /// True when the cache was named by `--db` (in any spelling) or `KEYAUDIT_DB`.
    pub db_explicit: bool,
    /// Where each demo session keeps its own cache (`session-PID.db`, removed when the
    /// session ends).
    pub demo_dir: PathBuf,
    /// The data directory (the default cache, the demo's and the cases' directories).
    pub data_dir: PathBuf,
    pub log_dir: PathBuf,
}

impl Paths {
    /// The key that signs the journal's checkpoints: in the config directory, never
    /// beside the cache.
    pub fn journal_key(&self) -> PathBuf {
        self.config
            .parent()
            .unwrap_or(Path::new("."))
            .join(crate::store::anchor::KEY_FILE)
    }

    /// Resolves paths from flags/env (already merged by clap) and the XDG directories.
    pub fn resolve(config: Option<PathBuf>, db: Option<PathBuf>) -> Paths {
        let dirs = directories::ProjectDirs::from("", "", "keyaudit");
        let (config_dir, data_dir, state_dir) = match &dirs {
            Some(d) => (
                d.config_dir().to_path_buf(),
                d.data_dir().to_path_buf(),
                d.state_dir().unwrap_or(d.data_dir()).to_path_buf(),
            ),
            None => {
                let here = PathBuf::from(".keyaudit");
                (here.clone(), here.clone(), here)
            }
        };
        let config_explicit = config.is_some();
        Paths {
            config: config.unwrap_or_else(|| config_dir.join("config.toml")),
            config_explicit,
            db_explicit: db.is_some(),
            db: db.unwrap_or_else(|| data_dir.join("cache.db")),
            demo_dir: data_dir.join("demo"),
            data_dir,
            log_dir: state_dir,
        }
    }

    /// The log file.
    pub fn log_file(&self) -> PathBuf {
        self.log_dir.join("keyaudit.log")
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Default => "default (TUI read-only, CLI may act)",
            Mode::ReadOnly => "read-only",
            Mode::Write => "write",
        })
    }
}

#[cfg(test)]
mod tests;
