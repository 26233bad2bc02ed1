//! The one request path of the `openai` provider: bearer authentication with the admin
//! key, the retry loop (reads retried on 429 / 5xx honouring `Retry-After`; a delete is
//! sent again only when it provably did not arrive), and OpenAI's error bodies
//! (`{"error": {"message", "type", "param", "code"}}`).

use super::OpenaiProvider;
use crate::provider::retry::{Gave, Verdict};
use crate::provider::ProviderError;
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::time::Duration;

/// OpenAI's error text: `error.message` (and `error.code` when it says more), neutralised
/// and bounded; a body that is not OpenAI's error object is shown in part.
pub(super) fn error_text(bytes: &[u8]) -> String {
    let text = match serde_json::from_slice::<Value>(bytes) {
        Ok(v) => {
            let e = v.get("error").unwrap_or(&v);
            let message = e.get("message").and_then(Value::as_str).unwrap_or("");
            match e.get("code").and_then(Value::as_str) {
                Some(code) if !code.is_empty() && !message.contains(code) => {
                    format!("{message} ({code})")
                }
                _ if message.is_empty() => v.to_string(),
                _ => message.to_string(),
            }
        }
        Err(_) => String::from_utf8_lossy(bytes).into_owned(),
    };
    crate::output::sanitize(&text).chars().take(300).collect()
}

/// A refusal of `/organization/audit_logs` that says audit logging is off for the
/// organization (OpenAI documents no code for it; its message names audit logging).
pub(super) fn audit_logging_off(status: StatusCode, message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    matches!(status.as_u16(), 400 | 403 | 404)
        && m.contains("audit log")
        && (m.contains("not enabled") || m.contains("disabled") || m.contains("enable"))
}

impl OpenaiProvider {
    /// `path` under the API base (`…/v1`).
    fn url(&self, path: &str) -> reqwest::Url {
        let mut u = self.base.clone();
        let joined = format!("{}{path}", u.path().trim_end_matches('/'));
        u.set_path(&joined);
        u
    }

    /// Sends one request: a `DELETE` goes through the no-blind-retry path. `key` names
    /// the key a 404 is about.
    pub(super) async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        key: &str,
    ) -> Result<T, ProviderError> {
        let url = self.url(path);
        let what = format!("{method} {path}");
        let change = method != Method::GET;
        let request = || {
            self.client
                .request(method.clone(), url.clone())
                .query(query)
                .bearer_auth(self.token.expose())
        };
        let judge = |status: StatusCode,
                     retry_after: Option<Duration>,
                     _headers: &HeaderMap,
                     bytes: bytes::Bytes| {
            if status.is_success() {
                return match serde_json::from_slice::<T>(&bytes) {
                    Ok(v) => Verdict::Done(v),
                    Err(e) => Verdict::Again {
                        why: format!("malformed answer to {what}: {e}"),
                        retry_after: None,
                    },
                };
            }
            let message = error_text(&bytes);
            if path == "/organization/audit_logs" && audit_logging_off(status, &message) {
                return Verdict::Fail(ProviderError::Unsupported {
                    provider: self.name.clone(),
                    operation: "reading the audit log (audit logging is not enabled for this organization: an owner turns it on under Settings → Data controls → Data retention; keys are synced without events)",
                });
            }
            match status {
                StatusCode::UNAUTHORIZED => Verdict::Fail(ProviderError::Unauthorized {
                    provider: self.name.clone(),
                    status: 401,
                    hint: self.token_hint.clone(),
                }),
                StatusCode::FORBIDDEN => Verdict::Fail(ProviderError::Denied {
                    provider: self.name.clone(),
                    message: format!(
                        "permission denied on {what} (HTTP 403: {message}); the key in {} must be an organization admin key with the permission docs/providers/openai.md names for this call",
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
    fn error_text_is_openais_message() {
        assert_eq!(
            error_text(br#"{"error":{"message":"You have insufficient permissions for this operation. Missing scopes: api.management.read.","type":"invalid_request_error","param":null,"code":null}}"#),
            "You have insufficient permissions for this operation. Missing scopes: api.management.read."
        );
        assert_eq!(
            error_text(br#"{"error":{"message":"No such key","type":"invalid_request_error","param":null,"code":"not_found"}}"#),
            "No such key (not_found)"
        );
        let t = error_text(b"\x1b[31mbad gateway");
        assert!(!t.contains('\x1b') && t.ends_with("bad gateway"), "{t}");
    }

    #[test]
    fn disabled_audit_logging_is_recognised() {
        assert!(audit_logging_off(
            StatusCode::BAD_REQUEST,
            "Audit logging is not enabled for this organization."
        ));
        assert!(!audit_logging_off(
            StatusCode::FORBIDDEN,
            "You have insufficient permissions for this operation."
        ));
    }
}
