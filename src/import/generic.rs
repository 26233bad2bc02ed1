//! Any other JSON-lines or CSV log, with a field mapping from the config
//! (`[import.mapping.NAME]`) and guesses for the usual field names.

use super::fieldmap::Field;
use super::fields::{parse_outcome, parse_time, Fields};
use super::{Loc, Mapper};
use crate::model::{Event, Outcome};
use serde::Deserialize;
use serde_json::Value;

/// Which field holds what, as written in `[import.mapping.NAME]`. Dotted names reach
/// into nested JSON objects; for CSV they are column names.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Mapping {
    /// The time of the request (RFC 3339, `YYYY-MM-DD HH:MM:SS` UTC, or epoch s/ms).
    pub time: Option<String>,
    /// The id of the key that made the request.
    pub key_id: Option<String>,
    pub source_ip: Option<String>,
    pub user_agent: Option<String>,
    /// What was done (`GET /v1/employees`, `export`, ...).
    pub action: Option<String>,
    /// Success/denied/error, or an HTTP status code.
    pub outcome: Option<String>,
    /// The record's own unique id (else a content hash is used).
    pub id: Option<String>,
    pub principal: Option<String>,
    pub request_id: Option<String>,
    /// HTTP status code (also used for the outcome when `outcome` is not mapped).
    pub status_code: Option<String>,
}

const TIME: &[&str] = &[
    "time",
    "timestamp",
    "@timestamp",
    "ts",
    "datetime",
    "date",
    "event_time",
    "eventTime",
    "created_at",
    "createdAt",
];
const KEY: &[&str] = &[
    "key_id",
    "keyId",
    "api_key_id",
    "apiKeyId",
    "access_key_id",
    "accessKeyId",
    "token_id",
    "tokenId",
    "credential_id",
    "client_id",
    "key.id",
    "api_key.id",
];
const IP: &[&str] = &[
    "source_ip",
    "sourceIp",
    "src_ip",
    "client_ip",
    "clientIp",
    "ip",
    "remote_addr",
    "remote_address",
    "sourceIPAddress",
    "ip_address",
    "client.ip",
];
const UA: &[&str] = &["user_agent", "userAgent", "ua", "http_user_agent", "agent"];
const ACTION: &[&str] = &[
    "action",
    "event",
    "eventName",
    "operation",
    "op",
    "endpoint",
    "route",
    "path",
    "message",
];
const OUTCOME: &[&str] = &["outcome", "result", "decision", "status"];
const STATUS: &[&str] = &[
    "status_code",
    "statusCode",
    "http_status",
    "response_code",
    "status",
];
const ID: &[&str] = &["id", "event_id", "eventId", "eventID", "uuid", "log_id"];
const PRINCIPAL: &[&str] = &["principal", "user", "username", "actor", "owner", "subject"];
const REQUEST: &[&str] = &["request_id", "requestId", "requestID", "trace_id"];

/// Maps records with a [`Mapping`], falling back to the usual names.
#[derive(Debug, Clone, Default)]
pub struct GenericMapper {
    /// The configured mapping (empty: guesses only).
    pub mapping: Mapping,
    /// Name of the mapping, for messages.
    pub mapping_name: Option<String>,
    /// `--map` overrides; the time and key id are read from them first.
    pub overrides: super::fieldmap::FieldMap,
}

fn pick(v: &Value, configured: &Option<String>, guesses: &[&str]) -> Option<String> {
    match configured {
        Some(name) => v.text(name).map(|s| s.into_owned()),
        None => v.first_text(guesses).map(|s| s.into_owned()),
    }
    .filter(|s| !s.trim().is_empty())
}

impl GenericMapper {
    fn hint(&self, field: &str) -> String {
        match &self.mapping_name {
            Some(n) => format!("check `{field}` in [import.mapping.{n}]"),
            None => format!(
                "pass --map {field}=PATH, or set `{field} = \"<field name>\"` in an [import.mapping.NAME] section of the config and pass --mapping NAME"
            ),
        }
    }

    /// Maps one record.
    pub fn to_event(&self, provider: &str, v: &Value) -> Result<Event, String> {
        if !v.is_object() {
            return Err(format!(
                "expected a JSON object, found {}",
                super::cloudtrail::kind(v)
            ));
        }
        let m = &self.mapping;
        let over = |f: Field| self.overrides.get(f).and_then(|p| p.text(v));
        let t = over(Field::Time)
            .or_else(|| pick(v, &m.time, TIME))
            .ok_or_else(|| {
                format!(
                    "no time field (looked for {}); {}",
                    m.time
                        .as_deref()
                        .map(|s| vec![s])
                        .unwrap_or(TIME.to_vec())
                        .join(", "),
                    self.hint("time")
                )
            })?;
        let time = parse_time(&t)?;
        let key_id = over(Field::KeyId)
            .or_else(|| pick(v, &m.key_id, KEY))
            .ok_or_else(|| {
                format!(
                    "no key id field (looked for {}); {}",
                    m.key_id
                        .as_deref()
                        .map(|s| vec![s])
                        .unwrap_or(KEY.to_vec())
                        .join(", "),
                    self.hint("key_id")
                )
            })?;
        let status_code =
            pick(v, &m.status_code, STATUS).and_then(|s| s.trim().parse::<i64>().ok());
        let outcome = match pick(v, &m.outcome, OUTCOME) {
            Some(o) => parse_outcome(&o).ok_or_else(|| {
                format!(
                    "outcome `{}` not understood; use success, denied, error or an HTTP status",
                    crate::output::sanitize(&o)
                )
            })?,
            None => status_code
                .and_then(|c| parse_outcome(&c.to_string()))
                .unwrap_or(Outcome::Success),
        };
        Ok(Event {
            provider: provider.to_string(),
            id: pick(v, &m.id, ID).unwrap_or_default(),
            time,
            key_id,
            principal: pick(v, &m.principal, PRINCIPAL),
            action: pick(v, &m.action, ACTION).unwrap_or_else(|| "unknown".into()),
            scope: v
                .first_text(&["scope", "required_scope"])
                .map(|s| s.into_owned()),
            source_ip: pick(v, &m.source_ip, IP),
            user_agent: pick(v, &m.user_agent, UA),
            outcome,
            status_code,
            request_id: pick(v, &m.request_id, REQUEST),
            records: v.get("records").and_then(Value::as_i64),
            raw: None,
        })
    }
}

impl Mapper for GenericMapper {
    fn map(
        &mut self,
        provider: &str,
        v: &Value,
        _: Loc,
        out: &mut Vec<Event>,
    ) -> Result<(), String> {
        out.push(self.to_event(provider, v)?);
        Ok(())
    }
}

/// Reads the `[import.mapping.NAME]` section of the config.
pub fn mapping_from_config(import: &toml::Table, name: &str) -> Result<Option<Mapping>, String> {
    let Some(section) = import.get("mapping").and_then(|m| m.get(name)) else {
        return Ok(None);
    };
    section
        .clone()
        .try_into::<Mapping>()
        .map(Some)
        .map_err(|e| format!("[import.mapping.{name}]: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn guesses_common_names_and_honours_a_mapping() {
        let m = GenericMapper::default();
        let e = m
            .to_event("gw", &json!({"timestamp": "2024-03-01T10:00:00Z", "key_id": "k1", "ip": "192.0.2.1", "status": 403, "path": "/v1/payroll"}))
            .unwrap();
        assert_eq!((e.key_id.as_str(), e.outcome), ("k1", Outcome::Denied));
        assert_eq!(e.action, "/v1/payroll");
        let cfg: toml::Table =
            toml::from_str("[mapping.gw]\ntime = \"when\"\nkey_id = \"client.key\"\n").unwrap();
        let mapping = mapping_from_config(&cfg, "gw").unwrap().unwrap();
        let m = GenericMapper {
            mapping,
            mapping_name: Some("gw".into()),
            ..Default::default()
        };
        let e = m
            .to_event("gw", &json!({"when": 1709287200, "client": {"key": "k2"}}))
            .unwrap();
        assert_eq!(e.key_id, "k2");
        let err = m.to_event("gw", &json!({"when": 1709287200})).unwrap_err();
        assert!(err.contains("[import.mapping.gw]"), "{err}");
        let bad: toml::Table = toml::from_str("[mapping.x]\ntiem = \"a\"\n").unwrap();
        assert!(mapping_from_config(&bad, "x").unwrap_err().contains("tiem"));
    }
}
