//! Generic detection (`--generic`, off by default): a high-entropy value assigned to a
//! name that says it is secret (`api_key = "…"`, `"token": "…"`). Scored low: this is
//! where other scanners' false positives come from, so it only runs when asked.

use super::context::line_of;
use super::rules::Cand;
use super::shape::{entropy, mixed};
use std::ops::Range;

/// Values that are references to a secret, not the secret.
const PLACEHOLDERS: &[&str] = &[
    "${",
    "{{",
    "<",
    "process.env",
    "os.environ",
    "getenv",
    "example",
    "xxxx",
    "changeme",
    "placeholder",
    "redacted",
    "dummy",
];

pub fn find(text: &[u8], kw: Range<usize>) -> Option<Cand> {
    let line = line_of(text, kw.start);
    // The rest of the name, then `=`, `:` or `:=` within a few characters.
    let mut i = kw.end;
    while i < line.end
        && (text[i].is_ascii_alphanumeric()
            || matches!(text[i], b'_' | b'-' | b'"' | b'\'' | b' ' | b'\t'))
        && i - kw.end < 24
    {
        i += 1;
    }
    if i >= line.end || !matches!(text[i], b'=' | b':') {
        return None;
    }
    while i < line.end && matches!(text[i], b'=' | b':' | b' ' | b'\t' | b'"' | b'\'' | b'`') {
        i += 1;
    }
    let start = i;
    while i < line.end
        && !matches!(
            text[i],
            b' ' | b'\t' | b'"' | b'\'' | b'`' | b',' | b';' | b'\r'
        )
    {
        i += 1;
    }
    let value = std::str::from_utf8(&text[start..i]).ok()?;
    let lower = value.to_ascii_lowercase();
    if !(20..=200).contains(&value.len()) || PLACEHOLDERS.iter().any(|p| lower.contains(p)) {
        return None;
    }
    let hex = value.bytes().all(|b| b.is_ascii_hexdigit());
    let random = if hex {
        value.len() >= 32 && entropy(value) >= 3.5
    } else {
        mixed(value) && entropy(value) >= 4.0
    };
    random.then_some(Cand {
        span: start..i,
        material: None,
        key_id: None,
    })
}
