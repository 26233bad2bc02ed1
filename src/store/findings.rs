//! Findings in the cache.

use super::{Result, Store, StoreError};
use crate::model::{
    from_millis, to_millis, Category, Event, Finding, FindingStatus, Millis, Outcome, Severity,
};
use chrono::{DateTime, Utc};
use rusqlite::types::Value;
use rusqlite::{params, OptionalExtension, Row};

/// Which findings to read, ranked by severity then recency.
#[derive(Debug, Clone, Default)]
pub struct FindingQuery {
    pub min_severity: Option<Severity>,
    pub status: Option<FindingStatus>,
    pub key_ref: Option<i64>,
    pub limit: Option<usize>,
}

fn severity_code(s: Severity) -> i64 {
    Severity::ALL.iter().position(|x| *x == s).unwrap_or(0) as i64
}

const FINDING_COLUMNS: &str =
    "f.id, f.rule, f.category, f.severity, p.name, k.ext_id, f.title, f.explanation,
     f.evidence, f.first_seen, f.last_seen, f.status, f.note, f.suppressed_until";

fn finding_row(r: &Row<'_>) -> rusqlite::Result<Finding> {
    let bad = |i: usize, e: String| {
        rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, e.into())
    };
    let category: String = r.get(2)?;
    let status: String = r.get(11)?;
    let evidence: String = r.get(8)?;
    Ok(Finding {
        id: r.get(0)?,
        rule: r.get(1)?,
        category: category.parse::<Category>().map_err(|e| bad(2, e))?,
        severity: Severity::ALL
            .get(r.get::<_, i64>(3)? as usize)
            .copied()
            .unwrap_or(Severity::Low),
        provider: r.get(4)?,
        key_id: r.get(5)?,
        title: r.get(6)?,
        explanation: r.get(7)?,
        evidence: serde_json::from_str(&evidence).map_err(|e| bad(8, e.to_string()))?,
        first_seen: from_millis(r.get(9)?),
        last_seen: from_millis(r.get(10)?),
        status: status.parse::<FindingStatus>().map_err(|e| bad(11, e))?,
        note: r.get(12)?,
        suppressed_until: r.get::<_, Option<Millis>>(13)?.map(from_millis),
    })
}

impl Store {
    /// Findings ranked by severity (highest first), then most recently seen.
    pub fn findings(&self, q: &FindingQuery) -> Result<Vec<Finding>> {
        let mut sql = format!(
            "SELECT {FINDING_COLUMNS} FROM findings f
             JOIN keys k ON k.id = f.key_ref JOIN providers p ON p.id = k.provider_id WHERE 1 = 1"
        );
        let mut args: Vec<Value> = Vec::new();
        if let Some(s) = q.min_severity {
            args.push(Value::Integer(severity_code(s)));
            sql.push_str(&format!(" AND f.severity >= ?{}", args.len()));
        }
        if let Some(s) = q.status {
            args.push(Value::Text(s.as_str().into()));
            sql.push_str(&format!(" AND f.status = ?{}", args.len()));
        }
        if let Some(k) = q.key_ref {
            args.push(Value::Integer(k));
            sql.push_str(&format!(" AND f.key_ref = ?{}", args.len()));
        }
        sql.push_str(" ORDER BY f.severity DESC, f.last_seen DESC, f.id");
        if let Some(n) = q.limit {
            sql.push_str(&format!(" LIMIT {n}"));
        }
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let rows = stmt.query_map(rusqlite::params_from_iter(args), finding_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// One finding by id.
    pub fn finding(&self, id: &str) -> Result<Option<Finding>> {
        let sql = format!(
            "SELECT {FINDING_COLUMNS} FROM findings f
             JOIN keys k ON k.id = f.key_ref JOIN providers p ON p.id = k.provider_id
             WHERE f.id = ?1"
        );
        Ok(self
            .conn
            .prepare_cached(&sql)?
            .query_row([id], finding_row)
            .optional()?)
    }

    /// Writes a finding. A new one is inserted as given; an existing one keeps its
    /// `first_seen` and, when an operator acknowledged or suppressed it, its status and
    /// note; a resolved one that holds again is reopened.
    pub fn upsert_finding(&self, f: &Finding) -> Result<()> {
        let key_ref: i64 = self
            .conn
            .prepare_cached(
                "SELECT k.id FROM keys k JOIN providers p ON p.id = k.provider_id
                 WHERE p.name = ?1 AND k.ext_id = ?2",
            )?
            .query_row(params![f.provider, f.key_id], |r| r.get(0))
            .optional()?
            .ok_or_else(|| StoreError::UnknownKey {
                provider: f.provider.clone(),
                key: f.key_id.clone(),
            })?;
        let evidence = serde_json::to_string(&f.evidence).map_err(|source| StoreError::Json {
            what: "evidence",
            source,
        })?;
        self.conn
            .prepare_cached(
                "INSERT INTO findings (id, rule, category, severity, key_ref, title, explanation,
                                       evidence, first_seen, last_seen, status, note, suppressed_until)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)
                 ON CONFLICT(id) DO UPDATE SET
                    severity = excluded.severity, title = excluded.title,
                    explanation = excluded.explanation, evidence = excluded.evidence,
                    last_seen = max(findings.last_seen, excluded.last_seen),
                    status = CASE WHEN findings.status = 'resolved' THEN 'open' ELSE findings.status END",
            )?
            .execute(params![
                f.id,
                f.rule,
                f.category.as_str(),
                severity_code(f.severity),
                key_ref,
                f.title,
                f.explanation,
                evidence,
                to_millis(f.first_seen),
                to_millis(f.last_seen),
                f.status.as_str(),
                f.note,
                f.suppressed_until.map(to_millis),
            ])?;
        Ok(())
    }

    /// Sets an operator status and note on a finding. Returns false if there is no such
    /// finding.
    pub fn set_finding_status(
        &self,
        id: &str,
        status: FindingStatus,
        note: Option<&str>,
        until: Option<DateTime<Utc>>,
    ) -> Result<bool> {
        let n = self.conn.execute(
            "UPDATE findings SET status = ?2, note = coalesce(?3, note), suppressed_until = ?4
             WHERE id = ?1",
            params![id, status.as_str(), note, until.map(to_millis)],
        )?;
        Ok(n == 1)
    }

    /// Applies the team's decisions (oldest first) to the findings this cache holds, in
    /// one transaction: a finding a member acknowledged or suppressed takes that status
    /// and note here too. Resolved findings are left as they are (the condition no
    /// longer holds here; if it holds again the next application decides it). Returns
    /// the decisions that changed a finding.
    pub fn apply_decisions(
        &mut self,
        decisions: &[super::shared::Decision],
    ) -> Result<Vec<super::shared::Decision>> {
        let tx = self.conn.transaction()?;
        let mut changed = Vec::new();
        {
            let mut stmt = tx.prepare_cached(
                "UPDATE findings SET status = ?2, note = ?3, suppressed_until = ?4
                 WHERE id = ?1 AND status <> 'resolved'
                   AND (status <> ?2 OR note IS NOT ?3 OR suppressed_until IS NOT ?4)",
            )?;
            for d in decisions {
                let n = stmt.execute(params![
                    d.finding,
                    d.status.as_str(),
                    d.note,
                    d.until.map(to_millis)
                ])?;
                if n > 0 {
                    changed.push(d.clone());
                }
            }
        }
        tx.commit()?;
        Ok(changed)
    }

    /// Resolves a finding id or a unique prefix of one (at least 4 characters).
    pub fn resolve_finding_id(&self, id: &str) -> Result<Option<String>> {
        if let Some(f) = self.finding(id)? {
            return Ok(Some(f.id));
        }
        if id.len() < 4 {
            return Ok(None);
        }
        let mut stmt = self
            .conn
            .prepare_cached("SELECT id FROM findings WHERE id LIKE ?1 || '%' LIMIT 2")?;
        let ids: Vec<String> = stmt
            .query_map([id], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        Ok(if ids.len() == 1 {
            ids.into_iter().next()
        } else {
            None
        })
    }

    /// The evidence events of a finding that are still in the cache, in evidence order.
    pub fn evidence_events(&self, f: &Finding) -> Result<Vec<Event>> {
        let mut out = Vec::new();
        for id in &f.evidence {
            out.extend(self.evidence_event(f, id)?);
        }
        Ok(out)
    }

    /// One evidence event (by its provider id) of a finding, if it is still in the cache.
    pub fn evidence_event(&self, f: &Finding, id: &str) -> Result<Option<Event>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT e.time, e.principal, e.action, e.scope, e.source_ip, e.user_agent, e.outcome,
                    e.status_code, e.request_id, e.records
             FROM events e JOIN providers p ON p.id = e.provider_id
             WHERE p.name = ?1 AND e.ext_id = ?2",
        )?;
        Ok(stmt
            .query_row(params![f.provider, id], |r| {
                Ok(Event {
                    provider: f.provider.clone(),
                    id: id.to_string(),
                    time: from_millis(r.get(0)?),
                    key_id: f.key_id.clone(),
                    principal: r.get(1)?,
                    action: r.get(2)?,
                    scope: r.get(3)?,
                    source_ip: r.get(4)?,
                    user_agent: r.get(5)?,
                    outcome: match r.get::<_, i64>(6)? {
                        0 => Outcome::Success,
                        1 => Outcome::Denied,
                        _ => Outcome::Error,
                    },
                    status_code: r.get(7)?,
                    request_id: r.get(8)?,
                    records: r.get(9)?,
                    raw: None,
                })
            })
            .optional()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Key;

    fn finding(id: &str, sev: Severity) -> Finding {
        Finding {
            id: id.into(),
            rule: "stale_key".into(),
            category: Category::Hygiene,
            severity: sev,
            provider: "p".into(),
            key_id: "k1".into(),
            title: "t".into(),
            explanation: "e".into(),
            evidence: vec!["e1".into()],
            first_seen: from_millis(1000),
            last_seen: from_millis(2000),
            status: FindingStatus::Open,
            note: None,
            suppressed_until: None,
        }
    }

    #[test]
    fn rank_and_keep_operator_status() {
        let mut store = Store::open_in_memory().unwrap();
        store.ensure_provider("p", "http", None).unwrap();
        store
            .upsert_keys("p", &[Key::seen_in_logs("p", "k1")], Utc::now())
            .unwrap();
        store.upsert_finding(&finding("a", Severity::Low)).unwrap();
        store
            .upsert_finding(&finding("b", Severity::Critical))
            .unwrap();
        let ids: Vec<String> = store
            .findings(&FindingQuery::default())
            .unwrap()
            .into_iter()
            .map(|f| f.id)
            .collect();
        assert_eq!(ids, ["b", "a"]);
        assert!(store
            .set_finding_status(
                "b",
                FindingStatus::Acknowledged,
                Some("known partner test"),
                None
            )
            .unwrap());
        store
            .upsert_finding(&finding("b", Severity::Critical))
            .unwrap();
        let b = store.finding("b").unwrap().unwrap();
        assert_eq!(b.status, FindingStatus::Acknowledged);
        assert_eq!(b.note.as_deref(), Some("known partner test"));
        let high = store
            .findings(&FindingQuery {
                min_severity: Some(Severity::High),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(high.len(), 1);
        // Keys show their worst open finding.
        let k = store.key("p", "k1").unwrap().unwrap();
        assert_eq!(
            (k.open_findings, k.worst_severity),
            (1, Some(Severity::Low))
        );
    }
}
