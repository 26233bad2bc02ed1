//! Audit records as events: each request is tied to its token through the HMAC of the
//! token's accessor (learned from keyaudit's own lookups in the log, else asked of
//! `sys/audit-hash`); keyaudit's own bookkeeping calls are left out.

use super::client::Need;
use super::{audit, State, VaultProvider, IN_FLIGHT};
use crate::model::{Event, Outcome};
use crate::provider::http::encode_segment;
use crate::provider::Result;
use futures_util::stream::{self, StreamExt};
use reqwest::Method;
use serde_json::{json, Value};

/// The key id of requests whose token keyaudit could not tie to a listed accessor.
pub fn unknown_key_id(logged_accessor: &str) -> String {
    let hex = logged_accessor
        .strip_prefix("hmac-sha256:")
        .unwrap_or(logged_accessor);
    format!("unknown:{}", &hex[..hex.len().min(12)])
}

impl VaultProvider {
    pub(super) async fn audit_hash(&self, device: &str, accessor: &str) -> Result<String> {
        let path = format!("sys/audit-hash/{}", encode_segment(device));
        let need = Need {
            doing: format!("hashing token accessor {accessor} with audit device `{device}`"),
            capability: "`update`",
            path: &path,
            accessor,
        };
        let v = self
            .request(
                Method::POST,
                &path,
                Some(&json!({ "input": accessor })),
                &need,
            )
            .await?;
        v.pointer("/data/hash")
            .or_else(|| v.get("hash"))
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| self.protocol(format!("{path}: no hash in the answer")))
    }

    /// Learns the HMACs of the accessors looked up since the listing began from
    /// keyaudit's own lookup lines in the audit log (once).
    pub(super) async fn harvest(&self) {
        let (path, ids, mark) = {
            let mut st = self.state();
            (
                self.audit_log.clone(),
                std::mem::take(&mut st.lookup_ids),
                st.log_mark,
            )
        };
        let Some(path) = path.filter(|_| !ids.is_empty()) else {
            return;
        };
        let found = tokio::task::spawn_blocking(move || audit::harvest_lookups(&path, mark, &ids))
            .await
            .ok()
            .and_then(|r| r.ok())
            .unwrap_or_default();
        let mut st = self.state();
        for (h, a) in found {
            st.hashed.insert(a.clone());
            st.by_hmac.insert(h, a);
        }
    }

    /// Hashes every known accessor not hashed yet (once per accessor per process).
    pub(super) async fn hash_known(&self, device: &str) -> Result<()> {
        let todo: Vec<String> = {
            let st = self.state();
            st.known
                .iter()
                .filter(|a| !st.hashed.contains(*a))
                .cloned()
                .collect()
        };
        if todo.is_empty() {
            return Ok(());
        }
        let mut results = stream::iter(todo)
            .map(|a| async move {
                let h = self.audit_hash(device, &a).await;
                (a, h)
            })
            .buffer_unordered(IN_FLIGHT);
        while let Some((a, h)) = results.next().await {
            let h = h?;
            let mut st = self.state();
            st.hashed.insert(a.clone());
            st.by_hmac.insert(h, a);
        }
        Ok(())
    }

    /// keyaudit's own accessor (`lookup-self`), once.
    pub(super) async fn own_accessor(&self) -> Option<String> {
        if let Some(own) = self.state().own.clone() {
            return own;
        }
        let own = self
            .call(Method::GET, "auth/token/lookup-self", None, None)
            .await
            .ok()
            .and_then(|v| {
                v.pointer("/data/accessor")
                    .and_then(Value::as_str)
                    .map(str::to_string)
            });
        let mut st = self.state();
        st.own = Some(own.clone());
        if let Some(a) = &own {
            st.known.insert(a.clone());
        }
        own
    }

    /// Resolves a logged accessor (HMAC'd or plain) to a known accessor.
    pub(super) fn resolve(&self, st: &State, logged: &str) -> Option<String> {
        if logged.starts_with("hmac-sha256:") {
            st.by_hmac.get(logged).cloned()
        } else {
            Some(logged.to_string())
        }
    }

    /// keyaudit's own read-only sync calls (listing, lookups, audit hashes).
    pub(super) fn is_own_bookkeeping(&self, r: &audit::AuditRecord) -> bool {
        let Some(device) = &self.audit_device else {
            return false;
        };
        let path = r.path.trim_end_matches('/');
        r.error.is_none()
            && (path == "auth/token/accessors"
                || path == "auth/token/lookup-accessor"
                || path == "auth/token/lookup-self"
                || path == format!("sys/audit-hash/{device}"))
    }

    /// Turns audit records into events, tying each to its token.
    pub(super) async fn events_of(&self, records: Vec<audit::AuditRecord>) -> Result<Vec<Event>> {
        let device = self.audit_device.clone().unwrap_or_default();
        let untied = {
            let st = self.state();
            records.iter().any(|r| {
                r.accessor
                    .iter()
                    .chain(r.issued_accessor.iter())
                    .any(|a| self.resolve(&st, a).is_none())
            })
        };
        if untied {
            let listed = self.state().listing.is_some();
            if !listed {
                let all = self.list_accessors().await?;
                let mut st = self.state();
                st.known.extend(all.iter().cloned());
                st.listing = Some(all);
            }
            self.own_accessor().await;
            self.harvest().await;
            let still = {
                let st = self.state();
                records.iter().any(|r| {
                    r.accessor
                        .iter()
                        .chain(r.issued_accessor.iter())
                        .any(|a| self.resolve(&st, a).is_none())
                })
            };
            if still {
                self.hash_known(&device).await?;
            }
        }
        let own = self.own_accessor().await;
        let mut st = self.state();
        let mut out = Vec::with_capacity(records.len());
        for r in records {
            let requester = r.accessor.as_deref().map(|a| (a, self.resolve(&st, a)));
            let key_id = match (&requester, &r.issued_accessor) {
                (Some((_, Some(a))), _) => a.clone(),
                (Some((logged, None)), _) => unknown_key_id(logged),
                (None, Some(issued)) => self
                    .resolve(&st, issued)
                    .unwrap_or_else(|| unknown_key_id(issued)),
                (None, None) => match r.token_ref.as_ref().and_then(|t| st.by_token.get(t)) {
                    Some(a) => a.clone(),
                    None => match &r.token_ref {
                        Some(t) => format!("invalid-token:{}", &t[..t.len().min(12)]),
                        None => "anonymous".to_string(),
                    },
                },
            };
            if let (Some((_, Some(a))), Some(t)) = (&requester, &r.token_ref) {
                st.by_token.insert(t.clone(), a.clone());
            }
            let mine = requester
                .as_ref()
                .and_then(|(_, a)| a.as_deref())
                .is_some_and(|a| Some(a) == own.as_deref());
            if mine && self.is_own_bookkeeping(&r) {
                continue;
            }
            let outcome = audit::outcome_of(r.error.as_deref());
            out.push(Event {
                provider: self.name.clone(),
                id: r.request_id.clone(),
                time: r.time,
                key_id,
                principal: r.display_name,
                action: format!("{} {}", r.operation, r.path),
                scope: r.granting_policy,
                source_ip: r.remote_address,
                user_agent: r.user_agent,
                outcome,
                status_code: (outcome == Outcome::Denied).then_some(403),
                request_id: Some(r.request_id),
                records: None,
                raw: None,
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_tokens_get_a_short_stable_id() {
        assert_eq!(
            unknown_key_id("hmac-sha256:662ad38cd27b6671b7a33393"),
            "unknown:662ad38cd27b"
        );
    }
}
