//! HashiCorp Vault / OpenBao file audit device logs: one JSON object per line, a
//! `request` entry and a `response` entry per API call, matched by `request.id`.
//!
//! Vault HMACs secrets in its audit log; the token accessor (`auth.accessor`,
//! `hmac-sha256:...`) is kept as the key identity, since offline there is no server to
//! resolve it (`vault audit-hash` / `/sys/audit-hash` can map a known accessor to it).

use super::fields::parse_time;
use super::{Loc, Mapper};
use crate::model::Event;
use crate::provider::vault::audit::{outcome_of, Entry};
use chrono::{DateTime, Utc};
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

/// Maps one Vault audit entry (request or response) to an event. The entry is read by
/// the provider's parser ([`Entry`]); this adds the checks and the messages of an import.
pub fn vault_entry_to_event(provider: &str, v: &Value) -> Result<Event, String> {
    match v.get("request") {
        Some(Value::Object(_)) => {}
        Some(_) => return Err("request: expected an object".into()),
        None => return Err("missing request object (not a Vault audit entry)".into()),
    }
    let time = match v.get("time") {
        Some(Value::String(s)) => parse_time(s).map_err(|e| format!("time: {e}"))?,
        Some(_) => return Err("time: expected a string".into()),
        None => return Err("missing time".into()),
    };
    let entry = Entry::from_value(v).map_err(|e| format!("not a Vault audit entry: {e}"))?;
    entry_to_event(provider, entry, time)
}

/// The event of an entry whose time is `time`.
fn entry_to_event(provider: &str, entry: Entry, time: DateTime<Utc>) -> Result<Event, String> {
    fn text(s: &Option<String>) -> Option<&str> {
        s.as_deref().filter(|s| !s.trim().is_empty())
    }
    let outcome = outcome_of(entry.error.as_deref());
    let status_code = entry.http_status_code();
    let user_agent = entry.user_agent().map(str::to_string);
    let Some(req) = entry.request else {
        return Err("missing request object (not a Vault audit entry)".into());
    };
    let auth = entry.auth.as_ref();
    let key_id = auth
        .and_then(|a| text(&a.accessor).or_else(|| text(&a.client_token)))
        .or_else(|| text(&req.client_token_accessor).or_else(|| text(&req.client_token)))
        .map(str::to_string)
        .unwrap_or_else(|| "unauthenticated".to_string());
    let principal = auth
        .and_then(|a| {
            text(&a.display_name)
                .or_else(|| {
                    a.metadata
                        .as_ref()
                        .and_then(|m| m.get("username"))
                        .map(String::as_str)
                        .filter(|s| !s.trim().is_empty())
                })
                .or_else(|| text(&a.entity_id))
        })
        .map(str::to_string);
    let op = req.operation.as_deref().unwrap_or_default();
    let p = req.path.as_deref().unwrap_or_default();
    if op.is_empty() && p.is_empty() {
        return Err("missing request.operation and request.path".into());
    }
    let action = format!("{op} {p}").trim().to_string();
    let policies = auth
        .and_then(|a| a.policies.as_ref())
        .map(|a| a.join(","))
        .filter(|s| !s.is_empty());
    Ok(Event {
        provider: provider.to_string(),
        id: req.id.clone().unwrap_or_default(),
        time,
        key_id,
        principal,
        action,
        scope: policies,
        source_ip: req.remote_address,
        user_agent,
        outcome,
        status_code,
        request_id: req.id,
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
    use crate::model::Outcome;
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
