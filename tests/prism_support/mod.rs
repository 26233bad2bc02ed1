//! Prism (`@stoplight/prism-cli`, pinned by scripts/install-prism.sh) as a validating
//! proxy: `prism proxy SPEC UPSTREAM --errors` in front of a stateful fake, both on
//! 127.0.0.1. Every request that passes through is checked against the vendor's OpenAPI
//! description, and so is every answer the fake gives. With `--errors` a violation turns
//! the answer into Prism's own 422/500 (with an `sl-violations` header); Prism also logs
//! it, and [`Prism::assert_clean`] (called on drop) fails the test on any such line, so
//! a violation fails the test even where the client would have tolerated the error.
//! Under `CI=true` a missing install is a failure, never a skip.

#![allow(dead_code)]

use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

static INSTALL: Mutex<()> = Mutex::new(());

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The directory of the test dependencies (`KEYAUDIT_TEST_DEPS`, or `.test-deps`).
pub fn deps() -> PathBuf {
    std::env::var_os("KEYAUDIT_TEST_DEPS")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join(".test-deps"))
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// The `prism` executable, installing it first when missing (not under CI).
pub fn prism_bin() -> PathBuf {
    let _guard = INSTALL.lock().unwrap_or_else(|e| e.into_inner());
    let bin = deps().join("prism/node_modules/.bin/prism");
    if bin.exists() {
        return bin;
    }
    if in_ci() {
        panic!(
            "Prism is not installed at {}: CI must run scripts/test-deps.sh before the tests \
             (the provider tests behind Prism never skip)",
            bin.display()
        );
    }
    let status = Command::new("bash")
        .arg(root().join("scripts/install-prism.sh"))
        .status()
        .expect("cannot run scripts/install-prism.sh");
    assert!(
        status.success(),
        "scripts/install-prism.sh failed: {status}"
    );
    assert!(bin.exists(), "prism missing after the install");
    bin
}

/// A vendored OpenAPI description under tests/fixtures/openapi/.
pub fn spec(name: &str) -> PathBuf {
    root().join("tests/fixtures/openapi").join(name)
}

/// A free port on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("no free port")
        .port()
}

/// A running `prism proxy`, killed on drop (after checking its log).
pub struct Prism {
    child: Child,
    pub port: u16,
    /// `http://127.0.0.1:PORT`: where clients under test are pointed.
    pub url: String,
    log: PathBuf,
    checked: bool,
    /// Log lines containing one of these are not violations ([`Prism::allow`]).
    allowed: Vec<String>,
}

impl Prism {
    /// Starts `prism proxy SPEC UPSTREAM --errors` on a free loopback port and waits
    /// until it listens.
    pub fn proxy(spec: &Path, upstream: &str) -> Prism {
        let bin = prism_bin();
        let mut last = String::new();
        for _ in 0..3 {
            let port = free_port();
            let log = std::env::temp_dir().join(format!("keyaudit-prism-{port}.log"));
            let out = std::fs::File::create(&log).expect("prism log");
            let child = Command::new(&bin)
                .arg("proxy")
                .arg(spec)
                .arg(upstream)
                .args(["--errors", "-h", "127.0.0.1", "-p", &port.to_string()])
                .stdin(Stdio::null())
                .stdout(out.try_clone().expect("prism log"))
                .stderr(out)
                .spawn()
                .expect("cannot start prism");
            let mut p = Prism {
                child,
                port,
                url: format!("http://127.0.0.1:{port}"),
                log,
                checked: false,
                allowed: Vec::new(),
            };
            if p.wait_ready(Duration::from_secs(60)) {
                return p;
            }
            last = p.log_text();
            p.checked = true;
        }
        panic!("prism did not start; its log:\n{last}");
    }

    fn wait_ready(&mut self, within: Duration) -> bool {
        let started = Instant::now();
        while started.elapsed() < within {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            if self.log_text().contains("Prism is listening") {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }

    /// Prism's log so far.
    pub fn log_text(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(&self.log) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }

    /// The log lines that report a violation or an error (a request or an answer that
    /// does not match the description, or a route it does not have).
    pub fn violations(&self) -> Vec<String> {
        self.log_text()
            .lines()
            .filter(|l| {
                !l.contains("[CLI]")
                    && (l.contains("✖")
                        || l.contains("error")
                        || l.contains("Violation")
                        || l.contains("warning"))
                    && !self.allowed.iter().any(|a| l.contains(a.as_str()))
            })
            .map(str::to_string)
            .collect()
    }

    /// Stops counting log lines that contain `needle` as violations, for an answer the
    /// vendor's description does not list but the vendor documents elsewhere (GitHub's
    /// 429 and plan-dependent 403/404, which its description leaves out). Returns how
    /// many such lines the log holds so far, so a test can assert it saw exactly the
    /// answers it injected.
    pub fn allow(&mut self, needle: &str) -> usize {
        if !self.allowed.iter().any(|a| a == needle) {
            self.allowed.push(needle.to_string());
        }
        self.log_text()
            .lines()
            .filter(|l| l.contains(needle))
            .count()
    }

    /// Fails the test when Prism saw any violation.
    pub fn assert_clean(&mut self) {
        self.checked = true;
        let v = self.violations();
        assert!(
            v.is_empty(),
            "Prism found requests or answers that break the vendor's description:\n{}",
            v.join("\n")
        );
    }

    /// How many requests Prism forwarded to the fake.
    pub fn forwarded(&self) -> usize {
        self.log_text().matches("> Forwarding").count()
    }
}

impl Drop for Prism {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if !self.checked && !std::thread::panicking() {
            self.assert_clean();
        }
        let _ = std::fs::remove_file(&self.log);
    }
}

/// Fails when an answer carries Prism's `sl-violations` header (for requests a test
/// sends itself).
pub fn assert_no_violation_header(resp: &reqwest::Response) {
    if let Some(v) = resp.headers().get("sl-violations") {
        panic!(
            "Prism reports violations on {}: {}",
            resp.url(),
            v.to_str().unwrap_or("?")
        );
    }
}
