//! `--map FIELD=PATH`: where an event field comes from, whatever the format says.
//!
//! A PATH is a dotted JSON path into the record as it appears in the file (a JSON
//! line, an array element, an entry of `Records` or `results`, a CSV column name).
//! A key that holds dots is written with `\.` (`--map source_ip=attrs.client\.ip`),
//! a backslash as `\\`; a number reaches into an array. A string that holds a JSON
//! document (Splunk's `_raw`, Elastic's `event.original`) is entered like an object
//! (`result._raw.sourceIPAddress`). At every level a flat key spelled with dots
//! (`"source.ip"` in a dotted-key export) is found as well as nested objects.

use super::fields::{parse_outcome, parse_time, scalar_text};
use crate::model::Event;
use serde_json::Value;
use std::borrow::Cow;
use std::fmt;

/// An event field `--map` can set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Time,
    KeyId,
    Principal,
    Action,
    Scope,
    Outcome,
    SourceIp,
    UserAgent,
    Id,
    RequestId,
    StatusCode,
    Records,
}

/// Every field with its name on the command line, in the order of `--help`.
pub const FIELDS: &[(&str, Field)] = &[
    ("time", Field::Time),
    ("key_id", Field::KeyId),
    ("principal", Field::Principal),
    ("action", Field::Action),
    ("scope", Field::Scope),
    ("outcome", Field::Outcome),
    ("source_ip", Field::SourceIp),
    ("user_agent", Field::UserAgent),
    ("id", Field::Id),
    ("request_id", Field::RequestId),
    ("status_code", Field::StatusCode),
    ("records", Field::Records),
];

impl Field {
    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        FIELDS
            .iter()
            .find(|(_, f)| *f == self)
            .map(|(n, _)| *n)
            .unwrap_or("?")
    }

    /// The name used in messages (`source IP`).
    pub fn label(self) -> &'static str {
        match self {
            Field::Time => "time",
            Field::KeyId => "key id",
            Field::Principal => "principal",
            Field::Action => "action",
            Field::Scope => "scope",
            Field::Outcome => "outcome",
            Field::SourceIp => "source IP",
            Field::UserAgent => "user agent",
            Field::Id => "record id",
            Field::RequestId => "request id",
            Field::StatusCode => "status code",
            Field::Records => "record count",
        }
    }

    /// True when `e` carries this field.
    pub fn present(self, e: &Event) -> bool {
        let some = |o: &Option<String>| o.as_deref().is_some_and(|s| !s.trim().is_empty());
        match self {
            Field::SourceIp => some(&e.source_ip),
            Field::UserAgent => some(&e.user_agent),
            Field::Principal => some(&e.principal),
            Field::RequestId => some(&e.request_id),
            Field::Scope => some(&e.scope),
            Field::StatusCode => e.status_code.is_some(),
            Field::Records => e.records.is_some(),
            Field::KeyId => !e.key_id.starts_with("no-key:"),
            Field::Time | Field::Action | Field::Outcome | Field::Id => true,
        }
    }
}

/// A parsed JSON path: its keys, unescaped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonPath(pub Vec<String>);

impl JsonPath {
    /// Parses `a.b\.c` into `["a", "b.c"]`.
    pub fn parse(text: &str) -> Result<JsonPath, String> {
        if text.is_empty() {
            return Err("the path is empty".into());
        }
        if let Some(c) = text.chars().find(|c| c.is_control()) {
            return Err(format!(
                "the path holds a control character (U+{:04X})",
                c as u32
            ));
        }
        let mut parts = Vec::new();
        let mut cur = String::new();
        let mut chars = text.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some(n @ ('.' | '\\')) => cur.push(n),
                    Some(n) => {
                        return Err(format!(
                            "`\\{n}` is not an escape; write `\\.` for a dot inside a key and `\\\\` for a backslash"
                        ))
                    }
                    None => {
                        return Err(
                            "the path ends with a lone `\\`; write `\\\\` for a backslash".into(),
                        )
                    }
                },
                '.' => {
                    if cur.is_empty() {
                        return Err(
                            "empty key between dots; write a key holding a dot as `a\\.b`".into(),
                        );
                    }
                    parts.push(std::mem::take(&mut cur));
                }
                c => cur.push(c),
            }
        }
        if cur.is_empty() {
            return Err("the path ends with a dot".into());
        }
        parts.push(cur);
        Ok(JsonPath(parts))
    }

    /// The path as written on the command line (dots inside keys escaped).
    pub fn to_arg(&self) -> String {
        self.0
            .iter()
            .map(|k| k.replace('\\', "\\\\").replace('.', "\\."))
            .collect::<Vec<_>>()
            .join(".")
    }

    /// The value at this path in `v`, if any.
    pub fn lookup<'a>(&self, v: &'a Value) -> Option<Cow<'a, Value>> {
        lookup(Cow::Borrowed(v), &self.0)
    }

    /// The value at this path as text (numbers and booleans rendered).
    pub fn text(&self, v: &Value) -> Option<String> {
        let found = self.lookup(v)?;
        scalar_text(&found)
            .map(|s| s.into_owned())
            .filter(|s| !s.trim().is_empty())
    }
}

fn lookup<'a>(v: Cow<'a, Value>, keys: &[String]) -> Option<Cow<'a, Value>> {
    if keys.is_empty() {
        return Some(v);
    }
    if let Value::String(s) = v.as_ref() {
        if !s.trim_start().starts_with(['{', '[']) {
            return None;
        }
        // A string holding a JSON document is entered like an object.
        let inner: Value = serde_json::from_str(s).ok()?;
        return lookup(Cow::Owned(inner), keys).map(|c| Cow::Owned(c.into_owned()));
    }
    match v {
        Cow::Borrowed(b) => step(b, keys),
        Cow::Owned(o) => step(&o, keys).map(|c| Cow::Owned(c.into_owned())),
    }
}

fn step<'a>(v: &'a Value, keys: &[String]) -> Option<Cow<'a, Value>> {
    match v {
        Value::Object(m) => {
            // Longest flat key first: `{"source.ip": ...}` beside `{"source": {"ip": ...}}`.
            for n in (1..=keys.len()).rev() {
                let key = if n == 1 {
                    Cow::Borrowed(keys[0].as_str())
                } else {
                    Cow::Owned(keys[..n].join("."))
                };
                if let Some(next) = m.get(key.as_ref()) {
                    if let Some(found) = lookup(Cow::Borrowed(next), &keys[n..]) {
                        return Some(found);
                    }
                }
            }
            None
        }
        Value::Array(a) => {
            let i: usize = keys[0].parse().ok()?;
            lookup(Cow::Borrowed(a.get(i)?), &keys[1..])
        }
        _ => None,
    }
}

/// The `--map` overrides of an import.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FieldMap {
    pub entries: Vec<(Field, JsonPath)>,
}

/// Lists the accepted field names, for messages.
pub fn field_names() -> String {
    FIELDS
        .iter()
        .map(|(n, _)| *n)
        .collect::<Vec<_>>()
        .join(", ")
}

impl FieldMap {
    /// Parses the `--map` arguments; the error names the argument and what to do.
    pub fn parse<S: AsRef<str>>(args: &[S]) -> Result<FieldMap, String> {
        let mut entries: Vec<(Field, JsonPath)> = Vec::new();
        for arg in args {
            let arg = arg.as_ref();
            let shown = crate::output::sanitize(arg);
            let Some((name, path)) = arg.split_once('=') else {
                return Err(format!(
                    "--map {shown}: expected FIELD=PATH (e.g. --map source_ip=network.client.ip)"
                ));
            };
            let name = name.trim();
            let Some(field) = FIELDS.iter().find(|(n, _)| *n == name).map(|(_, f)| *f) else {
                return Err(format!(
                    "--map {shown}: unknown field `{}`; the fields are {}",
                    crate::output::sanitize(name),
                    field_names()
                ));
            };
            let path = JsonPath::parse(path).map_err(|e| format!("--map {shown}: {e}"))?;
            // The last --map of a field wins.
            entries.retain(|(f, _)| *f != field);
            entries.push((field, path));
        }
        Ok(FieldMap { entries })
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The path given for `field`, if any.
    pub fn get(&self, field: Field) -> Option<&JsonPath> {
        self.entries
            .iter()
            .find(|(f, _)| *f == field)
            .map(|(_, p)| p)
    }

    /// Sets the fields of `e` from `record`. A path absent from the record leaves the
    /// format's own value; a value that cannot be read is an error naming the field.
    pub fn apply(&self, record: &Value, e: &mut Event) -> Result<(), String> {
        for (field, path) in &self.entries {
            let Some(text) = path.text(record) else {
                continue;
            };
            let at = || format!("--map {}={}", field.name(), path.to_arg());
            match field {
                Field::Time => e.time = parse_time(&text).map_err(|m| format!("{}: {m}", at()))?,
                Field::KeyId => e.key_id = text,
                Field::Principal => e.principal = Some(text),
                Field::Action => e.action = text,
                Field::Scope => e.scope = Some(text),
                Field::Outcome => {
                    e.outcome = parse_outcome(&text).ok_or_else(|| {
                        format!(
                            "{}: outcome `{}` not understood; use success, denied, error or an HTTP status",
                            at(),
                            crate::output::sanitize(&text)
                        )
                    })?
                }
                Field::SourceIp => e.source_ip = Some(text),
                Field::UserAgent => e.user_agent = Some(text),
                Field::Id => e.id = text,
                Field::RequestId => e.request_id = Some(text),
                Field::StatusCode => {
                    e.status_code = Some(text.trim().parse().map_err(|_| {
                        format!(
                            "{}: `{}` is not an HTTP status code",
                            at(),
                            crate::output::sanitize(&text)
                        )
                    })?)
                }
                Field::Records => {
                    e.records = Some(text.trim().parse().map_err(|_| {
                        format!(
                            "{}: `{}` is not a number",
                            at(),
                            crate::output::sanitize(&text)
                        )
                    })?)
                }
            }
        }
        Ok(())
    }
}

impl fmt::Display for FieldMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .entries
            .iter()
            .map(|(k, p)| format!("{}={}", k.name(), p.to_arg()))
            .collect();
        f.write_str(&parts.join(" "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn paths_with_escaped_dots_and_json_strings() {
        let p = JsonPath::parse(r"attributes.network\.client\.ip").unwrap();
        assert_eq!(p.0, vec!["attributes", "network.client.ip"]);
        assert_eq!(p.to_arg(), r"attributes.network\.client\.ip");
        let v = json!({"attributes": {"network.client.ip": "192.0.2.1"}});
        assert_eq!(p.text(&v).as_deref(), Some("192.0.2.1"));
        // Nested and flat spellings of the same path both resolve.
        let q = JsonPath::parse("source.ip").unwrap();
        assert_eq!(q.text(&json!({"source.ip": "a"})).as_deref(), Some("a"));
        assert_eq!(
            q.text(&json!({"source": {"ip": "b"}})).as_deref(),
            Some("b")
        );
        let raw = JsonPath::parse("result._raw.sourceIPAddress").unwrap();
        let v = json!({"result": {"_raw": "{\"sourceIPAddress\":\"203.0.113.5\"}"}});
        assert_eq!(raw.text(&v).as_deref(), Some("203.0.113.5"));
        assert_eq!(
            JsonPath::parse("a.0.b")
                .unwrap()
                .text(&json!({"a": [{"b": 7}]}))
                .as_deref(),
            Some("7")
        );
    }

    #[test]
    fn bad_paths_and_fields_say_what_to_write() {
        for (arg, want) in [
            ("source_ip", "expected FIELD=PATH"),
            (
                "src=a.b",
                "unknown field `src`; the fields are time, key_id",
            ),
            ("source_ip=", "the path is empty"),
            ("source_ip=a..b", "empty key between dots"),
            ("source_ip=a.", "ends with a dot"),
            (r"source_ip=a\x", r"`\x` is not an escape"),
            (r"source_ip=a\", "lone"),
        ] {
            let e = FieldMap::parse(&[arg]).unwrap_err();
            assert!(e.contains(want), "{arg}: {e}");
        }
    }

    #[test]
    fn overrides_replace_fields_and_check_values() {
        let m =
            FieldMap::parse(&["source_ip=client.addr", "outcome=res", "user_agent=nope"]).unwrap();
        let mut e = crate::import::generic::GenericMapper::default()
            .to_event(
                "x",
                &json!({"time": 1709287200, "key_id": "k", "user_agent": "ua/1"}),
            )
            .unwrap();
        m.apply(
            &json!({"client": {"addr": "198.51.100.4"}, "res": "forbidden"}),
            &mut e,
        )
        .unwrap();
        assert_eq!(e.source_ip.as_deref(), Some("198.51.100.4"));
        assert_eq!(e.outcome, crate::model::Outcome::Denied);
        assert_eq!(
            e.user_agent.as_deref(),
            Some("ua/1"),
            "absent path keeps the value"
        );
        let err = m.apply(&json!({"res": "maybe"}), &mut e).unwrap_err();
        assert!(err.contains("--map outcome=res: outcome `maybe`"), "{err}");
    }
}
