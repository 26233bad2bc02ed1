//! Field modifiers: how one value of a Sigma detection item becomes a matcher of one
//! field value (`contains`, `startswith`, `endswith`, `re`, `cidr`, `windash`,
//! `base64`, `base64offset`, `cased`, `exists`, numeric comparisons; `all` is applied by
//! the caller to the list of values).

use regex::Regex;

/// One compiled value of a detection item.
#[derive(Debug, Clone)]
pub enum Matcher {
    /// A string with Sigma wildcards (`*`, `?`), compared case-insensitively unless
    /// `cased`: the whole field value must match.
    Pattern(Pattern),
    /// A regular expression (`re`), searched in the field value.
    Regex(Regex),
    /// An address inside a network (`cidr`).
    Cidr(ipnet::IpNet),
    /// A numeric comparison (`gt`, `gte`, `lt`, `lte`).
    Compare(Cmp, f64),
    /// The field is absent or JSON null (a `null` value).
    Null,
    /// The field exists (`exists: true`) or does not (`exists: false`).
    Exists(bool),
}

/// A numeric comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cmp {
    Gt,
    Gte,
    Lt,
    Lte,
}

/// A wildcard pattern cut at its `*`s: the field must start with the first piece, end
/// with the last and hold the others in order. A pattern with `?` goes through a regex.
#[derive(Debug, Clone)]
pub struct Pattern {
    cased: bool,
    /// Literal pieces between `*` (lowercased unless cased).
    pieces: Vec<String>,
    /// At least one `*`: the pieces are not the whole value.
    star: bool,
    /// Set when the pattern has a single-character wildcard.
    regex: Option<Regex>,
}

/// The modifiers of one field, parsed from `field|mod|mod`.
#[derive(Debug, Clone, Default)]
pub struct Modifiers {
    pub contains: bool,
    pub startswith: bool,
    pub endswith: bool,
    pub all: bool,
    pub re: bool,
    pub re_flags: String,
    pub cidr: bool,
    pub windash: bool,
    pub base64: bool,
    pub base64offset: bool,
    pub cased: bool,
    pub exists: bool,
    pub cmp: Option<Cmp>,
}

impl Modifiers {
    /// Parses the modifier names after the field name.
    pub fn parse<'a>(names: impl Iterator<Item = &'a str>) -> Result<Modifiers, String> {
        let mut m = Modifiers::default();
        for n in names {
            match n {
                "contains" => m.contains = true,
                "startswith" => m.startswith = true,
                "endswith" => m.endswith = true,
                "all" => m.all = true,
                "re" => m.re = true,
                // Sub-modifiers of `re`: case-insensitive, multi-line, dot matches newline.
                "i" | "m" | "s" => m.re_flags.push_str(n),
                "cidr" => m.cidr = true,
                "windash" => m.windash = true,
                "base64" => m.base64 = true,
                "base64offset" => m.base64offset = true,
                "cased" => m.cased = true,
                "exists" => m.exists = true,
                "gt" => m.cmp = Some(Cmp::Gt),
                "gte" => m.cmp = Some(Cmp::Gte),
                "lt" => m.cmp = Some(Cmp::Lt),
                "lte" => m.cmp = Some(Cmp::Lte),
                other => {
                    return Err(format!(
                        "unsupported modifier `{other}` (supported: contains, all, startswith, \
                         endswith, re, cidr, windash, base64, base64offset, cased, exists, \
                         gt, gte, lt, lte)"
                    ))
                }
            }
        }
        if !m.re_flags.is_empty() && !m.re {
            return Err("modifiers i, m and s belong to `re`".into());
        }
        Ok(m)
    }

    /// Compiles one value (already turned into text; `None` is YAML null) into the
    /// matchers it stands for (several for `windash` and `base64offset`, any of which
    /// matches).
    pub fn compile(&self, value: Option<&str>) -> Result<Vec<Matcher>, String> {
        let Some(v) = value else {
            return Ok(vec![Matcher::Null]);
        };
        if self.exists {
            return match v {
                "true" => Ok(vec![Matcher::Exists(true)]),
                "false" => Ok(vec![Matcher::Exists(false)]),
                _ => Err(format!("`exists` takes true or false, not `{v}`")),
            };
        }
        if let Some(c) = self.cmp {
            let n: f64 = v
                .parse()
                .map_err(|_| format!("a numeric comparison needs a number, not `{v}`"))?;
            return Ok(vec![Matcher::Compare(c, n)]);
        }
        if self.re {
            let mut src = String::new();
            if !self.re_flags.is_empty() {
                src.push_str(&format!("(?{})", self.re_flags));
            }
            src.push_str(v);
            return Regex::new(&src)
                .map(|r| vec![Matcher::Regex(r)])
                .map_err(|e| format!("bad regular expression `{v}`: {e}"));
        }
        if self.cidr {
            return cidr(v).map(|n| vec![Matcher::Cidr(n)]);
        }
        let mut texts: Vec<String> = if self.windash {
            windash(v)
        } else {
            vec![v.to_string()]
        };
        if self.base64offset {
            // Escape: the encoded text is matched literally.
            texts = texts
                .iter()
                .flat_map(|t| base64_offsets(t.as_bytes()))
                .map(|t| escape(&t))
                .collect();
        } else if self.base64 {
            texts = texts
                .iter()
                .map(|t| escape(&base64(t.as_bytes())))
                .collect();
        }
        // Encoded text is case-sensitive by nature.
        let cased = self.cased || self.base64 || self.base64offset;
        texts
            .into_iter()
            .map(|t| {
                let mut p = String::with_capacity(t.len() + 2);
                if self.contains || self.endswith {
                    p.push('*');
                }
                p.push_str(&t);
                if self.contains || self.startswith {
                    p.push('*');
                }
                Pattern::new(&p, cased).map(Matcher::Pattern)
            })
            .collect()
    }
}

fn cidr(v: &str) -> Result<ipnet::IpNet, String> {
    v.parse::<ipnet::IpNet>()
        .or_else(|_| v.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        .map(|n| n.trunc())
        .map_err(|_| format!("`{v}` is not a network (like 10.0.0.0/8)"))
}

/// `windash`: every way to write the dashes of command-line flags.
fn windash(v: &str) -> Vec<String> {
    const DASHES: [char; 5] = ['-', '/', '\u{2013}', '\u{2014}', '\u{2015}'];
    if !v.contains(['-', '/']) {
        return vec![v.to_string()];
    }
    DASHES
        .iter()
        .map(|d| {
            let mut out = String::with_capacity(v.len());
            let mut prev: Option<char> = None;
            for c in v.chars() {
                let flag = (c == '-' || c == '/') && prev.is_none_or(char::is_whitespace);
                out.push(if flag { *d } else { c });
                prev = Some(c);
            }
            out
        })
        .collect()
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn base64(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(B64[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// `base64offset`: the stable middle of the value's encoding at each of the three
/// offsets it can have inside a longer encoded text.
fn base64_offsets(v: &[u8]) -> Vec<String> {
    const START: [usize; 3] = [0, 2, 3];
    const END: [usize; 3] = [0, 3, 2];
    (0..3)
        .map(|i| {
            let mut padded = vec![b' '; i];
            padded.extend_from_slice(v);
            let enc = base64(&padded);
            let enc = enc.trim_end_matches('=');
            let cut = END[(v.len() + i) % 3];
            let end = enc.len().saturating_sub(cut);
            enc.get(START[i]..end).unwrap_or("").to_string()
        })
        .filter(|s| !s.is_empty())
        .collect()
}

/// Escapes Sigma's wildcard characters so text is matched literally.
fn escape(t: &str) -> String {
    let mut out = String::with_capacity(t.len());
    for c in t.chars() {
        if matches!(c, '*' | '?' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

impl Pattern {
    /// Compiles a Sigma string: `*` any run, `?` one character, `\` escapes them.
    pub fn new(p: &str, cased: bool) -> Result<Pattern, String> {
        // Always holds at least one piece: the text after the last `*`.
        let mut pieces = vec![String::new()];
        let push = |pieces: &mut Vec<String>, c: char| {
            if let Some(s) = pieces.last_mut() {
                s.push(c);
            }
        };
        let mut star = false;
        let mut question = false;
        let mut re = String::from(if cased { "^" } else { "(?i)^" });
        let mut chars = p.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                // Sigma: a backslash escapes a wildcard or a backslash; alone it is literal.
                '\\' if matches!(chars.peek(), Some('*' | '?' | '\\')) => {
                    let e = chars.next().unwrap_or('\\');
                    push(&mut pieces, e);
                    re.push_str(&regex::escape(&e.to_string()));
                }
                '*' => {
                    star = true;
                    pieces.push(String::new());
                    re.push_str(".*");
                }
                '?' => {
                    question = true;
                    re.push('.');
                }
                c => {
                    push(&mut pieces, c);
                    re.push_str(&regex::escape(&c.to_string()));
                }
            }
        }
        re.push('$');
        let regex = if question {
            Some(Regex::new(&re).map_err(|e| format!("pattern `{p}`: {e}"))?)
        } else {
            None
        };
        if !cased {
            for s in &mut pieces {
                *s = s.to_lowercase();
            }
        }
        Ok(Pattern {
            cased,
            pieces,
            star,
            regex,
        })
    }

    /// The longest literal piece that every value this pattern matches holds (lowercased
    /// unless cased; a cased pattern's piece holds it in the same case), or `None` when
    /// the pattern has a `?` or no literal text.
    pub fn longest_piece(&self) -> Option<&str> {
        if self.regex.is_some() {
            return None;
        }
        self.pieces
            .iter()
            .map(String::as_str)
            .max_by_key(|p| p.len())
            .filter(|p| !p.is_empty())
    }

    /// Whether the whole of `v` matches.
    pub fn matches(&self, v: &str) -> bool {
        if let Some(r) = &self.regex {
            return r.is_match(v);
        }
        // ASCII text is compared without case in place; other text is lowercased once.
        let lowered;
        let (v, fold) = if self.cased {
            (v, false)
        } else if v.is_ascii() {
            (v, true)
        } else {
            lowered = v.to_lowercase();
            (lowered.as_str(), false)
        };
        let eq = |a: &[u8], b: &[u8]| {
            if fold {
                a.eq_ignore_ascii_case(b)
            } else {
                a == b
            }
        };
        let v = v.as_bytes();
        let first = self.pieces[0].as_bytes();
        if !self.star {
            return eq(v, first);
        }
        let last = self.pieces[self.pieces.len() - 1].as_bytes();
        if v.len() < first.len() + last.len()
            || !eq(&v[..first.len()], first)
            || !eq(&v[v.len() - last.len()..], last)
        {
            return false;
        }
        let mut rest = &v[first.len()..v.len() - last.len()];
        for mid in &self.pieces[1..self.pieces.len() - 1] {
            let mid = mid.as_bytes();
            let found = if fold {
                find_ascii_nocase(rest, mid)
            } else {
                memchr::memmem::find(rest, mid)
            };
            match found {
                Some(i) => rest = &rest[i + mid.len()..],
                None => return false,
            }
        }
        true
    }
}

/// The first place of `needle` (lowercase) in `hay`, ignoring ASCII case.
fn find_ascii_nocase(hay: &[u8], needle: &[u8]) -> Option<usize> {
    let Some((&n0, tail)) = needle.split_first() else {
        return Some(0);
    };
    if hay.len() < needle.len() {
        return None;
    }
    let up = n0.to_ascii_uppercase();
    (0..=hay.len() - needle.len()).find(|&i| {
        (hay[i] == n0 || hay[i] == up) && hay[i + 1..i + needle.len()].eq_ignore_ascii_case(tail)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pat(p: &str) -> Pattern {
        Pattern::new(p, false).unwrap()
    }

    #[test]
    fn wildcards_match_the_whole_value_without_case() {
        assert!(pat("GetObject").matches("getobject"));
        assert!(!pat("GetObject").matches("GetObjectAcl"));
        assert!(pat("Get*").matches("GetObjectAcl"));
        assert!(pat("*Acl").matches("GetObjectAcl"));
        assert!(pat("*et*ct*").matches("GetObjectAcl"));
        assert!(!pat("*ab*ab*").matches("xaby"));
        assert!(pat("a?c").matches("ABC"));
        assert!(!pat("a?c").matches("abbc"));
        assert!(pat(r"100\*").matches("100*"));
        assert!(!pat(r"100\*").matches("1000"));
        assert!(Pattern::new("Get*", true).unwrap().matches("GetX"));
        assert!(!Pattern::new("Get*", true).unwrap().matches("getX"));
    }

    #[test]
    fn base64_encodes_like_the_standard() {
        assert_eq!(base64(b"Man"), "TWFu");
        assert_eq!(base64(b"Ma"), "TWE=");
        assert_eq!(base64(b"M"), "TQ==");
        // Each offset variant occurs in the encoding of a text holding the value.
        for prefix in ["", "x", "xy"] {
            let whole = base64(format!("{prefix}secret-token trailer").as_bytes());
            assert!(
                base64_offsets(b"secret-token")
                    .iter()
                    .any(|v| whole.contains(v.as_str())),
                "{prefix:?}"
            );
        }
    }

    #[test]
    fn windash_writes_every_dash() {
        let v = windash("-enc x");
        assert!(v.contains(&"/enc x".to_string()));
        assert!(v.contains(&"\u{2013}enc x".to_string()));
        assert_eq!(windash("a-b"), vec!["a-b"; 5]);
    }
}
