//! Requests to Vault: URLs, the headers every call carries, retries, and failures
//! explained in keyaudit's words (which capability on which path was missing).

use super::VaultProvider;
use crate::provider::retry::{Gave, Verdict};
use crate::provider::ProviderError;
use crate::provider::Result;
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::Value;

/// What a request needed, for the message when it is refused.
pub(super) struct Need<'a> {
    /// What keyaudit was doing: "listing tokens", "revoking token accessor X".
    pub(super) doing: String,
    /// The capabilities, quoted: "`update`".
    pub(super) capability: &'static str,
    pub(super) path: &'a str,
    /// The token accessor concerned, for not-found errors.
    pub(super) accessor: &'a str,
}

/// Why a call failed before it was explained.
pub(super) enum Fail {
    Status(StatusCode, String),
    Gave(ProviderError),
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

impl VaultProvider {
    /// The URL of an API path (`auth/token/accessors?list=true`).
    pub(super) fn url(&self, path: &str) -> reqwest::Url {
        let mut u = self.base.clone();
        let (path, query) = path.split_once('?').unwrap_or((path, ""));
        let prefix = u.path().trim_end_matches('/').to_string();
        let prefix = prefix.strip_suffix("/v1").unwrap_or(&prefix);
        u.set_path(&format!("{prefix}/v1/{path}"));
        u.set_query((!query.is_empty()).then_some(query));
        u
    }

    /// One request with retries on transient failures (transport errors, 412, 429,
    /// 5xx). Returns the JSON body of a 2xx answer (`Null` for 204).
    pub(super) async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        token: Option<&str>,
    ) -> std::result::Result<Value, Fail> {
        let url = self.url(path);
        let request = || {
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
            req
        };
        let judge = |status: StatusCode, retry_after, bytes: bytes::Bytes| {
            if status.is_success() {
                if bytes.is_empty() {
                    return Verdict::Done(Value::Null);
                }
                return match serde_json::from_slice::<Value>(&bytes) {
                    Ok(v) => Verdict::Done(v),
                    Err(e) => Verdict::Again {
                        why: format!("malformed answer to {path}: {e}"),
                        retry_after: None,
                    },
                };
            }
            let message = vault_errors(&bytes);
            let transient = status == StatusCode::TOO_MANY_REQUESTS
                || status == StatusCode::PRECONDITION_FAILED
                || (status.is_server_error() && status != StatusCode::NOT_IMPLEMENTED);
            if !transient {
                return Verdict::Fail(Fail::Status(status, message));
            }
            Verdict::Again {
                why: format!("HTTP {} on {path}: {message}", status.as_u16()),
                retry_after,
            }
        };
        // Creating a token is not idempotent at Vault: a lost answer is never sent again
        // (a second token would be issued); the caller settles it by reading.
        let creates = method == Method::POST && path.starts_with("auth/token/create");
        let sent = if creates {
            self.retry
                .send_change(&self.name, path, path, request, judge)
                .await
        } else {
            self.retry
                .send(&self.name, path, path, request, judge)
                .await
        };
        sent.map_err(|gave| match gave {
            Gave::Failed(f) => f,
            Gave::Ambiguous { last } => Fail::Gave(ProviderError::Ambiguous {
                provider: self.name.clone(),
                message: last,
            }),
            Gave::Exhausted { last, attempts } => Fail::Gave(ProviderError::Unavailable {
                provider: self.name.clone(),
                message: last,
                attempts,
            }),
        })
    }

    /// A call whose failure is explained in keyaudit's words.
    pub(super) async fn request(
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

    pub(super) async fn explain(&self, f: Fail, need: &Need<'_>) -> ProviderError {
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

    pub(super) fn protocol(&self, message: String) -> ProviderError {
        ProviderError::Protocol {
            provider: self.name.clone(),
            message,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ProviderConfig;

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
}
