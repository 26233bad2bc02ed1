//! Dotenv files as an `env-file:PATH:VAR` sink writes and reads them: one variable set
//! or read, every other byte kept.

use zeroize::Zeroizing;

/// Splits a dotenv line into (everything up to and including `=`, value) when it
/// assigns `var` (`VAR=`, `export VAR=`, spaces around `=` allowed).
fn assignment<'a>(line: &'a [u8], var: &str) -> Option<(&'a [u8], &'a [u8])> {
    let mut i = 0;
    while i < line.len() && (line[i] == b' ' || line[i] == b'\t') {
        i += 1;
    }
    if line[i..].starts_with(b"export ") {
        i += 7;
        while i < line.len() && line[i] == b' ' {
            i += 1;
        }
    }
    let rest = line[i..].strip_prefix(var.as_bytes())?;
    let mut j = 0;
    while j < rest.len() && (rest[j] == b' ' || rest[j] == b'\t') {
        j += 1;
    }
    if rest.get(j) != Some(&b'=') {
        return None;
    }
    let mut split = i + var.len() + j + 1;
    while split < line.len() && (line[split] == b' ' || line[split] == b'\t') {
        split += 1;
    }
    Some((&line[..split], &line[split..]))
}

fn quote_value(v: &str) -> Zeroizing<String> {
    let plain = v
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "_-.:/+=@,".contains(c));
    let mut out = Zeroizing::new(String::with_capacity(v.len() + 2));
    if plain {
        out.push_str(v);
    } else {
        out.push('"');
        for c in v.chars() {
            if matches!(c, '"' | '\\' | '$' | '`') {
                out.push('\\');
            }
            out.push(c);
        }
        out.push('"');
    }
    out
}

/// Sets `var` to `value` in dotenv `content`: every assignment of `var` gets the new
/// value, every other byte is kept; when there is none, `VAR=value` is appended.
pub fn set_env_var(content: &[u8], var: &str, value: &str) -> Zeroizing<Vec<u8>> {
    let quoted = quote_value(value);
    let mut out = Zeroizing::new(Vec::with_capacity(
        content.len() + quoted.len() + var.len() + 2,
    ));
    let mut found = false;
    for line in content.split_inclusive(|b| *b == b'\n') {
        let (body, eol): (&[u8], &[u8]) = match line.strip_suffix(b"\r\n") {
            Some(b) => (b, b"\r\n"),
            None => match line.strip_suffix(b"\n") {
                Some(b) => (b, b"\n"),
                None => (line, b""),
            },
        };
        match assignment(body, var) {
            Some((head, _)) => {
                found = true;
                out.extend_from_slice(head);
                out.extend_from_slice(quoted.as_bytes());
                out.extend_from_slice(eol);
            }
            None => out.extend_from_slice(line),
        }
    }
    if !found {
        if !content.is_empty() && !content.ends_with(b"\n") {
            out.push(b'\n');
        }
        out.extend_from_slice(var.as_bytes());
        out.push(b'=');
        out.extend_from_slice(quoted.as_bytes());
        out.push(b'\n');
    }
    out
}

/// The value of the last assignment of `var` in dotenv `content` (quotes removed).
pub fn get_env_var(content: &[u8], var: &str) -> Option<Zeroizing<String>> {
    let mut found = None;
    for line in content.split(|b| *b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if let Some((_, v)) = assignment(line, var) {
            found = Some(v);
        }
    }
    let raw = std::str::from_utf8(found?).ok()?.trim();
    let mut out = Zeroizing::new(String::with_capacity(raw.len()));
    if let Some(inner) = raw.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
        let mut esc = false;
        for c in inner.chars() {
            if esc || c != '\\' {
                out.push(c);
                esc = false;
            } else {
                esc = true;
            }
        }
    } else if let Some(inner) = raw.strip_prefix('\'').and_then(|r| r.strip_suffix('\'')) {
        out.push_str(inner);
    } else {
        out.push_str(raw);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_file_update_keeps_every_other_byte() {
        let before = b"# partner keys\r\nA=1\nexport TG_KEY = old\n\nB='x y' # note\nC=3";
        let after = set_env_var(before, "TG_KEY", "tg_live_NEW");
        assert_eq!(
            &after[..],
            &b"# partner keys\r\nA=1\nexport TG_KEY = tg_live_NEW\n\nB='x y' # note\nC=3"[..]
        );
        let appended = set_env_var(b"A=1", "TG_KEY", "v$1 \"q\"");
        assert_eq!(&appended[..], &b"A=1\nTG_KEY=\"v\\$1 \\\"q\\\"\"\n"[..]);
        assert_eq!(
            get_env_var(&appended, "TG_KEY").unwrap().as_str(),
            "v$1 \"q\""
        );
        assert_eq!(
            get_env_var(&after, "TG_KEY").unwrap().as_str(),
            "tg_live_NEW"
        );
        assert!(get_env_var(&after, "TG").is_none());
    }
}
