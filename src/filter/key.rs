//! The key filter grammar shared by the TUI (`/`), `keys --filter` and `revoke --match`.
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

use super::fuzzy;
use crate::model::{KeySource, KeyStatus, Severity};
use crate::store::KeyRow;
use chrono::{DateTime, Duration, Utc};
use std::collections::HashSet;
use std::net::IpAddr;

pub use super::fuzzy::Scratch;

/// Writes the text the fuzzy words are matched against: the key's name, owner, id and
/// provider, separated by spaces.
fn key_text(r: &KeyRow, out: &mut String) {
    let k = &r.key;
    out.clear();
    for (i, part) in [&k.name, &k.owner, &k.id, &k.provider]
        .into_iter()
        .enumerate()
    {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(part);
    }
}

thread_local! {
    /// A key's text, its bonuses and the scorer's scratch, reused from key to key.
    static ONE_KEY: std::cell::RefCell<(String, Vec<u8>, Scratch)> = std::cell::RefCell::default();
}

/// A word of the fuzzy text, ready to score.
#[derive(Debug, Clone, PartialEq)]
pub struct Word {
    text: String,
    chars: Vec<char>,
    /// Skim's smart case: a word with an ASCII capital matches case-sensitively.
    case_sensitive: bool,
    /// For a one-character word `a`..`z` or `0`..`9`: its place in [`KeyTexts`]' table.
    single: Option<usize>,
}

impl Word {
    fn new(text: &str) -> Word {
        let chars: Vec<char> = text.chars().collect();
        Word {
            text: text.to_string(),
            single: match chars.as_slice() {
                [c] => fuzzy::single_slot(*c),
                _ => None,
            },
            chars,
            case_sensitive: text.bytes().any(|b| b.is_ascii_uppercase()),
        }
    }

    /// The word as typed.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The score of the word in a text (`bonus`: one per character), `None` when it does
    /// not match.
    fn score(
        &self,
        text: &str,
        bonus: &[u8],
        chars: &mut Vec<char>,
        s: &mut Scratch,
    ) -> Option<i32> {
        if text.is_ascii() {
            if !self.text.is_ascii() {
                // A non-ASCII character never equals an ASCII one, in any case.
                return None;
            }
            fuzzy::score(
                text.as_bytes(),
                bonus,
                self.text.as_bytes(),
                self.case_sensitive,
                s,
            )
        } else {
            chars.clear();
            chars.extend(text.chars());
            fuzzy::score(chars, bonus, &self.chars, self.case_sensitive, s)
        }
    }
}

/// The text of every key of a list (see [`Filter::words`]) with its character bonuses,
/// prepared once per list so that scoring a keystroke reads flat memory.
#[derive(Debug, Default)]
pub struct KeyTexts {
    text: String,
    /// One per character, at the start of the key's range (ASCII: one per byte).
    bonus: Vec<u8>,
    /// Start of each key's range in `text` and `bonus`; one more than there are keys.
    start: Vec<usize>,
    /// The score of each one-character word in each key ([`fuzzy::SINGLES`] per key).
    singles: Vec<u8>,
}

impl KeyTexts {
    /// Prepares the texts of `rows`.
    pub fn new(rows: &[KeyRow]) -> KeyTexts {
        let mut t = KeyTexts {
            text: String::with_capacity(rows.len() * 80),
            bonus: Vec::with_capacity(rows.len() * 80),
            start: Vec::with_capacity(rows.len() + 1),
            singles: Vec::with_capacity(rows.len() * fuzzy::SINGLES),
        };
        let mut one = String::new();
        t.start.push(0);
        for r in rows {
            key_text(r, &mut one);
            t.text.push_str(&one);
            let at = t.bonus.len();
            fuzzy::push_bonuses(&one, &mut t.bonus);
            fuzzy::push_singles(&one, &t.bonus[at..], &mut t.singles);
            t.bonus.resize(t.text.len(), 0);
            t.start.push(t.text.len());
        }
        t
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.start.len() - 1
    }

    /// True when there are no keys.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The score of `word` in the text of key `i` (`None`: no match, or no such key).
    /// `chars` is scratch space for texts that are not ASCII.
    pub fn score(
        &self,
        i: usize,
        word: &Word,
        chars: &mut Vec<char>,
        s: &mut Scratch,
    ) -> Option<i32> {
        if let Some(slot) = word.single {
            let score = *self.singles.get(i * fuzzy::SINGLES + slot)?;
            return (score > 0).then_some(i32::from(score));
        }
        let (a, b) = (*self.start.get(i)?, *self.start.get(i + 1)?);
        word.score(&self.text[a..b], &self.bonus[a..b], chars, s)
    }
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

    /// The words of the fuzzy text; a key matches when every word matches.
    pub fn words(&self) -> Vec<Word> {
        self.text.split_whitespace().map(Word::new).collect()
    }

    /// The fuzzy score of a key against the text: every word of the text must match
    /// (scores add up); `Some(0)` when there is no text.
    pub fn score(&self, r: &KeyRow) -> Option<i64> {
        Self::score_words(&self.words(), r)
    }

    fn score_words(words: &[Word], r: &KeyRow) -> Option<i64> {
        if words.is_empty() {
            return Some(0);
        }
        ONE_KEY.with(|cell| {
            let (text, bonus, scratch) = &mut *cell.borrow_mut();
            key_text(r, text);
            bonus.clear();
            fuzzy::push_bonuses(text, bonus);
            let mut chars = Vec::new();
            // Each word matches on its own (like fzf): `acme prod` = acme AND prod.
            words.iter().try_fold(0, |total, w| {
                w.score(text, bonus, &mut chars, scratch)
                    .map(|s| total + i64::from(s))
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
        let words = self.words();
        let mut scored: Vec<(i64, KeyRow)> = rows
            .into_iter()
            .filter(|r| self.matches_terms(r, now, seen_from))
            .filter_map(|r| Self::score_words(&words, &r).map(|s| (s, r)))
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
    fn prepared_texts_score_as_one_key_does() {
        let now = from_millis(1_800_000_000_000);
        let mut rows = vec![
            row("a1", "Acme Payroll", "prod", KeyStatus::Active, 120),
            row("b22", "Brightpath ATS", "sandbox", KeyStatus::Active, 120),
            row("c333", "Ünïcode Löhne", "prod", KeyStatus::Revoked, 10),
        ];
        rows[2].key.name = "lohn-ü-sync".into();
        let texts = KeyTexts::new(&rows);
        assert_eq!(texts.len(), 3);
        let (mut chars, mut s) = (Vec::new(), Scratch::default());
        for q in [
            "a", "Acme", "sync", "ü", "Ün", "löh", "tg", "zz", "b2", "acme pay",
        ] {
            let f = Filter::parse(q).unwrap();
            let words = f.words();
            for (i, r) in rows.iter().enumerate() {
                let prepared = words.iter().try_fold(0, |t, w| {
                    texts
                        .score(i, w, &mut chars, &mut s)
                        .map(|x| t + i64::from(x))
                });
                assert_eq!(prepared, f.score(r), "{q} / {}", r.key.id);
            }
        }
        let f = Filter::parse("acme").unwrap();
        let ids: Vec<_> = f
            .apply_keys(rows, now)
            .into_iter()
            .map(|r| r.key.id)
            .collect();
        assert_eq!(ids, ["a1"]);
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
