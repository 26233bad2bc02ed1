//! What the scanner reads: files and directories (walked with the `ignore` crate, so
//! `.gitignore`, `.ignore` and `.git/info/exclude` are honoured), `.gz` and `.zip`
//! archives, and any stream (standard input). Binary files and dependency lock files are
//! skipped by rule. Text is scanned in chunks of whole lines; a line longer than
//! [`MAX_LINE`] stops that file with an error naming it and the line.

use super::{Hit, Scanner};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// The longest line (or record) read: 4 MiB.
pub const MAX_LINE: usize = 4 << 20;
/// Text is scanned in chunks of about this many bytes.
const CHUNK: usize = 8 << 20;
/// The end of a chunk carried into the next, so a secret near a chunk's end is seen
/// with the lines around it; hits in the last [`DEFER`] bytes are reported by the next
/// chunk, which sees what follows them.
const CARRY: usize = 128 << 10;
const DEFER: usize = 64 << 10;
/// The most bytes one archive member may decompress to (a guard against zip bombs).
const MAX_MEMBER: u64 = 1 << 30;

/// A file, member or stream that could not be read (or was cut short).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}{}: {message}", line.map(|l| format!(":{l}")).unwrap_or_default())]
pub struct SourceError {
    pub file: String,
    pub line: Option<usize>,
    pub message: String,
}

fn err(file: &str, line: Option<usize>, message: impl ToString) -> SourceError {
    SourceError {
        file: file.to_string(),
        line,
        message: message.to_string(),
    }
}

/// What a scan of paths read and left out.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Stats {
    pub files: usize,
    pub bytes: u64,
    pub skipped_binary: usize,
    pub skipped_lock: usize,
}

/// Hits, unreadable inputs and counts of a scan.
#[derive(Debug, Default)]
pub struct Report {
    pub hits: Vec<Hit>,
    pub errors: Vec<SourceError>,
    pub stats: Stats,
}

/// Dependency lock files: generated, full of hashes, never where a secret is written.
const LOCK_FILES: &[&str] = &[
    "Cargo.lock",
    "package-lock.json",
    "npm-shrinkwrap.json",
    "yarn.lock",
    "pnpm-lock.yaml",
    "bun.lockb",
    "poetry.lock",
    "Pipfile.lock",
    "uv.lock",
    "Gemfile.lock",
    "composer.lock",
    "go.sum",
    "flake.lock",
    "mix.lock",
    "pubspec.lock",
    "Podfile.lock",
    "packages.lock.json",
    "gradle.lockfile",
];

/// Extensions of binary formats skipped without reading them (other binaries are
/// recognised by a NUL byte in their first 8 KiB).
const BINARY_EXT: &[&str] = &[
    "png", "jpg", "jpeg", "gif", "bmp", "ico", "webp", "tiff", "psd", "pdf", "woff", "woff2",
    "ttf", "otf", "eot", "mp3", "mp4", "mov", "avi", "mkv", "wav", "flac", "ogg", "exe", "dll",
    "so", "dylib", "o", "a", "lib", "class", "jar", "pyc", "wasm", "bin", "dat", "iso", "dmg",
    "xz", "bz2", "zst", "7z", "rar", "tar", "tgz", "sqlite", "db",
];

/// Why a file is left out by its name, if it is.
pub fn skip_by_name(name: &str) -> Option<&'static str> {
    let base = name.rsplit(['/', '\\']).next().unwrap_or(name);
    if LOCK_FILES.contains(&base) {
        return Some("lock");
    }
    let ext = base.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase());
    ext.filter(|e| BINARY_EXT.contains(&e.as_str()))
        .map(|_| "binary")
}

/// Scans a stream named `name` (a path, `-`, `a.zip!member`). Returns the bytes read.
/// Text with a NUL byte in its first 8 KiB is binary: it is skipped, `Ok(None)`.
pub fn scan_reader(
    scanner: &Scanner,
    name: &str,
    r: impl Read,
    hits: &mut Vec<Hit>,
) -> Result<Option<u64>, SourceError> {
    let mut reader = BufReader::with_capacity(64 << 10, r);
    let head = reader.fill_buf().map_err(|e| err(name, None, e))?;
    if memchr::memchr(0, &head[..head.len().min(8192)]).is_some() {
        return Ok(None);
    }
    let mut buf: Vec<u8> = Vec::with_capacity(CHUNK + MAX_LINE.min(1 << 20));
    // Line number of buf[0]; bytes at the start of buf already reported.
    let (mut first_line, mut skip, mut line_no, mut total) = (1usize, 0usize, 0usize, 0u64);
    loop {
        let mut eof = false;
        while buf.len() < CHUNK {
            let before = buf.len();
            let n = (&mut reader)
                .take(MAX_LINE as u64 + 1)
                .read_until(b'\n', &mut buf)
                .map_err(|e| err(name, Some(line_no + 1), e))?;
            if n == 0 {
                eof = true;
                break;
            }
            line_no += 1;
            total += n as u64;
            if n > MAX_LINE && buf.last() != Some(&b'\n') {
                buf.truncate(before);
                report(scanner, name, &buf, first_line, skip, usize::MAX, hits);
                return Err(err(
                    name,
                    Some(line_no),
                    format!(
                        "line longer than {} MiB; the rest of this input was not scanned",
                        MAX_LINE >> 20
                    ),
                ));
            }
        }
        let limit = if eof {
            usize::MAX
        } else {
            buf.len().saturating_sub(DEFER)
        };
        report(scanner, name, &buf, first_line, skip, limit, hits);
        if eof {
            return Ok(Some(total));
        }
        // Keep the last CARRY bytes, from a line start, for the next chunk.
        let want = buf.len().saturating_sub(CARRY);
        let keep_from = memchr::memchr(b'\n', &buf[want..]).map_or(buf.len(), |i| want + i + 1);
        let keep_from = keep_from.min(limit);
        first_line += memchr::memchr_iter(b'\n', &buf[..keep_from]).count();
        skip = limit - keep_from;
        buf.drain(..keep_from);
    }
}

/// Scans `buf` and keeps the hits that start in `skip..limit`.
fn report(
    scanner: &Scanner,
    name: &str,
    buf: &[u8],
    first_line: usize,
    skip: usize,
    limit: usize,
    hits: &mut Vec<Hit>,
) {
    let all = scanner.scan_text(name, buf, first_line);
    let mut at = 0;
    let mut line = first_line;
    for h in all {
        // Map the hit's line back to a byte offset to compare with skip/limit.
        while line < h.line {
            at += memchr::memchr(b'\n', &buf[at..]).map_or(buf.len() - at, |i| i + 1);
            line += 1;
        }
        let offset = at + h.column - 1;
        if offset >= skip && offset < limit {
            hits.push(h);
        }
    }
}

/// Scans one file: `.gz` is decompressed, each member of a `.zip` is scanned,
/// binaries and lock files are skipped (`Ok(Skip)`).
pub fn scan_file(
    scanner: &Scanner,
    path: &Path,
    hits: &mut Vec<Hit>,
) -> Result<Scanned, SourceError> {
    let name = path.display().to_string();
    if let Some(why) = skip_by_name(&name) {
        return Ok(Scanned::Skipped(why));
    }
    let f = std::fs::File::open(path).map_err(|e| err(&name, None, e))?;
    let ext = path.extension().map(|e| e.to_ascii_lowercase());
    let read = if ext.as_deref() == Some("gz".as_ref()) {
        scan_reader(scanner, &name, flate2::read::MultiGzDecoder::new(f), hits)?
    } else if ext.as_deref() == Some("zip".as_ref()) {
        Some(scan_zip(scanner, &name, f, hits)?)
    } else {
        scan_reader(scanner, &name, f, hits)?
    };
    Ok(read.map_or(Scanned::Skipped("binary"), Scanned::Read))
}

/// What became of one file.
pub enum Scanned {
    Read(u64),
    Skipped(&'static str),
}

fn scan_zip(
    scanner: &Scanner,
    name: &str,
    f: std::fs::File,
    hits: &mut Vec<Hit>,
) -> Result<u64, SourceError> {
    let mut zip = zip::ZipArchive::new(f)
        .map_err(|e| err(name, None, format!("not a readable zip archive: {e}")))?;
    let mut total = 0;
    for i in 0..zip.len() {
        let member = zip
            .by_index(i)
            .map_err(|e| err(name, None, format!("member {i}: {e}")))?;
        if !member.is_file() {
            continue;
        }
        let inner = format!("{name}!{}", member.name());
        if skip_by_name(member.name()).is_some() {
            continue;
        }
        if member.size() > MAX_MEMBER {
            return Err(err(
                &inner,
                None,
                format!(
                    "member would decompress to {} bytes; not scanned",
                    member.size()
                ),
            ));
        }
        total += scan_reader(scanner, &inner, member.take(MAX_MEMBER), hits)?.unwrap_or(0);
    }
    Ok(total)
}

/// How paths are walked.
#[derive(Debug, Clone, Copy, Default)]
pub struct WalkOptions {
    /// Also scan what `.gitignore` and `.ignore` leave out.
    pub no_ignore: bool,
}

/// The files at and under `paths`: hidden files included (`.env` is where secrets
/// live), `.git` directories left out, ignore files honoured unless `no_ignore`.
/// A path named on the command line is always scanned, ignored or not.
fn files(paths: &[PathBuf], opts: WalkOptions, errors: &mut Vec<SourceError>) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for root in paths {
        let walk = ignore::WalkBuilder::new(root)
            .hidden(false)
            .parents(true)
            .ignore(!opts.no_ignore)
            .git_ignore(!opts.no_ignore)
            .git_exclude(!opts.no_ignore)
            .git_global(false)
            .require_git(false)
            .follow_links(false)
            .sort_by_file_name(|a, b| a.cmp(b))
            .filter_entry(|e| e.file_name() != ".git")
            .build();
        for entry in walk {
            match entry {
                Ok(e) if e.file_type().is_some_and(|t| t.is_file()) => out.push(e.into_path()),
                Ok(_) => {}
                Err(e) => errors.push(err(&root.display().to_string(), None, e)),
            }
        }
    }
    out
}

/// Scans files and directories on every core. Unreadable inputs are reported in the
/// report's errors and do not stop the scan; hits come in file order.
pub fn scan_paths(scanner: &Scanner, paths: &[PathBuf], opts: WalkOptions) -> Report {
    let mut report = Report::default();
    let list = files(paths, opts, &mut report.errors);
    let next = AtomicUsize::new(0);
    type Done = (usize, Vec<Hit>, Result<Scanned, SourceError>);
    let results: Mutex<Vec<Done>> = Mutex::new(Vec::new());
    let workers = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .min(list.len().max(1));
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(p) = list.get(i) else { break };
                let mut hits = Vec::new();
                let r = scan_file(scanner, p, &mut hits);
                results
                    .lock()
                    .expect("no worker panics holding the lock")
                    .push((i, hits, r));
            });
        }
    });
    let mut results = results.into_inner().expect("no worker panicked");
    results.sort_by_key(|(i, _, _)| *i);
    for (_, hits, r) in results {
        report.hits.extend(hits);
        match r {
            Ok(Scanned::Read(n)) => {
                report.stats.files += 1;
                report.stats.bytes += n;
            }
            Ok(Scanned::Skipped("lock")) => report.stats.skipped_lock += 1,
            Ok(Scanned::Skipped(_)) => report.stats.skipped_binary += 1,
            Err(e) => report.errors.push(e),
        }
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scan::Options;
    use crate::secret;

    fn scanner() -> Scanner {
        Scanner::new(&Options::default())
    }

    #[test]
    fn hits_name_file_and_line_and_never_hold_the_secret() {
        let dir = tempfile::tempdir().unwrap();
        let k = secret::generate("ka").unwrap();
        let nested = dir.path().join("repo/src");
        std::fs::create_dir_all(&nested).unwrap();
        std::fs::write(
            nested.join(".env"),
            format!("A=1\nB=2\nKEY=\"{}\"\n", k.expose()),
        )
        .unwrap();
        let r = scan_paths(
            &scanner(),
            &[dir.path().to_path_buf()],
            WalkOptions::default(),
        );
        assert!(r.errors.is_empty(), "{:?}", r.errors);
        assert_eq!(r.hits.len(), 1);
        assert_eq!(r.hits[0].line, 3);
        assert_eq!(r.hits[0].fingerprint, k.fingerprint());
        let json = serde_json::to_string(&r.hits).unwrap();
        assert!(!json.contains(k.expose()));
    }

    #[test]
    fn gitignored_lock_and_binary_files_are_skipped_but_archives_are_read() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let k = secret::generate("ka").unwrap();
        let line = format!("token = {}\n", k.expose());
        std::fs::write(dir.path().join(".gitignore"), "ignored.txt\n").unwrap();
        std::fs::write(dir.path().join("ignored.txt"), &line).unwrap();
        std::fs::write(dir.path().join("Cargo.lock"), &line).unwrap();
        std::fs::write(
            dir.path().join("blob"),
            [b"\0\0".as_slice(), line.as_bytes()].concat(),
        )
        .unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(line.as_bytes()).unwrap();
        std::fs::write(dir.path().join("log.gz"), gz.finish().unwrap()).unwrap();
        let mut z = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let o = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        z.start_file("conf/app.env", o).unwrap();
        z.write_all(format!("x\n{line}").as_bytes()).unwrap();
        std::fs::write(
            dir.path().join("bundle.zip"),
            z.finish().unwrap().into_inner(),
        )
        .unwrap();

        let r = scan_paths(
            &scanner(),
            &[dir.path().to_path_buf()],
            WalkOptions::default(),
        );
        let root = format!("{}/", dir.path().display());
        let mut found: Vec<String> = r
            .hits
            .iter()
            .map(|h| format!("{}:{}", h.file.strip_prefix(&root).unwrap(), h.line))
            .collect();
        found.sort();
        assert_eq!(found, ["bundle.zip!conf/app.env:2", "log.gz:1"]);
        assert_eq!((r.stats.skipped_lock, r.stats.skipped_binary), (1, 1));
        let all = scan_paths(
            &scanner(),
            &[dir.path().to_path_buf()],
            WalkOptions { no_ignore: true },
        );
        assert_eq!(all.hits.len(), 3);
    }

    #[test]
    fn an_overlong_line_is_an_error_naming_file_and_line_after_earlier_hits() {
        let k = secret::generate("ka").unwrap();
        let mut text = format!("{}\nshort\n", k.expose()).into_bytes();
        text.extend(std::iter::repeat_n(b'a', MAX_LINE + 10));
        let mut hits = Vec::new();
        let e = scan_reader(&scanner(), "big.txt", &text[..], &mut hits).unwrap_err();
        assert_eq!(
            e.to_string(),
            "big.txt:3: line longer than 4 MiB; the rest of this input was not scanned"
        );
        assert_eq!(hits.len(), 1);
    }

    #[test]
    fn secrets_across_chunk_boundaries_are_found_once_with_their_line() {
        let k = secret::generate("ka").unwrap();
        let filler = "x".repeat(99) + "\n";
        let mut text = String::new();
        let mut want = Vec::new();
        for i in 0..200_000usize {
            if i % 21_001 == 0 {
                text.push_str(&format!("k={}\n", k.expose()));
                want.push(i + 1);
            } else {
                text.push_str(&filler);
            }
        }
        let mut hits = Vec::new();
        scan_reader(&scanner(), "s", text.as_bytes(), &mut hits).unwrap();
        let got: Vec<usize> = hits.iter().map(|h| h.line).collect();
        assert_eq!(got, want);
    }
}
