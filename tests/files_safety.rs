//! Files at rest, through the real binary: keyaudit's own directories are tightened to
//! 0700 (or refused when another account owns them), no file is written through a
//! symbolic link, and `import` and `scan` bound the length of one line: a 1 GiB line
//! (plain and gzip) gets an error naming the file and the line while memory stays small.

#[path = "import_support/mod.rs"]
mod support;

use flate2::write::GzEncoder;
use flate2::Compression;
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;
use support::*;

/// The length of the long line: 1 GiB.
const HUGE: u64 = 1 << 30;
/// What "memory stays bounded" means here: a peak resident size far below the line.
const MEMORY_BOUND_MB: u64 = 200;

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

fn mkdir(p: &Path, mode: u32) {
    std::fs::create_dir_all(p).unwrap();
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// A sandbox whose config directory is the default one (under XDG_CONFIG_HOME).
fn xdg_command(s: &Sandbox) -> Command {
    let mut c = s.command();
    c.env_remove("KEYAUDIT_CONFIG")
        .env("XDG_CONFIG_HOME", s.path("config"));
    c
}

fn output(c: &mut Command) -> (i32, String, String) {
    let o = c.output().unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn own_directories_open_to_others_are_tightened_to_0700() {
    let s = Sandbox::new();
    let dirs = [
        s.path("data/keyaudit"),
        s.path("data/keyaudit/cases"),
        s.path("data/keyaudit/demo"),
        s.path("state/keyaudit"),
        s.path("config/keyaudit"),
    ];
    for (d, m) in dirs.iter().zip([0o755, 0o777, 0o750, 0o755, 0o711]) {
        mkdir(d, m);
    }
    let (code, _, err) = output(xdg_command(&s).arg("info"));
    assert_eq!(code, 0, "{err}");
    for d in &dirs {
        assert_eq!(mode(d), 0o700, "{} after", d.display());
        assert!(
            err.contains(&format!(
                "keyaudit: note: {} was open to other accounts",
                d.display()
            )),
            "the user is told about {}: {err}",
            d.display()
        );
    }
    assert!(err.contains("(mode 0777); tightened to 0700"), "{err}");
    // Once private, nothing more is said.
    let (code, _, err) = output(xdg_command(&s).arg("info"));
    assert_eq!(code, 0);
    assert!(!err.contains("tightened"), "{err}");
}

/// Gives `p` to uid 65534 (nobody): directly as root, else through `sudo -n`. False when
/// neither is possible (then the refusal cannot be shown on this machine).
fn give_away(p: &Path) -> bool {
    if nix::unistd::getuid().is_root() {
        nix::unistd::chown(p, Some(nix::unistd::Uid::from_raw(65534)), None).unwrap();
        return true;
    }
    Command::new("sudo")
        .args(["-n", "chown", "65534"])
        .arg(p)
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn a_directory_another_account_owns_is_refused_and_left_alone() {
    let s = Sandbox::new();
    let data = s.path("data/keyaudit");
    mkdir(&data, 0o755);
    if !give_away(&data) {
        assert!(
            std::env::var("CI").is_err(),
            "CI must run this test as root or with passwordless sudo"
        );
        eprintln!("skipped: neither root nor passwordless sudo to chown a directory");
        return;
    }
    let (code, _, err) = output(xdg_command(&s).arg("info"));
    assert_eq!(code, 1, "{err}");
    let me = nix::unistd::getuid().as_raw();
    assert!(
        err.contains(&format!(
            "keyaudit: error: {} belongs to nobody (uid 65534), not to you",
            data.display()
        )) && err.contains(&format!("uid {me})")),
        "{err}"
    );
    assert!(
        err.contains(&format!("`mv {} {}.old`", data.display(), data.display())),
        "the message says what to do: {err}"
    );
    let meta = std::fs::metadata(&data).unwrap();
    assert_eq!(
        (meta.uid(), meta.mode() & 0o777),
        (65534, 0o755),
        "untouched"
    );
    // Give it back so the temporary directory can be removed.
    if nix::unistd::getuid().is_root() {
        nix::unistd::chown(&data, Some(nix::unistd::getuid()), None).unwrap();
    } else {
        let _ = Command::new("sudo")
            .args(["-n", "chown", &me.to_string()])
            .arg(&data)
            .status();
    }
}

#[test]
fn no_file_is_written_through_a_symbolic_link() {
    let s = Sandbox::new();
    let victim = s.write("victim.txt", b"precious\n");
    std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o644)).unwrap();
    let link = s.path("planted.db");
    std::os::unix::fs::symlink(&victim, &link).unwrap();

    // A cache path that is a link: refused, the target untouched.
    let log = s.write("a.jsonl", &{
        let mut v = cloudtrail_line(1, "AKIASYMLINKTEST00001").into_bytes();
        v.push(b'\n');
        v
    });
    let (code, _, err) = output(
        s.command()
            .env("KEYAUDIT_DB", &link)
            .args(["import", log.to_str().unwrap()]),
    );
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(&format!("{} is a symbolic link", link.display()))
            && err.contains("Name the real file"),
        "{err}"
    );
    assert_eq!(std::fs::read(&victim).unwrap(), b"precious\n");
    assert_eq!(mode(&victim), 0o644, "the link's target keeps its mode");

    // An export to a link replaces the link, never writes through it.
    let (code, _, err) = s.import(&[&log], &[]);
    assert_eq!(code, 0, "{err}");
    let out = s.path("events.csv");
    std::os::unix::fs::symlink(&victim, &out).unwrap();
    let (code, _, err) = s.run(&[
        "export",
        "events",
        "--format",
        "csv",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(!std::fs::symlink_metadata(&out).unwrap().is_symlink());
    assert!(std::fs::read_to_string(&out)
        .unwrap()
        .contains("AKIASYMLINKTEST00001"));
    assert_eq!(mode(&out), 0o600);
    assert_eq!(std::fs::read(&victim).unwrap(), b"precious\n");
    assert_eq!(mode(&victim), 0o644);
}

/// Good CloudTrail lines `from..to`, each ending in a newline.
fn good_lines(from: u64, to: u64) -> Vec<u8> {
    let mut v = Vec::new();
    for i in from..to {
        v.extend_from_slice(cloudtrail_line(i, "AKIALONGLINETEST0001").as_bytes());
        v.push(b'\n');
    }
    v
}

const LONG_START: &[u8] = b"{\"eventTime\":\"2024-03-01T10:00:00Z\",\"pad\":\"";
/// Lines before the long one (more than the 64 KiB the format probe reads).
const BEFORE: u64 = 300;

/// A plain file whose line `BEFORE + 1` is [`HUGE`] bytes long: the bulk of it is a
/// hole (sparse, read back as NUL bytes), so the file takes almost no disk.
fn sparse_file(path: &Path) {
    let mut f = std::fs::File::create(path).unwrap();
    f.write_all(&good_lines(0, BEFORE)).unwrap();
    f.write_all(LONG_START).unwrap();
    let end = f.stream_position().unwrap() + HUGE - LONG_START.len() as u64;
    f.set_len(end).unwrap();
    f.seek(SeekFrom::End(0)).unwrap();
    f.write_all(b"\"}\n").unwrap();
    f.write_all(&good_lines(BEFORE, BEFORE + 1)).unwrap();
}

/// The same content gzipped, written in chunks: the long line is 1024 gzip members of
/// 1 MiB each (a multi-member stream decompresses to their concatenation), about 1 MB
/// on disk.
fn gzip_file(path: &Path) {
    let member = |bytes: &[u8]| {
        let mut e = GzEncoder::new(Vec::new(), Compression::best());
        e.write_all(bytes).unwrap();
        e.finish().unwrap()
    };
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut head = good_lines(0, BEFORE);
    head.extend_from_slice(LONG_START);
    f.write_all(&member(&head)).unwrap();
    let chunk = member(&vec![b'x'; 1 << 20]);
    for _ in 0..(HUGE >> 20) - 1 {
        f.write_all(&chunk).unwrap();
    }
    let mut tail = vec![b'x'; (1 << 20) - LONG_START.len()];
    tail.extend_from_slice(b"\"}\n");
    tail.extend_from_slice(&good_lines(BEFORE, BEFORE + 1));
    f.write_all(&member(&tail)).unwrap();
    f.flush().unwrap();
}

/// Runs `c` to its end, sampling its peak resident size (VmHWM) while it runs.
/// Returns (exit code, stdout + stderr, peak MB).
fn run_measured(c: &mut Command) -> (i32, String, u64) {
    let child = c
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status = format!("/proc/{}/status", child.id());
    let (tx, rx) = std::sync::mpsc::channel();
    let waiter = std::thread::spawn(move || {
        let out = child.wait_with_output().unwrap();
        let _ = tx.send(());
        out
    });
    let mut peak_kb = 0u64;
    loop {
        if let Ok(text) = std::fs::read_to_string(&status) {
            if let Some(kb) = text
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            {
                peak_kb = peak_kb.max(kb);
            }
        }
        if rx.recv_timeout(Duration::from_millis(20)).is_ok() {
            break;
        }
    }
    let out = waiter.join().unwrap();
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), text, peak_kb >> 10)
}

struct Huge {
    _s: Sandbox,
    files: Vec<PathBuf>,
}

impl Drop for Huge {
    fn drop(&mut self) {
        for f in &self.files {
            let _ = std::fs::remove_file(f);
        }
    }
}

#[test]
fn a_1_gib_line_is_an_error_naming_file_and_line_and_memory_stays_bounded() {
    let s = Sandbox::new();
    let plain = s.path("huge-line.jsonl");
    let gz = s.path("huge-line.jsonl.gz");
    sparse_file(&plain);
    gzip_file(&gz);
    let line = BEFORE + 1;
    let s = Huge {
        _s: s,
        files: vec![plain.clone(), gz.clone()],
    };
    let sb = &s._s;
    for (file, name) in [(&plain, "huge-line.jsonl"), (&gz, "huge-line.jsonl.gz")] {
        // import, with the default bound (8 MiB) and a smaller one.
        for (extra, limit) in [(&[][..], 8), (&["--max-record", "1"][..], 1)] {
            let db = sb.path(&format!("{name}-{limit}.db"));
            let mut c = sb.command();
            c.env("KEYAUDIT_DB", &db)
                .arg("import")
                .args(extra)
                .arg(file);
            let (code, out, peak) = run_measured(&mut c);
            assert_eq!(code, 0, "{out}");
            assert!(
                out.contains(&format!(
                    "{name}:{line}: record too large (1073.7 MB, limit {limit} MiB); skipped"
                )),
                "import names the file and line: {out}"
            );
            assert!(out.contains(&format!("{} imported", BEFORE + 1)), "{out}");
            assert_eq!(count(&db), (BEFORE + 1) as i64, "the records around it");
            assert!(
                peak < MEMORY_BOUND_MB,
                "import of {name} peaked at {peak} MB"
            );
            eprintln!("import {name} --max-record {limit}: peak RSS {peak} MB");
        }
        // scan: the file stops at the long line, with what came before it scanned.
        let mut c = sb.command();
        c.args(["scan"]).arg(file);
        let (code, out, peak) = run_measured(&mut c);
        assert!(
            out.contains(&format!(
                "{}:{line}: line longer than 4 MiB; the rest of this input was not scanned",
                file.display()
            )),
            "scan names the file and line (exit {code}): {out}"
        );
        assert!(peak < MEMORY_BOUND_MB, "scan of {name} peaked at {peak} MB");
        eprintln!("scan {name}: peak RSS {peak} MB");
    }
}
