//! CloudTrail records as SIEMs export them: Elastic Common Schema documents (Elastic's
//! AWS CloudTrail integration), Datadog logs (the Datadog Forwarder and Datadog's
//! CloudTrail pipeline), and Splunk search results (`result` / `_raw`).
//!
//! Where the original record is still there (Splunk's `_raw`, Elastic's
//! `event.original`) it goes through the one CloudTrail mapping
//! ([`super::cloudtrail::cloudtrail_record_to_event`]) unchanged, so the event, its id
//! and its raw record are those of a plain CloudTrail import of the same record, and
//! importing both adds each event once. Otherwise the SIEM's own fields are put back
//! under their CloudTrail names (`source.ip` → `sourceIPAddress`, `network.client.ip` →
//! `sourceIPAddress`, ...) and mapped the same way; the event id is still CloudTrail's
//! `eventID` (ECS `event.id`), so those dedupe too.
//!
//! Sources of each shape: tests/fixtures/siem/README.md and docs/import.md.

use super::cloudtrail::{self, cloudtrail_record_to_event};
use super::fieldmap::JsonPath;
use super::fields::{parse_outcome, scalar_text};
use super::generic::GenericMapper;
use super::{Loc, LogFormat, Mapper};
use crate::model::{Event, Outcome};
use serde_json::{Map, Value};
use std::borrow::Cow;

/// The value at a constant dotted path, nested or flat (`source.ip` either way).
fn at<'a>(v: &'a Value, path: &str) -> Option<Cow<'a, Value>> {
    JsonPath(path.split('.').map(str::to_string).collect()).lookup(v)
}

/// The text at a constant dotted path, if non-empty.
fn text(v: &Value, path: &str) -> Option<String> {
    let found = at(v, path)?;
    scalar_text(&found)
        .map(|s| s.into_owned())
        .filter(|s| !s.trim().is_empty())
}

fn first_text(v: &Value, paths: &[&str]) -> Option<String> {
    paths.iter().find_map(|p| text(v, p))
}

/// A JSON object held in a string field (`_raw`, `event.original`, `message`).
fn embedded(v: &Value, path: &str) -> Option<Value> {
    let s = text(v, path)?;
    if !s.trim_start().starts_with('{') {
        return None;
    }
    serde_json::from_str::<Value>(&s)
        .ok()
        .filter(Value::is_object)
}

fn put(rec: &mut Map<String, Value>, key: &str, value: Option<String>) {
    if let Some(v) = value {
        if rec.get(key).is_none_or(|x| x.is_null()) {
            rec.insert(key.to_string(), Value::String(v));
        }
    }
}

/// Maps an original CloudTrail record found inside a SIEM record, exactly as a plain
/// CloudTrail import maps it: redacted, the same event, id and raw record.
fn original(provider: &str, mut record: Value, keep_raw: bool) -> Result<Event, String> {
    super::redact::redact_value(&mut record);
    let mut e = cloudtrail_record_to_event(provider, &record)?;
    if keep_raw {
        e.raw = Some(record.to_string());
    }
    Ok(e)
}

/// `{"Records": [...]}` inside a string, or one record.
fn originals(
    provider: &str,
    inner: Value,
    keep_raw: bool,
    out: &mut Vec<Event>,
) -> Result<(), String> {
    match inner {
        Value::Object(mut m) if m.get("Records").is_some_and(Value::is_array) => {
            let Some(Value::Array(records)) = m.remove("Records") else {
                return Ok(());
            };
            for (i, r) in records.into_iter().enumerate() {
                out.push(
                    original(provider, r, keep_raw).map_err(|e| format!("Records[{i}]: {e}"))?,
                );
            }
            Ok(())
        }
        other => {
            out.push(original(provider, other, keep_raw)?);
            Ok(())
        }
    }
}

/// The outcome a SIEM states when the record has no `errorCode`.
fn stated_outcome(e: &mut Event, errored: bool, stated: Option<String>) {
    if errored {
        return;
    }
    if let Some(o) = stated.as_deref().and_then(parse_outcome) {
        if o != Outcome::Success {
            e.outcome = o;
        }
    }
}

// ---------------------------------------------------------------------------------
// Elastic Common Schema

/// The ECS document of a record: the record itself, or `_source` of an Elasticsearch
/// hit (`_search` answers, elasticdump files).
fn ecs_doc(v: &Value) -> &Value {
    match v.get("_source") {
        Some(s) if s.is_object() => s,
        _ => v,
    }
}

fn is_ecs(v: &Value) -> bool {
    let d = ecs_doc(v);
    at(d, "@timestamp").is_some()
        && [
            "event.action",
            "event.original",
            "event.provider",
            "source.ip",
            "user_agent.original",
            "ecs.version",
            "aws.cloudtrail",
        ]
        .iter()
        .any(|p| at(d, p).is_some())
}

fn ecs_is_cloudtrail(v: &Value) -> bool {
    let d = ecs_doc(v);
    at(d, "aws.cloudtrail").is_some()
        || text(d, "event.provider").is_some_and(|p| p.ends_with(".amazonaws.com"))
        || text(d, "event.dataset").is_some_and(|p| p == "aws.cloudtrail")
        || embedded(d, "event.original").is_some_and(|o| cloudtrail::looks_like(&o))
}

/// Elastic Common Schema documents, from Elastic's AWS CloudTrail integration or any
/// ECS source.
#[derive(Debug, Clone, Copy)]
pub struct EcsMapper {
    pub keep_raw: bool,
}

impl Mapper for EcsMapper {
    fn map(
        &mut self,
        provider: &str,
        v: &Value,
        _: Loc,
        out: &mut Vec<Event>,
    ) -> Result<(), String> {
        if !v.is_object() {
            return Err(format!(
                "expected an Elastic Common Schema document (JSON object), found {}",
                cloudtrail::kind(v)
            ));
        }
        let d = ecs_doc(v);
        if let Some(inner) = embedded(d, "event.original").filter(cloudtrail::looks_like) {
            return originals(provider, inner, self.keep_raw, out)
                .map_err(|e| format!("event.original: {e}"));
        }
        let mut rec = Map::new();
        put(&mut rec, "eventTime", text(d, "@timestamp"));
        put(
            &mut rec,
            "eventName",
            first_text(d, &["event.action", "aws.cloudtrail.event_name"]),
        );
        put(&mut rec, "eventSource", text(d, "event.provider"));
        put(&mut rec, "eventID", text(d, "event.id"));
        put(
            &mut rec,
            "sourceIPAddress",
            first_text(d, &["source.ip", "source.address", "client.ip"]),
        );
        put(&mut rec, "userAgent", text(d, "user_agent.original"));
        let error = first_text(d, &["aws.cloudtrail.error_code", "error.code"]);
        put(&mut rec, "errorCode", error.clone());
        put(
            &mut rec,
            "requestID",
            first_text(d, &["aws.cloudtrail.request_id", "http.request.id"]),
        );
        let mut ident = Map::new();
        let u = "aws.cloudtrail.user_identity";
        put(
            &mut ident,
            "accessKeyId",
            text(d, &format!("{u}.access_key_id")),
        );
        put(&mut ident, "arn", text(d, &format!("{u}.arn")));
        put(&mut ident, "type", text(d, &format!("{u}.type")));
        put(&mut ident, "invokedBy", text(d, &format!("{u}.invoked_by")));
        put(&mut ident, "principalId", text(d, "user.id"));
        put(&mut ident, "userName", text(d, "user.name"));
        rec.insert("userIdentity".into(), Value::Object(ident));
        let has_id = rec.contains_key("eventID");
        let mut e = cloudtrail_record_to_event(provider, &Value::Object(rec)).map_err(|m| {
            m.replace("eventTime", "@timestamp")
                .replace("eventName", "event.action")
        })?;
        stated_outcome(&mut e, error.is_some(), text(d, "event.outcome"));
        if !has_id {
            // The content hash of the document as it is in the file.
            e.id.clear();
        }
        out.push(e);
        Ok(())
    }
}

// ---------------------------------------------------------------------------------
// Datadog

/// Where a Datadog log keeps its attributes: `attributes.attributes` in a Logs API
/// answer (`data[]`), `attributes` in a log archive line, the record itself when the
/// attributes are at the top (a Log Explorer JSON export).
fn dd_parts(v: &Value) -> (&Value, Option<String>) {
    if let Some(a) = v.get("attributes") {
        if let Some(inner) = a.get("attributes").filter(|x| x.is_object()) {
            return (inner, first_text(a, &["timestamp", "date"]));
        }
        if a.is_object()
            && (v.get("_id").is_some() || v.get("date").is_some() || v.get("message").is_some())
        {
            return (a, first_text(v, &["date", "timestamp"]));
        }
    }
    (v, first_text(v, &["date", "timestamp", "@timestamp"]))
}

fn is_datadog(v: &Value) -> bool {
    if let Some(first) = v
        .get("data")
        .and_then(Value::as_array)
        .and_then(|a| a.first())
    {
        return first.get("type").and_then(Value::as_str) == Some("log") && is_datadog(first);
    }
    let (a, _) = dd_parts(v);
    let dd = [
        "network.client.ip",
        "http.useragent",
        "evt.name",
        "evt.outcome",
    ]
    .iter()
    .any(|p| at(a, p).is_some());
    let ct = [
        "eventSource",
        "eventID",
        "userIdentity",
        "eventName",
        "eventVersion",
    ]
    .iter()
    .any(|k| a.get(*k).is_some());
    dd && ct
}

/// Datadog logs of CloudTrail records: the CloudTrail fields with Datadog's standard
/// attributes beside them (`network.client.ip`, `http.useragent`, `evt.name`,
/// `evt.outcome`).
#[derive(Debug, Clone, Copy)]
pub struct DatadogMapper;

impl Mapper for DatadogMapper {
    fn map(
        &mut self,
        provider: &str,
        v: &Value,
        _: Loc,
        out: &mut Vec<Event>,
    ) -> Result<(), String> {
        if !v.is_object() {
            return Err(format!(
                "expected a Datadog log (JSON object), found {}",
                cloudtrail::kind(v)
            ));
        }
        let (a, log_time) = dd_parts(v);
        // A log whose message still holds the CloudTrail record as text.
        let mut rec = match a.as_object() {
            Some(m) if m.contains_key("eventSource") || m.contains_key("userIdentity") => m.clone(),
            _ => {
                match embedded(a, "message").or_else(|| embedded(v, "message")) {
                    Some(Value::Object(m)) => m,
                    _ => return Err(
                        "no CloudTrail fields (eventSource, userIdentity) in the log's attributes"
                            .into(),
                    ),
                }
            }
        };
        put(&mut rec, "sourceIPAddress", text(a, "network.client.ip"));
        put(&mut rec, "userAgent", text(a, "http.useragent"));
        put(&mut rec, "eventName", text(a, "evt.name"));
        put(&mut rec, "eventTime", log_time);
        let errored = rec.get("errorCode").is_some_and(|c| !c.is_null());
        let has_id = rec.get("eventID").is_some_and(Value::is_string);
        let mut e = cloudtrail_record_to_event(provider, &Value::Object(rec))?;
        stated_outcome(&mut e, errored, text(a, "evt.outcome"));
        if !has_id {
            e.id.clear();
        }
        // The raw record is the log as exported (the importer keeps it).
        out.push(e);
        Ok(())
    }
}

// ---------------------------------------------------------------------------------
// Splunk

/// The result inside a Splunk export line: `{"result": {...}}` (search/jobs/export,
/// Splunk Web's JSON export), or an element of `results` (a job's results).
fn splunk_result(v: &Value) -> Option<&Value> {
    match v.get("result") {
        Some(r) if r.is_object() => Some(r),
        _ if v.get("_raw").is_some() || v.get("_time").is_some() => Some(v),
        _ => None,
    }
}

fn is_splunk(v: &Value) -> bool {
    if let Some(first) = v
        .get("results")
        .and_then(Value::as_array)
        .and_then(|a| a.first())
    {
        return splunk_result(first).is_some();
    }
    v.get("result").is_some_and(Value::is_object)
        || (v.get("_raw").is_some_and(Value::is_string)
            && (v.get("_time").is_some() || v.get("sourcetype").is_some()))
}

fn splunk_is_cloudtrail(v: &Value) -> bool {
    let first = v
        .get("results")
        .and_then(Value::as_array)
        .and_then(|a| a.first())
        .unwrap_or(v);
    let Some(r) = splunk_result(first) else {
        return false;
    };
    text(r, "sourcetype").is_some_and(|s| s.starts_with("aws:cloudtrail"))
        || embedded(r, "_raw").is_some_and(|o| cloudtrail::looks_like(&o))
}

/// Splits Splunk's flat field names (`userIdentity.accessKeyId`) into nested objects,
/// for results exported without `_raw` (`| table ...`).
fn unflatten(r: &Map<String, Value>) -> Value {
    let mut out = Map::new();
    for (k, v) in r {
        if k.starts_with('_') {
            continue;
        }
        let mut cur = &mut out;
        let parts: Vec<&str> = k.split('.').collect();
        for (i, p) in parts.iter().enumerate() {
            if i + 1 == parts.len() {
                cur.insert(p.to_string(), v.clone());
            } else {
                let next = cur
                    .entry(p.to_string())
                    .or_insert_with(|| Value::Object(Map::new()));
                if !next.is_object() {
                    *next = Value::Object(Map::new());
                }
                let Value::Object(m) = next else { break };
                cur = m;
            }
        }
    }
    Value::Object(out)
}

/// Splunk search results; `_raw` holds the original record.
#[derive(Debug, Clone, Default)]
pub struct SplunkMapper {
    pub keep_raw: bool,
    pub generic: GenericMapper,
}

impl SplunkMapper {
    /// CIM fields Splunk extracts, for what the original record lacks.
    fn cim(e: &mut Event, r: &Value) {
        if e.source_ip.is_none() {
            e.source_ip = first_text(r, &["src_ip", "src"]);
        }
        if e.user_agent.is_none() {
            e.user_agent = first_text(r, &["http_user_agent", "user_agent"]);
        }
    }
}

impl Mapper for SplunkMapper {
    fn map(
        &mut self,
        provider: &str,
        v: &Value,
        _: Loc,
        out: &mut Vec<Event>,
    ) -> Result<(), String> {
        if !v.is_object() {
            return Err(format!(
                "expected a Splunk result (JSON object), found {}",
                cloudtrail::kind(v)
            ));
        }
        let Some(r) = splunk_result(v) else {
            // The export's own lines (`preview`, `lastrow`, `messages`) hold no event.
            if ["preview", "lastrow", "messages", "init_offset", "fields"]
                .iter()
                .any(|k| v.get(*k).is_some())
            {
                return Ok(());
            }
            return Err(
                "expected a Splunk result (a `result` object, or `_raw` and `_time`)".into(),
            );
        };
        let before = out.len();
        match embedded(r, "_raw") {
            Some(inner) if cloudtrail::looks_like(&inner) => {
                originals(provider, inner, self.keep_raw, out).map_err(|e| format!("_raw: {e}"))?;
            }
            Some(inner) => {
                let mut e = self.generic.to_event(provider, &inner).or_else(|err| {
                    let mut with_time = inner.clone();
                    if let (Value::Object(m), Some(t)) = (&mut with_time, text(r, "_time")) {
                        m.entry("time").or_insert(Value::String(t));
                        self.generic.to_event(provider, &with_time)
                    } else {
                        Err(err)
                    }
                })?;
                if self.keep_raw {
                    e.raw = Some(inner.to_string());
                }
                out.push(e);
            }
            None => {
                let flat = r.as_object().cloned().unwrap_or_default();
                let mut rec = unflatten(&flat);
                if cloudtrail::looks_like(&rec) {
                    if let Value::Object(m) = &mut rec {
                        put(m, "eventTime", text(r, "_time"));
                    }
                    out.push(cloudtrail_record_to_event(provider, &rec)?);
                } else {
                    if let (Value::Object(m), Some(t)) = (&mut rec, text(r, "_time")) {
                        m.entry("time").or_insert(Value::String(t));
                    }
                    out.push(self.generic.to_event(provider, &rec)?);
                }
            }
        }
        for e in &mut out[before..] {
            Self::cim(e, r);
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------
// Detection and containers

/// What the first record says, if it is a SIEM export: the format, why, and the
/// default source (`cloudtrail` when the records are CloudTrail's, so they dedupe
/// with a plain CloudTrail import).
pub(crate) fn detect(v: &Value) -> Option<(LogFormat, &'static str, &'static str)> {
    if is_splunk(v) {
        return Some(if splunk_is_cloudtrail(v) {
            (
                LogFormat::Splunk,
                "Splunk search results (result, _raw holding CloudTrail records)",
                "cloudtrail",
            )
        } else {
            (
                LogFormat::Splunk,
                "Splunk search results (result, _raw)",
                "splunk",
            )
        });
    }
    if is_datadog(v) {
        return Some((
            LogFormat::Datadog,
            "Datadog CloudTrail logs (network.client.ip, http.useragent, evt.* beside the CloudTrail fields)",
            "cloudtrail",
        ));
    }
    let hit = v
        .get("hits")
        .and_then(|h| h.get("hits"))
        .and_then(Value::as_array)
        .and_then(|a| a.first())
        .unwrap_or(v);
    if is_ecs(hit) {
        return Some(if ecs_is_cloudtrail(hit) {
            (
                LogFormat::Ecs,
                "Elastic Common Schema with AWS CloudTrail fields (@timestamp, event.action, aws.cloudtrail.*)",
                "cloudtrail",
            )
        } else {
            (
                LogFormat::Ecs,
                "Elastic Common Schema (@timestamp, event.action, source.ip)",
                "ecs",
            )
        });
    }
    None
}

/// The default source of a SIEM format forced with `--format`, from its first record.
pub(crate) fn default_source(format: LogFormat, first: Option<&Value>) -> &'static str {
    match (format, first.and_then(detect)) {
        (_, Some((f, _, source))) if f == format => source,
        (LogFormat::Datadog, _) => "cloudtrail",
        (f, _) => f.as_str(),
    }
}

/// True when a CSV header row names ECS fields (a Kibana Discover CSV export).
pub(crate) fn csv_is_ecs(cols: &[String]) -> bool {
    let has = |n: &str| cols.iter().any(|c| c == n);
    has("@timestamp") && (has("event.action") || has("source.ip") || has("user_agent.original"))
}

/// Takes the records out of a container document of `format`: Splunk's `results`,
/// the Datadog Logs API's `data`, an Elasticsearch answer's `hits.hits`.
pub(crate) fn take_records(format: LogFormat, v: &mut Value) -> Option<(&'static str, Vec<Value>)> {
    let (name, slot) = match format {
        LogFormat::Splunk => ("results", v.get_mut("results")),
        LogFormat::Datadog => ("data", v.get_mut("data")),
        LogFormat::Ecs => (
            "hits.hits",
            v.get_mut("hits").and_then(|h| h.get_mut("hits")),
        ),
        _ => return None,
    };
    match slot {
        Some(Value::Array(a)) => Some((name, std::mem::take(a))),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn each_shape_is_recognised_and_keeps_ip_and_agent() {
        let ct = json!({"eventVersion":"1.08","userIdentity":{"type":"IAMUser","arn":"arn:aws:iam::111122223333:user/a","accessKeyId":"AKIAIOSFODNN7EXAMPLE"},
            "eventTime":"2024-03-01T10:00:00Z","eventSource":"s3.amazonaws.com","eventName":"GetObject",
            "sourceIPAddress":"198.51.100.1","userAgent":"aws-cli/2","requestID":"r1","eventID":"ev-1"});
        let splunk = json!({"preview": false, "result": {"_raw": ct.to_string(), "_time": "2024-03-01T10:00:00.000+00:00", "sourcetype": "aws:cloudtrail"}});
        assert_eq!(detect(&splunk).unwrap().2, "cloudtrail");
        let mut out = Vec::new();
        SplunkMapper {
            keep_raw: true,
            ..Default::default()
        }
        .map("cloudtrail", &splunk, Loc::default(), &mut out)
        .unwrap();
        let plain = cloudtrail_record_to_event("cloudtrail", &ct).unwrap();
        assert_eq!(out[0].id, plain.id);
        assert_eq!(out[0].source_ip.as_deref(), Some("198.51.100.1"));

        let dd = json!({"_id": "x", "date": "2024-03-01T10:00:00Z", "source": "cloudtrail", "attributes": {
            "eventSource": "s3.amazonaws.com", "evt": {"name": "GetObject", "outcome": "success"}, "eventID": "ev-1",
            "userIdentity": {"accessKeyId": "AKIAIOSFODNN7EXAMPLE"},
            "network": {"client": {"ip": "198.51.100.1"}}, "http": {"useragent": "aws-cli/2"}}});
        assert_eq!(detect(&dd).unwrap().0, LogFormat::Datadog);
        let mut out = Vec::new();
        DatadogMapper
            .map("cloudtrail", &dd, Loc::default(), &mut out)
            .unwrap();
        assert_eq!(
            (
                out[0].source_ip.as_deref(),
                out[0].user_agent.as_deref(),
                out[0].action.as_str()
            ),
            (
                Some("198.51.100.1"),
                Some("aws-cli/2"),
                "s3.amazonaws.com:GetObject"
            )
        );

        let ecs = json!({"@timestamp": "2024-03-01T10:00:00.000Z", "event.action": "GetObject", "event.provider": "s3.amazonaws.com",
            "event.id": "ev-1", "event.outcome": "success", "source.ip": "198.51.100.1", "user_agent.original": "aws-cli/2",
            "aws.cloudtrail.user_identity.access_key_id": "AKIAIOSFODNN7EXAMPLE"});
        assert_eq!(detect(&ecs).unwrap().2, "cloudtrail");
        let mut out = Vec::new();
        EcsMapper { keep_raw: true }
            .map("cloudtrail", &ecs, Loc::default(), &mut out)
            .unwrap();
        assert_eq!(out[0].id, "ev-1");
        assert_eq!(out[0].key_id, "AKIAIOSFODNN7EXAMPLE");
        assert_eq!(out[0].user_agent.as_deref(), Some("aws-cli/2"));
    }

    #[test]
    fn ecs_failure_without_error_code_is_not_a_success() {
        let ecs = json!({"@timestamp": "2024-03-01T10:00:00Z", "event": {"action": "ConsoleLogin", "outcome": "failure"}, "source": {"ip": "192.0.2.9"}});
        let mut out = Vec::new();
        EcsMapper { keep_raw: false }
            .map("ecs", &ecs, Loc::default(), &mut out)
            .unwrap();
        assert_eq!(out[0].outcome, Outcome::Error);
        let err = EcsMapper { keep_raw: false }
            .map(
                "ecs",
                &json!({"event": {"action": "x"}}),
                Loc::default(),
                &mut out,
            )
            .unwrap_err();
        assert_eq!(err, "missing @timestamp");
    }
}
