//! The generic `http` provider: speaks the provider API of docs/provider-api.md with
//! reqwest. Transient failures (429, 5xx, dropped connections, truncated bodies, timeouts)
//! are retried with exponential backoff that honours `Retry-After`. Every POST carries an
//! `Idempotency-Key` (one per logical change, the same on every retry), so a change
//! whose answer was lost is safe to send again: the provider answers it once.

use super::retry::{Gave, Retry, Verdict};
use super::{
    Capabilities, EventPage, Issue, Issued, KeyChange, KeyPage, NewKey, OpKey, Provider,
    ProviderError, Result,
};
use crate::config::{resolve_token, ProviderConfig};
use crate::model::{Event, Key, KeySource, KeyStatus, Outcome};
use crate::secret::Secret;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use std::time::Duration;

/// A provider speaking the keyaudit provider API over HTTP.
pub struct HttpProvider {
    name: String,
    kind: String,
    base: reqwest::Url,
    token: Option<Secret>,
    token_hint: String,
    client: reqwest::Client,
    retry: Retry,
    key_page: u32,
    event_page: u32,
}

#[derive(Deserialize)]
struct WireKey {
    id: String,
    name: String,
    #[serde(default)]
    owner: String,
    environment: Option<String>,
    purpose: Option<String>,
    #[serde(default)]
    prefix: String,
    #[serde(default)]
    fingerprint: String,
    #[serde(default)]
    scopes: Vec<String>,
    status: KeyStatus,
    created: Option<DateTime<Utc>>,
    expires: Option<DateTime<Utc>>,
    last_used: Option<DateTime<Utc>>,
    rotated_to: Option<String>,
}

#[derive(Deserialize)]
struct WireEvent {
    id: String,
    time: DateTime<Utc>,
    key_id: String,
    principal: Option<String>,
    action: String,
    scope: Option<String>,
    source_ip: Option<String>,
    user_agent: Option<String>,
    outcome: Outcome,
    status_code: Option<i64>,
    request_id: Option<String>,
    records: Option<i64>,
}

#[derive(Deserialize)]
struct KeysAnswer {
    keys: Vec<WireKey>,
    next_page_token: Option<String>,
}

#[derive(Deserialize)]
struct EventsAnswer {
    events: Vec<WireEvent>,
    next_cursor: String,
    #[serde(default)]
    has_more: bool,
}

#[derive(Deserialize)]
struct IssuedAnswer {
    key: WireKey,
    secret: String,
    old: Option<WireKey>,
}

#[derive(Deserialize)]
struct PingAnswer {
    key_id: String,
}

#[derive(Deserialize)]
struct ErrorAnswer {
    error: ErrorBody,
}

#[derive(Deserialize)]
struct ErrorBody {
    message: String,
}

impl HttpProvider {
    /// Builds the provider from its configuration entry (resolving its token).
    pub fn from_config(cfg: &ProviderConfig) -> Result<HttpProvider> {
        let fail = |message: String| ProviderError::Config {
            provider: cfg.name.clone(),
            message: format!("{}: provider `{}`: {message}", cfg.origin(), cfg.name),
        };
        let url = cfg
            .url
            .as_deref()
            .ok_or_else(|| fail("missing `url`".to_string()))?;
        let base = reqwest::Url::parse(url).map_err(|e| fail(format!("bad url `{url}`: {e}")))?;
        let token = match &cfg.token {
            Some(t) => Some(t.clone()),
            None => resolve_token(cfg).map_err(|e| ProviderError::Config {
                provider: cfg.name.clone(),
                message: e.to_string(),
            })?,
        };
        let token_hint = match (&cfg.token_env, &cfg.token_command) {
            (Some(v), _) => format!("${v}"),
            (None, Some(_)) => "the output of token_command".into(),
            _ => "the provider's token_env".into(),
        };
        crate::config::check_transport(&base, cfg.allow_insecure_http)
            .map_err(|why| fail(format!("`url` = \"{url}\": {why}")))?;
        let roots = crate::config::extra_roots(cfg, &[]).map_err(|e| ProviderError::Config {
            provider: cfg.name.clone(),
            message: e.to_string(),
        })?;
        let timeout = Duration::from_secs(cfg.timeout_secs.unwrap_or(30));
        let client = roots
            .into_iter()
            .fold(reqwest::Client::builder(), |b, c| b.add_root_certificate(c))
            .timeout(timeout)
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("keyaudit/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| fail(format!("cannot build the HTTP client: {e}")))?;
        let retry = Retry::with_attempts(cfg.max_attempts);
        let page = cfg.page_size.unwrap_or(5000).clamp(1, 10_000);
        Ok(HttpProvider {
            name: cfg.name.clone(),
            kind: cfg.kind.clone(),
            base,
            token,
            token_hint,
            client,
            retry,
            key_page: page.min(5000),
            event_page: page,
        })
    }

    fn url(&self, path: &str) -> reqwest::Url {
        let mut u = self.base.clone();
        let joined = format!("{}{}", u.path().trim_end_matches('/'), path);
        u.set_path(&joined);
        u
    }

    fn unavailable(&self, message: String, attempts: u32) -> ProviderError {
        ProviderError::Unavailable {
            provider: self.name.clone(),
            message,
            attempts,
        }
    }

    /// Sends a request with retries; returns the parsed body of a 2xx answer. `op` is the
    /// idempotency key of a change (every POST), sent with each attempt.
    #[allow(clippy::too_many_arguments)]
    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<serde_json::Value>,
        bearer: Option<&str>,
        key_id: &str,
        op: Option<&OpKey>,
    ) -> Result<T> {
        let url = self.url(path);
        let what = format!("{method} {path}");
        let request = || {
            let mut req = self
                .client
                .request(method.clone(), url.clone())
                .query(query);
            if let Some(t) = bearer.or(self.token.as_ref().map(Secret::expose)) {
                req = req.bearer_auth(t);
            }
            if let Some(op) = op {
                req = req.header("Idempotency-Key", op.as_str());
            }
            if let Some(b) = &body {
                req = req.json(b);
            }
            req
        };
        let judge = |status: StatusCode, retry_after, bytes: bytes::Bytes| {
            if status.is_success() {
                return match serde_json::from_slice::<T>(&bytes) {
                    Ok(v) => Verdict::Done(v),
                    // A truncated or garbled body: the same request may succeed.
                    Err(e) => Verdict::Again {
                        why: format!("malformed answer to {method} {path}: {e}"),
                        retry_after: None,
                    },
                };
            }
            let message = serde_json::from_slice::<ErrorAnswer>(&bytes)
                .map(|e| e.error.message)
                .unwrap_or_else(|_| String::from_utf8_lossy(&bytes).chars().take(200).collect());
            match status {
                StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                    Verdict::Fail(ProviderError::Unauthorized {
                        provider: self.name.clone(),
                        status: status.as_u16(),
                        hint: self.token_hint.clone(),
                    })
                }
                StatusCode::NOT_FOUND => Verdict::Fail(ProviderError::NotFound {
                    provider: self.name.clone(),
                    key: key_id.to_string(),
                }),
                StatusCode::CONFLICT
                | StatusCode::BAD_REQUEST
                | StatusCode::UNPROCESSABLE_ENTITY => Verdict::Fail(ProviderError::Conflict {
                    provider: self.name.clone(),
                    message,
                }),
                s if s == StatusCode::TOO_MANY_REQUESTS || s.is_server_error() => Verdict::Again {
                    why: format!("HTTP {} on {method} {path}: {message}", s.as_u16()),
                    retry_after,
                },
                s => Verdict::Fail(ProviderError::Protocol {
                    provider: self.name.clone(),
                    message: format!("HTTP {} on {method} {path}: {message}", s.as_u16()),
                }),
            }
        };
        self.retry
            .send(&self.name, path, &what, request, judge)
            .await
            .map_err(|gave| match gave {
                Gave::Failed(e) => e,
                Gave::Exhausted { last, attempts } => self.unavailable(last, attempts),
                Gave::Ambiguous { last } => ProviderError::Ambiguous {
                    provider: self.name.clone(),
                    message: last,
                },
            })
    }

    fn key_from_wire(&self, w: WireKey) -> Key {
        Key {
            provider: self.name.clone(),
            id: w.id,
            name: w.name,
            owner: w.owner,
            environment: w.environment,
            purpose: w.purpose,
            prefix: w.prefix,
            fingerprint: w.fingerprint,
            scopes: w.scopes,
            status: w.status,
            created: w.created,
            expires: w.expires,
            last_used: w.last_used,
            rotated_to: w.rotated_to,
            source: KeySource::Provider,
        }
    }

    fn issued(&self, a: IssuedAnswer) -> Issued {
        Issued {
            key: self.key_from_wire(a.key),
            secret: Secret::new(a.secret),
            old: a.old.map(|o| self.key_from_wire(o)),
        }
    }

    async fn key_action(&self, id: &str, action: &str, op: &OpKey) -> Result<Key> {
        let path = format!("/v1/keys/{}/{action}", encode_segment(id));
        let w: WireKey = self
            .call(
                Method::POST,
                &path,
                &[],
                Some(serde_json::json!({})),
                None,
                id,
                Some(op),
            )
            .await?;
        Ok(self.key_from_wire(w))
    }
}

pub(crate) fn encode_segment(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[async_trait]
impl Provider for HttpProvider {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &str {
        &self.kind
    }

    fn location(&self) -> Option<String> {
        Some(self.base.to_string())
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            list_events: true,
            disable: true,
            revoke: true,
            create: true,
            rotate_overlap: true,
            rotate_atomic: false,
            verify_secret: true,
            retry_changes: true,
            rotate_in_place: false,
            rotate_guided: false,
        }
    }

    async fn list_keys(&self, page: Option<&str>) -> Result<KeyPage> {
        let mut q = vec![("limit", self.key_page.to_string())];
        if let Some(p) = page {
            q.push(("page_token", p.to_string()));
        }
        let a: KeysAnswer = self
            .call(Method::GET, "/v1/keys", &q, None, None, "", None)
            .await?;
        Ok(KeyPage {
            held: Vec::new(),
            keys: a.keys.into_iter().map(|w| self.key_from_wire(w)).collect(),
            next: a.next_page_token,
        })
    }

    async fn list_events(&self, cursor: Option<&str>) -> Result<EventPage> {
        let mut q = vec![("limit", self.event_page.to_string())];
        if let Some(c) = cursor {
            q.push(("since", c.to_string()));
        }
        let a: EventsAnswer = self
            .call(Method::GET, "/v1/events", &q, None, None, "", None)
            .await?;
        Ok(EventPage {
            events: a
                .events
                .into_iter()
                .map(|w| Event {
                    provider: self.name.clone(),
                    id: w.id,
                    time: w.time,
                    key_id: w.key_id,
                    principal: w.principal,
                    action: w.action,
                    scope: w.scope,
                    source_ip: w.source_ip,
                    user_agent: w.user_agent,
                    outcome: w.outcome,
                    status_code: w.status_code,
                    request_id: w.request_id,
                    records: w.records,
                    raw: None,
                })
                .collect(),
            next_cursor: a.next_cursor,
            has_more: a.has_more,
        })
    }

    async fn get_key(&self, id: &str) -> Result<Key> {
        let path = format!("/v1/keys/{}", encode_segment(id));
        let w: WireKey = self
            .call(Method::GET, &path, &[], None, None, id, None)
            .await?;
        Ok(self.key_from_wire(w))
    }

    async fn disable(&self, id: &str) -> Result<Key> {
        self.change_key(id, KeyChange::Disable, &OpKey::random())
            .await
    }

    async fn enable(&self, id: &str) -> Result<Key> {
        self.change_key(id, KeyChange::Enable, &OpKey::random())
            .await
    }

    async fn revoke(&self, id: &str) -> Result<Key> {
        self.change_key(id, KeyChange::Revoke, &OpKey::random())
            .await
    }

    async fn create(&self, spec: &NewKey) -> Result<Issued> {
        self.issue(Issue::Create(spec), &OpKey::random()).await
    }

    async fn rotate(&self, id: &str, grace: Duration) -> Result<Issued> {
        self.issue(Issue::Rotate { id, grace }, &OpKey::random())
            .await
    }

    async fn change_key(&self, id: &str, change: KeyChange, op: &OpKey) -> Result<Key> {
        let action = match change {
            KeyChange::Disable => "disable",
            KeyChange::Enable => "enable",
            KeyChange::Revoke => "revoke",
        };
        self.key_action(id, action, op).await
    }

    async fn issue(&self, what: Issue<'_>, op: &OpKey) -> Result<Issued> {
        let (path, body, label) = match what {
            Issue::Create(spec) => (
                "/v1/keys".to_string(),
                serde_json::to_value(spec).map_err(|e| ProviderError::Protocol {
                    provider: self.name.clone(),
                    message: e.to_string(),
                })?,
                spec.name.as_str(),
            ),
            Issue::Rotate { id, grace } => (
                format!("/v1/keys/{}/rotate", encode_segment(id)),
                serde_json::json!({ "grace_seconds": grace.as_secs() }),
                id,
            ),
        };
        let a: IssuedAnswer = self
            .call(Method::POST, &path, &[], Some(body), None, label, Some(op))
            .await?;
        Ok(self.issued(a))
    }

    async fn verify_secret(&self, secret: &Secret) -> Result<String> {
        // Verification must not be retried into a lockout; one attempt per transient error.
        let a: PingAnswer = self
            .call(
                Method::GET,
                "/v1/partner/ping",
                &[],
                None,
                Some(secret.expose()),
                "",
                None,
            )
            .await?;
        Ok(a.key_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_escaped_in_paths() {
        assert_eq!(encode_segment("key/../x"), "key%2F..%2Fx");
    }
}
