//! Leak scanning: find secrets in files, archives, standard input and git history, and
//! match them to cached keys.
//!
//! - [`rules`] holds the detectors (one per kind of secret, from each vendor's
//!   documented format; [`shape`] their checksums and structure checks, [`context`] the
//!   ones that need the lines around a keyword, [`generic`] the optional high-entropy
//!   one). A keyword prefilter (one Aho-Corasick automaton over every detector's
//!   keywords) decides which detectors run where, so text without any keyword costs one
//!   pass of the automaton.
//! - [`source`] reads files, directories (honouring `.gitignore`), `.gz` and `.zip`
//!   archives and standard input, in bounded chunks; [`git`] reads history and the
//!   staging area.
//! - [`report`] holds severities, baselines and SARIF.
//!
//! A hit carries where it was found, the detector, the masked form
//! ([`crate::secret::mask`]) and the SHA-256 fingerprint of the material; the secret
//! itself never leaves this module.

pub mod context;
pub mod generic;
pub mod git;
pub mod report;
pub mod rules;
pub mod shape;
pub mod source;

pub use rules::{Detector, Validation};
pub use source::{scan_paths, scan_reader, SourceError};

use crate::secret;
use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use rules::{Cand, Find, DETECTORS, GENERIC, OWN};

/// Where in git history a hit was first introduced.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Introduced {
    pub commit: String,
    pub author: String,
    pub time: chrono::DateTime<chrono::Utc>,
}

/// One secret found.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Hit {
    /// The file (or `-` for standard input; `archive.zip!inner/path` inside an archive).
    pub file: String,
    pub line: usize,
    pub column: usize,
    /// The detector's id (`github-pat`, `aws-secret-access-key`, …).
    pub kind: &'static str,
    pub title: &'static str,
    pub vendor: &'static str,
    /// Confidence, 0 to 100.
    pub score: u8,
    pub validation: Validation,
    /// What may be shown of the secret ([`secret::mask`]).
    pub shown: String,
    /// `sha256:` fingerprint of the material (how cached keys are matched).
    pub fingerprint: String,
    /// A public id found with the secret (an AWS access key id, a Twilio SID, an Azure
    /// account name, a service account's key id).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    /// A GitHub token's `hashed_token`: the base64 SHA-256 of the token, as GitHub's
    /// audit log records it on every event the token made (search the audit log for
    /// `hashed_token:"…"`). Imported audit-log events are matched by it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hashed_token: Option<String>,
    /// The commit that introduced it (`--git`, `--staged` leaves it empty).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub introduced: Option<Introduced>,
    /// The last 4 characters of the material, compared with the redacted values that
    /// providers list (`sk-…abcd`). Never printed or serialised.
    #[serde(skip)]
    pub last4: String,
}

/// Which detectors run.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Also run the generic high-entropy detector.
    pub generic: bool,
}

/// The compiled detectors: build once, scan many chunks (shared across threads).
pub struct Scanner {
    ac: AhoCorasick,
    /// The detector and keyword of each pattern, by pattern index.
    owner: Vec<(&'static Detector, &'static str)>,
}

impl Scanner {
    pub fn new(opts: &Options) -> Scanner {
        let mut patterns = Vec::new();
        let mut owner = Vec::new();
        let generic = opts.generic.then_some(&GENERIC);
        for d in DETECTORS.iter().chain(generic) {
            for k in d.keywords {
                patterns.push(*k);
                owner.push((d, *k));
            }
        }
        let ac = AhoCorasickBuilder::new()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::Standard)
            .build(&patterns)
            .expect("detector keywords build an automaton");
        Scanner { ac, owner }
    }

    /// The secrets in `text`: (detector, candidate, material), in order of position,
    /// with candidates inside another one's span left out (a PEM key inside a
    /// service-account file is one finding).
    pub fn candidates(&self, text: &[u8]) -> Vec<(&'static Detector, Cand, String)> {
        let mut found: Vec<(&'static Detector, Cand)> = Vec::new();
        for m in self.ac.find_overlapping_iter(text) {
            let (d, keyword) = self.owner[m.pattern().as_usize()];
            let c = match &d.find {
                Find::Token {
                    body,
                    min,
                    max,
                    check,
                } => token_at(text, m.start(), keyword, *body, *min, *max, *check),
                Find::Custom(f) => f(text, m.range()),
            };
            if let Some(c) = c {
                found.push((d, c));
            }
        }
        own_keys(text, &mut found);
        found.sort_by_key(|(_, c)| (c.span.start, std::cmp::Reverse(c.span.end)));
        let mut out: Vec<(&'static Detector, Cand, String)> = Vec::new();
        for (d, c) in found {
            let material = match &c.material {
                Some(m) => m.clone(),
                None => String::from_utf8_lossy(&text[c.span.clone()]).into_owned(),
            };
            if is_documentation_example(&material) {
                continue;
            }
            if out
                .iter()
                .rev()
                .take(8)
                .any(|(_, k, _)| k.span.start <= c.span.start && c.span.end <= k.span.end)
            {
                continue;
            }
            out.push((d, c, material));
        }
        out
    }

    /// The hits in `text`, whose first line is line `first_line` of `file`.
    pub fn scan_text(&self, file: &str, text: &[u8], first_line: usize) -> Vec<Hit> {
        let mut line = first_line;
        let mut counted = 0;
        let mut line_start = 0;
        let mut hits = Vec::new();
        for (d, c, material) in self.candidates(text) {
            for nl in memchr::memchr_iter(b'\n', &text[counted..c.span.start]) {
                line += 1;
                line_start = counted + nl + 1;
            }
            counted = c.span.start;
            hits.push(hit(
                file,
                line,
                c.span.start - line_start + 1,
                d,
                c.key_id,
                &material,
            ));
        }
        hits
    }
}

/// Whether `material` spells `EXAMPL` in capitals: the mark of vendors' documentation
/// values (AWS's `AKIAIOSFODNN7EXAMPLE` and `wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY`,
/// which SDKs and their tests repeat, and variants such as `…EXAMPLF`). A random key
/// holds these six capitals in a row with a chance below one in ten million.
fn is_documentation_example(material: &str) -> bool {
    memchr::memmem::find(material.as_bytes(), b"EXAMPL").is_some()
}

/// A hit from a detector's candidate; the material is dropped here.
fn hit(
    file: &str,
    line: usize,
    column: usize,
    d: &'static Detector,
    key_id: Option<String>,
    material: &str,
) -> Hit {
    let shown = match d.vendor {
        // A private key has no public prefix worth showing; name its kind instead.
        "pem" | "google" if d.id != "google-api-key" => format!("{}…", d.id),
        _ => secret::mask(material),
    };
    let chars: Vec<char> = material.chars().collect();
    Hit {
        file: file.to_string(),
        line,
        column,
        kind: d.id,
        title: d.title,
        vendor: d.vendor,
        score: d.score,
        validation: d.validation,
        shown,
        fingerprint: secret::fingerprint(material),
        key_id,
        hashed_token: (d.vendor == "github").then(|| hashed_token(material)),
        introduced: None,
        last4: chars[chars.len().saturating_sub(4)..].iter().collect(),
    }
}

/// GitHub's `hashed_token` of a token: base64 (standard, padded) of its SHA-256.
pub fn hashed_token(token: &str) -> String {
    use base64::Engine;
    use sha2::Digest;
    base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(token.as_bytes()))
}

/// A token that starts with `prefix` (compared exactly) at `at`, not inside a word,
/// with a body of `min..=max` `body` bytes (a trailing `.` is punctuation, not body),
/// confirmed by `check`.
fn token_at(
    text: &[u8],
    at: usize,
    prefix: &str,
    body: fn(u8) -> bool,
    min: usize,
    max: usize,
    check: Option<fn(&str) -> bool>,
) -> Option<Cand> {
    let p = prefix.as_bytes();
    if !text[at..].starts_with(p) || (at > 0 && shape::word(text[at - 1])) {
        return None;
    }
    let start = at + p.len();
    let mut end = start;
    while end < text.len() && body(text[end]) && end - start <= max {
        end += 1;
    }
    if end - start > max {
        return None;
    }
    while end > start && text[end - 1] == b'.' {
        end -= 1;
    }
    if end - start < min || (end < text.len() && shape::word(text[end]) && text[end] != b'.') {
        return None;
    }
    let token = std::str::from_utf8(&text[at..end]).ok()?;
    if check.is_some_and(|c| !c(token)) {
        return None;
    }
    Some(Cand {
        span: at..end,
        material: None,
        key_id: None,
    })
}

/// keyaudit's own keys (`<prefix>_<22 random><6 check>`, see [`crate::secret`]): every
/// `_` followed by exactly 28 letters and digits is a candidate, and the CRC32 check
/// decides. `memchr` finds the underscores.
fn own_keys(text: &[u8], found: &mut Vec<(&'static Detector, Cand)>) {
    let mut after = 0;
    for i in memchr::memchr_iter(b'_', text) {
        if i < after {
            continue;
        }
        let tail_end = (i + 1..text.len())
            .find(|&j| !text[j].is_ascii_alphanumeric())
            .unwrap_or(text.len());
        after = tail_end;
        if tail_end - (i + 1) != 28 || (tail_end < text.len() && text[tail_end] == b'_') {
            continue;
        }
        let mut start = i;
        while start > 0 && shape::word(text[start - 1]) && i - start < 17 {
            start -= 1;
        }
        for s in start..i {
            if s > start && text[s - 1].is_ascii_alphanumeric() {
                continue;
            }
            let Ok(cand) = std::str::from_utf8(&text[s..tail_end]) else {
                continue;
            };
            if secret::is_well_formed(cand) {
                found.push((
                    &OWN,
                    Cand {
                        span: s..tail_end,
                        material: None,
                        key_id: None,
                    },
                ));
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_own_keys_and_aws_ids_but_not_look_alikes() {
        let k = secret::generate("tg_live").unwrap();
        let text = format!(
            "export TOKEN={} # and AKIAQ3EGT7XZ5N2LW4HD plus tg_live_{}",
            k.expose(),
            "a".repeat(28)
        );
        let hits = Scanner::new(&Options::default()).scan_text("f", text.as_bytes(), 1);
        let kinds: Vec<_> = hits.iter().map(|h| h.kind).collect();
        assert_eq!(kinds, ["keyaudit", "aws-access-key-id"], "{hits:?}");
        assert_eq!(hits[0].fingerprint, k.fingerprint());
        assert_eq!(hits[0].column, 14);
        let none = Scanner::new(&Options::default()).scan_text("f", b"XAKIAQ3EGT7XZ5N2LW4HD", 1);
        assert!(none.is_empty());
    }

    #[test]
    fn lines_and_columns_count_from_the_chunk_start() {
        let k = secret::generate("ka").unwrap();
        let text = format!("a\nb\n  {}\n", k.expose());
        let hits = Scanner::new(&Options::default()).scan_text("f", text.as_bytes(), 10);
        assert_eq!((hits[0].line, hits[0].column), (12, 3));
    }
}
