//! `keyaudit open` on a large export, measured on the real binary in tmux (200x50): how
//! soon the first frame shows, how soon the keys view and the events view show imported
//! events while the import runs, when the import and the detection after it end, how
//! long `q` takes to stop an import mid-way, and the peak memory of the session.
//!
//! Run: `cargo bench --bench open` (N from `KEYAUDIT_BENCH_EVENTS`, default 1,000,000
//! CloudTrail events of 500 keys as JSON lines, about 590 MB; `KEYAUDIT_BENCH_INPUT=DIR`
//! keeps the generated export in DIR for the next run). Needs tmux. The target: the
//! first screen with events within 1 s of starting `keyaudit open` on 1M events.
//! Figures go to stdout; docs/PERFORMANCE.md records a run.

#[path = "../tests/support/open_export.rs"]
mod export;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_keyaudit");

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Tmux {
    socket: String,
    /// The session's stderr (the program's error output).
    err: PathBuf,
}

impl Tmux {
    fn cmd(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .args(["-L", &self.socket])
            .args(args)
            .output()
            .expect("tmux runs (apt-get install -y tmux)")
    }

    fn screen(&self) -> String {
        String::from_utf8_lossy(&self.cmd(&["capture-pane", "-p", "-t", "open"]).stdout)
            .into_owned()
    }

    /// The program has exited (its pane is dead, or the server is gone with it).
    fn exited(&self) -> bool {
        let o = self.cmd(&["display-message", "-p", "-t", "open", "#{pane_dead}"]);
        !o.status.success() || String::from_utf8_lossy(&o.stdout).trim() == "1"
    }

    /// Says why a wait ended without its screen: the last screen and the program's
    /// error output.
    fn gave_up(&self, what: &str, why: &str) {
        let err = std::fs::read_to_string(&self.err).unwrap_or_default();
        eprintln!(
            "gave up waiting for {what}: {why}\n--- last screen ---\n{}\n--- stderr ---\n{err}",
            self.screen()
        );
    }

    /// Polls every `every` until `pred` holds; the time since `t0`, or `None` (after
    /// printing the last screen) once `limit` has passed since `t0` or the program has
    /// exited.
    fn until(
        &self,
        what: &str,
        t0: Instant,
        every: Duration,
        limit: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> Option<f64> {
        loop {
            let s = self.screen();
            if pred(&s) {
                return Some(t0.elapsed().as_secs_f64());
            }
            if self.exited() {
                self.gave_up(what, "the program exited");
                return None;
            }
            if t0.elapsed() > limit {
                self.gave_up(what, &format!("no such screen after {limit:?}"));
                return None;
            }
            std::thread::sleep(every);
        }
    }

    fn pid(&self) -> Option<u32> {
        let o = self.cmd(&["display-message", "-p", "-t", "open", "#{pane_pid}"]);
        String::from_utf8_lossy(&o.stdout).trim().parse().ok()
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd(&["kill-server"]);
    }
}

fn vm_hwm_mb(pid: u32) -> Option<f64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// Starts `keyaudit open FILE --case bench` in a fresh tmux server; returns it and the
/// start time. The pane stays after the program exits (set in the server's
/// configuration, so even a program that fails at once leaves its screen).
fn start(home: &Path, file: &Path) -> (Tmux, Instant) {
    std::fs::create_dir_all(home).expect("the session's home");
    let conf = home.join("tmux.conf");
    std::fs::write(&conf, "set -g remain-on-exit on\n").expect("the tmux configuration");
    let tmux = Tmux {
        socket: format!("keyaudit-open-bench-{}", std::process::id()),
        err: home.join("open.err"),
    };
    let command = format!(
        "exec env -u KEYAUDIT_DB -u KEYAUDIT_CONFIG XDG_CONFIG_HOME={h}/config XDG_DATA_HOME={h}/data XDG_STATE_HOME={h}/state {BIN} open {f} --case bench 2>>{h}/open.err",
        h = home.display(),
        f = file.display()
    );
    let t0 = Instant::now();
    let o = tmux.cmd(&[
        "-f",
        &conf.display().to_string(),
        "new-session",
        "-d",
        "-s",
        "open",
        "-x",
        "200",
        "-y",
        "50",
        &command,
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    (tmux, t0)
}

/// The events view lists imported events.
fn shows_events(s: &str) -> bool {
    // A row: the key id and the source address (the header and histogram show neither).
    s.contains("[events]") && s.contains("AKIAOPEN") && s.contains("198.51.")
}

fn main() {
    let n = env_u64("KEYAUDIT_BENCH_EVENTS", 1_000_000);
    let keys = 500;
    let kept = std::env::var_os("KEYAUDIT_BENCH_INPUT").map(PathBuf::from);
    let tmp = tempfile::tempdir().expect("a temporary directory");
    let input_dir = kept.clone().unwrap_or_else(|| tmp.path().to_path_buf());
    std::fs::create_dir_all(&input_dir).expect("the input directory");
    let file = input_dir.join(format!("open-cloudtrail-{n}.jsonl"));
    if !file.exists() {
        let t = Instant::now();
        let bytes = export::write_export(&file, n, keys);
        println!(
            "generated {} events ({:.0} MB) in {:.1}s: {}",
            n,
            bytes as f64 / 1e6,
            t.elapsed().as_secs_f64(),
            file.display()
        );
    }
    let size = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
    // Each wait gives up (printing the last screen) after its limit or when the
    // program exits: the first frame and the first events come in seconds, the end of a
    // 1M import and its detection in minutes.
    let soon = Duration::from_secs(60);
    let limit = Duration::from_secs(900);
    let fast = Duration::from_millis(10);
    let slow = Duration::from_millis(200);

    // Run 1: the events view as the first screen, then `q` in the middle of the import.
    let home = tmp.path().join("home1");
    let (tmux, t0) = start(&home, &file);
    let frame = tmux.until("the first frame", t0, fast, soon, |s| s.contains("[keys]"));
    tmux.cmd(&["send-keys", "-t", "open", "3"]);
    let events = tmux.until("imported events", t0, fast, soon, shows_events);
    let gauge_with_events = shows_events(&tmux.screen()) && tmux.screen().contains("import ");
    let q_at = Instant::now();
    tmux.cmd(&["send-keys", "-t", "open", "q"]);
    let mut quit = None;
    while q_at.elapsed() < Duration::from_secs(60) {
        if tmux.exited() {
            quit = Some(q_at.elapsed().as_secs_f64());
            break;
        }
        std::thread::sleep(fast);
    }
    if quit.is_none() {
        tmux.gave_up("the exit after `q`", "still running after 60 s");
    }
    drop(tmux);

    // Run 2: the keys view, to the end of the import and of detection.
    let home = tmp.path().join("home2");
    let (tmux, t0) = start(&home, &file);
    let keys_shown = tmux.until("imported keys", t0, fast, soon, |s| s.contains("AKIAOPEN"));
    let pid = tmux.pid();
    let imported = tmux.until("the end of the import", t0, slow, limit, |s| {
        s.contains("Imported 1 file") || s.contains("Detection over")
    });
    let detected = tmux.until("the end of detection", t0, slow, limit, |s| {
        s.contains("Detection over")
    });
    let rss = pid.and_then(vm_hwm_mb);
    let last = tmux.screen();
    tmux.cmd(&["send-keys", "-t", "open", "q"]);
    drop(tmux);

    let f = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.2} s"));
    println!(
        "\nkeyaudit open on {n} CloudTrail events ({:.0} MB, {keys} keys), tmux 200x50",
        size as f64 / 1e6
    );
    println!("| measure | time from start |");
    println!("|---|---:|");
    println!("| first frame (keys view, gauge) | {} |", f(frame));
    println!("| keys view lists imported keys | {} |", f(keys_shown));
    println!(
        "| events view shows imported events (target ≤ 1 s) | {} |",
        f(events)
    );
    println!("| import ended | {} |", f(imported));
    println!("| detection ended, findings shown | {} |", f(detected));
    println!("| `q` mid-import to exit (import stopped) | {} |", f(quit));
    if let (Some(t), Some(_)) = (imported, detected) {
        println!(
            "\nimport rate under the TUI: {:.0} events/s; peak RSS {}",
            n as f64 / t,
            rss.map_or("-".into(), |r| format!("{r:.0} MB"))
        );
    }
    println!("gauge and events on one screen: {gauge_with_events}");
    let status = last
        .lines()
        .rev()
        .find(|l| l.contains("Detection over"))
        .unwrap_or("");
    println!("status at the end: {}", status.trim());
    match events {
        Some(t) if t <= 1.0 => println!("target (first screen with events ≤ 1 s): met"),
        Some(_) => println!("target (first screen with events ≤ 1 s): NOT met"),
        None => println!("target: not measured (no events shown)"),
    }
}
