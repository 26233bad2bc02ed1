//! Reading Sigma rule files (YAML) into compiled rules.

use super::condition::{self, Expr};
use super::modifiers::{Matcher, Modifiers};
use super::{Rule, RuleError};
use crate::model::Severity;
use std::path::Path;
use yaml_rust2::{Yaml, YamlLoader};

/// One detection item: a field (dotted path) and the values it must match.
#[derive(Debug, Clone)]
pub struct Item {
    /// The field name as written, split at its dots for nested lookups.
    pub field: String,
    pub path: Vec<String>,
    /// Every value must match (`all`) instead of any.
    pub all: bool,
    /// One entry per value of the list; an entry matches when any of its matchers does
    /// (`windash` and `base64offset` give several).
    pub values: Vec<Vec<Matcher>>,
}

/// A named search of the detection section.
#[derive(Debug, Clone)]
pub enum Search {
    /// Alternatives (a list of maps); each is items that must all match.
    Maps(Vec<Vec<Item>>),
    /// Keywords, any of which must appear in the record's text (case-insensitive).
    Keywords(Vec<Matcher>),
}

fn text(y: &Yaml) -> Option<String> {
    match y {
        Yaml::String(s) | Yaml::Real(s) => Some(s.clone()),
        Yaml::Integer(i) => Some(i.to_string()),
        Yaml::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

fn get<'y>(h: &'y yaml_rust2::yaml::Hash, k: &str) -> Option<&'y Yaml> {
    h.get(&Yaml::String(k.to_string()))
}

fn values_of(y: &Yaml, what: &str) -> Result<Vec<Option<String>>, String> {
    let one = |v: &Yaml| -> Result<Option<String>, String> {
        match v {
            Yaml::Null => Ok(None),
            v => text(v)
                .map(Some)
                .ok_or_else(|| format!("{what}: expected a string, number, boolean or null")),
        }
    };
    match y {
        Yaml::Array(a) => a.iter().map(one).collect(),
        v => Ok(vec![one(v)?]),
    }
}

fn item(key: &str, value: &Yaml, at: &str) -> Result<Item, String> {
    let mut parts = key.split('|');
    let field = parts.next().unwrap_or("").to_string();
    let what = format!("{at}: field `{key}`");
    let m = Modifiers::parse(parts).map_err(|e| format!("{what}: {e}"))?;
    let mut values = Vec::new();
    for v in values_of(value, &what)? {
        values.push(
            m.compile(v.as_deref())
                .map_err(|e| format!("{what}: {e}"))?,
        );
    }
    if values.is_empty() {
        return Err(format!("{what}: an empty list matches nothing"));
    }
    Ok(Item {
        path: field.split('.').map(str::to_string).collect(),
        field,
        all: m.all,
        values,
    })
}

fn map_items(h: &yaml_rust2::yaml::Hash, at: &str) -> Result<Vec<Item>, String> {
    h.iter()
        .map(|(k, v)| {
            let k = text(k).ok_or_else(|| format!("{at}: a field name must be text"))?;
            item(&k, v, at)
        })
        .collect()
}

fn search(name: &str, y: &Yaml) -> Result<Search, String> {
    let at = format!("detection.{name}");
    match y {
        Yaml::Hash(h) => Ok(Search::Maps(vec![map_items(h, &at)?])),
        Yaml::Array(a) if a.iter().all(|v| matches!(v, Yaml::Hash(_))) && !a.is_empty() => {
            let mut alts = Vec::new();
            for v in a {
                if let Yaml::Hash(h) = v {
                    alts.push(map_items(h, &at)?);
                }
            }
            Ok(Search::Maps(alts))
        }
        Yaml::Array(_) | Yaml::String(_) | Yaml::Integer(_) => {
            let mut kws = Vec::new();
            for v in values_of(y, &at)? {
                let v = v.ok_or_else(|| format!("{at}: a keyword cannot be null"))?;
                kws.extend(Modifiers::default().compile(Some(&format!("*{v}*")))?);
            }
            Ok(Search::Keywords(kws))
        }
        _ => Err(format!(
            "{at}: expected a map, a list of maps or a list of keywords"
        )),
    }
}

fn severity(level: Option<&str>) -> Result<Severity, String> {
    Ok(match level.map(str::to_ascii_lowercase).as_deref() {
        Some("informational" | "low") => Severity::Low,
        None | Some("medium") => Severity::Medium,
        Some("high") => Severity::High,
        Some("critical") => Severity::Critical,
        Some(other) => {
            return Err(format!(
                "level: `{other}` is not informational, low, medium, high or critical"
            ))
        }
    })
}

/// Compiles one YAML document of a rule file.
fn rule(doc: &Yaml, path: &Path, index: usize) -> Result<Rule, String> {
    let Yaml::Hash(h) = doc else {
        return Err("expected a mapping with title, logsource and detection".into());
    };
    let s = |k: &str| get(h, k).and_then(text);
    let title = s("title").ok_or("title: missing")?;
    let Some(Yaml::Hash(det)) = get(h, "detection") else {
        return Err("detection: missing or not a mapping".into());
    };
    let mut names = Vec::new();
    let mut searches = Vec::new();
    let mut cond_src = Vec::new();
    for (k, v) in det {
        let k = text(k).ok_or("detection: a search name must be text")?;
        match k.as_str() {
            "condition" => {
                for c in values_of(v, "detection.condition")? {
                    cond_src.push(c.ok_or("detection.condition: cannot be null")?);
                }
            }
            // Deprecated with aggregations; not needed for a single event.
            "timeframe" => {
                return Err("detection.timeframe: aggregations over time are not supported".into())
            }
            _ => {
                searches.push(search(&k, v)?);
                names.push(k);
            }
        }
    }
    if cond_src.is_empty() {
        return Err("detection.condition: missing".into());
    }
    let mut conds = Vec::new();
    for c in &cond_src {
        conds.push(condition::parse(c, &names).map_err(|e| format!("detection.condition: {e}"))?);
    }
    let condition = if conds.len() == 1 {
        conds.remove(0)
    } else {
        Expr::Or(conds)
    };
    let mut logsource = (None, None);
    if let Some(Yaml::Hash(ls)) = get(h, "logsource") {
        let low = |k: &str| get(ls, k).and_then(text).map(|v| v.to_ascii_lowercase());
        logsource = (low("product"), low("service"));
    }
    let tags = match get(h, "tags") {
        Some(Yaml::Array(a)) => a.iter().filter_map(text).collect(),
        _ => Vec::new(),
    };
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let id = s("id").unwrap_or_else(|| {
        if index == 0 {
            stem
        } else {
            format!("{stem}#{index}")
        }
    });
    let level = s("level");
    Ok(Rule {
        severity: severity(level.as_deref())?,
        level: level.unwrap_or_else(|| "medium".into()),
        title,
        id,
        description: s("description"),
        tags,
        product: logsource.0,
        service: logsource.1,
        path: path.to_path_buf(),
        searches,
        condition,
    })
}

/// Compiles every rule of a file's text; a file that fails gives its one error.
pub fn parse_file(path: &Path, src: &str) -> Result<Vec<Rule>, RuleError> {
    let fail = |reason: String| RuleError {
        path: path.to_path_buf(),
        reason,
    };
    let docs = YamlLoader::load_from_str(src).map_err(|e| fail(format!("YAML: {e}")))?;
    let mut rules = Vec::new();
    for (i, doc) in docs.iter().enumerate() {
        if matches!(doc, Yaml::Null) {
            continue;
        }
        // A multi-document file's `action: global` part is shared text for the others.
        if let Yaml::Hash(h) = doc {
            if get(h, "action").and_then(text).as_deref() == Some("global") {
                return Err(fail("`action: global` documents are not supported".into()));
            }
        }
        let r = rule(doc, path, i).map_err(|e| {
            fail(if docs.len() > 1 {
                format!("document {}: {e}", i + 1)
            } else {
                e
            })
        })?;
        rules.push(r);
    }
    if rules.is_empty() {
        return Err(fail("no rule in the file".into()));
    }
    Ok(rules)
}
