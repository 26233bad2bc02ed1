//! What a scan hands to people and pipelines: severities for `--fail-on`, baselines of
//! known leaks (fingerprints only) and SARIF 2.1.0 for code-scanning dashboards.

use super::Hit;
use crate::model::Severity;
use std::collections::BTreeSet;
use std::path::Path;

/// How urgent a hit is: a secret of one of the cached keys that is still usable is
/// critical; otherwise by the detector's confidence.
pub fn severity(hit: &Hit, matched_live_key: bool) -> Severity {
    if matched_live_key {
        return Severity::Critical;
    }
    match hit.score {
        90.. => Severity::Critical,
        75..=89 => Severity::High,
        50..=74 => Severity::Medium,
        _ => Severity::Low,
    }
}

/// A baseline: the fingerprints of leaks already known (and handled), so a scan reports
/// only new ones. Holds no secret and nothing of one beyond its SHA-256 fingerprint.
#[derive(Debug, Default, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Baseline {
    pub version: u32,
    pub fingerprints: BTreeSet<String>,
}

/// A baseline file that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {message}")]
pub struct BaselineError {
    pub file: String,
    pub message: String,
}

impl Baseline {
    pub fn from_hits(hits: &[Hit]) -> Baseline {
        Baseline {
            version: 1,
            fingerprints: hits.iter().map(|h| h.fingerprint.clone()).collect(),
        }
    }

    pub fn read(path: &Path) -> Result<Baseline, BaselineError> {
        let e = |message: String| BaselineError {
            file: path.display().to_string(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|x| e(x.to_string()))?;
        let b: Baseline = serde_json::from_str(&text).map_err(|x| {
            e(format!(
                "line {}, column {}: {x}; a baseline is written by `keyaudit scan --write-baseline FILE`",
                x.line(),
                x.column()
            ))
        })?;
        if b.version != 1 {
            return Err(e(format!(
                "version {} is not known (expected 1)",
                b.version
            )));
        }
        if let Some(bad) = b.fingerprints.iter().find(|f| !is_fingerprint(f)) {
            return Err(e(format!(
                "{:?} is not a fingerprint (`sha256:` and 32 hex digits)",
                crate::output::sanitize(bad)
            )));
        }
        Ok(b)
    }

    /// Writes the baseline atomically, readable by its owner only.
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        let mut text = serde_json::to_string_pretty(self).expect("a baseline serialises");
        text.push('\n');
        crate::fsutil::write_atomic(path, text.as_bytes())
    }

    pub fn contains(&self, hit: &Hit) -> bool {
        self.fingerprints.contains(&hit.fingerprint)
    }
}

fn is_fingerprint(s: &str) -> bool {
    s.strip_prefix("sha256:")
        .is_some_and(|h| h.len() == 32 && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// One row of SARIF input: a hit with its severity and what the cache knows of it.
pub struct SarifResult<'a> {
    pub hit: &'a Hit,
    pub severity: Severity,
    /// `provider/key id` of the matched cached key, if any.
    pub key: Option<String>,
    /// `live`, `revoked` or `unknown` when verified.
    pub liveness: Option<&'static str>,
}

fn level(s: Severity) -> &'static str {
    match s {
        Severity::Critical | Severity::High => "error",
        Severity::Medium => "warning",
        Severity::Low => "note",
    }
}

/// A SARIF 2.1.0 log of one run: one rule per detector that fired, one result per hit,
/// located by file, line and column, with the fingerprint as the partial fingerprint
/// (so dashboards track a leak across commits). Messages hold only the masked form.
pub fn sarif(results: &[SarifResult]) -> serde_json::Value {
    use serde_json::json;
    let mut rule_ids: Vec<&'static str> = Vec::new();
    for r in results {
        if !rule_ids.contains(&r.hit.kind) {
            rule_ids.push(r.hit.kind);
        }
    }
    let rules: Vec<_> = rule_ids
        .iter()
        .map(|id| {
            let d = super::rules::by_id(id).expect("a hit's kind is a detector");
            json!({
                "id": d.id,
                "name": d.title,
                "shortDescription": { "text": d.title },
                "fullDescription": { "text": format!("{} ({}; confirmed by {:?}).", d.title, d.vendor, d.validation).to_lowercase() },
                "properties": { "tags": ["security", "secret", d.vendor] }
            })
        })
        .collect();
    let results: Vec<_> = results
        .iter()
        .map(|r| {
            let h = r.hit;
            let mut text = format!("{} found: {}…", h.title, h.shown);
            if let Some(k) = &r.key {
                text.push_str(&format!(" (cached key {k}"));
                if let Some(l) = r.liveness {
                    text.push_str(&format!(", {l}"));
                }
                text.push(')');
            }
            let (uri, inner) = match h.file.split_once('!') {
                Some((archive, member)) => (archive.to_string(), Some(member.to_string())),
                None => (h.file.clone(), None),
            };
            let mut result = json!({
                "ruleId": h.kind,
                "ruleIndex": rule_ids.iter().position(|i| *i == h.kind),
                "level": level(r.severity),
                "message": { "text": text },
                "locations": [{
                    "physicalLocation": {
                        "artifactLocation": { "uri": uri.trim_start_matches("./") },
                        "region": { "startLine": h.line, "startColumn": h.column }
                    }
                }],
                "partialFingerprints": { "keyaudit/fingerprint": h.fingerprint },
                "properties": { "score": h.score, "severity": r.severity.to_string() }
            });
            if let Some(l) = r.liveness {
                result["properties"]["liveness"] = json!(l);
            }
            if let Some(m) = inner {
                result["properties"]["archiveMember"] = json!(m);
            }
            if let Some(i) = &h.introduced {
                result["properties"]["commit"] = json!(i.commit);
                result["properties"]["author"] = json!(i.author);
                result["properties"]["committed"] = json!(i.time.to_rfc3339());
            }
            result
        })
        .collect();
    json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": { "driver": {
                "name": "keyaudit",
                "version": env!("CARGO_PKG_VERSION"),
                "rules": rules
            }},
            "results": results
        }]
    })
}
