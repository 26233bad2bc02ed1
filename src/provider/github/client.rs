//! The one request path of the `github` provider: authentication (an installation token
//! minted from the App's JWT and kept until shortly before it expires, or a token from
//! `token_env` / `token_command`), GitHub's rate limits, error bodies and `Link`
//! pagination.
//!
//! Rate limits follow GitHub's "Rate limits for the REST API" page: a `403`/`429` with
//! `Retry-After` is a secondary limit (wait that long); one with
//! `X-RateLimit-Remaining: 0` is the primary limit (wait until `X-RateLimit-Reset`); a
//! secondary-limit message without either waits a minute. Both refuse the request
//! without acting on it, so even a change is sent again after the wait; any other
//! failure of a change is never retried blindly (it is settled by reading).

use super::GithubProvider;
use crate::provider::retry::{Gave, Verdict};
use crate::provider::ProviderError;
use crate::secret::Secret;
use chrono::{DateTime, Utc};
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::time::Duration;

/// The REST API version keyaudit is written against.
const API_VERSION: &str = "2022-11-28";

/// The longest wait for a primary rate limit's reset inside one call; a later reset is
/// reported instead of waited for.
const MAX_RESET_WAIT: Duration = Duration::from_secs(90);

/// A request's parsed answer and the query of the page after it, if any.
pub(super) struct Answer<T> {
    pub body: T,
    pub next: Option<Vec<(String, String)>>,
}

/// Why a call failed: GitHub refused it (403 / 404 with its message, which callers of
/// plan-dependent endpoints turn into a capability note), or anything else.
pub(super) enum Fail {
    Denied { status: u16, message: String },
    Other(ProviderError),
}

/// An answer judged inside the retry loop.
enum Judged {
    Denied {
        status: u16,
        message: String,
    },
    /// Rate limited (the request was refused, not acted on): wait, then send again.
    Limited {
        wait: Duration,
        why: String,
    },
    Other(ProviderError),
}

/// GitHub's error text (`message`, and the `errors` of a 422), sanitised and cut.
pub(super) fn error_text(bytes: &[u8]) -> String {
    let text = match serde_json::from_slice::<Value>(bytes) {
        Ok(v) => {
            let mut parts = Vec::new();
            if let Some(m) = v.get("message").and_then(Value::as_str) {
                parts.push(m.to_string());
            }
            if let Some(errs) = v.get("errors").and_then(Value::as_array) {
                for e in errs.iter().take(3) {
                    match e {
                        Value::String(s) => parts.push(s.clone()),
                        other => parts.push(
                            other
                                .get("message")
                                .and_then(Value::as_str)
                                .map(str::to_string)
                                .unwrap_or_else(|| other.to_string()),
                        ),
                    }
                }
            }
            parts.join("; ")
        }
        Err(_) => String::from_utf8_lossy(bytes).into_owned(),
    };
    crate::output::sanitize(&text).chars().take(300).collect()
}

/// The query of the `Link` header's `rel="next"` target.
pub(super) fn next_query(headers: &HeaderMap) -> Option<Vec<(String, String)>> {
    let link = headers.get("link").and_then(|v| v.to_str().ok())?;
    link.split(',')
        .find(|part| part.contains("rel=\"next\""))
        .and_then(|part| {
            let url = part.split(';').next()?.trim().trim_matches(['<', '>']);
            let u = reqwest::Url::parse(url).ok()?;
            Some(u.query_pairs().into_owned().collect())
        })
}

fn header_u64(headers: &HeaderMap, name: &str) -> Option<u64> {
    headers.get(name)?.to_str().ok()?.trim().parse().ok()
}

/// How long a rate-limited answer asks to wait, if it is one.
fn rate_limited(
    status: StatusCode,
    retry_after: Option<Duration>,
    headers: &HeaderMap,
    message: &str,
    now: DateTime<Utc>,
) -> Option<(Duration, String)> {
    if status != StatusCode::FORBIDDEN && status != StatusCode::TOO_MANY_REQUESTS {
        return None;
    }
    if let Some(ra) = retry_after {
        return Some((
            ra,
            format!("secondary rate limit (Retry-After {}s)", ra.as_secs()),
        ));
    }
    if header_u64(headers, "x-ratelimit-remaining") == Some(0) {
        let reset = header_u64(headers, "x-ratelimit-reset").unwrap_or(0) as i64;
        let wait = (reset - now.timestamp()).max(1) as u64;
        return Some((
            Duration::from_secs(wait),
            format!("primary rate limit exhausted until {reset} (epoch seconds)"),
        ));
    }
    let lower = message.to_ascii_lowercase();
    if status == StatusCode::TOO_MANY_REQUESTS || lower.contains("secondary rate limit") {
        // GitHub: without Retry-After, wait at least one minute.
        return Some((Duration::from_secs(60), "secondary rate limit".into()));
    }
    None
}

/// What the call on `path` needs, in the words of the App's permission settings.
pub(super) fn needed(method: &Method, path: &str) -> &'static str {
    if path.contains("/personal-access-tokens") {
        if *method == Method::GET {
            "a GitHub App installation token with the organization permission \"Personal access tokens\" (read)"
        } else {
            "a GitHub App installation token with the organization permission \"Personal access tokens\" (read and write)"
        }
    } else if path.contains("/audit-log") {
        "the organization permission \"Administration\" (read) on GitHub Enterprise Cloud"
    } else if path.contains("/secret-scanning/") {
        "the organization permission \"Secret scanning alerts\" (read)"
    } else {
        "the permissions docs/providers/github.md lists"
    }
}

impl GithubProvider {
    /// The API base + `path` (the base's own path kept, as on GitHub Enterprise Server's
    /// `/api/v3`).
    pub(super) fn url(&self, path: &str) -> reqwest::Url {
        let mut u = self.base.clone();
        let joined = format!("{}{path}", u.path().trim_end_matches('/'));
        u.set_path(&joined);
        u
    }

    fn request(
        &self,
        method: &Method,
        url: &reqwest::Url,
        bearer: &str,
    ) -> reqwest::RequestBuilder {
        self.client
            .request(method.clone(), url.clone())
            .header("Accept", "application/vnd.github+json")
            .header("X-GitHub-Api-Version", API_VERSION)
            .bearer_auth(bearer)
    }

    /// The token requests are sent with: the configured one, or the App's installation
    /// token (minted when missing or within five minutes of its expiry).
    async fn bearer(&self) -> Result<Secret, ProviderError> {
        let app = match &self.auth {
            super::Auth::Token { token, .. } => return Ok(token.clone()),
            super::Auth::App(app) => app,
        };
        let mut cached = app.cached.lock().await;
        if let Some((tok, exp)) = cached.as_ref() {
            if *exp - chrono::Duration::minutes(5) > Utc::now() {
                return Ok(tok.clone());
            }
        }
        let (tok, exp) = self.mint(&app.key).await?;
        *cached = Some((tok.clone(), exp));
        Ok(tok)
    }

    /// `POST /app/installations/{id}/access_tokens` with the App's JWT. Sending it again
    /// after a lost answer is harmless (it only mints another short-lived token), so it
    /// goes through the retry loop like a read.
    async fn mint(
        &self,
        key: &super::app::AppKey,
    ) -> Result<(Secret, DateTime<Utc>), ProviderError> {
        let path = format!("/app/installations/{}/access_tokens", key.installation_id);
        let url = self.url(&path);
        let what = format!("POST {path}");
        let jwt = key.jwt(Utc::now()).map_err(|m| self.config_error(m))?;
        #[derive(serde::Deserialize)]
        struct Minted {
            token: String,
            expires_at: DateTime<Utc>,
        }
        let request = || self.request(&Method::POST, &url, jwt.expose());
        let judge = |status: StatusCode,
                     retry_after: Option<Duration>,
                     headers: &HeaderMap,
                     bytes: bytes::Bytes| {
            if status.is_success() {
                return match serde_json::from_slice::<Minted>(&bytes) {
                    Ok(m) => Verdict::Done(m),
                    Err(e) => Verdict::Fail(ProviderError::Protocol {
                        provider: self.name.clone(),
                        message: format!("malformed answer to {what}: {e}"),
                    }),
                };
            }
            let message = error_text(&bytes);
            if let Some((wait, why)) =
                rate_limited(status, retry_after, headers, &message, Utc::now())
            {
                return Verdict::Again {
                    why: format!("{why} on {what}"),
                    retry_after: Some(wait),
                };
            }
            match status.as_u16() {
                401 => Verdict::Fail(self.config_error(format!(
                    "GitHub refused the App's JWT (HTTP 401: {message}); check that `app_id` = {} is the App and `private_key_file` one of its current private keys",
                    key.app_id
                ))),
                403 | 404 => Verdict::Fail(self.config_error(format!(
                    "GitHub has no installation {} of App {} it will issue a token for (HTTP {}: {message}); check `installation_id` (the number at the end of the installation's settings URL)",
                    key.installation_id, key.app_id, status.as_u16()
                ))),
                s if status.is_server_error() => Verdict::Again { why: format!("HTTP {s} on {what}: {message}"), retry_after },
                s => Verdict::Fail(ProviderError::Protocol {
                    provider: self.name.clone(),
                    message: format!("HTTP {s} on {what}: {message}"),
                }),
            }
        };
        let m = self
            .retry
            .send_headed(&self.name, &path, &what, request, judge)
            .await
            .map_err(|g| self.gave(g))?;
        Ok((Secret::new(m.token), m.expires_at))
    }

    pub(super) fn config_error(&self, message: String) -> ProviderError {
        ProviderError::Config {
            provider: self.name.clone(),
            message: format!("{}: provider `{}`: {message}", self.origin, self.name),
        }
    }

    fn gave(&self, gave: Gave<ProviderError>) -> ProviderError {
        match gave {
            Gave::Failed(e) => e,
            Gave::Exhausted { last, attempts } => ProviderError::Unavailable {
                provider: self.name.clone(),
                message: last,
                attempts,
            },
            Gave::Ambiguous { last } => ProviderError::Ambiguous {
                provider: self.name.clone(),
                message: last,
            },
        }
    }

    /// Sends one request; a 403 or 404 is a [`Fail::Denied`]. `key` names the key a
    /// 404 is about. Non-GET requests go through the no-blind-retry path.
    pub(super) async fn call_raw<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        query: &[(String, String)],
        body: Option<&Value>,
    ) -> Result<Answer<T>, Fail> {
        let url = self.url(path);
        let what = format!("{method} {path}");
        let change = method != Method::GET;
        let bearer = self.bearer().await.map_err(Fail::Other)?;
        let request = || {
            let req = self.request(&method, &url, bearer.expose()).query(query);
            match body {
                Some(b) => req.json(b),
                None => req,
            }
        };
        let judge = |status: StatusCode,
                     retry_after: Option<Duration>,
                     headers: &HeaderMap,
                     bytes: bytes::Bytes| {
            if status.is_success() {
                let body = if bytes.is_empty() {
                    b"null".as_slice()
                } else {
                    &bytes[..]
                };
                return match serde_json::from_slice::<T>(body) {
                    Ok(v) => Verdict::Done(Answer {
                        body: v,
                        next: next_query(headers),
                    }),
                    Err(e) if change => Verdict::Fail(Judged::Other(ProviderError::Ambiguous {
                        provider: self.name.clone(),
                        message: format!("unreadable answer to {what}: {e}"),
                    })),
                    Err(e) => Verdict::Again {
                        why: format!("malformed answer to {what}: {e}"),
                        retry_after: None,
                    },
                };
            }
            let message = error_text(&bytes);
            if let Some((wait, why)) =
                rate_limited(status, retry_after, headers, &message, Utc::now())
            {
                return Verdict::Fail(Judged::Limited {
                    wait,
                    why: format!("{why} on {what}"),
                });
            }
            match status {
                StatusCode::UNAUTHORIZED => {
                    Verdict::Fail(Judged::Other(ProviderError::Unauthorized {
                        provider: self.name.clone(),
                        status: 401,
                        hint: self.auth_hint(),
                    }))
                }
                StatusCode::FORBIDDEN | StatusCode::NOT_FOUND => Verdict::Fail(Judged::Denied {
                    status: status.as_u16(),
                    message,
                }),
                s if s.is_server_error() => Verdict::Again {
                    why: format!("HTTP {} on {what}: {message}", s.as_u16()),
                    retry_after,
                },
                s => Verdict::Fail(Judged::Other(ProviderError::Conflict {
                    provider: self.name.clone(),
                    message: format!("HTTP {} on {what}: {message}", s.as_u16()),
                })),
            }
        };
        let mut last = String::new();
        for _ in 0..self.retry.max_attempts {
            let sent = if change {
                self.retry
                    .send_change_headed(&self.name, path, &what, request, judge)
                    .await
            } else {
                self.retry
                    .send_headed(&self.name, path, &what, request, judge)
                    .await
            };
            match sent {
                Ok(a) => return Ok(a),
                Err(Gave::Failed(Judged::Limited { wait, why })) => {
                    if wait > MAX_RESET_WAIT {
                        return Err(Fail::Other(ProviderError::Unavailable {
                            provider: self.name.clone(),
                            message: format!("{why}; try again after the reset"),
                            attempts: 1,
                        }));
                    }
                    tracing::debug!(provider = %self.name, %path, "{why}: waiting {wait:?}");
                    last = why;
                    tokio::time::sleep(wait).await;
                }
                Err(Gave::Failed(Judged::Denied { status, message })) => {
                    return Err(Fail::Denied { status, message })
                }
                Err(Gave::Failed(Judged::Other(e))) => return Err(Fail::Other(e)),
                Err(Gave::Exhausted { last, attempts }) => {
                    return Err(Fail::Other(ProviderError::Unavailable {
                        provider: self.name.clone(),
                        message: last,
                        attempts,
                    }))
                }
                Err(Gave::Ambiguous { last }) => {
                    return Err(Fail::Other(ProviderError::Ambiguous {
                        provider: self.name.clone(),
                        message: last,
                    }))
                }
            }
        }
        Err(Fail::Other(ProviderError::Unavailable {
            provider: self.name.clone(),
            message: last,
            attempts: self.retry.max_attempts,
        }))
    }

    /// [`GithubProvider::call_raw`] with a refusal turned into an error that names the
    /// permission the call needs (a 404 on a key's call: the key is not found).
    pub(super) async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        query: &[(String, String)],
        body: Option<&Value>,
        key: &str,
    ) -> Result<Answer<T>, ProviderError> {
        match self.call_raw(method.clone(), path, query, body).await {
            Ok(a) => Ok(a),
            Err(Fail::Other(e)) => Err(e),
            Err(Fail::Denied { status: 404, .. }) if !key.is_empty() => {
                Err(ProviderError::NotFound {
                    provider: self.name.clone(),
                    key: key.to_string(),
                })
            }
            Err(Fail::Denied { status, message }) => {
                Err(self.denied(&method, path, status, &message))
            }
        }
    }

    /// A refusal of `method path` as an error naming what the call needs.
    pub(super) fn denied(
        &self,
        method: &Method,
        path: &str,
        status: u16,
        message: &str,
    ) -> ProviderError {
        ProviderError::Conflict {
            provider: self.name.clone(),
            message: format!(
                "permission denied on {method} {path} (HTTP {status}: {message}); it needs {} ({})",
                needed(method, path),
                self.auth_hint()
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_query_comes_from_the_link_header() {
        let mut h = HeaderMap::new();
        h.insert(
            "link",
            "<https://api.github.com/orgs/acme/audit-log?per_page=2&after=MS4yfDE%3D&before=>; rel=\"next\", <https://api.github.com/orgs/acme/audit-log?per_page=2>; rel=\"first\""
                .parse()
                .unwrap(),
        );
        let q = next_query(&h).unwrap();
        assert!(
            q.contains(&("after".to_string(), "MS4yfDE=".to_string())),
            "{q:?}"
        );
        assert!(next_query(&HeaderMap::new()).is_none());
    }

    #[test]
    fn rate_limits_are_told_apart_from_refusals() {
        let now = Utc::now();
        let mut h = HeaderMap::new();
        let (w, why) = rate_limited(
            StatusCode::FORBIDDEN,
            Some(Duration::from_secs(3)),
            &h,
            "",
            now,
        )
        .unwrap();
        assert_eq!(w, Duration::from_secs(3));
        assert!(why.contains("secondary"), "{why}");
        h.insert("x-ratelimit-remaining", "0".parse().unwrap());
        h.insert(
            "x-ratelimit-reset",
            (now.timestamp() + 30).to_string().parse().unwrap(),
        );
        let (w, why) = rate_limited(
            StatusCode::FORBIDDEN,
            None,
            &h,
            "API rate limit exceeded",
            now,
        )
        .unwrap();
        assert_eq!(w, Duration::from_secs(30));
        assert!(why.contains("primary"), "{why}");
        let (w, _) = rate_limited(
            StatusCode::FORBIDDEN,
            None,
            &HeaderMap::new(),
            "You have exceeded a secondary rate limit.",
            now,
        )
        .unwrap();
        assert_eq!(w, Duration::from_secs(60));
        assert!(rate_limited(
            StatusCode::FORBIDDEN,
            None,
            &HeaderMap::new(),
            "Resource not accessible by integration",
            now
        )
        .is_none());
        assert!(rate_limited(
            StatusCode::NOT_FOUND,
            Some(Duration::from_secs(1)),
            &HeaderMap::new(),
            "",
            now
        )
        .is_none());
    }

    #[test]
    fn permission_names_follow_the_endpoint() {
        assert!(needed(&Method::POST, "/orgs/a/personal-access-tokens").contains("read and write"));
        assert!(needed(&Method::GET, "/orgs/a/audit-log").contains("Administration"));
        assert!(needed(&Method::GET, "/orgs/a/secret-scanning/alerts")
            .contains("Secret scanning alerts"));
    }
}
