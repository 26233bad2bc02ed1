//! Evaluating compiled rules against one raw record: field lookups by native name
//! (dotted paths into nested JSON), the log source a record comes from, keywords over
//! the record's text.

use super::condition;
use super::json::{get, Json};
use super::modifiers::{Cmp, Matcher};
use super::parse::{Item, Search};
use super::Rule;
use std::borrow::Cow;
use std::cell::OnceCell;

/// One raw record being evaluated: its text, parsed JSON and log source.
pub struct Record<'a> {
    text: &'a str,
    json: Option<Json<'a>>,
    /// (product, service) of the log this record comes from.
    pub source: (&'static str, &'static str),
    lower: OnceCell<String>,
}

/// The log source of a record, judged by the fields its format always has. The names
/// follow the Sigma taxonomy (`aws`/`cloudtrail`, `github`/`audit`, ...).
fn source_of(v: &Json<'_>) -> (&'static str, &'static str) {
    let Some(o) = v.as_object() else {
        return ("", "");
    };
    let has = |k: &str| get(o, k).is_some();
    if has("eventSource") && has("eventName") {
        ("aws", "cloudtrail")
    } else if has("entity_type") && (has("author_id") || has("details")) {
        ("gitlab", "audit")
    } else if has("action") && (has("actor") || has("actor_id") || has("business") || has("org")) {
        ("github", "audit")
    } else if has("request")
        && matches!(
            get(o, "type").and_then(Json::as_str),
            Some("request" | "response")
        )
    {
        ("hashicorp", "vault")
    } else {
        ("keyaudit", "api")
    }
}

impl<'a> Record<'a> {
    /// Parses a raw record; text that is not JSON is still searchable by keywords.
    pub fn new(text: &'a str) -> Record<'a> {
        let json = Json::parse(text).ok();
        let source = json.as_ref().map_or(("", ""), source_of);
        Record {
            text,
            json,
            source,
            lower: OnceCell::new(),
        }
    }

    fn lower(&self) -> &str {
        self.lower.get_or_init(|| self.text.to_lowercase())
    }

    /// The value at a field: the name as one key first (flattened logs), else its dotted
    /// path into nested objects.
    fn field(&self, item: &Item) -> Option<&Json<'a>> {
        let o = self.json.as_ref()?.as_object()?;
        if let Some(v) = get(o, &item.field) {
            return Some(v);
        }
        if item.path.len() < 2 {
            return None;
        }
        let mut v = get(o, &item.path[0])?;
        for part in &item.path[1..] {
            v = get(v.as_object()?, part)?;
        }
        Some(v)
    }
}

/// A JSON scalar as text (objects and arrays have none).
fn as_text<'v>(v: &'v Json<'_>) -> Option<Cow<'v, str>> {
    match v {
        Json::String(s) => Some(Cow::Borrowed(s)),
        Json::Number(n) => Some(Cow::Owned(n.to_string())),
        Json::Bool(b) => Some(Cow::Borrowed(if *b { "true" } else { "false" })),
        _ => None,
    }
}

fn scalar_matches(m: &Matcher, v: &Json<'_>) -> bool {
    match m {
        Matcher::Null => v.is_null(),
        Matcher::Exists(e) => *e,
        Matcher::Compare(c, n) => {
            let x = match v {
                Json::Number(x) => x.as_f64(),
                Json::String(s) => s.trim().parse().ok(),
                _ => None,
            };
            x.is_some_and(|x| match c {
                Cmp::Gt => x > *n,
                Cmp::Gte => x >= *n,
                Cmp::Lt => x < *n,
                Cmp::Lte => x <= *n,
            })
        }
        Matcher::Pattern(p) => as_text(v).is_some_and(|t| p.matches(&t)),
        Matcher::Regex(r) => as_text(v).is_some_and(|t| r.is_match(&t)),
        Matcher::Cidr(net) => v
            .as_str()
            .and_then(|s| s.trim().parse::<std::net::IpAddr>().ok())
            .is_some_and(|ip| net.contains(&ip)),
    }
}

/// Whether one value entry (any of its matchers) matches the field; a list field
/// matches when any of its elements does.
fn entry_matches(ms: &[Matcher], field: Option<&Json<'_>>) -> bool {
    ms.iter().any(|m| match (m, field) {
        (Matcher::Null, None) => true,
        (Matcher::Exists(e), f) => *e == f.is_some(),
        (_, None) => false,
        (m, Some(Json::Array(a))) => {
            (matches!(m, Matcher::Null) && a.is_empty()) || a.iter().any(|x| scalar_matches(m, x))
        }
        (m, Some(v)) => scalar_matches(m, v),
    })
}

fn item_matches(rec: &Record<'_>, item: &Item) -> bool {
    let f = rec.field(item);
    if item.all {
        item.values.iter().all(|ms| entry_matches(ms, f))
    } else {
        item.values.iter().any(|ms| entry_matches(ms, f))
    }
}

fn search_matches(rec: &Record<'_>, s: &Search) -> bool {
    match s {
        Search::Maps(alts) => alts
            .iter()
            .any(|items| items.iter().all(|i| item_matches(rec, i))),
        Search::Keywords(kws) => {
            let lower = rec.lower();
            kws.iter().any(|k| match k {
                Matcher::Pattern(p) => p.matches(lower),
                _ => false,
            })
        }
    }
}

/// Whether the rule's log source admits this record.
pub fn applies(rule: &Rule, rec: &Record<'_>) -> bool {
    rule.product.as_deref().is_none_or(|p| p == rec.source.0)
        && rule.service.as_deref().is_none_or(|s| s == rec.source.1)
}

/// Whether the rule matches the record (its log source included).
pub fn matches(rule: &Rule, rec: &Record<'_>) -> bool {
    if !applies(rule, rec) {
        return false;
    }
    // Each search is evaluated at most once per record (on the stack for most rules).
    let mut small = [None; 16];
    let mut large;
    let memo: &mut [Option<bool>] = if rule.searches.len() <= small.len() {
        &mut small
    } else {
        large = vec![None; rule.searches.len()];
        &mut large
    };
    condition::eval(&rule.condition, &mut |i| {
        *memo[i].get_or_insert_with(|| search_matches(rec, &rule.searches[i]))
    })
}
