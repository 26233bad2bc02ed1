//! The prefilter: what a rule needs to find in a raw record's text before it can match,
//! so that most records are never parsed and most rules never evaluated.
//!
//! Every literal piece of a value pattern (`eventName: CreateAccessKey`, a `contains`
//! needle, a keyword) occurs in the text of any field value the pattern matches. A
//! rule's condition gives groups of such needles, every group needing one of its needles
//! in the record: a selection's items are all needed, a list of values needs one of
//! them, `1 of` needs one of the searches. One Aho-Corasick pass over the record's text
//! (ASCII case-insensitive) finds the needles it holds; a rule with a group of which no
//! needle occurs cannot match, and is not evaluated.
//!
//! Exactness: a field value appears in the record's text as written only when the text
//! holds no JSON escape (`\u0041`, `\/`), and text compares case-insensitively byte for
//! byte only when it is ASCII (non-ASCII text lowercases in ways its bytes do not: the
//! Kelvin sign becomes `k`). So a record with a backslash or a non-ASCII byte is
//! evaluated by every rule. Numbers are compared as serde_json writes them, which need
//! not be their text in the record (`1e3` is `1000.0`), so a needle made only of digits,
//! signs, dots and `e` is not used. Nothing is needed under `not`, nor of `null`,
//! `exists`, `re`, `cidr`, numeric comparisons or patterns with `?`: such a part leaves
//! its rule evaluated on every record it could otherwise skip.

use super::condition::Expr;
use super::modifiers::Matcher;
use super::parse::{Item, Search};
use super::Rule;
use aho_corasick::AhoCorasick;
use std::cmp::Reverse;
use std::collections::HashMap;

/// Groups of needles (lowercase ASCII), every group needing one of its needles.
type Groups = Vec<Vec<String>>;

/// Whether a needle can be looked for in a record's bytes (see the module's notes).
fn usable(n: &str) -> bool {
    n.is_ascii()
        && n.bytes()
            .any(|b| !matches!(b, b'0'..=b'9' | b'.' | b'e' | b'E' | b'+' | b'-'))
}

fn matcher(m: &Matcher) -> Option<Groups> {
    match m {
        Matcher::Pattern(p) => p
            .longest_piece()
            .filter(|n| usable(n))
            .map(|n| vec![vec![n.to_ascii_lowercase()]]),
        _ => None,
    }
}

/// The need of "any of `parts`": one group made of each part's most selective group.
/// `None` (nothing needed) when any part needs nothing, or there are no parts.
fn any(parts: impl Iterator<Item = Option<Groups>>) -> Option<Groups> {
    let mut parts: Vec<Option<Groups>> = parts.collect();
    // One part needs all its groups.
    if parts.len() == 1 {
        return parts.pop().flatten();
    }
    let mut group = Vec::new();
    for p in parts {
        let best = p?.into_iter().max_by_key(|g| {
            (
                g.iter().map(String::len).min().unwrap_or(0),
                Reverse(g.len()),
            )
        })?;
        group.extend(best);
    }
    if group.is_empty() {
        return None;
    }
    group.sort();
    group.dedup();
    Some(vec![group])
}

/// The need of "all of `parts`": every group of every part.
fn all(parts: impl Iterator<Item = Option<Groups>>) -> Option<Groups> {
    let groups: Groups = parts.flatten().flatten().collect();
    (!groups.is_empty()).then_some(groups)
}

fn item(i: &Item) -> Option<Groups> {
    let entries = i.values.iter().map(|ms| any(ms.iter().map(matcher)));
    if i.all {
        all(entries)
    } else {
        any(entries)
    }
}

fn search(s: &Search) -> Option<Groups> {
    match s {
        Search::Maps(alts) => any(alts.iter().map(|items| all(items.iter().map(item)))),
        Search::Keywords(kws) => any(kws.iter().map(matcher)),
    }
}

fn expr(rule: &Rule, e: &Expr) -> Option<Groups> {
    match e {
        Expr::Search(i) => search(&rule.searches[*i]),
        Expr::Not(_) => None,
        Expr::And(xs) => all(xs.iter().map(|x| expr(rule, x))),
        Expr::Or(xs) => any(xs.iter().map(|x| expr(rule, x))),
    }
}

/// The needles of one rule, in groups; `None` when nothing is needed.
pub(super) fn needs(rule: &Rule) -> Option<Groups> {
    expr(rule, &rule.condition)
}

/// Whether a record's bytes can be judged by the prefilter: ASCII without escapes.
pub(super) fn plain(raw: &str) -> bool {
    raw.is_ascii() && memchr::memchr(b'\\', raw.as_bytes()).is_none()
}

/// The needles of a rule set, found in one pass.
#[derive(Debug)]
pub(super) struct Prefilter {
    /// `None` when no rule needs anything.
    ac: Option<AhoCorasick>,
    /// Per rule, its groups of needle numbers; `None` for a rule evaluated on every
    /// record.
    needs: Vec<Option<Vec<Vec<u32>>>>,
    needles: usize,
}

/// What one evaluating thread reuses from record to record.
#[derive(Debug, Default)]
pub struct Scratch {
    /// Per needle, the record number it was last seen in.
    seen: Vec<u32>,
    record: u32,
    pub(super) candidates: Vec<usize>,
}

impl Prefilter {
    pub(super) fn new(rules: &[Rule]) -> Prefilter {
        let mut needles: Vec<String> = Vec::new();
        let mut numbers: HashMap<String, u32> = HashMap::new();
        let mut number = |n: String| -> u32 {
            *numbers.entry(n).or_insert_with_key(|n| {
                needles.push(n.clone());
                (needles.len() - 1) as u32
            })
        };
        let mut per_rule: Vec<Option<Vec<Vec<u32>>>> = rules
            .iter()
            .map(|r| {
                needs(r).map(|groups| {
                    groups
                        .into_iter()
                        .map(|g| g.into_iter().map(&mut number).collect())
                        .collect()
                })
            })
            .collect();
        let ac = if needles.is_empty() {
            None
        } else {
            // A DFA: the fastest search for a few hundred needles, and the one the
            // overlapping search (every needle in the record) gains most from.
            match AhoCorasick::builder()
                .ascii_case_insensitive(true)
                .kind(Some(aho_corasick::AhoCorasickKind::DFA))
                .build(&needles)
            {
                Ok(ac) => Some(ac),
                // Too many needles for the automaton: every rule is evaluated.
                Err(e) => {
                    tracing::warn!(error = %e, "sigma prefilter not built");
                    per_rule.iter_mut().for_each(|n| *n = None);
                    None
                }
            }
        };
        Prefilter {
            ac,
            needs: per_rule,
            needles: needles.len(),
        }
    }

    /// Puts into `scratch.candidates` the rules (by index) that may match `raw`, in
    /// order: every rule when the record's bytes cannot be judged.
    pub(super) fn candidates(&self, raw: &str, scratch: &mut Scratch) {
        scratch.candidates.clear();
        let (Some(ac), true) = (&self.ac, plain(raw)) else {
            scratch.candidates.extend(0..self.needs.len());
            return;
        };
        if scratch.seen.len() != self.needles || scratch.record == u32::MAX {
            scratch.seen = vec![0; self.needles];
            scratch.record = 0;
        }
        scratch.record += 1;
        let now = scratch.record;
        for m in ac.find_overlapping_iter(raw) {
            scratch.seen[m.pattern().as_usize()] = now;
        }
        let seen = &scratch.seen;
        for (i, need) in self.needs.iter().enumerate() {
            let ok = need.as_ref().is_none_or(|groups| {
                groups
                    .iter()
                    .all(|g| g.iter().any(|&n| seen[n as usize] == now))
            });
            if ok {
                scratch.candidates.push(i);
            }
        }
    }

    /// How many rules are evaluated on every record whatever its text.
    pub(super) fn unfiltered(&self) -> usize {
        self.needs.iter().filter(|n| n.is_none()).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sigma::RuleSet;
    use std::path::Path;

    fn need(detection: &str) -> Option<Groups> {
        let mut set = RuleSet::default();
        set.add_text(
            Path::new("t.yml"),
            &format!("title: t\ndetection:\n{detection}"),
        );
        assert!(set.errors.is_empty(), "{:?}", set.errors);
        needs(&set.rules[0])
    }

    fn groups(g: &[&[&str]]) -> Option<Groups> {
        Some(
            g.iter()
                .map(|g| g.iter().map(|n| n.to_string()).collect())
                .collect(),
        )
    }

    #[test]
    fn selections_need_every_item_and_lists_one_value() {
        assert_eq!(
            need(
                "  s:\n    eventSource: iam.amazonaws.com\n    eventName:\n      - CreateUser\n      \
                 - DeleteUser\n  condition: s\n"
            ),
            groups(&[&["iam.amazonaws.com"], &["createuser", "deleteuser"]])
        );
        assert_eq!(
            need(
                "  a:\n    userAgent|contains|all:\n      - Boto3\n      - Pacu\n  condition: a\n"
            ),
            groups(&[&["boto3"], &["pacu"]])
        );
    }

    #[test]
    fn one_of_needs_one_search_and_not_or_null_need_nothing() {
        assert_eq!(
            need(
                "  a:\n    eventName: StopLogging\n  b:\n    eventName|contains: DeleteTrail\n  \
                 condition: 1 of them\n"
            ),
            groups(&[&["deletetrail", "stoplogging"]])
        );
        assert_eq!(
            need("  a:\n    eventName: StopLogging\n  b:\n    errorCode: null\n  condition: a or b\n"),
            None
        );
        assert_eq!(
            need(
                "  a:\n    eventName: StopLogging\n  b:\n    errorCode: null\n  \
                 condition: a and not b\n"
            ),
            groups(&[&["stoplogging"]])
        );
        assert_eq!(
            need("  a:\n    eventName: StopLogging\n  condition: not a\n"),
            None
        );
    }

    #[test]
    fn numbers_wildcards_regexes_and_networks_need_nothing() {
        for detection in [
            "  a:\n    count: 1000\n  condition: a\n",
            "  a:\n    userName: 'k?te'\n  condition: a\n",
            "  a:\n    userName|re: kate\n  condition: a\n",
            "  a:\n    sourceIPAddress|cidr: 10.0.0.0/8\n  condition: a\n",
            "  a:\n    userName|windash|contains: ' -enc'\n  condition: a\n",
        ] {
            assert_eq!(need(detection), None, "{detection}");
        }
    }
}
