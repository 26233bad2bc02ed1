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
mod client;
mod events;
mod token;

use client::{Fail, Need};
use token::recreate_body;

pub use events::unknown_key_id;

use super::http::encode_segment;
use super::retry::Retry;
use super::{Capabilities, EventPage, Issued, KeyPage, NewKey, Provider, ProviderError, Result};
use crate::config::{resolve_token, ProviderConfig};
use crate::model::{Key, KeyStatus};
use crate::secret::Secret;
use async_trait::async_trait;
use reqwest::{Method, StatusCode};
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
/// CA bundles to trust, read when the config names no `ca_file` (then `SSL_CERT_FILE`).
pub const CACERT_VARS: &[&str] = &["VAULT_CACERT", "BAO_CACERT"];

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

fn first_env(vars: &[&'static str]) -> Option<(String, &'static str)> {
    vars.iter().find_map(|v| {
        std::env::var(v)
            .ok()
            .filter(|s| !s.trim().is_empty())
            .map(|s| (s.trim().to_string(), *v))
    })
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
                    .map(|(t, v)| (Secret::new(t), format!("${v}")))
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
        crate::config::check_transport(&base, cfg.allow_insecure_http).map_err(|why| {
            fail(format!(
                "{}: url `{url}` (from {url_from}): {why}",
                cfg.origin()
            ))
        })?;
        let roots =
            crate::config::extra_roots(cfg, CACERT_VARS).map_err(|e| fail(e.to_string()))?;
        let timeout = Duration::from_secs(cfg.timeout_secs.unwrap_or(30));
        let client = roots
            .into_iter()
            .fold(reqwest::Client::builder(), |b, c| b.add_root_certificate(c))
            .timeout(timeout)
            .connect_timeout(Duration::from_secs(10))
            .pool_max_idle_per_host(IN_FLIGHT)
            .user_agent(concat!("keyaudit/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| fail(format!("cannot build the HTTP client: {e}")))?;
        let retry = Retry::with_attempts(cfg.max_attempts);
        let page = cfg.page_size.map(|p| p.clamp(1, 10_000) as usize);
        Ok(VaultProvider {
            name: cfg.name.clone(),
            base,
            token,
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

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
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
            // Token creation / CreateAccessKey and CreateApiKey have no idempotency key.
            retry_changes: false,
            rotate_in_place: false,
            rotate_guided: false,
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
            held: Vec::new(),
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
