//! The one confirmation rule of destructive actions, for the TUI's confirm dialog and the
//! CLI alike: what the operator must type before an action on keys goes ahead, and the
//! reason a finding suggests for it.

use crate::model::{Finding, Key};

/// What the operator must type to confirm an action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MustType {
    /// The key's name: one production key.
    KeyName(String),
    /// The number of keys: a bulk action.
    Count(usize),
}

impl MustType {
    /// The exact text to type.
    pub fn text(&self) -> String {
        match self {
            MustType::KeyName(n) => n.clone(),
            MustType::Count(c) => c.to_string(),
        }
    }

    /// Whether `typed` confirms (surrounding white space is ignored).
    pub fn matches(&self, typed: &str) -> bool {
        typed.trim() == self.text()
    }

    /// One line telling the operator what to type (`text` is shown through `show`, so
    /// callers neutralise a provider's key name for their terminal).
    pub fn prompt(&self, show: impl Fn(&str) -> String) -> String {
        match self {
            MustType::KeyName(n) => {
                format!("Production key: type its name ({}) to confirm", show(n))
            }
            MustType::Count(c) => format!("Type the number of keys ({c}) to confirm"),
        }
    }
}

/// What must be typed to act on `keys`: the count for more than one key, the key's name
/// for one production key, nothing for one other key (the operator still moves to
/// Confirm, or answers `yes` on the command line).
pub fn must_type<'a>(keys: impl IntoIterator<Item = &'a Key>) -> Option<MustType> {
    let keys: Vec<&Key> = keys.into_iter().collect();
    match keys.as_slice() {
        [] => None,
        [one] if one.is_production() => Some(MustType::KeyName(one.name.clone())),
        [_] => None,
        many => Some(MustType::Count(many.len())),
    }
}

/// The reason a finding suggests for acting on its key, for the operator to edit:
/// `finding 3f2a9c01…: Bulk read of 105,634 records`.
pub fn reason_from(finding: &Finding) -> String {
    const SHOWN: usize = 8;
    let id: String = finding.id.chars().take(SHOWN).collect();
    let more = if finding.id.chars().count() > SHOWN {
        "…"
    } else {
        ""
    };
    format!("finding {id}{more}: {}", finding.title)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str, env: Option<&str>) -> Key {
        Key {
            name: name.into(),
            environment: env.map(str::to_string),
            ..Key::seen_in_logs("tg", name)
        }
    }

    #[test]
    fn one_production_key_needs_its_name_and_bulk_the_count() {
        let prod = key("payroll", Some("prod"));
        let dev = key("sandbox", Some("dev"));
        assert_eq!(
            must_type([&prod]),
            Some(MustType::KeyName("payroll".into()))
        );
        assert_eq!(must_type([&dev]), None);
        assert_eq!(must_type([&dev, &prod]), Some(MustType::Count(2)));
        assert!(MustType::Count(2).matches(" 2\n"));
        assert!(!MustType::KeyName("payroll".into()).matches("payrol"));
    }

    #[test]
    fn a_finding_suggests_a_short_reason() {
        use crate::model::{Category, FindingStatus, Severity};
        let now = chrono::Utc::now();
        let f = Finding {
            id: "3f2a9c01d4e5b6a7".into(),
            rule: "bulk_read".into(),
            category: Category::Anomaly,
            severity: Severity::High,
            provider: "tg".into(),
            key_id: "key_1".into(),
            title: "Bulk read of 105,634 records".into(),
            explanation: String::new(),
            evidence: Vec::new(),
            first_seen: now,
            last_seen: now,
            status: FindingStatus::Open,
            note: None,
            suppressed_until: None,
        };
        assert_eq!(
            reason_from(&f),
            "finding 3f2a9c01…: Bulk read of 105,634 records"
        );
    }
}
