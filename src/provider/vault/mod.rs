//! The `vault` provider: HashiCorp Vault and OpenBao (same HTTP API).
//!
//! Keys are tokens, identified by their accessor: `LIST auth/token/accessors`, then
//! `auth/token/lookup-accessor` for each (32 in flight). Token values are never asked
//! for, stored or logged; a new value made by rotation goes once to the caller.
//!
//! Events come from a file audit device's log (see [`audit`]). Accessors in the log are
//! HMAC'd with the device's key; `sys/audit-hash/<device>` gives the same HMAC for a known
//! accessor, which ties a log line to its token. Requests of tokens keyaudit cannot tie
//! (revoked before the sync, or never listed) are kept under `unknown:<hmac prefix>` keys.
//!
//! See docs/providers/vault.md for the policy keyaudit's token needs.

pub mod audit;

use super::http::{encode_segment, send_once, Retry};
use super::{Capabilities, EventPage, Issued, KeyPage, NewKey, Provider, ProviderError, Result};
use crate::config::{resolve_token, ProviderConfig};
use crate::model::{Event, Key, KeySource, KeyStatus, Outcome};
use crate::secret::Secret;
use async_trait::async_trait;
use chrono::{DateTime, TimeZone, Utc};
use futures_util::stream::{self, StreamExt};
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

/// Requests in flight while looking up or hashing many accessors.
pub const IN_FLIGHT: usize = 32;

/// Environment variables read when the config names no URL / token / namespace, in order.
pub const ADDR_VARS: &[&str] = &["VAULT_ADDR", "BAO_ADDR"];
pub const TOKEN_VARS: &[&str] = &["VAULT_TOKEN", "BAO_TOKEN"];
pub const NAMESPACE_VARS: &[&str] = &["VAULT_NAMESPACE", "BAO_NAMESPACE"];

/// A Vault or OpenBao server.
pub struct VaultProvider {
    name: String,
    base: reqwest::Url,
    token: Secret,
    token_hint: String,
    namespace: Option<String>,
    audit_log: Option<PathBuf>,
    audit_device: Option<String>,
    client: reqwest::Client,
    retry: Retry,
    key_page: usize,
    event_page: usize,
    state: Mutex<State>,
}

/// What one provider instance learned (kept for the life of the process).
#[derive(Default)]
struct State {
    /// Accessors of the last `LIST`, for paging.
    listing: Option<Vec<String>>,
    /// Every accessor this instance knows: listed, created or rotated.
    known: HashSet<String>,
    /// `hmac-sha256:...` of an accessor -> the accessor.
    by_hmac: HashMap<String, String>,
    /// Accessors already hashed.
    hashed: HashSet<String>,
    /// Client-token digest -> accessor, learned from log lines carrying both; ties a
    /// later request with the same (then revoked) token to its accessor.
    by_token: HashMap<String, String>,
    /// keyaudit's own accessor (`None` until looked up; `Some(None)` if unknown).
    own: Option<Option<String>>,
    /// Request ids of keyaudit's lookups -> the accessor looked up.
    lookup_ids: HashMap<String, String>,
    /// The audit log's (inode, length) when the listing began.
    log_mark: Option<(u64, u64)>,
}

/// What a request needed, for the message when it is refused.
struct Need<'a> {
    /// What keyaudit was doing: "listing tokens", "revoking token accessor X".
    doing: String,
    /// The capabilities, quoted: "`update`".
    capability: &'static str,
    path: &'a str,
    /// The token accessor concerned, for not-found errors.
    accessor: &'a str,
}

/// Why a call failed before it was explained.
enum Fail {
    Status(StatusCode, String),
    Gave(ProviderError),
}

/// `auth/token/lookup-accessor` data.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
struct TokenInfo {
    accessor: String,
    creation_time: i64,
    creation_ttl: i64,
    display_name: String,
    entity_id: String,
    expire_time: Option<DateTime<Utc>>,
    explicit_max_ttl: i64,
    meta: Option<BTreeMap<String, String>>,
    num_uses: i64,
    orphan: bool,
    period: Option<i64>,
    policies: Vec<String>,
    renewable: bool,
    role: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
}

fn first_env(vars: &[&'static str]) -> Option<(String, &'static str)> {
    vars.iter().find_map(|v| {
        std::env::var(v)
            .ok()
            .filter(|s| !s.trim().is_empty())
            .map(|s| (s.trim().to_string(), *v))
    })
}

/// The errors of a Vault error body, joined on one line.
fn vault_errors(body: &[u8]) -> String {
    #[derive(Deserialize)]
    struct Errors {
        errors: Vec<String>,
    }
    match serde_json::from_slice::<Errors>(body) {
        Ok(e) if !e.errors.is_empty() => e
            .errors
            .iter()
            .map(|m| {
                // "1 error occurred:\n\t* permission denied\n\n" -> "permission denied"
                m.lines()
                    .filter(|l| !l.trim().is_empty() && !l.contains("error occurred"))
                    .map(|l| l.trim().trim_start_matches("* ").to_string())
                    .collect::<Vec<_>>()
                    .join("; ")
            })
            .collect::<Vec<_>>()
            .join("; "),
        _ => String::from_utf8_lossy(body).chars().take(200).collect(),
    }
}

/// The outcome of an audited request from its error text.
pub fn outcome_of(error: Option<&str>) -> Outcome {
    match error.map(str::to_ascii_lowercase) {
        None => Outcome::Success,
        Some(e) if e.contains("permission denied") || e.contains("invalid token") => {
            Outcome::Denied
        }
        Some(_) => Outcome::Error,
    }
}

/// The key id of requests whose token keyaudit could not tie to a listed accessor.
pub fn unknown_key_id(logged_accessor: &str) -> String {
    let hex = logged_accessor
        .strip_prefix("hmac-sha256:")
        .unwrap_or(logged_accessor);
    format!("unknown:{}", &hex[..hex.len().min(12)])
}

impl VaultProvider {
    /// Builds the provider from its configuration entry, falling back to the
    /// `VAULT_ADDR` / `BAO_ADDR`, `VAULT_TOKEN` / `BAO_TOKEN` and `VAULT_NAMESPACE` /
    /// `BAO_NAMESPACE` conventions.
    pub fn from_config(cfg: &ProviderConfig) -> Result<VaultProvider> {
        let fail = |message: String| ProviderError::Config {
            provider: cfg.name.clone(),
            message: format!("{}: {message}", cfg.name),
        };
        let (url, url_from) = match &cfg.url {
            Some(u) => (u.clone(), "url"),
            None => first_env(ADDR_VARS).ok_or_else(|| {
                fail(format!(
                    "{}: no `url`, and neither VAULT_ADDR nor BAO_ADDR is set; set url = \"https://vault.example:8200\" or export VAULT_ADDR",
                    cfg.origin()
                ))
            })?,
        };
        let base = reqwest::Url::parse(&url)
            .map_err(|e| fail(format!("bad url `{url}` (from {url_from}): {e}")))?;
        let (token, token_hint) = match &cfg.token {
            Some(t) => (t.clone(), "the built-in token".to_string()),
            None => match resolve_token(cfg).map_err(|e| fail(e.to_string()))? {
                Some(t) => (
                    t,
                    match &cfg.token_env {
                        Some(v) => format!("${v}"),
                        None => "the output of token_command".into(),
                    },
                ),
                None => first_env(TOKEN_VARS)
                    .map(|(t, v)| (t, format!("${v}")))
                    .ok_or_else(|| {
                        fail(format!(
                            "{}: no token: set `token_env` or `token_command`, or export VAULT_TOKEN (or BAO_TOKEN)",
                            cfg.origin()
                        ))
                    })?,
            },
        };
        let namespace = cfg
            .namespace
            .clone()
            .or_else(|| first_env(NAMESPACE_VARS).map(|(n, _)| n))
            .filter(|n| !n.trim().is_empty());
        if cfg.audit_log.is_some() && cfg.audit_device.is_none() {
            return Err(fail(format!(
                "{}: `audit_log` needs `audit_device`, the path of the file audit device that writes it (e.g. audit_device = \"file\"; see `bao audit list`)",
                cfg.origin()
            )));
        }
        let timeout = Duration::from_secs(cfg.timeout_secs.unwrap_or(30));
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(Duration::from_secs(10))
            .pool_max_idle_per_host(IN_FLIGHT)
            .user_agent(concat!("keyaudit/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| fail(format!("cannot build the HTTP client: {e}")))?;
        let retry = Retry {
            max_attempts: cfg.max_attempts.unwrap_or(6).max(1),
            ..Retry::default()
        };
        let page = cfg.page_size.map(|p| p.clamp(1, 10_000) as usize);
        Ok(VaultProvider {
            name: cfg.name.clone(),
            base,
            token: Secret::new(token),
            token_hint,
            namespace,
            audit_log: cfg.audit_log.clone(),
            audit_device: cfg.audit_device.clone(),
            client,
            retry,
            key_page: page.unwrap_or(500),
            event_page: page.unwrap_or(5000),
            state: Mutex::new(State::default()),
        })
    }

    /// The URL of an API path (`auth/token/accessors?list=true`).
    fn url(&self, path: &str) -> reqwest::Url {
        let mut u = self.base.clone();
        let (path, query) = path.split_once('?').unwrap_or((path, ""));
        let prefix = u.path().trim_end_matches('/').to_string();
        let prefix = prefix.strip_suffix("/v1").unwrap_or(&prefix);
        u.set_path(&format!("{prefix}/v1/{path}"));
        u.set_query((!query.is_empty()).then_some(query));
        u
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// One request with retries on transient failures (transport errors, 412, 429,
    /// 5xx). Returns the JSON body of a 2xx answer (`Null` for 204).
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        token: Option<&str>,
    ) -> std::result::Result<Value, Fail> {
        let url = self.url(path);
        let mut last = String::new();
        for attempt in 0..self.retry.max_attempts {
            if attempt > 0 {
                tracing::debug!(provider = %self.name, %path, attempt, "retrying: {last}");
            }
            let mut req = self
                .client
                .request(method.clone(), url.clone())
                .header("X-Vault-Request", "true")
                .header("X-Vault-Token", token.unwrap_or(self.token.expose()));
            if let Some(ns) = &self.namespace {
                req = req.header("X-Vault-Namespace", ns);
            }
            if let Some(b) = body {
                req = req.json(b);
            }
            let (status, retry_after, bytes) = match send_once(req).await {
                Ok(answer) => answer,
                Err(why) => {
                    last = why.describe(path);
                    tokio::time::sleep(self.retry.delay(attempt, None)).await;
                    continue;
                }
            };
            if status.is_success() {
                if bytes.is_empty() {
                    return Ok(Value::Null);
                }
                match serde_json::from_slice::<Value>(&bytes) {
                    Ok(v) => return Ok(v),
                    Err(e) => {
                        last = format!("malformed answer to {path}: {e}");
                        tokio::time::sleep(self.retry.delay(attempt, None)).await;
                        continue;
                    }
                }
            }
            let message = vault_errors(&bytes);
            let transient = status == StatusCode::TOO_MANY_REQUESTS
                || status == StatusCode::PRECONDITION_FAILED
                || (status.is_server_error() && status != StatusCode::NOT_IMPLEMENTED);
            if !transient {
                return Err(Fail::Status(status, message));
            }
            last = format!("HTTP {} on {path}: {message}", status.as_u16());
            tokio::time::sleep(self.retry.delay(attempt, retry_after)).await;
        }
        Err(Fail::Gave(ProviderError::Unavailable {
            provider: self.name.clone(),
            message: last,
            attempts: self.retry.max_attempts,
        }))
    }

    /// A call whose failure is explained in keyaudit's words.
    async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        need: &Need<'_>,
    ) -> Result<Value> {
        match self.call(method, path, body, None).await {
            Ok(v) => Ok(v),
            Err(f) => Err(self.explain(f, need).await),
        }
    }

    async fn explain(&self, f: Fail, need: &Need<'_>) -> ProviderError {
        let (status, message) = match f {
            Fail::Gave(e) => return e,
            Fail::Status(s, m) => (s, m),
        };
        let lower = message.to_ascii_lowercase();
        match status {
            StatusCode::FORBIDDEN | StatusCode::UNAUTHORIZED => {
                // Vault says "permission denied" both for a bad token and for a missing
                // capability; lookup-self (in every token's default policy) tells which.
                let token_ok = self
                    .call(Method::GET, "auth/token/lookup-self", None, None)
                    .await
                    .is_ok();
                if token_ok {
                    ProviderError::Config {
                        provider: self.name.clone(),
                        message: format!(
                            "{}: {}: permission denied: keyaudit's token needs {} on {} (see docs/providers/vault.md)",
                            self.name, need.doing, need.capability, need.path
                        ),
                    }
                } else {
                    ProviderError::Unauthorized {
                        provider: self.name.clone(),
                        status: status.as_u16(),
                        hint: format!(
                            "{} (Vault refused it: invalid, expired or revoked)",
                            self.token_hint
                        ),
                    }
                }
            }
            StatusCode::NOT_FOUND => ProviderError::NotFound {
                provider: self.name.clone(),
                key: need.accessor.to_string(),
            },
            StatusCode::BAD_REQUEST if lower.contains("invalid accessor") => {
                ProviderError::NotFound {
                    provider: self.name.clone(),
                    key: need.accessor.to_string(),
                }
            }
            StatusCode::BAD_REQUEST => ProviderError::Conflict {
                provider: self.name.clone(),
                message: format!("{}: {message}", need.doing),
            },
            s => ProviderError::Protocol {
                provider: self.name.clone(),
                message: format!("{}: HTTP {}: {message}", need.doing, s.as_u16()),
            },
        }
    }

    /// A token made without policies would inherit all of keyaudit's own: refused.
    fn no_policies(&self, what: &str) -> ProviderError {
        ProviderError::Conflict {
            provider: self.name.clone(),
            message: format!(
                "`{what}`: a token without policies would inherit keyaudit's own; name its policies (scopes)"
            ),
        }
    }

    fn protocol(&self, message: String) -> ProviderError {
        ProviderError::Protocol {
            provider: self.name.clone(),
            message,
        }
    }

    /// All accessors (`LIST auth/token/accessors`).
    async fn list_accessors(&self) -> Result<Vec<String>> {
        let need = Need {
            doing: "listing tokens".into(),
            capability: "`list` and `sudo`",
            path: "auth/token/accessors",
            accessor: "",
        };
        let v = match self
            .call(Method::GET, "auth/token/accessors?list=true", None, None)
            .await
        {
            Ok(v) => v,
            // Vault answers 404 to a LIST with nothing in it.
            Err(Fail::Status(StatusCode::NOT_FOUND, _)) => return Ok(Vec::new()),
            Err(f) => return Err(self.explain(f, &need).await),
        };
        let keys = v
            .pointer("/data/keys")
            .and_then(Value::as_array)
            .ok_or_else(|| self.protocol("LIST auth/token/accessors: no data.keys".into()))?;
        Ok(keys
            .iter()
            .filter_map(|k| k.as_str().map(str::to_string))
            .collect())
    }

    async fn lookup(&self, accessor: &str) -> Result<TokenInfo> {
        let need = Need {
            doing: format!("looking up token accessor {accessor}"),
            capability: "`update`",
            path: "auth/token/lookup-accessor",
            accessor,
        };
        let v = self
            .request(
                Method::POST,
                "auth/token/lookup-accessor",
                Some(&json!({ "accessor": accessor })),
                &need,
            )
            .await?;
        if let Some(id) = v.get("request_id").and_then(Value::as_str) {
            if self.audit_log.is_some() {
                self.state()
                    .lookup_ids
                    .insert(id.to_string(), accessor.to_string());
            }
        }
        let data = v.get("data").cloned().unwrap_or(Value::Null);
        serde_json::from_value::<TokenInfo>(data)
            .map_err(|e| self.protocol(format!("lookup-accessor {accessor}: unexpected data: {e}")))
    }

    fn key_of(&self, t: &TokenInfo) -> Key {
        let meta = t.meta.clone().unwrap_or_default();
        let pick = |names: &[&str]| {
            names
                .iter()
                .find_map(|n| meta.get(*n).filter(|v| !v.is_empty()).cloned())
        };
        let owner = pick(&["owner", "partner", "team", "user", "service"])
            .or_else(|| (!t.entity_id.is_empty()).then(|| format!("entity:{}", t.entity_id)))
            .unwrap_or_default();
        let expired = t.expire_time.is_some_and(|e| e <= Utc::now());
        Key {
            provider: self.name.clone(),
            id: t.accessor.clone(),
            name: t.display_name.clone(),
            owner,
            environment: pick(&["env", "environment"]),
            purpose: pick(&["purpose"]),
            prefix: String::new(),
            fingerprint: String::new(),
            scopes: t.policies.clone(),
            status: if expired {
                KeyStatus::Expired
            } else {
                KeyStatus::Active
            },
            created: Utc.timestamp_opt(t.creation_time, 0).single(),
            expires: t.expire_time,
            last_used: None,
            rotated_to: None,
            source: KeySource::Provider,
        }
    }

    /// Looks up many accessors, `IN_FLIGHT` at a time, in order; tokens gone meanwhile
    /// are skipped. The first other error stops the rest (dropping what is in flight).
    async fn lookup_many(&self, accessors: &[String]) -> Result<Vec<Key>> {
        let mut results = stream::iter(accessors.to_vec())
            .map(|a| async move { self.lookup(&a).await })
            .buffered(IN_FLIGHT);
        let mut keys = Vec::with_capacity(accessors.len());
        while let Some(r) = results.next().await {
            match r {
                Ok(t) => keys.push(self.key_of(&t)),
                Err(ProviderError::NotFound { .. }) => {} // revoked or expired since LIST
                Err(e) => return Err(e),
            }
        }
        Ok(keys)
    }

    async fn audit_hash(&self, device: &str, accessor: &str) -> Result<String> {
        let path = format!("sys/audit-hash/{}", encode_segment(device));
        let need = Need {
            doing: format!("hashing token accessor {accessor} with audit device `{device}`"),
            capability: "`update`",
            path: &path,
            accessor,
        };
        let v = self
            .request(
                Method::POST,
                &path,
                Some(&json!({ "input": accessor })),
                &need,
            )
            .await?;
        v.pointer("/data/hash")
            .or_else(|| v.get("hash"))
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| self.protocol(format!("{path}: no hash in the answer")))
    }

    /// Learns the HMACs of the accessors looked up since the listing began from
    /// keyaudit's own lookup lines in the audit log (once).
    async fn harvest(&self) {
        let (path, ids, mark) = {
            let mut st = self.state();
            (
                self.audit_log.clone(),
                std::mem::take(&mut st.lookup_ids),
                st.log_mark,
            )
        };
        let Some(path) = path.filter(|_| !ids.is_empty()) else {
            return;
        };
        let found = tokio::task::spawn_blocking(move || audit::harvest_lookups(&path, mark, &ids))
            .await
            .ok()
            .and_then(|r| r.ok())
            .unwrap_or_default();
        let mut st = self.state();
        for (h, a) in found {
            st.hashed.insert(a.clone());
            st.by_hmac.insert(h, a);
        }
    }

    /// Hashes every known accessor not hashed yet (once per accessor per process).
    async fn hash_known(&self, device: &str) -> Result<()> {
        let todo: Vec<String> = {
            let st = self.state();
            st.known
                .iter()
                .filter(|a| !st.hashed.contains(*a))
                .cloned()
                .collect()
        };
        if todo.is_empty() {
            return Ok(());
        }
        let mut results = stream::iter(todo)
            .map(|a| async move {
                let h = self.audit_hash(device, &a).await;
                (a, h)
            })
            .buffer_unordered(IN_FLIGHT);
        while let Some((a, h)) = results.next().await {
            let h = h?;
            let mut st = self.state();
            st.hashed.insert(a.clone());
            st.by_hmac.insert(h, a);
        }
        Ok(())
    }

    /// keyaudit's own accessor (`lookup-self`), once.
    async fn own_accessor(&self) -> Option<String> {
        if let Some(own) = self.state().own.clone() {
            return own;
        }
        let own = self
            .call(Method::GET, "auth/token/lookup-self", None, None)
            .await
            .ok()
            .and_then(|v| {
                v.pointer("/data/accessor")
                    .and_then(Value::as_str)
                    .map(str::to_string)
            });
        let mut st = self.state();
        st.own = Some(own.clone());
        if let Some(a) = &own {
            st.known.insert(a.clone());
        }
        own
    }

    /// Resolves a logged accessor (HMAC'd or plain) to a known accessor.
    fn resolve(&self, st: &State, logged: &str) -> Option<String> {
        if logged.starts_with("hmac-sha256:") {
            st.by_hmac.get(logged).cloned()
        } else {
            Some(logged.to_string())
        }
    }

    /// keyaudit's own read-only sync calls (listing, lookups, audit hashes).
    fn is_own_bookkeeping(&self, r: &audit::AuditRecord) -> bool {
        let Some(device) = &self.audit_device else {
            return false;
        };
        let path = r.path.trim_end_matches('/');
        r.error.is_none()
            && (path == "auth/token/accessors"
                || path == "auth/token/lookup-accessor"
                || path == "auth/token/lookup-self"
                || path == format!("sys/audit-hash/{device}"))
    }

    /// Turns audit records into events, tying each to its token.
    async fn events_of(&self, records: Vec<audit::AuditRecord>) -> Result<Vec<Event>> {
        let device = self.audit_device.clone().unwrap_or_default();
        let untied = {
            let st = self.state();
            records.iter().any(|r| {
                r.accessor
                    .iter()
                    .chain(r.issued_accessor.iter())
                    .any(|a| self.resolve(&st, a).is_none())
            })
        };
        if untied {
            let listed = self.state().listing.is_some();
            if !listed {
                let all = self.list_accessors().await?;
                let mut st = self.state();
                st.known.extend(all.iter().cloned());
                st.listing = Some(all);
            }
            self.own_accessor().await;
            self.harvest().await;
            let still = {
                let st = self.state();
                records.iter().any(|r| {
                    r.accessor
                        .iter()
                        .chain(r.issued_accessor.iter())
                        .any(|a| self.resolve(&st, a).is_none())
                })
            };
            if still {
                self.hash_known(&device).await?;
            }
        }
        let own = self.own_accessor().await;
        let mut st = self.state();
        let mut out = Vec::with_capacity(records.len());
        for r in records {
            let requester = r.accessor.as_deref().map(|a| (a, self.resolve(&st, a)));
            let key_id = match (&requester, &r.issued_accessor) {
                (Some((_, Some(a))), _) => a.clone(),
                (Some((logged, None)), _) => unknown_key_id(logged),
                (None, Some(issued)) => self
                    .resolve(&st, issued)
                    .unwrap_or_else(|| unknown_key_id(issued)),
                (None, None) => match r.token_ref.as_ref().and_then(|t| st.by_token.get(t)) {
                    Some(a) => a.clone(),
                    None => match &r.token_ref {
                        Some(t) => format!("invalid-token:{}", &t[..t.len().min(12)]),
                        None => "anonymous".to_string(),
                    },
                },
            };
            if let (Some((_, Some(a))), Some(t)) = (&requester, &r.token_ref) {
                st.by_token.insert(t.clone(), a.clone());
            }
            let mine = requester
                .as_ref()
                .and_then(|(_, a)| a.as_deref())
                .is_some_and(|a| Some(a) == own.as_deref());
            if mine && self.is_own_bookkeeping(&r) {
                continue;
            }
            let outcome = outcome_of(r.error.as_deref());
            out.push(Event {
                provider: self.name.clone(),
                id: r.request_id.clone(),
                time: r.time,
                key_id,
                principal: r.display_name,
                action: format!("{} {}", r.operation, r.path),
                scope: r.granting_policy,
                source_ip: r.remote_address,
                user_agent: r.user_agent,
                outcome,
                status_code: (outcome == Outcome::Denied).then_some(403),
                request_id: Some(r.request_id),
                records: None,
                raw: None,
            });
        }
        Ok(out)
    }

    async fn revoke_accessor(&self, accessor: &str) -> Result<()> {
        let need = Need {
            doing: format!("revoking token accessor {accessor}"),
            capability: "`update`",
            path: "auth/token/revoke-accessor",
            accessor,
        };
        self.request(
            Method::POST,
            "auth/token/revoke-accessor",
            Some(&json!({ "accessor": accessor })),
            &need,
        )
        .await
        .map(|_| ())
    }

    /// Creates a token at `path` (`auth/token/create`, `.../create-orphan`,
    /// `.../create/<role>`); returns its value and accessor.
    async fn create_token(&self, path: &str, body: &Value, doing: String) -> Result<Issued> {
        let need = Need {
            doing,
            capability: "`update`",
            path,
            accessor: "",
        };
        let v = match self.request(Method::POST, path, Some(body), &need).await {
            Err(ProviderError::Conflict { provider, message })
                if message.contains("subset of parent") || message.contains("root tokens") =>
            {
                return Err(ProviderError::Config {
                    message: format!(
                        "{provider}: {message}: keyaudit's token may only grant policies it holds itself; give it `sudo` on {path} (see docs/providers/vault.md) or issue the token through a token role"
                    ),
                    provider,
                })
            }
            other => other?,
        };
        let secret = v
            .pointer("/auth/client_token")
            .and_then(Value::as_str)
            .map(|s| Secret::new(s.to_string()));
        let accessor = v
            .pointer("/auth/accessor")
            .and_then(Value::as_str)
            .map(str::to_string);
        drop(v);
        let (Some(secret), Some(accessor)) = (secret, accessor) else {
            return Err(self.protocol(format!("{path}: the answer has no auth.client_token")));
        };
        self.state().known.insert(accessor.clone());
        let key = match self.lookup(&accessor).await {
            Ok(t) => self.key_of(&t),
            Err(e) => {
                tracing::warn!(provider = %self.name, %accessor, "created, but lookup failed: {e}");
                let mut k = Key::seen_in_logs(&self.name, &accessor);
                k.source = KeySource::Provider;
                k
            }
        };
        Ok(Issued {
            key,
            secret,
            old: None,
        })
    }
}

/// The request body that recreates a token like `t`.
fn recreate_body(t: &TokenInfo) -> Value {
    let display = t
        .display_name
        .strip_prefix("token-")
        .unwrap_or(&t.display_name);
    let mut b = json!({
        "policies": t.policies,
        "no_default_policy": !t.policies.iter().any(|p| p == "default"),
        "meta": t.meta.clone().unwrap_or_default(),
        "display_name": display,
        "renewable": t.renewable,
    });
    if t.creation_ttl > 0 {
        b["ttl"] = json!(format!("{}s", t.creation_ttl));
    }
    if t.explicit_max_ttl > 0 {
        b["explicit_max_ttl"] = json!(format!("{}s", t.explicit_max_ttl));
    }
    if let Some(p) = t.period.filter(|p| *p > 0) {
        b["period"] = json!(format!("{p}s"));
    }
    if t.num_uses > 0 {
        b["num_uses"] = json!(t.num_uses);
    }
    if let Some(k) = t.kind.as_deref().filter(|k| *k == "batch") {
        b["type"] = json!(k);
    }
    b
}

#[async_trait]
impl Provider for VaultProvider {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &str {
        "vault"
    }

    fn location(&self) -> Option<String> {
        Some(match &self.namespace {
            Some(ns) => format!("{} (namespace {ns})", self.base),
            None => self.base.to_string(),
        })
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            list_events: self.audit_log.is_some(),
            disable: false,
            revoke: true,
            create: true,
            rotate_overlap: true,
            rotate_atomic: false,
            verify_secret: true,
        }
    }

    async fn list_keys(&self, page: Option<&str>) -> Result<KeyPage> {
        let offset: usize = page.and_then(|p| p.parse().ok()).unwrap_or(0);
        let cached = if offset > 0 {
            self.state().listing.clone()
        } else {
            None
        };
        let all = match cached {
            Some(a) => a,
            None => {
                if let Some(log) = &self.audit_log {
                    let mark = audit::mark(log);
                    self.state().log_mark = mark;
                }
                let a = self.list_accessors().await?;
                let mut st = self.state();
                st.known.extend(a.iter().cloned());
                st.listing = Some(a.clone());
                a
            }
        };
        let start = offset.min(all.len());
        let end = (start + self.key_page).min(all.len());
        let keys = self.lookup_many(&all[start..end]).await?;
        Ok(KeyPage {
            keys,
            next: (end < all.len()).then(|| end.to_string()),
        })
    }

    async fn list_events(&self, cursor: Option<&str>) -> Result<EventPage> {
        let Some(path) = self.audit_log.clone() else {
            return Err(self.unsupported("listing events (no audit_log configured)", ""));
        };
        let mut cursor = cursor.map(str::to_string);
        // A page may hold only keyaudit's own sync calls, which are not imported; read on
        // rather than end the sync on an empty page while more is ready.
        loop {
            let max = self.event_page;
            let (p, c) = (path.clone(), cursor.clone());
            let batch = tokio::task::spawn_blocking(move || audit::read(&p, c.as_deref(), max))
                .await
                .map_err(|e| self.protocol(format!("reading the audit log: {e}")))?
                .map_err(|e| ProviderError::Config {
                    provider: self.name.clone(),
                    message: if e.kind() == std::io::ErrorKind::NotFound {
                        format!(
                            "{}: the audit log {} does not exist; check `audit_log` and that the file audit device is enabled",
                            self.name,
                            path.display()
                        )
                    } else {
                        format!(
                            "{}: cannot read the audit log {}: {e}; keyaudit needs read access to it",
                            self.name,
                            path.display()
                        )
                    },
                })?;
            if batch.malformed > 0 {
                tracing::warn!(provider = %self.name, lines = batch.malformed, "skipped audit log lines that are not audit JSON");
            }
            let events = self.events_of(batch.records).await?;
            if !events.is_empty() || !batch.has_more {
                return Ok(EventPage {
                    events,
                    next_cursor: batch.next_cursor,
                    has_more: batch.has_more,
                });
            }
            cursor = Some(batch.next_cursor);
        }
    }

    async fn get_key(&self, id: &str) -> Result<Key> {
        let t = self.lookup(id).await?;
        Ok(self.key_of(&t))
    }

    async fn revoke(&self, id: &str) -> Result<Key> {
        // Look up first: the cache keeps the name and owner of what was revoked.
        let t = self.lookup(id).await?;
        self.revoke_accessor(id).await?;
        let mut k = self.key_of(&t);
        k.status = KeyStatus::Revoked;
        Ok(k)
    }

    async fn create(&self, spec: &NewKey) -> Result<Issued> {
        if spec.scopes.is_empty() {
            return Err(self.no_policies(&spec.name));
        }
        let mut meta = BTreeMap::new();
        if !spec.owner.is_empty() {
            meta.insert("owner", spec.owner.clone());
        }
        if let Some(e) = &spec.environment {
            meta.insert("env", e.clone());
        }
        if let Some(p) = &spec.purpose {
            meta.insert("purpose", p.clone());
        }
        let body = json!({
            "policies": spec.scopes,
            "display_name": spec.name,
            "meta": meta,
        });
        self.create_token(
            "auth/token/create",
            &body,
            format!("creating token `{}`", spec.name),
        )
        .await
    }

    /// Creates a token with the same policies, metadata, display name and TTL (through
    /// the same token role when the old one came from a role, as an orphan when it was
    /// one); with `grace` zero the old accessor is revoked at once. Vault cannot
    /// schedule a revocation: with a grace period the old token stays valid and the
    /// caller revokes it when the grace has passed (`old.rotated_to` names the new one).
    async fn rotate(&self, id: &str, grace: Duration) -> Result<Issued> {
        let old = self.lookup(id).await?;
        if old.policies.is_empty() {
            return Err(self.no_policies(id));
        }
        let path = match old.role.as_deref().filter(|r| !r.is_empty()) {
            Some(role) => format!("auth/token/create/{}", encode_segment(role)),
            None if old.orphan => "auth/token/create-orphan".to_string(),
            None => "auth/token/create".to_string(),
        };
        let mut issued = self
            .create_token(
                &path,
                &recreate_body(&old),
                format!("rotating token accessor {id}"),
            )
            .await?;
        let mut old_key = self.key_of(&old);
        old_key.rotated_to = Some(issued.key.id.clone());
        if grace.is_zero() {
            match self.revoke_accessor(id).await {
                Ok(()) => old_key.status = KeyStatus::Revoked,
                // The new secret must still reach its sink; the old token stays active
                // (`old.status`) and its revocation has to be retried.
                Err(e) => tracing::error!(
                    provider = %self.name, accessor = id,
                    "rotated, but revoking the old accessor failed: {e}"
                ),
            }
        }
        issued.old = Some(old_key);
        Ok(issued)
    }

    async fn verify_secret(&self, secret: &Secret) -> Result<String> {
        match self
            .call(
                Method::GET,
                "auth/token/lookup-self",
                None,
                Some(secret.expose()),
            )
            .await
        {
            Ok(v) => v
                .pointer("/data/accessor")
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or_else(|| self.protocol("lookup-self: no data.accessor".into())),
            Err(Fail::Status(s, _))
                if s == StatusCode::FORBIDDEN || s == StatusCode::UNAUTHORIZED =>
            {
                Err(ProviderError::Unauthorized {
                    provider: self.name.clone(),
                    status: s.as_u16(),
                    hint:
                        "the token being verified (Vault refused it: invalid, expired or revoked)"
                            .into(),
                })
            }
            Err(f) => {
                let need = Need {
                    doing: "verifying a token".into(),
                    capability: "`read`",
                    path: "auth/token/lookup-self",
                    accessor: "",
                };
                Err(self.explain(f, &need).await)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_keep_the_base_path_and_the_query() {
        let cfg = ProviderConfig {
            name: "v".into(),
            kind: "vault".into(),
            url: Some("https://vault.example:8200/v1/".into()),
            token: Some("t".into()),
            ..ProviderConfig::default()
        };
        let p = VaultProvider::from_config(&cfg).unwrap();
        assert_eq!(
            p.url("auth/token/accessors?list=true").as_str(),
            "https://vault.example:8200/v1/auth/token/accessors?list=true"
        );
    }

    #[test]
    fn vault_error_bodies_become_one_line() {
        let b = br#"{"errors":["1 error occurred:\n\t* permission denied\n\n"]}"#;
        assert_eq!(vault_errors(b), "permission denied");
        assert_eq!(
            vault_errors(br#"{"errors":["invalid accessor"]}"#),
            "invalid accessor"
        );
    }

    #[test]
    fn outcomes_follow_the_error_text() {
        assert_eq!(outcome_of(None), Outcome::Success);
        assert_eq!(
            outcome_of(Some("1 error occurred:\n\t* permission denied\n\n")),
            Outcome::Denied
        );
        assert_eq!(outcome_of(Some("invalid accessor")), Outcome::Error);
    }

    #[test]
    fn rotation_recreates_policies_meta_name_and_ttl() {
        let t = TokenInfo {
            display_name: "token-payroll-sync".into(),
            policies: vec!["default".into(), "reader".into()],
            meta: Some(BTreeMap::from([("owner".into(), "acme".into())])),
            creation_ttl: 3600,
            renewable: true,
            ..TokenInfo::default()
        };
        let b = recreate_body(&t);
        assert_eq!(b["display_name"], "payroll-sync");
        assert_eq!(b["ttl"], "3600s");
        assert_eq!(b["no_default_policy"], false);
        assert_eq!(b["meta"]["owner"], "acme");
        assert!(b.get("explicit_max_ttl").is_none());
    }

    #[test]
    fn unknown_tokens_get_a_short_stable_id() {
        assert_eq!(
            unknown_key_id("hmac-sha256:662ad38cd27b6671b7a33393"),
            "unknown:662ad38cd27b"
        );
    }
}
