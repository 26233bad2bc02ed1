//! HashiCorp Vault / OpenBao file audit device logs: one JSON object per line, a
//! `request` entry and a `response` entry per API call, matched by `request.id`.
//!
//! Vault HMACs secrets in its audit log; the token accessor (`auth.accessor`,
//! `hmac-sha256:...`) is kept as the key identity, since offline there is no server to
//! resolve it (`vault audit-hash` / `/sys/audit-hash` can map a known accessor to it).

use super::fields::{parse_time, Fields};
use super::{Loc, Mapper};
use crate::model::{Event, Outcome};
use serde_json::Value;
use std::collections::HashMap;

/// Request entries held until their response arrives; beyond this many, the oldest
/// are emitted without one.
const MAX_PENDING: usize = 10_000;

/// Pairs requests with responses; emits one event per API call.
#[derive(Default)]
pub struct VaultMapper {
    pending: HashMap<String, (Event, Loc)>,
    keep_raw: bool,
}

impl VaultMapper {
    /// A mapper; `keep_raw` keeps the raw request entry of calls that get no response.
    pub fn new(keep_raw: bool) -> Self {
        VaultMapper {
            pending: HashMap::new(),
            keep_raw,
        }
    }
}

fn outcome_of(error: Option<&str>) -> Outcome {
    match error {
        None | Some("") => Outcome::Success,
        Some(e) if e.to_ascii_lowercase().contains("permission denied") => Outcome::Denied,
        Some(e) if e.to_ascii_lowercase().contains("invalid token") => Outcome::Denied,
        Some(_) => Outcome::Error,
    }
}

/// Maps one Vault audit entry (request or response) to an event.
pub fn vault_entry_to_event(provider: &str, v: &Value) -> Result<Event, String> {
    let req = match v.get("request") {
        Some(r @ Value::Object(_)) => r,
        Some(_) => return Err("request: expected an object".into()),
        None => return Err("missing request object (not a Vault audit entry)".into()),
    };
    let time = match v.get("time") {
        Some(Value::String(s)) => parse_time(s).map_err(|e| format!("time: {e}"))?,
        Some(_) => return Err("time: expected a string".into()),
        None => return Err("missing time".into()),
    };
    let auth = v.get("auth").unwrap_or(&Value::Null);
    let key_id = auth
        .first_text(&["accessor", "client_token"])
        .or_else(|| req.first_text(&["client_token_accessor", "client_token"]))
        .map(|s| s.into_owned())
        .unwrap_or_else(|| "unauthenticated".to_string());
    let principal = auth
        .first_text(&["display_name", "metadata.username", "entity_id"])
        .map(|s| s.into_owned());
    let op = req.text("operation").unwrap_or_default();
    let p = req.text("path").unwrap_or_default();
    if op.is_empty() && p.is_empty() {
        return Err("missing request.operation and request.path".into());
    }
    let action = format!("{op} {p}").trim().to_string();
    let user_agent = req
        .first_text(&["headers.user-agent.0", "headers.User-Agent.0"])
        .map(|s| s.into_owned());
    let error = v.get("error").and_then(Value::as_str);
    let status_code = v
        .get("response")
        .and_then(|r| r.get("data"))
        .and_then(|d| d.get("http_status_code"))
        .and_then(Value::as_i64);
    let id = req.text("id").map(|s| s.into_owned()).unwrap_or_default();
    let policies = auth
        .get("policies")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(",")
        })
        .filter(|s| !s.is_empty());
    Ok(Event {
        provider: provider.to_string(),
        id,
        time,
        key_id,
        principal,
        action,
        scope: policies,
        source_ip: req.text("remote_address").map(|s| s.into_owned()),
        user_agent,
        outcome: outcome_of(error),
        status_code,
        request_id: req.text("id").map(|s| s.into_owned()),
        records: None,
        raw: None,
    })
}

impl Mapper for VaultMapper {
    fn map(
        &mut self,
        provider: &str,
        v: &Value,
        loc: Loc,
        out: &mut Vec<Event>,
    ) -> Result<(), String> {
        let kind = v.get("type").and_then(Value::as_str).unwrap_or("");
        let e = vault_entry_to_event(provider, v)?;
        match kind {
            "request" if !e.id.is_empty() => {
                if self.pending.len() >= MAX_PENDING {
                    out.extend(self.pending.drain().map(|(_, (e, _))| e));
                }
                let mut e = e;
                if self.keep_raw {
                    e.raw = Some(v.to_string());
                }
                self.pending.insert(e.id.clone(), (e, loc));
            }
            "response" | "request" => {
                if !e.id.is_empty() {
                    self.pending.remove(&e.id);
                }
                out.push(e);
            }
            other => {
                return Err(format!(
                    "type: expected \"request\" or \"response\", found {other:?}"
                ))
            }
        }
        Ok(())
    }

    fn finish(&mut self, out: &mut Vec<Event>) {
        let mut rest: Vec<(Event, Loc)> = self.pending.drain().map(|(_, v)| v).collect();
        rest.sort_by_key(|(_, l)| l.line);
        out.extend(rest.into_iter().map(|(e, _)| e));
    }

    fn oldest_pending(&self) -> Option<Loc> {
        self.pending
            .values()
            .map(|(_, l)| *l)
            .min_by_key(|l| l.line)
    }
}

/// True when a JSON object looks like a Vault audit entry.
pub(crate) fn looks_like(v: &Value) -> bool {
    matches!(
        v.get("type").and_then(Value::as_str),
        Some("request" | "response")
    ) && v.get("request").is_some_and(Value::is_object)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pairs_request_and_response_and_reads_denials() {
        let req = json!({"time": "2024-03-01T10:00:00.5Z", "type": "request",
            "auth": {"accessor": "hmac-sha256:aa", "display_name": "approle", "policies": ["default"]},
            "request": {"id": "r1", "operation": "read", "path": "secret/data/payroll", "remote_address": "10.0.0.5"}});
        let mut resp = req.clone();
        resp["type"] = json!("response");
        resp["error"] = json!("1 error occurred:\n\t* permission denied\n\n");
        let mut m = VaultMapper::new(true);
        let mut out = Vec::new();
        let loc = Loc {
            seq: 1,
            line: 1,
            offset: 0,
        };
        m.map("vault", &req, loc, &mut out).unwrap();
        assert!(out.is_empty() && m.oldest_pending().is_some());
        m.map(
            "vault",
            &resp,
            Loc {
                seq: 2,
                line: 2,
                offset: 10,
            },
            &mut out,
        )
        .unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].outcome, Outcome::Denied);
        assert_eq!(out[0].key_id, "hmac-sha256:aa");
        assert_eq!(out[0].action, "read secret/data/payroll");
        m.finish(&mut out);
        assert_eq!(out.len(), 1);
    }
}
