//! The one request path of the `cloudflare` provider: bearer authentication, the retry
//! loop (reads retried on 429 / 5xx honouring `Retry-After`; changes sent again only
//! when provably refused), and the v4 envelope (`success`, `errors`, `result`,
//! `result_info`).

use super::CloudflareProvider;
use crate::provider::retry::{Gave, Verdict};
use crate::provider::ProviderError;
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use std::time::Duration;

#[derive(Deserialize)]
struct Message {
    #[serde(default)]
    code: i64,
    #[serde(default)]
    message: String,
}

/// The v4 envelope.
#[derive(Deserialize)]
pub(super) struct Envelope<T> {
    #[serde(default)]
    pub success: bool,
    #[serde(default)]
    errors: Vec<Message>,
    pub result: Option<T>,
    pub result_info: Option<ResultInfo>,
}

#[derive(Debug, Default, Clone, Copy, Deserialize)]
pub(super) struct ResultInfo {
    pub per_page: Option<f64>,
    pub total_count: Option<f64>,
}

impl ResultInfo {
    /// True when pages after `page` hold more (from `total_count`, else from a full page).
    pub fn more_after(&self, page: u32, per_page: u32, got: usize) -> bool {
        match (self.total_count, self.per_page) {
            (Some(total), Some(pp)) if pp > 0.0 => (page as f64) * pp < total,
            _ => got >= per_page as usize && got > 0,
        }
    }
}

/// The `errors` of a failure answer as one line: `code 9109: Unauthorized to access
/// requested resource`.
fn error_text(bytes: &[u8]) -> String {
    let text = match serde_json::from_slice::<Envelope<serde_json::Value>>(bytes) {
        Ok(e) if !e.errors.is_empty() => e
            .errors
            .iter()
            .map(|m| format!("code {}: {}", m.code, m.message))
            .collect::<Vec<_>>()
            .join("; "),
        _ => String::from_utf8_lossy(bytes).chars().take(200).collect(),
    };
    crate::output::sanitize(&text).chars().take(300).collect()
}

/// The permission group a call needs, as Cloudflare's token editor names it.
pub(super) fn needed_permission(method: &Method, path: &str) -> &'static str {
    let read = *method == Method::GET;
    match (
        path.starts_with("/user/"),
        path.ends_with("/audit_logs"),
        read,
    ) {
        (_, true, _) => "Account › Account Settings › Read",
        (true, _, true) => "User › API Tokens › Read",
        (true, _, false) => "User › API Tokens › Edit",
        (false, _, true) => "Account › Account API Tokens › Read",
        (false, _, false) => "Account › Account API Tokens › Edit",
    }
}

impl CloudflareProvider {
    fn url(&self, path: &str) -> reqwest::Url {
        let mut u = self.base.clone();
        let joined = format!("{}/client/v4{path}", u.path().trim_end_matches('/'));
        u.set_path(&joined);
        u
    }

    /// Sends one request and unwraps the envelope. `key` names the key a 404 is about;
    /// `bearer` replaces the provider's own token (to verify a new secret).
    pub(super) async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<serde_json::Value>,
        key: &str,
        bearer: Option<&str>,
    ) -> Result<Envelope<T>, ProviderError> {
        let url = self.url(path);
        let what = format!("{method} {path}");
        let change = method != Method::GET;
        let request = || {
            let mut req = self
                .client
                .request(method.clone(), url.clone())
                .query(query)
                .bearer_auth(bearer.unwrap_or_else(|| self.token.expose()));
            if let Some(b) = &body {
                req = req.json(b);
            }
            req
        };
        let judge = |status: StatusCode,
                     retry_after: Option<Duration>,
                     _: &HeaderMap,
                     bytes: bytes::Bytes| {
            if status.is_success() {
                return match serde_json::from_slice::<Envelope<T>>(&bytes) {
                    Ok(e) if e.success => Verdict::Done(e),
                    Ok(_) => Verdict::Fail(ProviderError::Protocol {
                        provider: self.name.clone(),
                        message: format!("{what}: success false: {}", error_text(&bytes)),
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
                        "permission denied on {what} (HTTP 403: {message}); the token in {} needs the permission `{}` (docs/providers/cloudflare.md)",
                        self.token_hint,
                        needed_permission(&method, path)
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
                s => Verdict::Fail(ProviderError::Conflict {
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
    fn a_403_names_the_permission_of_the_call() {
        assert_eq!(
            needed_permission(&Method::DELETE, "/accounts/abc/tokens/x"),
            "Account › Account API Tokens › Edit"
        );
        assert_eq!(
            needed_permission(&Method::GET, "/user/tokens"),
            "User › API Tokens › Read"
        );
        assert_eq!(
            needed_permission(&Method::PUT, "/user/tokens/x/value"),
            "User › API Tokens › Edit"
        );
        assert_eq!(
            needed_permission(&Method::GET, "/accounts/abc/audit_logs"),
            "Account › Account Settings › Read"
        );
    }

    #[test]
    fn hostile_error_text_is_neutralised() {
        let t = error_text(
            b"{\"success\":false,\"errors\":[{\"code\":1000,\"message\":\"bad\\u001b[2Jtoken\\u202e\"}],\"messages\":[]}",
        );
        assert!(!t.contains('\u{1b}') && !t.contains('\u{202e}'), "{t:?}");
        assert!(t.starts_with("code 1000: bad"), "{t}");
    }

    #[test]
    fn errors_are_one_line_with_codes() {
        let t = error_text(
            br#"{"success":false,"errors":[{"code":9109,"message":"Unauthorized to access requested resource"}],"messages":[],"result":null}"#,
        );
        assert_eq!(t, "code 9109: Unauthorized to access requested resource");
    }

    #[test]
    fn more_pages_from_total_count_or_a_full_page() {
        let i = ResultInfo {
            per_page: Some(2.0),
            total_count: Some(3.0),
        };
        assert!(i.more_after(1, 2, 2));
        assert!(!i.more_after(2, 2, 1));
        let none = ResultInfo::default();
        assert!(none.more_after(1, 2, 2));
        assert!(!none.more_after(1, 2, 1));
    }
}
