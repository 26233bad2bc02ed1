//! The workstation in tmux, for tests that drive the release binary as a user would:
//! start it in a detached session of a given size, send keys, read the screen.
//!
//! tmux is installed by `scripts/test-deps.sh`; a missing tmux fails in CI
//! (`CI=true`) and skips elsewhere, saying so.

#![allow(dead_code)]

use std::process::Command;
use std::time::{Duration, Instant};

/// True when tmux runs; panics in CI when it does not.
pub fn available() -> bool {
    let ok = Command::new("tmux")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("tmux is required for the end-to-end tests in CI (scripts/test-deps.sh installs it)");
        }
        eprintln!("skipping: tmux is not installed (apt-get install -y tmux)");
    }
    ok
}

/// One tmux session on a private server socket.
pub struct Tmux {
    pub socket: String,
    pub session: String,
}

impl Tmux {
    /// Session `session` on the socket `socket` (a per-test name), not yet started.
    pub fn new(socket: &str, session: &str) -> Tmux {
        Tmux {
            socket: socket.to_string(),
            session: session.to_string(),
        }
    }

    fn cmd(&self, args: &[&str]) -> std::process::Output {
        Command::new("tmux")
            .args(["-L", &self.socket])
            .args(args)
            .output()
            .expect("tmux runs")
    }

    /// Starts the session running `command` (a shell command line) in a window of
    /// `cols` x `rows`.
    pub fn start(&self, command: &str, cols: u16, rows: u16) {
        let out = self.cmd(&[
            "new-session",
            "-d",
            "-s",
            &self.session,
            "-x",
            &cols.to_string(),
            "-y",
            &rows.to_string(),
            command,
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Sends keys by tmux's names (`Enter`, `Escape`, `a`).
    pub fn send(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", &self.session];
        args.extend_from_slice(keys);
        assert!(self.cmd(&args).status.success());
    }

    /// Types `text` literally.
    pub fn type_text(&self, text: &str) {
        assert!(self
            .cmd(&["send-keys", "-t", &self.session, "-l", text])
            .status
            .success());
    }

    /// True while the session runs (its program has not exited).
    pub fn exists(&self) -> bool {
        self.cmd(&["has-session", "-t", &self.session])
            .status
            .success()
    }

    /// The visible screen.
    pub fn screen(&self) -> String {
        String::from_utf8_lossy(
            &self
                .cmd(&["capture-pane", "-p", "-t", &self.session])
                .stdout,
        )
        .into_owned()
    }

    /// Polls the screen every `every` until `pred` holds (panics with the screen after
    /// `within`); returns the screen and when it was read.
    pub fn wait_every(
        &self,
        what: &str,
        within: Duration,
        every: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> (String, Instant) {
        let start = Instant::now();
        loop {
            let s = self.screen();
            let at = Instant::now();
            if pred(&s) {
                return (s, at);
            }
            if start.elapsed() > within {
                panic!(
                    "timed out waiting for {what}; screen of {}:\n{s}",
                    self.session
                );
            }
            std::thread::sleep(every);
        }
    }

    /// Polls the screen until `pred` holds, for at most 30 s.
    pub fn wait_for(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        self.wait_every(
            what,
            Duration::from_secs(30),
            Duration::from_millis(100),
            pred,
        )
        .0
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd(&["kill-session", "-t", &self.session]);
    }
}
