//! Anchors of the journal: signed checkpoints kept outside the cache.
//!
//! The hash chain alone proves that no entry was edited, removed or reordered *inside*
//! the chain; someone who can write the cache can still cut entries off its end or
//! recompute the whole chain after an edit. So after every append keyaudit signs a
//! checkpoint — the sequence number and hash of the newest entry — with a per-install
//! Ed25519 key that lives in the config directory (0600, never in the cache), and appends
//! it to an anchor file beside the cache (`<cache>.anchors`, one JSON object per line).
//! `journal verify` checks every checkpoint's signature and that the entry it names is
//! still there with the same hash; an export carries the anchor file, so an auditor can
//! verify it with the public key alone. docs/actions.md states what this proves and what
//! it cannot.

use chrono::{DateTime, Utc};
use ed25519_dalek::{Signature, Signer as _, SigningKey, Verifier as _, VerifyingKey};
use rand::rngs::OsRng;
use rand::TryRngCore;
use serde::{Deserialize, Serialize};
use std::io::{self, BufRead, Write};
use std::path::{Path, PathBuf};
use zeroize::Zeroize;

/// The file name of the signing key in the config directory.
pub const KEY_FILE: &str = "journal-signing.key";

/// What is signed: a domain tag, then the checkpoint's fields, one per line.
fn signed_message(seq: i64, head: &str, time: &str) -> String {
    format!("keyaudit-journal-checkpoint/v1\n{seq}\n{head}\n{time}")
}

/// One signed checkpoint: entry `seq` of the journal had hash `head` at `time`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub seq: i64,
    pub head: String,
    /// RFC 3339, as signed.
    pub time: String,
    /// Hex of the Ed25519 public key that signed.
    pub public_key: String,
    /// Hex of the Ed25519 signature over the domain tag, `seq`, `head` and `time`.
    pub signature: String,
}

impl Checkpoint {
    /// True when the signature is valid for the checkpoint's own public key.
    pub fn signature_ok(&self) -> bool {
        let (Some(key), Some(sig)) = (
            parse_public_key(&self.public_key),
            parse_sig(&self.signature),
        ) else {
            return false;
        };
        key.verify(
            signed_message(self.seq, &self.head, &self.time).as_bytes(),
            &sig,
        )
        .is_ok()
    }
}

fn parse_sig(hex_sig: &str) -> Option<Signature> {
    let bytes: [u8; 64] = hex::decode(hex_sig).ok()?.try_into().ok()?;
    Some(Signature::from_bytes(&bytes))
}

/// Parses a hex public key (64 hex digits).
pub fn parse_public_key(hex_key: &str) -> Option<VerifyingKey> {
    let bytes: [u8; 32] = hex::decode(hex_key.trim()).ok()?.try_into().ok()?;
    VerifyingKey::from_bytes(&bytes).ok()
}

/// Why anchoring could not be set up or read.
#[derive(Debug, thiserror::Error)]
pub enum AnchorError {
    #[error("cannot use the journal signing key {path}: {source}")]
    Key { path: PathBuf, source: io::Error },
    #[error("the journal signing key {path} is damaged (expected 64 hex digits); move it away only if you know why it changed")]
    BadKey { path: PathBuf },
    #[error("cannot read the anchor file {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("anchor file {path}, line {line}: not a checkpoint ({why})")]
    BadLine {
        path: PathBuf,
        line: usize,
        why: String,
    },
}

/// The anchor file of a cache: `<cache>.anchors` beside it.
pub fn anchors_path(db: &Path) -> PathBuf {
    let mut s = db.as_os_str().to_owned();
    s.push(".anchors");
    PathBuf::from(s)
}

/// Signs checkpoints with this install's key and appends them to one anchor file.
pub struct Anchor {
    key: SigningKey,
    file: PathBuf,
}

impl std::fmt::Debug for Anchor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Anchor")
            .field("public_key", &self.public_key_hex())
            .field("file", &self.file)
            .finish()
    }
}

impl Anchor {
    /// Loads the signing key at `key_path`, creating it (0600, from the OS CSPRNG) when
    /// missing, for the anchor file `file`.
    pub fn open(key_path: &Path, file: PathBuf) -> Result<Anchor, AnchorError> {
        Ok(Anchor {
            key: load_or_create_key(key_path)?,
            file,
        })
    }

    /// Hex of the public key.
    pub fn public_key_hex(&self) -> String {
        hex::encode(self.key.verifying_key().as_bytes())
    }

    /// Signs that entry `seq` has hash `head` now.
    pub fn sign(&self, seq: i64, head: &str, time: DateTime<Utc>) -> Checkpoint {
        let time = crate::model::rfc3339(time);
        let sig = self.key.sign(signed_message(seq, head, &time).as_bytes());
        Checkpoint {
            seq,
            head: head.to_string(),
            time,
            public_key: self.public_key_hex(),
            signature: hex::encode(sig.to_bytes()),
        }
    }

    /// Appends a checkpoint as one line (one `write` on an append-only descriptor, so
    /// lines of concurrent writers never interleave).
    pub fn append(&self, cp: &Checkpoint) -> io::Result<()> {
        let mut line = serde_json::to_string(cp).map_err(io::Error::other)?;
        line.push('\n');
        let mut f = crate::fsutil::open_private_append(&self.file)?;
        f.write_all(line.as_bytes())?;
        f.sync_data()
    }
}

fn load_or_create_key(path: &Path) -> Result<SigningKey, AnchorError> {
    let key_err = |source| AnchorError::Key {
        path: path.to_path_buf(),
        source,
    };
    match std::fs::read_to_string(path) {
        Ok(mut text) => {
            let key = hex::decode(text.trim())
                .ok()
                .and_then(|b| <[u8; 32]>::try_from(b).ok())
                .map(|mut seed| {
                    let k = SigningKey::from_bytes(&seed);
                    seed.zeroize();
                    k
                });
            text.zeroize();
            key.ok_or_else(|| AnchorError::BadKey {
                path: path.to_path_buf(),
            })
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                crate::fsutil::create_private_dir(dir).map_err(key_err)?;
            }
            let mut seed = [0u8; 32];
            OsRng
                .try_fill_bytes(&mut seed)
                .expect("the OS random number generator failed");
            let mut text = hex::encode(seed);
            let key = SigningKey::from_bytes(&seed);
            seed.zeroize();
            // create_new: a second process creating the key at the same moment loses the
            // race and reads the winner's key instead of replacing it.
            let written = crate::fsutil::create_private_file(path, false).and_then(|mut f| {
                f.write_all(text.as_bytes())?;
                f.write_all(b"\n")?;
                f.sync_all()
            });
            text.zeroize();
            match written {
                Ok(()) => Ok(key),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => load_or_create_key(path),
                Err(e) => Err(key_err(e)),
            }
        }
        Err(e) => Err(key_err(e)),
    }
}

/// The public key (hex) of the signing key at `key_path`, when it exists.
pub fn install_public_key(key_path: &Path) -> Result<Option<String>, AnchorError> {
    if !key_path.exists() {
        return Ok(None);
    }
    let key = load_or_create_key(key_path)?;
    Ok(Some(hex::encode(key.verifying_key().as_bytes())))
}

/// Reads an anchor file; `None` when it does not exist.
pub fn read_checkpoints(path: &Path) -> Result<Option<Vec<Checkpoint>>, AnchorError> {
    let f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(AnchorError::Read {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    let mut out = Vec::new();
    for (i, line) in io::BufReader::new(f).lines().enumerate() {
        let line = line.map_err(|source| AnchorError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        if line.trim().is_empty() {
            continue;
        }
        let cp = serde_json::from_str(&line).map_err(|e| AnchorError::BadLine {
            path: path.to_path_buf(),
            line: i + 1,
            why: e.to_string(),
        })?;
        out.push(cp);
    }
    Ok(Some(out))
}

/// What the anchors say about a journal whose hash chain is intact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnchorVerdict {
    /// Every entry is covered by a valid checkpoint of a trusted key.
    Anchored {
        /// The newest anchored entry and when it was signed.
        seq: i64,
        time: String,
    },
    /// The journal is empty and no checkpoint exists.
    Empty,
    /// Something is wrong: the entry concerned (0 when none) and why.
    Broken { seq: i64, reason: String },
}

/// Checks checkpoints against a journal whose chain verified: `hashes[i]` is the hash of
/// entry `i + 1`. `trusted` are the hex public keys accepted as signers.
pub fn judge(
    hashes: &[String],
    checkpoints: Option<&[Checkpoint]>,
    anchor_file: &Path,
    trusted: &[String],
) -> AnchorVerdict {
    let last_seq = hashes.len() as i64;
    let Some(cps) = checkpoints.filter(|c| !c.is_empty()) else {
        return if last_seq == 0 {
            AnchorVerdict::Empty
        } else {
            AnchorVerdict::Broken {
                seq: last_seq,
                reason: format!(
                    "no signed checkpoint in {}: the anchor file was removed or emptied, \
                     or this journal was written without its signing key",
                    anchor_file.display()
                ),
            }
        };
    };
    let mut sorted: Vec<&Checkpoint> = cps.iter().collect();
    sorted.sort_by_key(|c| c.seq);
    for cp in &sorted {
        if !cp.signature_ok() {
            return AnchorVerdict::Broken {
                seq: cp.seq,
                reason: format!(
                    "the checkpoint of entry {} signed at {} has an invalid signature: the \
                     anchor file was edited",
                    cp.seq, cp.time
                ),
            };
        }
        if !trusted
            .iter()
            .any(|t| t.eq_ignore_ascii_case(&cp.public_key))
        {
            return AnchorVerdict::Broken {
                seq: cp.seq,
                reason: format!(
                    "the checkpoint of entry {} was signed by key {}, which is not a trusted \
                     signing key (this install's key, or one given with --public-key)",
                    cp.seq,
                    short(&cp.public_key)
                ),
            };
        }
        if cp.seq < 1 || cp.seq > last_seq {
            return AnchorVerdict::Broken {
                seq: cp.seq,
                reason: format!(
                    "entry {} was signed at {} but the journal ends at entry {last_seq}: \
                     entries {}–{} were deleted from its end",
                    cp.seq,
                    cp.time,
                    last_seq + 1,
                    sorted.last().map_or(cp.seq, |c| c.seq),
                ),
            };
        }
        if hashes[(cp.seq - 1) as usize] != cp.head {
            return AnchorVerdict::Broken {
                seq: cp.seq,
                reason: format!(
                    "entry {} is not the entry signed at {}: the chain was rewritten (edited \
                     and its hashes recomputed)",
                    cp.seq, cp.time
                ),
            };
        }
    }
    let newest = sorted.last().expect("not empty");
    if newest.seq < last_seq {
        return AnchorVerdict::Broken {
            seq: newest.seq + 1,
            reason: format!(
                "entries {}–{last_seq} are not covered by a signed checkpoint: they were \
                 added without the signing key, or keyaudit stopped between writing and \
                 signing (the next action then signs them)",
                newest.seq + 1
            ),
        };
    }
    AnchorVerdict::Anchored {
        seq: newest.seq,
        time: newest.time.clone(),
    }
}

/// The first 16 hex digits of a public key, for messages.
pub fn short(key_hex: &str) -> &str {
    &key_hex[..key_hex.len().min(16)]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: usize) -> Vec<String> {
        (1..=n).map(|i| format!("{i:064x}")).collect()
    }

    fn signed(dir: &Path, hashes: &[String]) -> (Anchor, Vec<Checkpoint>) {
        let a = Anchor::open(&dir.join(KEY_FILE), dir.join("c.db.anchors")).unwrap();
        let cps = hashes
            .iter()
            .enumerate()
            .map(|(i, h)| a.sign(i as i64 + 1, h, Utc::now()))
            .collect();
        (a, cps)
    }

    #[test]
    fn key_is_private_and_stable() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("cfg").join(KEY_FILE);
        let a = Anchor::open(&p, dir.path().join("x")).unwrap();
        let b = Anchor::open(&p, dir.path().join("x")).unwrap();
        assert_eq!(a.public_key_hex(), b.public_key_hex());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        assert!(!format!("{a:?}").contains(std::fs::read_to_string(&p).unwrap().trim()));
    }

    #[test]
    fn verdicts_name_what_is_wrong() {
        let dir = tempfile::tempdir().unwrap();
        let hashes = chain(10);
        let (a, cps) = signed(dir.path(), &hashes);
        let trusted = [a.public_key_hex()];
        let f = dir.path().join("c.db.anchors");
        assert!(matches!(
            judge(&hashes, Some(&cps), &f, &trusted),
            AnchorVerdict::Anchored { seq: 10, .. }
        ));
        // The last three entries deleted.
        let AnchorVerdict::Broken { seq, reason } = judge(&hashes[..7], Some(&cps), &f, &trusted)
        else {
            panic!("tail cut not seen")
        };
        assert_eq!(seq, 8);
        assert!(reason.contains("entries 8–10 were deleted"), "{reason}");
        // Entry 4 rewritten with recomputed hashes from there on.
        let mut rewritten = hashes.clone();
        for h in &mut rewritten[3..] {
            *h = format!("{:064x}", 99);
        }
        let AnchorVerdict::Broken { seq, reason } = judge(&rewritten, Some(&cps), &f, &trusted)
        else {
            panic!("rewrite not seen")
        };
        assert_eq!(seq, 4);
        assert!(reason.contains("rewritten"), "{reason}");
        // Anchor file removed.
        assert!(matches!(
            judge(&hashes, None, &f, &trusted),
            AnchorVerdict::Broken { .. }
        ));
        // An entry added without the key.
        let mut more = hashes.clone();
        more.push(format!("{:064x}", 11));
        let AnchorVerdict::Broken { seq, .. } = judge(&more, Some(&cps), &f, &trusted) else {
            panic!("unsigned tail not seen")
        };
        assert_eq!(seq, 11);
        // A forged signature, and a key that is not trusted.
        let mut forged = cps.clone();
        forged[2].head = format!("{:064x}", 7);
        assert!(matches!(
            judge(&hashes, Some(&forged), &f, &trusted),
            AnchorVerdict::Broken { seq: 3, .. }
        ));
        let other = tempfile::tempdir().unwrap();
        let (_, foreign) = signed(other.path(), &hashes);
        assert!(matches!(
            judge(&hashes, Some(&foreign), &f, &trusted),
            AnchorVerdict::Broken { seq: 1, .. }
        ));
        assert_eq!(judge(&[], None, &f, &trusted), AnchorVerdict::Empty);
    }

    #[test]
    fn checkpoints_round_trip_through_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let hashes = chain(3);
        let (a, cps) = signed(dir.path(), &hashes);
        for cp in &cps {
            a.append(cp).unwrap();
        }
        let read = read_checkpoints(&dir.path().join("c.db.anchors"))
            .unwrap()
            .unwrap();
        assert_eq!(read, cps);
        assert!(read_checkpoints(&dir.path().join("none"))
            .unwrap()
            .is_none());
    }
}
