//! Leak-scan throughput beside its peers, in one run, on one generated corpus.
//!
//! `cargo bench --bench scan` writes a corpus of source-like files (the ordinary text
//! and planted secrets of tests/support/leak_corpus.rs) and times:
//!
//! 1. `keyaudit scan` (the library's `scan_paths`, a worker per core) over all of it;
//! 2. ripgrep (`rg`, Debian package `ripgrep`) searching the same files for every
//!    detector's keywords (fixed strings, any case), which is the prefilter's work alone;
//! 3. keyaudit and `detect-secrets` (PyPI, pinned 1.5.0) on a slice of the corpus;
//! 4. `keyaudit scan --git` (`scan_history`) over a generated repository of many
//!    commits, made with `git fast-import` (the git binary, here only).
//!
//! Sizes: `KEYAUDIT_BENCH_SCAN_MB` (default 1024), `KEYAUDIT_BENCH_SLICE_MB` (50),
//! `KEYAUDIT_BENCH_COMMITS` (10000); `KEYAUDIT_BENCH_DIR` keeps the corpus there
//! (default: a temporary directory, removed at the end). The peers are required:
//! `apt-get install -y ripgrep`, and
//! `python3 -m venv .test-deps/detect-secrets && .test-deps/detect-secrets/bin/pip install detect-secrets==1.5.0`
//! (or `KEYAUDIT_DETECT_SECRETS=/path/to/detect-secrets`).
//! Prints a Markdown table for docs/PERFORMANCE.md.

#[path = "../tests/support/leak_corpus.rs"]
mod leak_corpus;

use keyaudit::scan::source::{scan_paths, WalkOptions};
use keyaudit::scan::{git, rules, Options, Scanner};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

const SEED: u64 = 4242;
const FILE_BYTES: usize = 256 << 10;
/// One planted secret per this many bytes of ordinary text.
const PLANT_EVERY: usize = 64 << 10;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn fail(msg: &str) -> ! {
    eprintln!("bench scan: {msg}");
    std::process::exit(2)
}

/// Writes `bytes` of corpus under `dir` in files of [`FILE_BYTES`]; returns the number
/// of files and of planted secrets.
fn write_corpus(dir: &Path, bytes: usize) -> (usize, usize) {
    leak_corpus::seed(SEED);
    let exts = ["rs", "py", "js", "yml", "go", "env"];
    let n_files = bytes.div_ceil(FILE_BYTES).max(1);
    let mut planted = 0;
    for f in 0..n_files {
        let sub = dir.join(format!("pkg{:03}", f / 64));
        std::fs::create_dir_all(&sub).unwrap();
        let path = sub.join(format!("file{f:05}.{}", exts[f % exts.len()]));
        let mut text = String::with_capacity(FILE_BYTES + 4096);
        let mut since_plant = 0;
        let samples = leak_corpus::cases();
        while text.len() < FILE_BYTES {
            let l = leak_corpus::ordinary_line();
            since_plant += l.len() + 1;
            text.push_str(&l);
            text.push('\n');
            if since_plant >= PLANT_EVERY {
                since_plant = 0;
                let (_, valid, _) = &samples[leak_corpus::below(samples.len())];
                text.push_str(valid.trim_end_matches('\n'));
                text.push('\n');
                planted += 1;
            }
        }
        std::fs::write(&path, text).unwrap();
    }
    (n_files, planted)
}

/// The files of `src` (in name order) that add up to about `bytes`, hard-linked into
/// `dst`.
fn slice(src: &Path, dst: &Path, bytes: usize) -> usize {
    let mut files: Vec<PathBuf> = walk(src);
    files.sort();
    std::fs::create_dir_all(dst).unwrap();
    let mut total = 0;
    for (i, f) in files.iter().enumerate() {
        if total >= bytes {
            break;
        }
        let to = dst.join(format!(
            "{i:05}-{}",
            f.file_name().unwrap().to_string_lossy()
        ));
        std::fs::hard_link(f, &to).unwrap_or_else(|_| {
            std::fs::copy(f, &to).unwrap();
        });
        total += std::fs::metadata(f).unwrap().len() as usize;
    }
    total
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

fn keyaudit_scan(dir: &Path) -> (f64, usize, u64) {
    let scanner = Scanner::new(&Options::default());
    let t = Instant::now();
    let r = scan_paths(
        &scanner,
        &[dir.to_path_buf()],
        WalkOptions { no_ignore: true },
    );
    let secs = t.elapsed().as_secs_f64();
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    (secs, r.hits.len(), r.stats.bytes)
}

fn ripgrep(dir: &Path) -> (f64, usize) {
    let mut keywords: Vec<&str> = rules::all()
        .filter(|d| d.id != "generic-high-entropy")
        .flat_map(|d| d.keywords.iter().copied())
        .collect();
    keywords.sort();
    keywords.dedup();
    let mut c = Command::new("rg");
    c.args(["--count-matches", "--no-ignore", "--hidden", "-i", "-F"]);
    for k in &keywords {
        c.arg("-e").arg(k);
    }
    c.arg(dir).stdout(Stdio::piped()).stderr(Stdio::piped());
    let t = Instant::now();
    let out = c.output().unwrap_or_else(|e| {
        fail(&format!(
            "cannot run ripgrep ({e}); install it: apt-get install -y ripgrep"
        ))
    });
    let secs = t.elapsed().as_secs_f64();
    if !out.status.success() {
        fail(&format!(
            "rg failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let matches = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.rsplit(':').next()?.parse::<usize>().ok())
        .sum();
    (secs, matches)
}

fn detect_secrets_bin() -> PathBuf {
    if let Ok(p) = std::env::var("KEYAUDIT_DETECT_SECRETS") {
        return PathBuf::from(p);
    }
    let deps = std::env::var("KEYAUDIT_TEST_DEPS")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/.test-deps").to_string());
    PathBuf::from(deps).join("detect-secrets/bin/detect-secrets")
}

fn detect_secrets(dir: &Path) -> (f64, usize) {
    let bin = detect_secrets_bin();
    if !bin.exists() {
        fail(&format!(
            "{} not found; install it: python3 -m venv .test-deps/detect-secrets && .test-deps/detect-secrets/bin/pip install detect-secrets==1.5.0 (or set KEYAUDIT_DETECT_SECRETS)",
            bin.display()
        ));
    }
    let t = Instant::now();
    let out = Command::new(&bin)
        .current_dir(dir)
        .args(["scan", "--all-files", "."])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let secs = t.elapsed().as_secs_f64();
    if !out.status.success() {
        fail(&format!(
            "detect-secrets failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("detect-secrets JSON");
    let found = v["results"].as_object().map_or(0, |m| {
        m.values().map(|r| r.as_array().map_or(0, Vec::len)).sum()
    });
    (secs, found)
}

/// A repository of `commits` commits, each changing one of 200 files; every 50th adds a
/// planted secret (drawn from the corpus's samples, so some recur), which a later commit
/// removes again. Made with `git fast-import`. Returns the plants and the distinct
/// secrets among them (a secret is reported once, at its first introduction).
fn git_repo(dir: &Path, commits: usize) -> (usize, usize) {
    let o = Command::new("git")
        .args(["init", "-q", "-b", "main"])
        .arg(dir)
        .output()
        .expect("git runs");
    assert!(o.status.success());
    let mut fi = Command::new("git")
        .current_dir(dir)
        .args(["fast-import", "--quiet"])
        .stdin(Stdio::piped())
        .spawn()
        .expect("git fast-import runs");
    let mut w = std::io::BufWriter::new(fi.stdin.take().unwrap());
    leak_corpus::seed(SEED + 1);
    let samples = leak_corpus::cases();
    let mut planted = 0;
    let mut distinct = std::collections::HashSet::new();
    let t0 = 1_793_613_600i64;
    for c in 0..commits {
        let mut text = String::new();
        for _ in 0..40 {
            text.push_str(&leak_corpus::ordinary_line());
            text.push('\n');
        }
        if c % 50 == 7 {
            let (_, valid, _) = &samples[leak_corpus::below(samples.len())];
            text.push_str(valid.trim_end_matches('\n'));
            text.push('\n');
            planted += 1;
            distinct.insert(valid.clone());
        }
        let path = format!("src/m{:03}.py", c % 200);
        let when = t0 + c as i64 * 60;
        write!(
            w,
            "commit refs/heads/main\ncommitter Bench <bench@example.com> {when} +0000\ndata {}\nchange {c}\n",
            format!("change {c}").len() + 1
        )
        .unwrap();
        writeln!(w, "M 100644 inline {path}\ndata {}\n{text}", text.len()).unwrap();
    }
    drop(w);
    assert!(fi.wait().unwrap().success(), "git fast-import failed");
    (planted, distinct.len())
}

fn main() {
    let mb = env_usize("KEYAUDIT_BENCH_SCAN_MB", 1024);
    let slice_mb = env_usize("KEYAUDIT_BENCH_SLICE_MB", 50).min(mb);
    let commits = env_usize("KEYAUDIT_BENCH_COMMITS", 10_000);
    let tmp = tempfile::tempdir().unwrap();
    let base = std::env::var("KEYAUDIT_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| tmp.path().to_path_buf());
    let corpus = base.join("corpus");
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("leak-scan bench: {mb} MiB corpus, {slice_mb} MiB slice, {commits} commits, {cores} cores, seed {SEED}");

    let t = Instant::now();
    let (files, planted) = if corpus.exists() {
        println!("(reusing the corpus in {})", corpus.display());
        (walk(&corpus).len(), 0)
    } else {
        write_corpus(&corpus, mb << 20)
    };
    println!(
        "corpus: {files} files, {planted} planted secrets, written in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    // Warm the page cache for every tool alike.
    let _ = ripgrep(&corpus);

    let (ka_secs, ka_hits, ka_bytes) = keyaudit_scan(&corpus);
    let (rg_secs, rg_matches) = ripgrep(&corpus);
    let mib = ka_bytes as f64 / 1048576.0;
    if planted > 0 && ka_hits < planted {
        fail(&format!(
            "keyaudit found {ka_hits} of {planted} planted secrets"
        ));
    }

    let slice_dir = base.join("slice");
    let _ = std::fs::remove_dir_all(&slice_dir);
    let slice_bytes = slice(&corpus, &slice_dir, slice_mb << 20);
    let slice_mib = slice_bytes as f64 / 1048576.0;
    let (ks_secs, ks_hits, _) = keyaudit_scan(&slice_dir);
    let (ds_secs, ds_found) = detect_secrets(&slice_dir);

    let repo = base.join("repo");
    let _ = std::fs::remove_dir_all(&repo);
    let t = Instant::now();
    let (git_planted, git_distinct) = git_repo(&repo, commits);
    println!(
        "repository: {commits} commits, {git_planted} planted secrets ({git_distinct} distinct), made in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let scanner = Scanner::new(&Options::default());
    let t = Instant::now();
    let r = git::scan_history(&scanner, &repo, None).expect("history scans");
    let git_secs = t.elapsed().as_secs_f64();

    println!();
    println!("| what | data | time | throughput | found |");
    println!("|---|---|---:|---:|---|");
    println!(
        "| keyaudit scan ({cores} workers) | {mib:.0} MiB, {files} files | {ka_secs:.2} s | {:.0} MiB/s | {ka_hits} secrets ({planted} planted) |",
        mib / ka_secs
    );
    println!(
        "| ripgrep, {} keywords, fixed strings, any case | same files | {rg_secs:.2} s | {:.0} MiB/s | {rg_matches} keyword matches |",
        rules::all().map(|d| d.keywords.len()).sum::<usize>(),
        mib / rg_secs
    );
    println!(
        "| keyaudit scan | {slice_mib:.0} MiB slice | {ks_secs:.2} s | {:.0} MiB/s | {ks_hits} secrets |",
        slice_mib / ks_secs
    );
    println!(
        "| detect-secrets 1.5.0 scan --all-files | same slice | {ds_secs:.2} s | {:.1} MiB/s | {ds_found} results |",
        slice_mib / ds_secs
    );
    println!(
        "| keyaudit scan --git | {commits} commits | {git_secs:.2} s | {:.0} commits/s | {} secrets ({git_planted} plants of {git_distinct} distinct secrets) |",
        commits as f64 / git_secs,
        r.hits.len()
    );
    println!("\nkeyaudit / ripgrep time: {:.2}x", ka_secs / rg_secs);
}
