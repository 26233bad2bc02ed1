//! The one request path of the `gitlab` provider: `PRIVATE-TOKEN` authentication, the
//! retry loop (reads retried on 429 / 5xx honouring `Retry-After`; changes sent again
//! only when provably refused), GitLab's error bodies, and offset pagination
//! (`X-Next-Page`, or the `Link` header's `rel="next"`).

use super::GitlabProvider;
use crate::provider::retry::{Gave, Verdict};
use crate::provider::ProviderError;
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::time::Duration;

/// A request's parsed answer and the number of the page after it, if any.
pub(super) struct Answer<T> {
    pub body: T,
    pub next_page: Option<u32>,
}

/// GitLab's error text: `message` (a string or an object of field errors), or OAuth's
/// `error` / `error_description` with the `scope` a call needs.
fn error_text(bytes: &[u8]) -> String {
    let v: Value = match serde_json::from_slice(bytes) {
        Ok(v) => v,
        Err(_) => return String::from_utf8_lossy(bytes).chars().take(200).collect(),
    };
    let mut parts = Vec::new();
    match v.get("message") {
        Some(Value::String(s)) => parts.push(s.clone()),
        Some(other) if !other.is_null() => parts.push(other.to_string()),
        _ => {}
    }
    if let Some(d) = v.get("error_description").and_then(Value::as_str) {
        parts.push(d.to_string());
    } else if let Some(e) = v.get("error").and_then(Value::as_str) {
        parts.push(e.to_string());
    }
    if let Some(scope) = v.get("scope").and_then(Value::as_str) {
        parts.push(format!("the call needs scope `{scope}`"));
    }
    let text = parts.join("; ");
    crate::output::sanitize(&text).chars().take(300).collect()
}

/// The page after this one: `X-Next-Page` (empty on the last page), else the `page`
/// parameter of the `Link` header's `rel="next"` target.
fn next_page(headers: &HeaderMap) -> Option<u32> {
    if let Some(v) = headers.get("x-next-page").and_then(|v| v.to_str().ok()) {
        return v.trim().parse().ok();
    }
    let link = headers.get("link").and_then(|v| v.to_str().ok())?;
    link.split(',')
        .find(|part| part.contains("rel=\"next\""))
        .and_then(|part| {
            let url = part.split(';').next()?.trim().trim_matches(['<', '>']);
            let u = reqwest::Url::parse(url).ok()?;
            let page = u.query_pairs().find(|(k, _)| k == "page")?.1.parse().ok();
            page
        })
}

impl GitlabProvider {
    /// `/api/v4` + `path` on the instance.
    fn url(&self, path: &str) -> reqwest::Url {
        let mut u = self.base.clone();
        let joined = format!("{}/api/v4{path}", u.path().trim_end_matches('/'));
        u.set_path(&joined);
        u
    }

    /// Sends one request: `change` requests go through the no-blind-retry path. `key`
    /// names the key a 404 is about. `bearer` replaces the provider's own token (to
    /// verify a new secret).
    pub(super) async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        key: &str,
        bearer: Option<&str>,
    ) -> Result<Answer<T>, ProviderError> {
        let url = self.url(path);
        let what = format!("{method} {path}");
        let change = method != Method::GET;
        let request = || {
            let mut req = self
                .client
                .request(method.clone(), url.clone())
                .query(query)
                .header(
                    "PRIVATE-TOKEN",
                    bearer.unwrap_or_else(|| self.token.expose()),
                );
            if method == Method::POST {
                req = req.json(&serde_json::json!({}));
            }
            req
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
                        next_page: next_page(headers),
                    }),
                    Err(e) => Verdict::Again {
                        why: format!("malformed answer to {what}: {e}"),
                        retry_after: None,
                    },
                };
            }
            let message = error_text(&bytes);
            match status {
                StatusCode::UNAUTHORIZED => Verdict::Fail(ProviderError::Unauthorized {
                    provider: self.name.clone(),
                    status: 401,
                    hint: self.token_hint.clone(),
                }),
                StatusCode::FORBIDDEN => Verdict::Fail(ProviderError::Denied {
                    provider: self.name.clone(),
                    message: format!(
                        "permission denied on {what} (HTTP 403: {message}); the token in {} needs the role or scope docs/providers/gitlab.md names for this call",
                        self.token_hint
                    ),
                }),
                StatusCode::NOT_FOUND => Verdict::Fail(ProviderError::NotFound {
                    provider: self.name.clone(),
                    key: key.to_string(),
                }),
                s if s == StatusCode::TOO_MANY_REQUESTS || s.is_server_error() => Verdict::Again {
                    why: format!("HTTP {} on {what}: {message}", s.as_u16()),
                    retry_after,
                },
                s if s.is_client_error() => Verdict::Fail(ProviderError::Conflict {
                    provider: self.name.clone(),
                    message: format!("HTTP {} on {what}: {message}", s.as_u16()),
                }),
                s => Verdict::Fail(ProviderError::Protocol {
                    provider: self.name.clone(),
                    message: format!("HTTP {} on {what}: {message}", s.as_u16()),
                }),
            }
        };
        let sent = if change {
            self.retry
                .send_change_headed(&self.name, path, &what, request, judge)
                .await
        } else {
            self.retry
                .send_headed(&self.name, path, &what, request, judge)
                .await
        };
        sent.map_err(|gave| match gave {
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
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_page_from_either_header() {
        let mut h = HeaderMap::new();
        h.insert("x-next-page", "3".parse().unwrap());
        assert_eq!(next_page(&h), Some(3));
        h.insert("x-next-page", "".parse().unwrap());
        assert_eq!(next_page(&h), None);
        let mut h = HeaderMap::new();
        h.insert(
            "link",
            "<https://gl.example/api/v4/projects/1/access_tokens?page=1&per_page=2>; rel=\"prev\", <https://gl.example/api/v4/projects/1/access_tokens?page=3&per_page=2>; rel=\"next\""
                .parse()
                .unwrap(),
        );
        assert_eq!(next_page(&h), Some(3));
    }

    #[test]
    fn error_text_names_the_missing_scope() {
        let t = error_text(
            br#"{"error":"insufficient_scope","error_description":"The request requires higher privileges than provided by the access token.","scope":"api"}"#,
        );
        assert!(
            t.contains("higher privileges") && t.contains("scope `api`"),
            "{t}"
        );
        assert_eq!(
            error_text(br#"{"message":"403 Forbidden"}"#),
            "403 Forbidden"
        );
    }
}
