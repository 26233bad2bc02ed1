//! The missing-field warning: a field the file's format should carry (a CloudTrail
//! record's source IP, user agent and principal; ...) that no record of the file
//! gave. Usually a SIEM or a pipeline moved it under another name; the warning names
//! a field of the first record that looks like it, for `--map`.

use super::fieldmap::{Field, JsonPath};
use super::LogFormat;
use crate::model::Event;
use serde_json::Value;

/// The fields each format should give every event.
pub fn expected(format: LogFormat) -> &'static [Field] {
    match format {
        LogFormat::Cloudtrail | LogFormat::Ecs | LogFormat::Datadog | LogFormat::Splunk => {
            &[Field::SourceIp, Field::UserAgent, Field::Principal]
        }
        LogFormat::Vault => &[Field::SourceIp, Field::Principal],
        LogFormat::Github | LogFormat::Gitlab => &[Field::SourceIp],
        LogFormat::Jsonl | LogFormat::Csv => &[],
    }
}

/// Counts, per expected field, the events that carry it.
#[derive(Debug, Clone)]
pub struct Coverage {
    fields: &'static [Field],
    seen: Vec<u64>,
    events: u64,
    /// The first record, to suggest where the field may be.
    sample: Option<Sample>,
}

#[derive(Debug, Clone)]
enum Sample {
    Value(Value),
    Text(String),
}

impl Coverage {
    pub fn new(format: LogFormat) -> Coverage {
        let fields = expected(format);
        Coverage {
            fields,
            seen: vec![0; fields.len()],
            events: 0,
            sample: None,
        }
    }

    /// Counts the fields `events` carry.
    pub fn observe(&mut self, events: &[Event]) {
        self.events += events.len() as u64;
        for (i, f) in self.fields.iter().enumerate() {
            if self.seen[i] == 0 {
                self.seen[i] += events.iter().filter(|e| f.present(e)).count() as u64;
            }
        }
    }

    /// Keeps the first record seen.
    pub fn sample(&mut self, v: &Value) {
        if self.sample.is_none() && !self.fields.is_empty() {
            self.sample = Some(Sample::Value(v.clone()));
        }
    }

    /// Keeps the first record seen, as its text.
    pub fn sample_text(&mut self, text: &str) {
        if self.sample.is_none() && !self.fields.is_empty() {
            self.sample = Some(Sample::Text(text.to_string()));
        }
    }

    /// One warning per expected field no event carried, for `records` records of the
    /// file `name` (already neutralised for the terminal).
    pub fn warnings(&self, records: u64, name: &str) -> Vec<String> {
        if self.events == 0 || records == 0 {
            return Vec::new();
        }
        let sample = match &self.sample {
            Some(Sample::Value(v)) => Some(v.clone()),
            Some(Sample::Text(t)) => serde_json::from_str(t).ok(),
            None => None,
        };
        let all = if records == 1 {
            "the only record".to_string()
        } else {
            format!("all {} records", thousands(records))
        };
        self.fields
            .iter()
            .zip(&self.seen)
            .filter(|(_, n)| **n == 0)
            .map(|(f, _)| {
                let hint = sample
                    .as_ref()
                    .and_then(|s| suggest(*f, s))
                    .map(|p| crate::output::sanitize(&p.to_arg()))
                    .unwrap_or_else(|| "PATH".into());
                format!(
                    "{} missing in {all} of {name}: map it with --map {}={hint}",
                    f.label(),
                    f.name()
                )
            })
            .collect()
    }
}

/// `1204` → `1,204`.
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A field of `v` whose name and value look like `field`.
fn suggest(field: Field, v: &Value) -> Option<JsonPath> {
    let mut found = None;
    walk(v, &mut Vec::new(), &mut |path, leaf| {
        if found.is_some() {
            return;
        }
        let Some(s) = leaf.as_str() else { return };
        let key = path
            .last()
            .map(|k| k.to_ascii_lowercase())
            .unwrap_or_default();
        let full = path.join(".").to_ascii_lowercase();
        let hit = match field {
            Field::SourceIp => {
                s.trim().parse::<std::net::IpAddr>().is_ok()
                    && (full.contains("ip") || full.contains("addr") || full.contains("client"))
            }
            Field::UserAgent => full.contains("agent") || key == "ua",
            Field::Principal => {
                key == "arn" || key.contains("user") || key.contains("principal") || key == "actor"
            }
            _ => false,
        };
        if hit {
            found = Some(JsonPath(path.to_vec()));
        }
    });
    found
}

fn walk(v: &Value, path: &mut Vec<String>, f: &mut dyn FnMut(&[String], &Value)) {
    if path.len() > 8 {
        return;
    }
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                path.push(k.clone());
                walk(x, path, f);
                path.pop();
            }
        }
        Value::Array(_) => {}
        leaf => f(path, leaf),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn numbers_are_grouped() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1204), "1,204");
        assert_eq!(thousands(1_000_000), "1,000,000");
    }

    #[test]
    fn warns_once_per_missing_field_with_a_suggestion() {
        let mut c = Coverage::new(LogFormat::Cloudtrail);
        let rec = json!({"eventTime": "2024-03-01T10:00:00Z", "eventSource": "s3.amazonaws.com", "eventName": "GetObject",
            "userIdentity": {"arn": "arn:aws:iam::1:user/a"}, "attrs": {"network.client.ip": "192.0.2.7"}});
        c.sample(&rec);
        let e = crate::import::cloudtrail_record_to_event("cloudtrail", &rec).unwrap();
        c.observe(&std::iter::repeat_n(e, 1204).collect::<Vec<_>>());
        let w = c.warnings(1204, "x.json");
        assert_eq!(
            w,
            vec![
                r"source IP missing in all 1,204 records of x.json: map it with --map source_ip=attrs.network\.client\.ip".to_string(),
                "user agent missing in all 1,204 records of x.json: map it with --map user_agent=PATH".to_string(),
            ]
        );
    }
}
