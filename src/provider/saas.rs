//! What the SaaS provider kinds (`gitlab`, `openai`, `cloudflare`, `github`) share when
//! built from their configuration entry: the error that names the entry, the base URL
//! checked against the transport rules, the bearer token with where it came from, the
//! HTTP client, and the paging position kept in a cursor.

use super::{ProviderError, Result};
use crate::config::{check_transport, extra_roots, resolve_token, ProviderConfig};
use crate::secret::Secret;
use std::time::Duration;

/// A configuration error of the entry `cfg`, naming its file, line and name.
pub(crate) fn config_error(cfg: &ProviderConfig, message: impl std::fmt::Display) -> ProviderError {
    ProviderError::Config {
        provider: cfg.name.clone(),
        message: format!("{}: provider `{}`: {message}", cfg.origin(), cfg.name),
    }
}

/// The entry's `url` (else `default`), parsed and allowed by the transport rules.
pub(crate) fn base_url(cfg: &ProviderConfig, default: &str) -> Result<reqwest::Url> {
    let url = cfg.url.as_deref().unwrap_or(default);
    let base =
        reqwest::Url::parse(url).map_err(|e| config_error(cfg, format!("bad url `{url}`: {e}")))?;
    check_transport(&base, cfg.allow_insecure_http)
        .map_err(|why| config_error(cfg, format!("`url` = \"{url}\": {why}")))?;
    Ok(base)
}

/// The entry's bearer token and where it came from (for error messages): the built-in
/// token, `token_env` / `token_command`, else the vendor's environment variable `var`.
/// `None` when none of them gives one.
pub(crate) fn bearer_token(cfg: &ProviderConfig, var: &str) -> Result<Option<(Secret, String)>> {
    if let Some(t) = &cfg.token {
        return Ok(Some((t.clone(), "the built-in token".into())));
    }
    if let Some(t) = resolve_token(cfg).map_err(|e| config_error(cfg, e))? {
        let hint = match &cfg.token_env {
            Some(v) => format!("${v}"),
            None => "the output of token_command".into(),
        };
        return Ok(Some((t, hint)));
    }
    Ok(match std::env::var(var) {
        Ok(t) if !t.trim().is_empty() => {
            Some((Secret::new(t.trim().to_string()), format!("${var}")))
        }
        _ => None,
    })
}

/// [`bearer_token`], or an error saying how to give one (`what`: "token", "admin key").
pub(crate) fn required_token(
    cfg: &ProviderConfig,
    var: &str,
    what: &str,
) -> Result<(Secret, String)> {
    bearer_token(cfg, var)?.ok_or_else(|| {
        config_error(
            cfg,
            format!("no {what}: set `token_env` or `token_command`, or export {var}"),
        )
    })
}

/// The HTTP client of the entry: its extra CA roots, its timeout, keyaudit's user agent.
pub(crate) fn http_client(cfg: &ProviderConfig) -> Result<reqwest::Client> {
    let roots = extra_roots(cfg, &[]).map_err(|e| config_error(cfg, e))?;
    roots
        .into_iter()
        .fold(reqwest::Client::builder(), |b, c| b.add_root_certificate(c))
        .timeout(Duration::from_secs(cfg.timeout_secs.unwrap_or(30)))
        .connect_timeout(Duration::from_secs(10))
        .user_agent(concat!("keyaudit/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| config_error(cfg, format!("cannot build the HTTP client: {e}")))
}

/// A paging position kept in a cursor as `source:page`; the start when absent or bad.
pub(crate) fn parse_pos(s: Option<&str>) -> (usize, u32) {
    s.and_then(|s| s.split_once(':'))
        .and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)))
        .unwrap_or((0, 1))
}
