//! The `cloudflare` provider: Cloudflare API tokens (API v4).
//!
//! Keys are the API tokens of the user keyaudit's token belongs to, and the
//! account-owned tokens of the configured `accounts`; a key's id is `token:<id>`. Status
//! (`active`, `disabled`, `expired`), expiry, last use and conditions (client IP ranges,
//! shown as `ip:` / `not-ip:` scopes beside the permission groups) come from the
//! listing. Disable and enable set the token's `status` (a `PUT` that keeps everything
//! else); revoke deletes the token; rotation is Cloudflare's roll (`PUT .../value`), which
//! gives the same token a new value and ends the old value at once: no overlap. Verify is
//! `GET .../tokens/verify` with the new value. Events are the configured accounts' audit
//! logs.
//!
//! See docs/providers/cloudflare.md for the least-privilege token setup.

mod client;
mod wire;

use super::{saas, Capabilities, EventPage, Issued, KeyPage, Provider, ProviderError, Result};
use crate::config::ProviderConfig;
use crate::model::{Key, KeyStatus};
use crate::secret::Secret;
use async_trait::async_trait;
use reqwest::Method;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;
use wire::{Place, WireToken};

pub use wire::event_from_audit;

/// Environment variable read when the config names neither `token_env` nor `token_command`.
pub const TOKEN_VAR: &str = "CLOUDFLARE_API_TOKEN";

/// Cloudflare's API.
pub struct CloudflareProvider {
    name: String,
    base: reqwest::Url,
    token: Secret,
    token_hint: String,
    client: reqwest::Client,
    retry: super::retry::Retry,
    per_page: u32,
    accounts: Vec<String>,
    places: Mutex<HashMap<String, Place>>,
    /// What the last sync could not read, for the sync report.
    notes: Mutex<Vec<String>>,
}

impl CloudflareProvider {
    /// Builds the provider from its configuration entry (resolving its token).
    pub fn from_config(cfg: &ProviderConfig) -> Result<CloudflareProvider> {
        let base = saas::base_url(cfg, "https://api.cloudflare.com")?;
        let (token, token_hint) = saas::required_token(cfg, TOKEN_VAR, "token")?;
        let client = saas::http_client(cfg)?;
        Ok(CloudflareProvider {
            name: cfg.name.clone(),
            base,
            token,
            token_hint,
            client,
            retry: super::retry::Retry::with_attempts(cfg.max_attempts),
            per_page: cfg.page_size.unwrap_or(50).clamp(1, 50),
            accounts: cfg.accounts.clone(),
            places: Mutex::new(HashMap::new()),
            notes: Mutex::new(Vec::new()),
        })
    }

    fn sources(&self) -> Vec<Place> {
        std::iter::once(Place::User)
            .chain(self.accounts.iter().map(|a| Place::Account(a.clone())))
            .collect()
    }

    fn remember(&self, id: &str, place: &Place) {
        self.places
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(id.to_string())
            .or_insert_with(|| place.clone());
    }

    fn bad_id(&self, id: &str) -> ProviderError {
        ProviderError::NotFound {
            provider: self.name.clone(),
            key: id.to_string(),
        }
    }

    /// Where token `id` lives and its current record: from the listing's memory, else by
    /// asking each place in turn.
    async fn locate(&self, id: &str) -> Result<(String, Place, WireToken)> {
        let tid = wire::token_of(id)
            .ok_or_else(|| self.bad_id(id))?
            .to_string();
        let known = self
            .places
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&tid)
            .cloned();
        let candidates = match known {
            Some(p) => vec![p],
            None => self.sources(),
        };
        for place in candidates {
            match self
                .call::<WireToken>(Method::GET, &place.token_path(&tid), &[], None, id, None)
                .await
            {
                Ok(e) => {
                    let t = e.result.ok_or_else(|| self.bad_id(id))?;
                    self.remember(&tid, &place);
                    return Ok((tid, place, t));
                }
                Err(ProviderError::NotFound { .. }) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(self.bad_id(id))
    }

    async fn set_status(&self, id: &str, status: &str) -> Result<Key> {
        let (tid, place, t) = self.locate(id).await?;
        if t.status == status {
            return Ok(t.to_key(&self.name, &place));
        }
        let e = self
            .call::<WireToken>(
                Method::PUT,
                &place.token_path(&tid),
                &[],
                Some(t.update_body(status)),
                id,
                None,
            )
            .await?;
        Ok(e.result.unwrap_or(t).to_key(&self.name, &place))
    }
}

#[async_trait]
impl Provider for CloudflareProvider {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &str {
        "cloudflare"
    }

    fn location(&self) -> Option<String> {
        Some(self.base.to_string())
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            list_events: !self.accounts.is_empty(),
            disable: true,
            revoke: true,
            create: false,
            // Rolling a token ends its old value in the same call: no overlap.
            rotate_overlap: false,
            rotate_atomic: true,
            verify_secret: true,
            retry_changes: false,
            // A roll gives the same token a new value: it keeps its id.
            rotate_in_place: true,
            rotate_guided: false,
        }
    }

    async fn list_keys(&self, page: Option<&str>) -> Result<KeyPage> {
        let (source, pg) = saas::parse_pos(page);
        let sources = self.sources();
        let Some(place) = sources.get(source) else {
            return Ok(KeyPage::default());
        };
        // Expired tokens are listed too: a responder wants to see them.
        let q = [
            ("page", pg.to_string()),
            ("per_page", self.per_page.to_string()),
            ("include_expired", "true".to_string()),
        ];
        if source == 0 && pg == 1 {
            self.notes.lock().unwrap_or_else(|p| p.into_inner()).clear();
        }
        let next_source = (source + 1 < sources.len()).then(|| format!("{}:1", source + 1));
        // A place the token may not list keeps its cached tokens; the others are listed.
        let refused = |why: String| {
            self.notes
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(format!(
                    "{} not listed, the tokens synced before are kept as they were: {why}",
                    place.tokens()
                ));
            Ok(KeyPage {
                keys: Vec::new(),
                next: next_source.clone(),
                held: vec![place.held()],
            })
        };
        let e = match self
            .call::<Vec<WireToken>>(Method::GET, &place.base(), &q, None, "", None)
            .await
        {
            Ok(e) => e,
            Err(ProviderError::Denied { message, .. }) => return refused(message),
            Err(ProviderError::NotFound { .. }) if *place != Place::User => {
                return refused(format!(
                    "HTTP 404: not found, or not visible to the token in {}; listing them needs the permission `{}` (docs/providers/cloudflare.md)",
                    self.token_hint,
                    client::needed_permission(&Method::GET, &place.base())
                ))
            }
            Err(e) => return Err(e),
        };
        let tokens = e.result.unwrap_or_default();
        let more = e
            .result_info
            .unwrap_or_default()
            .more_after(pg, self.per_page, tokens.len());
        let keys = tokens
            .iter()
            .map(|t| {
                self.remember(&t.id, place);
                t.to_key(&self.name, place)
            })
            .collect();
        let next = if more {
            Some(format!("{source}:{}", pg + 1))
        } else {
            next_source
        };
        Ok(KeyPage {
            keys,
            next,
            held: Vec::new(),
        })
    }

    async fn list_events(&self, cursor: Option<&str>) -> Result<EventPage> {
        if self.accounts.is_empty() {
            return Err(self.unsupported("listing events (no `accounts` configured)", ""));
        }
        // Cursor: `account index|page|since per account (JSON)`.
        let mut c: EventsCursor = cursor
            .and_then(|c| serde_json::from_str(c).ok())
            .unwrap_or_default();
        if c.s >= self.accounts.len() {
            c.s = 0;
        }
        c.p = c.p.max(1);
        let account = self.accounts[c.s].clone();
        let path = format!(
            "/accounts/{}/audit_logs",
            super::http::encode_segment(&account)
        );
        let mut q = vec![
            ("page", c.p.to_string()),
            ("per_page", self.per_page.to_string()),
            ("direction", "asc".to_string()),
        ];
        if let Some(since) = c.since.get(&account) {
            q.push(("since", since.clone()));
        }
        let e = self
            .call::<Vec<Value>>(Method::GET, &path, &q, None, "", None)
            .await?;
        let rows = e.result.unwrap_or_default();
        let mut events = Vec::with_capacity(rows.len());
        for v in &rows {
            let ev = event_from_audit(&self.name, v).map_err(|why| ProviderError::Protocol {
                provider: self.name.clone(),
                message: format!("audit log entry on {path}: {why}"),
            })?;
            c.top = Some(match c.top.take() {
                Some(t) if t >= ev.time => t,
                _ => ev.time,
            });
            events.push(ev);
        }
        let more = e
            .result_info
            .unwrap_or_default()
            .more_after(c.p, self.per_page, rows.len());
        let has_more = if more {
            c.p += 1;
            true
        } else {
            if let Some(top) = c.top.take() {
                c.since.insert(account, crate::model::rfc3339(top));
            }
            c.p = 1;
            c.s += 1;
            let more = c.s < self.accounts.len();
            if !more {
                c.s = 0;
            }
            more
        };
        Ok(EventPage {
            events,
            next_cursor: serde_json::to_string(&c).unwrap_or_default(),
            has_more,
        })
    }

    async fn get_key(&self, id: &str) -> Result<Key> {
        match self.locate(id).await {
            Ok((_, place, t)) => Ok(t.to_key(&self.name, &place)),
            Err(e) => Err(e),
        }
    }

    async fn disable(&self, id: &str) -> Result<Key> {
        self.set_status(id, "disabled").await
    }

    async fn enable(&self, id: &str) -> Result<Key> {
        self.set_status(id, "active").await
    }

    async fn revoke(&self, id: &str) -> Result<Key> {
        let (tid, place, t) = self.locate(id).await?;
        self.call::<Value>(Method::DELETE, &place.token_path(&tid), &[], None, id, None)
            .await?;
        let mut key = t.to_key(&self.name, &place);
        key.status = KeyStatus::Revoked;
        Ok(key)
    }

    async fn rotate(&self, id: &str, grace: Duration) -> Result<Issued> {
        let _ = grace;
        let (tid, place, t) = self.locate(id).await?;
        let path = format!("{}/value", place.token_path(&tid));
        let e = self
            .call::<String>(
                Method::PUT,
                &path,
                &[],
                Some(serde_json::json!({})),
                id,
                None,
            )
            .await?;
        let value = e.result.ok_or_else(|| ProviderError::Protocol {
            provider: self.name.clone(),
            message: format!("PUT {path}: no new value in the answer"),
        })?;
        // The same token, with a new value: the key keeps its id.
        Ok(Issued {
            key: t.to_key(&self.name, &place),
            secret: Secret::new(value),
            old: None,
        })
    }

    fn notes(&self) -> Vec<String> {
        self.notes.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    async fn verify_secret(&self, secret: &Secret) -> Result<String> {
        let mut last = None;
        for place in self.sources() {
            let path = format!("{}/verify", place.base());
            match self
                .call::<Value>(Method::GET, &path, &[], None, "", Some(secret.expose()))
                .await
            {
                Ok(e) => {
                    let r = e.result.unwrap_or_default();
                    let id = r.get("id").and_then(Value::as_str).unwrap_or_default();
                    let status = r.get("status").and_then(Value::as_str).unwrap_or("");
                    if status != "active" {
                        return Err(ProviderError::Conflict {
                            provider: self.name.clone(),
                            message: format!("the token verifies as {status}"),
                        });
                    }
                    return Ok(wire::key_id(id));
                }
                // A user token does not verify at an account's endpoint and the other
                // way round: try the next place.
                Err(
                    e @ (ProviderError::Unauthorized { .. }
                    | ProviderError::NotFound { .. }
                    | ProviderError::Denied { .. }
                    | ProviderError::Conflict { .. }),
                ) => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| self.unsupported("verify", "")))
    }
}

#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct EventsCursor {
    s: usize,
    p: u32,
    #[serde(default)]
    since: std::collections::BTreeMap<String, String>,
    top: Option<chrono::DateTime<chrono::Utc>>,
}
