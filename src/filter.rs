//! The filter grammar shared by the TUI (`/`), `keys --filter` and `revoke --match`.
//!
//! A query is whitespace-separated terms. `field:value` and `field>value` style terms
//! select; everything else is fuzzy text matched (fuzzy-matcher's Skim algorithm) against
//! the key's name, owner, id and provider, and ranks the result. A leading `-` negates a
//! field term. Terms combine with AND.
//!
//! | term | meaning |
//! |---|---|
//! | `status:active` | status is active (active, inactive, revoked, expired) |
//! | `owner:acme` | owner contains "acme" (case-insensitive) |
//! | `env:prod` | environment is prod |
//! | `provider:talentgrid` | provider name contains the text |
//! | `name:sync` / `id:key_12` | name / id contains the text |
//! | `scope:ssn:read` | the key is granted this scope (`scope:ssn` any scope starting so) |
//! | `source:logs` | keys seen only in logs (`source:provider` listed by a provider) |
//! | `age>90d` / `age<7d` | created more / less than that long ago |
//! | `unused>30d` | not used for more than 30 days (or never) |
//! | `expires<30d` | expires within 30 days |
//! | `severity>=high` / `severity:critical` | worst open finding at least / exactly |
//! | `findings>0` | number of open findings |
//! | `ip:203.0.113.0/24` | seen from that network (resolved against the events) |

use crate::model::{KeySource, KeyStatus, Severity};
use crate::store::KeyRow;
use chrono::{DateTime, Duration, Utc};
use fuzzy_matcher::skim::SkimMatcherV2;
use fuzzy_matcher::FuzzyMatcher;
use std::collections::HashSet;
use std::net::IpAddr;

thread_local! {
    /// The text a key is matched against, reused across keys to avoid an allocation each.
    static HAYSTACK: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
}

/// True when every character of `needle` occurs in `hay` in order, ignoring case.
/// A fuzzy match is impossible otherwise, so this is a safe and cheap pre-check.
fn is_subsequence_ci(hay: &str, needle: &str) -> bool {
    fn fold(c: char) -> char {
        if c.is_ascii() {
            c.to_ascii_lowercase()
        } else {
            c.to_lowercase().next().unwrap_or(c)
        }
    }
    let mut it = hay.chars();
    needle.chars().all(|n| {
        let n = fold(n);
        it.by_ref().any(|h| fold(h) == n)
    })
}

/// A comparison of a field term.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cmp {
    Eq,
    Gt,
    Ge,
    Lt,
    Le,
}

impl Cmp {
    fn holds<T: PartialOrd>(self, left: T, right: T) -> bool {
        match self {
            Cmp::Eq => left == right,
            Cmp::Gt => left > right,
            Cmp::Ge => left >= right,
            Cmp::Lt => left < right,
            Cmp::Le => left <= right,
        }
    }
}

/// A network given as `ADDR/BITS` (or a single address).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    pub addr: IpAddr,
    pub bits: u8,
}

impl Network {
    /// Parses `203.0.113.0/24`, `2001:db8::/48` or a bare address.
    pub fn parse(s: &str) -> Result<Network, String> {
        let (a, b) = s.split_once('/').unwrap_or((s, ""));
        let addr: IpAddr = a
            .parse()
            .map_err(|_| format!("`{s}` is not an IP address or network (e.g. 203.0.113.0/24)"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let bits = if b.is_empty() {
            max
        } else {
            b.parse::<u8>()
                .ok()
                .filter(|n| *n <= max)
                .ok_or_else(|| format!("`{s}`: prefix length must be 0..={max}"))?
        };
        Ok(Network { addr, bits })
    }

    /// True when `ip` (text) is inside this network.
    pub fn contains_str(&self, ip: &str) -> bool {
        ip.parse::<IpAddr>().is_ok_and(|ip| self.contains(ip))
    }

    /// True when `ip` is inside this network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = if self.bits == 0 {
                    0
                } else {
                    u32::MAX << (32 - self.bits)
                };
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = if self.bits == 0 {
                    0
                } else {
                    u128::MAX << (128 - self.bits)
                };
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

/// One field term.
#[derive(Debug, Clone, PartialEq)]
pub enum Term {
    Status(KeyStatus),
    Owner(String),
    Env(String),
    Provider(String),
    Name(String),
    Id(String),
    Scope(String),
    Source(KeySource),
    Age(Cmp, Duration),
    Unused(Cmp, Duration),
    Expires(Cmp, Duration),
    Severity(Cmp, Severity),
    Findings(Cmp, i64),
    Ip(Network),
}

/// A parsed query.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Filter {
    /// Field terms with their negation flag.
    pub terms: Vec<(bool, Term)>,
    /// Fuzzy text (terms that are not field terms, joined by a space).
    pub text: String,
}

const FIELDS: &str = "status, owner, env, provider, name, id, scope, source, age, unused, expires, severity, findings, ip";

fn split_op(term: &str) -> Option<(&str, Cmp, &str)> {
    let i = term.find([':', '>', '<', '='])?;
    let (field, rest) = term.split_at(i);
    let (cmp, value) = if let Some(v) = rest.strip_prefix(">=") {
        (Cmp::Ge, v)
    } else if let Some(v) = rest.strip_prefix("<=") {
        (Cmp::Le, v)
    } else if let Some(v) = rest.strip_prefix('>') {
        (Cmp::Gt, v)
    } else if let Some(v) = rest.strip_prefix('<') {
        (Cmp::Lt, v)
    } else {
        (Cmp::Eq, &rest[1..])
    };
    Some((field, cmp, value))
}

fn duration(field: &str, v: &str) -> Result<Duration, String> {
    crate::when::parse_duration(v)
        .map(|d| Duration::from_std(d).unwrap_or(Duration::MAX))
        .map_err(|e| format!("{field}: {e}"))
}

impl Filter {
    /// Parses a query. Unknown fields and bad values are errors that say what is expected.
    pub fn parse(q: &str) -> Result<Filter, String> {
        let mut f = Filter::default();
        let mut text = Vec::new();
        for raw in q.split_whitespace() {
            let (neg, t) = match raw.strip_prefix('-') {
                Some(rest) if split_op(rest).is_some() => (true, rest),
                _ => (false, raw),
            };
            let Some((field, cmp, value)) = split_op(t) else {
                text.push(raw);
                continue;
            };
            if field.is_empty() || !field.chars().all(|c| c.is_ascii_alphabetic()) {
                text.push(raw);
                continue;
            }
            if value.is_empty() {
                return Err(format!("`{raw}`: missing value after `{field}`"));
            }
            let lower = value.to_lowercase();
            let eq_only = |term: Term| {
                if cmp == Cmp::Eq {
                    Ok(term)
                } else {
                    Err(format!("`{raw}`: `{field}` takes `{field}:value`"))
                }
            };
            let term = match field.to_ascii_lowercase().as_str() {
                "status" => eq_only(Term::Status(
                    value.parse().map_err(|e| format!("`{raw}`: {e}"))?,
                ))?,
                "owner" => eq_only(Term::Owner(lower))?,
                "env" | "environment" => eq_only(Term::Env(lower))?,
                "provider" => eq_only(Term::Provider(lower))?,
                "name" => eq_only(Term::Name(lower))?,
                "id" => eq_only(Term::Id(lower))?,
                "scope" => eq_only(Term::Scope(lower))?,
                "source" => eq_only(Term::Source(
                    value.parse().map_err(|e| format!("`{raw}`: {e}"))?,
                ))?,
                "age" => Term::Age(cmp, duration(raw, value)?),
                "unused" => Term::Unused(cmp, duration(raw, value)?),
                "expires" => Term::Expires(cmp, duration(raw, value)?),
                "severity" => {
                    Term::Severity(cmp, value.parse().map_err(|e| format!("`{raw}`: {e}"))?)
                }
                "findings" => Term::Findings(
                    cmp,
                    value
                        .parse()
                        .map_err(|_| format!("`{raw}`: expected a number, e.g. findings>0"))?,
                ),
                "ip" => eq_only(Term::Ip(
                    Network::parse(value).map_err(|e| format!("`{raw}`: {e}"))?,
                ))?,
                other => {
                    return Err(format!(
                        "unknown field `{other}` in `{raw}`; fields: {FIELDS}"
                    ));
                }
            };
            f.terms.push((neg, term));
        }
        f.text = text.join(" ");
        Ok(f)
    }

    /// True when the query selects everything.
    pub fn is_empty(&self) -> bool {
        self.terms.is_empty() && self.text.is_empty()
    }

    /// The `ip:` networks of the query; the caller resolves them to keys with
    /// [`crate::store::Store::keys_seen_from`].
    pub fn networks(&self) -> Vec<Network> {
        self.terms
            .iter()
            .filter_map(|(_, t)| match t {
                Term::Ip(n) => Some(*n),
                _ => None,
            })
            .collect()
    }

    /// Whether a key passes the field terms. `seen_from` holds the keys seen from the
    /// query's networks (ignored when the query has none).
    pub fn matches_terms(
        &self,
        r: &KeyRow,
        now: DateTime<Utc>,
        seen_from: Option<&HashSet<i64>>,
    ) -> bool {
        self.terms
            .iter()
            .all(|(neg, t)| self.term_holds(t, r, now, seen_from) != *neg)
    }

    fn term_holds(
        &self,
        t: &Term,
        r: &KeyRow,
        now: DateTime<Utc>,
        seen_from: Option<&HashSet<i64>>,
    ) -> bool {
        let k = &r.key;
        let has = |hay: &str, needle: &str| hay.to_lowercase().contains(needle);
        match t {
            Term::Status(s) => k.status == *s,
            Term::Owner(v) => has(&k.owner, v),
            Term::Env(v) => k
                .environment
                .as_deref()
                .is_some_and(|e| e.eq_ignore_ascii_case(v)),
            Term::Provider(v) => has(&k.provider, v),
            Term::Name(v) => has(&k.name, v),
            Term::Id(v) => has(&k.id, v),
            Term::Scope(v) => k.scopes.iter().any(|s| {
                let s = s.to_lowercase();
                s == *v || s.starts_with(&format!("{v}:"))
            }),
            Term::Source(s) => k.source == *s,
            Term::Age(c, d) => k.created.is_some_and(|at| c.holds(now - at, *d)),
            Term::Unused(c, d) => {
                let idle = k
                    .last_used
                    .or(k.created)
                    .map(|t| now - t)
                    .unwrap_or(Duration::MAX);
                c.holds(idle, *d)
            }
            Term::Expires(c, d) => k.expires.is_some_and(|at| c.holds(at - now, *d)),
            Term::Severity(c, s) => r.worst_severity.is_some_and(|w| c.holds(w, *s)),
            Term::Findings(c, n) => c.holds(r.open_findings, *n),
            Term::Ip(_) => seen_from.is_some_and(|set| set.contains(&r.key_ref)),
        }
    }

    /// The fuzzy score of a key against the text: every word of the text must match
    /// (scores add up); `Some(0)` when there is no text.
    pub fn score(&self, matcher: &SkimMatcherV2, r: &KeyRow) -> Option<i64> {
        if self.text.is_empty() {
            return Some(0);
        }
        let k = &r.key;
        HAYSTACK.with(|buf| {
            let mut hay = buf.borrow_mut();
            hay.clear();
            for (i, part) in [&k.name, &k.owner, &k.id, &k.provider]
                .into_iter()
                .enumerate()
            {
                if i > 0 {
                    hay.push(' ');
                }
                hay.push_str(part);
            }
            // Each word matches on its own (like fzf): `acme prod` = acme AND prod. A cheap
            // in-order character check rejects most keys before the scoring matcher runs.
            self.text.split_whitespace().try_fold(0, |total, word| {
                if !is_subsequence_ci(&hay, word) {
                    return None;
                }
                matcher.fuzzy_match(&hay, word).map(|s| total + s)
            })
        })
    }

    /// Filters and ranks keys: field terms select, fuzzy text selects and orders (best
    /// first; ties keep the input order).
    pub fn apply_keys_with(
        &self,
        rows: Vec<KeyRow>,
        now: DateTime<Utc>,
        seen_from: Option<&HashSet<i64>>,
    ) -> Vec<KeyRow> {
        let matcher = SkimMatcherV2::default();
        let mut scored: Vec<(i64, KeyRow)> = rows
            .into_iter()
            .filter(|r| self.matches_terms(r, now, seen_from))
            .filter_map(|r| self.score(&matcher, &r).map(|s| (s, r)))
            .collect();
        if !self.text.is_empty() {
            scored.sort_by_key(|s| std::cmp::Reverse(s.0));
        }
        scored.into_iter().map(|(_, r)| r).collect()
    }

    /// [`Filter::apply_keys_with`] for queries without `ip:` terms.
    pub fn apply_keys(&self, rows: Vec<KeyRow>, now: DateTime<Utc>) -> Vec<KeyRow> {
        self.apply_keys_with(rows, now, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{from_millis, Key};

    fn row(id: &str, owner: &str, env: &str, status: KeyStatus, age_days: i64) -> KeyRow {
        let now = from_millis(1_800_000_000_000);
        let mut k = Key::seen_in_logs("talentgrid", id);
        k.name = format!("{id}-sync");
        k.owner = owner.into();
        k.environment = Some(env.into());
        k.status = status;
        k.source = KeySource::Provider;
        k.created = Some(now - Duration::days(age_days));
        k.scopes = vec!["ssn:read".into(), "payroll:read".into()];
        KeyRow {
            key_ref: id.len() as i64,
            key: k,
            open_findings: 0,
            worst_severity: None,
        }
    }

    #[test]
    fn field_terms_combine_with_fuzzy_text() {
        let now = from_millis(1_800_000_000_000);
        let rows = vec![
            row("a1", "Acme Payroll", "prod", KeyStatus::Active, 120),
            row("b22", "Acme Payroll", "sandbox", KeyStatus::Active, 120),
            row("c333", "Brightpath ATS", "prod", KeyStatus::Revoked, 10),
        ];
        let f = Filter::parse("status:active owner:acme env:prod age>90d").unwrap();
        let got: Vec<_> = f
            .apply_keys(rows.clone(), now)
            .into_iter()
            .map(|r| r.key.id)
            .collect();
        assert_eq!(got, ["a1"]);
        let f = Filter::parse("bright -status:active scope:ssn:read").unwrap();
        let got: Vec<_> = f
            .apply_keys(rows.clone(), now)
            .into_iter()
            .map(|r| r.key.id)
            .collect();
        assert_eq!(got, ["c333"]);
        assert_eq!(f.text, "bright");
    }

    #[test]
    fn bad_terms_say_what_is_expected() {
        assert!(Filter::parse("colour:red")
            .unwrap_err()
            .contains("fields: status"));
        assert!(Filter::parse("status:enabled")
            .unwrap_err()
            .contains("expected one of"));
        assert!(Filter::parse("age>ninety")
            .unwrap_err()
            .contains("duration"));
        assert!(Filter::parse("severity>=urgent")
            .unwrap_err()
            .contains("low, medium, high, critical"));
    }

    #[test]
    fn the_pre_check_never_rejects_a_match() {
        let m = SkimMatcherV2::default();
        let hays = [
            "ledgerly-tax-filing Ledgerly Payroll key_0c19 talentgrid",
            "acme-sync Acme key_77aa payroll-hub",
            "Brightpath ATS key_9e02 talentgrid",
            "Ünïcode owner key_ü hr",
        ];
        let needles = [
            "LPay", "amx", "bats", "ün", "Üo", "key_9", "tg", "zz", "hub", "payroll",
        ];
        for hay in hays {
            for needle in needles {
                if m.fuzzy_match(hay, needle).is_some() {
                    assert!(is_subsequence_ci(hay, needle), "{hay} / {needle}");
                }
            }
            assert!(!is_subsequence_ci(hay, "qqq"));
        }
    }

    #[test]
    fn networks_match_v4_and_v6() {
        let n = Network::parse("203.0.113.0/24").unwrap();
        assert!(n.contains_str("203.0.113.77"));
        assert!(!n.contains_str("203.0.114.1"));
        let n6 = Network::parse("2001:db8:1::/48").unwrap();
        assert!(n6.contains_str("2001:db8:1:ffff::1"));
        assert!(!n6.contains_str("2001:db8:2::1"));
        assert!(Network::parse("10.0.0.0/33").is_err());
        let f = Filter::parse("ip:203.0.113.0/24").unwrap();
        assert_eq!(f.networks(), vec![n]);
    }
}
