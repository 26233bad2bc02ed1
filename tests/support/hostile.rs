//! The hostile-input suite's cases and its checks, shared by the tests that feed hostile
//! text through import, sync, the CLI and the TUI.
//!
//! The strings are `keyaudit::demo::hostile::CASES` (what `keyaudit demo --hostile`
//! serves), so the demo and the tests never drift apart; this file adds what only a log
//! file can carry (invalid UTF-8, raw NUL bytes, deep nesting, huge numbers, a 1 MB
//! field). Output is read through a pseudo-terminal, so keyaudit sees a terminal exactly
//! as an operator's shell gives it one.

#![allow(dead_code)]

use keyaudit::output::is_unsafe_char;
use keyaudit::store::Store;
use keyaudit::tui::action::{Action, Effect, View};
use keyaudit::tui::keymap::Keymap;
use keyaudit::tui::state::{Setup, State};
use keyaudit::tui::theme::Theme;
use ratatui::backend::TestBackend;
use ratatui::Terminal;
use serde_json::json;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

/// One named hostile string.
#[derive(Debug, Clone)]
pub struct Case {
    pub name: String,
    pub text: String,
}

/// Size of the very long field.
pub const LONG: usize = 1 << 20;

/// Texts longer than this go only into the fields that take the very long one.
pub const SHORT: usize = 64 * 1024;

/// Every hostile string: the demo's cases and a 1 MB field of escape sequences.
pub fn text_cases() -> Vec<Case> {
    let mut v: Vec<Case> = keyaudit::demo::hostile::CASES
        .iter()
        .map(|(n, t)| Case {
            name: n.to_string(),
            text: t.to_string(),
        })
        .collect();
    let unit = "\x1b]52;c;QUFBQQ==\x07\u{202e}";
    v.push(Case {
        name: "long-1mb".into(),
        text: unit.repeat(LONG / unit.len() + 1),
    });
    v
}

/// Records a log file can carry but a JSON string cannot: each a line of bytes, with a
/// name. None may crash the import; each is either imported or reported by line.
pub fn file_cases() -> Vec<(&'static str, Vec<u8>)> {
    let rec = |extra: &str| {
        format!(r#"{{"timestamp":"2026-11-20T10:00:00Z","key_id":"file-case","action":"GET /x"{extra}}}"#)
            .into_bytes()
    };
    let mut invalid_utf8 = rec(r#","user_agent":"bad "#);
    invalid_utf8.truncate(invalid_utf8.len() - 1);
    invalid_utf8.extend_from_slice(b"\xff\xfe\xc0\x80\"}");
    let mut raw_nul = rec(r#","user_agent":"raw"#);
    raw_nul.truncate(raw_nul.len() - 1);
    raw_nul.extend_from_slice(b"\0nul\"}");
    let deep = format!(
        r#"{{"timestamp":"2026-11-20T10:00:01Z","key_id":"file-case","action":"GET /deep","extra":{}{}}}"#,
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let deep_object = format!(
        r#"{{"timestamp":"2026-11-20T10:00:01Z","key_id":"file-case","action":"GET /deep","extra":{}1{}}}"#,
        r#"{"a":"#.repeat(100_000),
        "}".repeat(100_000)
    );
    vec![
        ("invalid-utf8", invalid_utf8),
        ("raw-nul-in-string", raw_nul),
        ("escaped-nul", rec(r#","user_agent":"esc\u0000aped""#)),
        ("lone-surrogate", rec(r#","user_agent":"\ud800x""#)),
        ("deep-array-100k", deep.into_bytes()),
        ("deep-object-100k", deep_object.into_bytes()),
        ("huge-1e400", rec(r#","records":1e400"#)),
        ("huge-2^70", rec(r#","records":1180591620717411303424"#)),
        ("huge-negative", rec(r#","records":-9223372036854775809"#)),
        ("huge-status", rec(r#","status":99999999999999999999"#)),
        (
            "escaped-controls",
            rec(r#","user_agent":"\u001b[2J\u009b1m""#),
        ),
        ("bom-mid-file", {
            let mut b = b"\xef\xbb\xbf".to_vec();
            b.extend(rec(r#","user_agent":"after a byte-order mark""#));
            b
        }),
    ]
}

/// Writes the suite's log files into `dir`: generic JSON lines and CloudTrail JSON lines
/// with one record per text case, a CloudTrail `Records` file of them, and the file
/// cases. Returns the paths.
pub fn write_logs(dir: &Path) -> Vec<PathBuf> {
    let cases = text_cases();
    let mut generic = String::new();
    let mut cloudtrail = String::new();
    let mut records = Vec::new();
    for (i, c) in cases.iter().enumerate() {
        let t = &c.text;
        // The very long text goes into the user agent and a note only: in every field
        // it would pass the largest record an import accepts (8 MiB).
        let s = if t.len() > SHORT { &c.name } else { t };
        generic.push_str(
            &json!({
                "id": format!("gen-{i}"),
                "timestamp": format!("2026-11-20T09:{:02}:00Z", i % 60),
                "key_id": format!("hk-{i}-{s}"),
                "principal": s,
                "action": format!("GET /v1/{s}"),
                "user_agent": t,
                "request_id": s,
                "outcome": "denied",
                "note": t,
            })
            .to_string(),
        );
        generic.push('\n');
        let r = json!({
            "eventVersion": "1.08",
            "userIdentity": {"type": "IAMUser", "accessKeyId": format!("AKIAHOSTILE{i:09}"),
                             "arn": format!("arn:aws:iam::123456789012:user/{s}"), "userName": s},
            "eventTime": format!("2026-11-20T08:{:02}:00Z", i % 60),
            "eventSource": "iam.amazonaws.com",
            "eventName": s,
            "sourceIPAddress": "203.0.113.7",
            "userAgent": t,
            "errorCode": s,
            "requestID": format!("req-{i}"),
            "eventID": format!("ct-{i}"),
        });
        cloudtrail.push_str(&r.to_string());
        cloudtrail.push('\n');
        let mut r = r.clone();
        r["eventID"] = json!(format!("ctr-{i}"));
        records.push(r);
    }
    let mut files = vec![
        (dir.join("generic.jsonl"), generic.into_bytes()),
        (dir.join("cloudtrail.jsonl"), cloudtrail.into_bytes()),
        (
            dir.join("trail.json"),
            json!({ "Records": records }).to_string().into_bytes(),
        ),
    ];
    // One good record first, so the format is detected, then every file case.
    let mut odd = br#"{"timestamp":"2026-11-20T07:00:00Z","key_id":"file-case","action":"GET /ok","user_agent":"ok"}"#.to_vec();
    odd.push(b'\n');
    for (_, line) in file_cases() {
        odd.extend(line);
        odd.push(b'\n');
    }
    files.push((dir.join("odd.jsonl"), odd));
    for (p, b) in &files {
        std::fs::write(p, b).unwrap();
    }
    files.into_iter().map(|(p, _)| p).collect()
}

/// A run of the binary with stdout and stderr on pseudo-terminals of their own.
#[derive(Debug)]
pub struct PtyRun {
    pub code: i32,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl PtyRun {
    /// Standard output with the terminal's line endings (`\r\n`) undone.
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).replace("\r\n", "\n")
    }
    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).replace("\r\n", "\n")
    }
}

/// A new pseudo-terminal: (master, slave).
fn pty() -> (OwnedFd, std::fs::File) {
    use rustix::pty::{grantpt, openpt, ptsname, unlockpt, OpenptFlags};
    let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC).unwrap();
    grantpt(&master).unwrap();
    unlockpt(&master).unwrap();
    let name = ptsname(&master, Vec::new()).unwrap();
    let slave = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(name.to_str().unwrap())
        .unwrap();
    (master, slave)
}

/// Reads a pty master until the other side is closed (Linux answers EIO then).
fn drain(master: OwnedFd) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut f = std::fs::File::from(master);
        let mut out = Vec::new();
        let mut buf = [0u8; 65536];
        loop {
            match f.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        }
        out
    })
}

/// Runs `cmd` with its stdout and stderr on two pseudo-terminals (stdin empty).
pub fn run_pty(mut cmd: Command) -> PtyRun {
    let (out_m, out_s) = pty();
    let (err_m, err_s) = pty();
    cmd.stdin(Stdio::null())
        .stdout(Stdio::from(out_s))
        .stderr(Stdio::from(err_s));
    let mut child = cmd.spawn().unwrap();
    // The command holds the only slave ends now: the masters see EOF when it exits.
    drop(cmd);
    let (o, e) = (drain(out_m), drain(err_m));
    let status = child.wait().unwrap();
    PtyRun {
        code: status.code().unwrap_or(-1),
        stdout: o.join().unwrap(),
        stderr: e.join().unwrap(),
    }
}

/// keyaudit's own terminal control: a progress line is redrawn with `\r` and
/// "erase line". Nothing else of its output is a control sequence.
const OWN_CONTROL: &str = "\r\x1b[2K";

/// Asserts that a terminal received no control character (C0 but line feed and tab,
/// DEL, C1), no bidirectional or zero-width character, and no byte that is not UTF-8,
/// apart from keyaudit's own progress-line control.
pub fn assert_inert(what: &str, bytes: &[u8]) {
    let text = match std::str::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => panic!("{what}: the terminal got bytes that are not UTF-8: {e}"),
    };
    let text = text.replace(OWN_CONTROL, "").replace("\r\n", "\n");
    if let Some((at, c)) = text
        .char_indices()
        .find(|&(_, c)| is_unsafe_char(c) && c != '\n' && c != '\t')
    {
        let from = text[..at]
            .char_indices()
            .rev()
            .nth(40)
            .map_or(0, |(i, _)| i);
        let around: String = text[from..].chars().take(80).collect();
        panic!("{what}: a raw {c:?} reached the terminal near {around:?}");
    }
}

/// The workstation over a cache: everything loaded from `store`, effects that read run
/// inline against it.
pub struct Workstation<'a> {
    pub store: &'a Store,
    pub state: State,
    pub now: chrono::DateTime<chrono::Utc>,
}

impl<'a> Workstation<'a> {
    pub fn new(store: &'a Store, width: u16, height: u16) -> Workstation<'a> {
        let now = chrono::Utc::now();
        let setup = Setup {
            now,
            demo: false,
            write: false,
            read_only: true,
            keymap: Arc::new(Keymap::default()),
            theme: Theme::dark(),
            capabilities: Default::default(),
            size: (width, height),
        };
        let mut w = Workstation {
            store,
            state: State::new(setup),
            now,
        };
        w.apply(Action::KeysLoaded(Arc::new(store.keys().unwrap())));
        w.apply(Action::FindingsLoaded(
            store.findings(&Default::default()).unwrap(),
        ));
        let mut j = store.journal(None, Some(2000)).unwrap();
        j.reverse();
        w.apply(Action::JournalLoaded(j));
        w.apply(Action::ProvidersLoaded(store.providers().unwrap()));
        w
    }

    /// Applies an action and runs the reads it asks for.
    pub fn apply(&mut self, a: Action) {
        let fx = self.state.update(a);
        self.settle(fx);
    }

    fn settle(&mut self, effects: Vec<Effect>) {
        for e in effects {
            let next = match e {
                Effect::Filter(job) => {
                    let v = keyaudit::tui::search::run_now(&job);
                    Action::FilterApplied(job.generation, Arc::new(v))
                }
                Effect::LoadEvents(req) => {
                    let page =
                        keyaudit::tui::view::events::load_events_page(self.store, &req, &|| true)
                            .unwrap()
                            .unwrap();
                    Action::EventsLoaded(req.generation, req.walk, Box::new(page))
                }
                Effect::LoadDetail(key_ref, now, since) => {
                    let d = keyaudit::tui::view::detail::load_detail(
                        self.store,
                        key_ref,
                        now,
                        since,
                        &Default::default(),
                    )
                    .unwrap()
                    .unwrap();
                    Action::DetailLoaded(Box::new(d))
                }
                _ => continue,
            };
            let more = self.state.update(next);
            self.settle(more);
        }
    }

    /// Draws the current screen; panics when a cell holds an unsafe character.
    pub fn draw_inert(&self, what: &str) -> String {
        let (w, h) = self.state.size;
        let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
        t.draw(|f| keyaudit::tui::view::render(&self.state, f))
            .unwrap();
        for cell in t.backend().buffer().content() {
            if let Some(c) = cell.symbol().chars().find(|&c| is_unsafe_char(c)) {
                panic!("{what}: {c:?} reached the screen:\n{}", t.backend());
            }
        }
        t.backend().to_string()
    }
}

/// Renders every view of the workstation over `store` at two sizes, the detail of each
/// of the first `details` keys, the events view scrolled, the help and the filter: no
/// unsafe character reaches a cell. Returns every screen's text.
pub fn every_tui_view_is_inert(store: &Store, details: usize) -> String {
    let mut all = String::new();
    for (w, h) in [(80, 24), (160, 50)] {
        let mut ws = Workstation::new(store, w, h);
        all.push_str(&ws.draw_inert("keys view"));
        for view in [
            View::Events,
            View::Findings,
            View::Journal,
            View::Providers,
            View::Keys,
        ] {
            ws.apply(Action::ShowView(view));
            all.push_str(&ws.draw_inert(&format!("{view:?} view at {w}x{h}")));
            for _ in 0..h {
                ws.apply(Action::SelectNext);
            }
            all.push_str(&ws.draw_inert(&format!("{view:?} view scrolled at {w}x{h}")));
        }
        ws.apply(Action::ShowView(View::Keys));
        for _ in 0..h {
            ws.apply(Action::SelectPrev);
        }
        for i in 0..details {
            ws.apply(Action::OpenDetail);
            all.push_str(&ws.draw_inert(&format!("detail of key {i} at {w}x{h}")));
            ws.apply(Action::ShowView(View::Keys));
            ws.apply(Action::SelectNext);
        }
        ws.apply(Action::ToggleHelp);
        all.push_str(&ws.draw_inert("help"));
        ws.apply(Action::ToggleHelp);
        ws.apply(Action::StartFilter);
        for c in "\u{1b}[2J\u{202e}".chars() {
            ws.apply(Action::Input(c));
        }
        all.push_str(&ws.draw_inert("a typed filter"));
    }
    all
}
