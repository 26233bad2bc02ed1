//! Sigma rules over cached events.
//!
//! Rules are read from `.yml`/`.yaml` files under the configured directories
//! (`[detect] sigma = ["dir", ...]`, `detect --sigma DIR`) and evaluated against each
//! event's original raw record with its native field names (CloudTrail `eventSource`,
//! `userIdentity.arn`; GitHub audit `action`; ...). A match is a finding of category
//! `sigma`: one per rule, key and time window, its evidence the matching events. A rule
//! file that does not parse is reported and the other rules still run. Later runs read
//! only the events after the saved watermark (see docs/detections.md).

mod condition;
mod eval;
mod json;
mod modifiers;
mod parse;
mod prefilter;
mod run;

pub use eval::Record;
pub use prefilter::Scratch;
pub use run::{run, SigmaReport};

use crate::config::ConfigError;
use crate::model::Severity;
use std::path::{Path, PathBuf};

/// One compiled Sigma rule.
#[derive(Debug, Clone)]
pub struct Rule {
    pub title: String,
    /// The rule's `id` (the file's name when it has none).
    pub id: String,
    /// The rule's `level` as written (`medium` when absent).
    pub level: String,
    pub severity: Severity,
    pub description: Option<String>,
    pub tags: Vec<String>,
    /// `logsource.product`, lowercased.
    pub product: Option<String>,
    /// `logsource.service`, lowercased.
    pub service: Option<String>,
    /// The file it came from.
    pub path: PathBuf,
    searches: Vec<parse::Search>,
    condition: condition::Expr,
}

impl Rule {
    /// Whether the rule matches one raw record.
    pub fn matches(&self, rec: &Record<'_>) -> bool {
        eval::matches(self, rec)
    }
}

/// A rule set ready to run over many records: a prefilter on each record's text (see
/// `prefilter.rs`), then the rules it leaves evaluated on the parsed record.
#[derive(Debug)]
pub struct Engine<'a> {
    rules: &'a [Rule],
    pre: prefilter::Prefilter,
}

impl<'a> Engine<'a> {
    pub fn new(set: &'a RuleSet) -> Engine<'a> {
        Engine {
            rules: &set.rules,
            pre: prefilter::Prefilter::new(&set.rules),
        }
    }

    /// Puts into `out` the rules (indexes into the set, in order) that match the raw
    /// record `raw`. A record is parsed only when a rule may match it.
    pub fn matching(&self, raw: &str, scratch: &mut Scratch, out: &mut Vec<usize>) {
        out.clear();
        self.pre.candidates(raw, scratch);
        if scratch.candidates.is_empty() {
            return;
        }
        let rec = Record::new(raw);
        out.extend(
            scratch
                .candidates
                .iter()
                .copied()
                .filter(|&i| self.rules[i].matches(&rec)),
        );
    }

    /// The rules (indexes, in order) the prefilter leaves to evaluate on `raw`: a rule
    /// left out cannot match it.
    pub fn candidates(&self, raw: &str) -> Vec<usize> {
        let mut scratch = Scratch::default();
        self.pre.candidates(raw, &mut scratch);
        scratch.candidates
    }

    /// How many rules need no literal text, so are evaluated on every record.
    pub fn unfiltered(&self) -> usize {
        self.pre.unfiltered()
    }
}

/// A rule file that could not be used, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleError {
    pub path: PathBuf,
    pub reason: String,
}

impl std::fmt::Display for RuleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.reason)
    }
}

/// The rules loaded from some directories, and the files that failed.
#[derive(Debug, Clone, Default)]
pub struct RuleSet {
    pub rules: Vec<Rule>,
    pub errors: Vec<RuleError>,
    /// A hash of every loaded file's path and text: a changed set is run over every
    /// cached event again.
    pub fingerprint: String,
}

impl RuleSet {
    /// Compiles the rules of one file's text (`path` names it in errors).
    pub fn add_text(&mut self, path: &Path, text: &str) {
        match parse::parse_file(path, text) {
            Ok(rules) => self.rules.extend(rules),
            Err(e) => self.errors.push(e),
        }
    }

    /// Loads every `.yml`/`.yaml` file at or under each path (a file path is one file).
    /// A directory that cannot be read is an error of its own; a file that does not
    /// parse is recorded in `errors`.
    pub fn load(paths: &[PathBuf]) -> RuleSet {
        use sha2::{Digest, Sha256};
        let mut set = RuleSet::default();
        let mut h = Sha256::new();
        for root in paths {
            if !root.exists() {
                set.errors.push(RuleError {
                    path: root.clone(),
                    reason: "no such file or directory".into(),
                });
                continue;
            }
            let walk = crate::walk::Walk {
                follow_root_link: true,
                skip: Some(|name: &str| name.starts_with('.')),
            };
            for f in walk.files(root) {
                let f = match f {
                    Ok(f) => f,
                    Err(e) => {
                        set.errors.push(RuleError {
                            path: e.path,
                            reason: e.source.to_string(),
                        });
                        continue;
                    }
                };
                let is_yaml = f.extension().is_some_and(|e| e == "yml" || e == "yaml");
                if !is_yaml && f != *root {
                    continue;
                }
                match std::fs::read_to_string(&f) {
                    Ok(text) => {
                        h.update(f.to_string_lossy().as_bytes());
                        h.update([0]);
                        h.update(text.as_bytes());
                        h.update([0]);
                        set.add_text(&f, &text);
                    }
                    Err(e) => set.errors.push(RuleError {
                        path: f,
                        reason: e.to_string(),
                    }),
                }
            }
        }
        set.fingerprint = hex::encode(&h.finalize()[..8]);
        set
    }
}

/// The Sigma settings of `[detect]`: `sigma` (directories of rules, relative to the
/// configuration file's directory) and `sigma_window_hours`.
#[derive(Debug, Clone, PartialEq)]
pub struct SigmaConfig {
    pub dirs: Vec<PathBuf>,
    /// Matches of one rule on one key within this many hours are one finding.
    pub window_hours: u32,
    /// Evidence events kept per finding.
    pub evidence_cap: usize,
}

impl Default for SigmaConfig {
    fn default() -> Self {
        SigmaConfig {
            dirs: Vec::new(),
            window_hours: 24,
            evidence_cap: 50,
        }
    }
}

impl SigmaConfig {
    /// Reads `sigma`, `sigma_window_hours` and `evidence_cap` from the raw `[detect]`
    /// table; `path` is the configuration file.
    pub fn from_table(t: &toml::Table, path: &Path) -> Result<SigmaConfig, ConfigError> {
        let fail = |message: String| ConfigError {
            path: path.to_path_buf(),
            line: None,
            message,
        };
        let mut c = SigmaConfig::default();
        let base = path.parent().unwrap_or(Path::new("."));
        if let Some(v) = t.get("sigma") {
            let list = v
                .as_array()
                .ok_or_else(|| fail("[detect] sigma: expected a list of directories".into()))?;
            for d in list {
                let d = d.as_str().ok_or_else(|| {
                    fail("[detect] sigma: expected a list of directories (strings)".into())
                })?;
                c.dirs.push(base.join(d));
            }
        }
        if let Some(v) = t.get("sigma_window_hours") {
            c.window_hours = v
                .as_integer()
                .filter(|n| *n > 0 && *n <= 24 * 366)
                .ok_or_else(|| {
                    fail("[detect] sigma_window_hours: expected a positive number of hours".into())
                })? as u32;
        }
        if let Some(n) = t.get("evidence_cap").and_then(toml::Value::as_integer) {
            c.evidence_cap = n.max(1) as usize;
        }
        Ok(c)
    }
}
