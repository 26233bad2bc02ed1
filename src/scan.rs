//! Leak scanning: find key material in files and match it to cached keys.
//!
//! Two kinds of material are recognised without any lookup:
//! - keys in keyaudit's format (`<prefix>_<22 random><6 check>`, see [`crate::secret`]):
//!   the CRC32 check rules out look-alikes; a hit is matched to a cached key by its
//!   fingerprint (SHA-256), so the secret itself is never needed in the cache;
//! - AWS access key ids (`AKIA` / `ASIA` + 16 upper-case letters or digits), matched to
//!   cached keys by id.
//!
//! Hits are reported by file, line and the non-secret display prefix; the secret is never
//! printed or stored.

use crate::secret;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

/// What kind of material a hit is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HitKind {
    /// A key in keyaudit's checksummed format.
    ChecksummedKey,
    /// An AWS access key id.
    AwsAccessKeyId,
}

/// One piece of key material found in a file.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Hit {
    pub file: PathBuf,
    pub line: usize,
    pub kind: HitKind,
    /// Non-secret display form (prefix and 4 characters, or the access key id).
    pub shown: String,
    /// `sha256:` fingerprint of the material (how cached keys are matched).
    pub fingerprint: String,
    /// The access key id for AWS hits (not secret).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
}

fn is_b62(b: u8) -> bool {
    b.is_ascii_alphanumeric()
}

/// Finds key material in one line of text.
pub fn scan_line(line: &str) -> Vec<(HitKind, String)> {
    let bytes = line.as_bytes();
    let mut out = Vec::new();
    // Checksummed keys: a run `prefix_tail` where tail is exactly 28 base62 chars.
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'_' {
            let tail_end = (i + 1..bytes.len())
                .find(|&j| !is_b62(bytes[j]))
                .unwrap_or(bytes.len());
            if tail_end - (i + 1) == 28 {
                // Extend left over the prefix: letters, digits and underscores.
                let mut start = i;
                while start > 0 && (is_b62(bytes[start - 1]) || bytes[start - 1] == b'_') {
                    start -= 1;
                }
                // Try each possible prefix start so `x=tg_live_...` still matches.
                for s in start..i {
                    let cand = &line[s..tail_end];
                    if (s == start || !is_b62(bytes[s - 1])) && secret::is_well_formed(cand) {
                        out.push((HitKind::ChecksummedKey, cand.to_string()));
                        break;
                    }
                }
            }
            i = tail_end.max(i + 1);
            continue;
        }
        i += 1;
    }
    // AWS access key ids.
    let mut j = 0;
    while j + 20 <= bytes.len() {
        let w = &bytes[j..j + 20];
        let boundary_before = j == 0 || !is_b62(bytes[j - 1]);
        let boundary_after = j + 20 == bytes.len() || !is_b62(bytes[j + 20]);
        if boundary_before
            && boundary_after
            && (w.starts_with(b"AKIA") || w.starts_with(b"ASIA"))
            && w[4..]
                .iter()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
        {
            out.push((HitKind::AwsAccessKeyId, line[j..j + 20].to_string()));
            j += 20;
            continue;
        }
        j += 1;
    }
    out
}

/// Scans one readable stream; `file` names it in the hits.
pub fn scan_reader(file: &Path, r: impl Read) -> std::io::Result<Vec<Hit>> {
    let mut hits = Vec::new();
    let mut reader = BufReader::new(r);
    let mut buf = Vec::new();
    let mut line_no = 0;
    loop {
        buf.clear();
        let n = reader.read_until(b'\n', &mut buf)?;
        if n == 0 {
            break;
        }
        line_no += 1;
        let text = String::from_utf8_lossy(&buf);
        for (kind, material) in scan_line(&text) {
            let (shown, key_id) = match kind {
                HitKind::ChecksummedKey => (secret::display_prefix(&material), None),
                HitKind::AwsAccessKeyId => (material.clone(), Some(material.clone())),
            };
            hits.push(Hit {
                file: file.to_path_buf(),
                line: line_no,
                kind,
                shown,
                fingerprint: secret::fingerprint(&material),
                key_id,
            });
        }
    }
    Ok(hits)
}

/// Scans files and directories (walked recursively; `.gz` files are decompressed).
/// Unreadable entries are reported in the second list and do not stop the scan.
pub fn scan_paths(paths: &[PathBuf]) -> (Vec<Hit>, Vec<(PathBuf, String)>) {
    let mut hits = Vec::new();
    let mut errors = Vec::new();
    let files = paths
        .iter()
        .flat_map(|p| crate::walk::Walk::default().files(p));
    for p in files {
        let p = match p {
            Ok(p) => p,
            Err(e) => {
                errors.push((e.path, e.source.to_string()));
                continue;
            }
        };
        let result = std::fs::File::open(&p).and_then(|f| {
            if p.extension().is_some_and(|e| e == "gz") {
                scan_reader(&p, flate2::read::MultiGzDecoder::new(f))
            } else {
                scan_reader(&p, f)
            }
        });
        match result {
            Ok(h) => hits.extend(h),
            Err(e) => errors.push((p, e.to_string())),
        }
    }
    (hits, errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_checksummed_keys_and_aws_ids_but_not_look_alikes() {
        let k = secret::generate("tg_live").unwrap();
        let line = format!(
            "export TOKEN={} # and AKIAIOSFODNN7EXAMPLE plus tg_live_{}",
            k.expose(),
            "a".repeat(28)
        );
        let hits = scan_line(&line);
        assert_eq!(hits.len(), 2, "{hits:?}");
        assert_eq!(hits[0], (HitKind::ChecksummedKey, k.expose().to_string()));
        assert_eq!(
            hits[1],
            (HitKind::AwsAccessKeyId, "AKIAIOSFODNN7EXAMPLE".to_string())
        );
        assert!(scan_line("XAKIAIOSFODNN7EXAMPLE").is_empty());
    }

    #[test]
    fn hits_name_file_and_line_and_never_hold_the_secret() {
        let dir = tempfile::tempdir().unwrap();
        let k = secret::generate("ka").unwrap();
        let nested = dir.path().join("repo/src");
        std::fs::create_dir_all(&nested).unwrap();
        std::fs::write(
            nested.join("app.env"),
            format!("A=1\nB=2\nKEY=\"{}\"\n", k.expose()),
        )
        .unwrap();
        let (hits, errors) = scan_paths(&[dir.path().to_path_buf()]);
        assert!(errors.is_empty());
        assert_eq!(hits.len(), 1);
        assert_eq!(hits[0].line, 3);
        assert_eq!(hits[0].fingerprint, k.fingerprint());
        let json = serde_json::to_string(&hits).unwrap();
        assert!(!json.contains(k.expose()));
    }
}
