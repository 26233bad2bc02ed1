//! The world of the `github` provider tests: the stateful fake ([`fake`]) on loopback,
//! Prism validating every request and answer against tests/fixtures/openapi/github.json
//! (GitHub's own description, trimmed) in front of it, a GitHub App whose RSA key is
//! made for the test by the `openssl` command, a config naming them, and the keyaudit
//! binary run against them.

#![allow(dead_code)]

pub mod fake;

#[path = "../prism_support/mod.rs"]
pub mod prism_support;

use fake::Fake;
use prism_support::Prism;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub struct World {
    pub rt: tokio::runtime::Runtime,
    pub fake: Fake,
    pub prism: Prism,
    pub dir: tempfile::TempDir,
}

/// Makes a 2048-bit RSA key as GitHub issues App keys (PKCS#1 PEM, `BEGIN RSA PRIVATE
/// KEY`), mode 0600, with the `openssl` command (on every CI image and developer
/// machine this project targets; its absence fails the test, never skips it).
pub fn make_key(path: &Path) {
    let out = Command::new("openssl")
        .args(["genrsa", "-traditional", "-out"])
        .arg(path)
        .arg("2048")
        .output()
        .expect(
            "the `openssl` command is needed to make the test App's key (apt-get install openssl)",
        );
    assert!(
        out.status.success(),
        "openssl genrsa failed: {}",
        text(&out.stderr)
    );
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// The PKCS#1 RSAPublicKey DER of a PEM private key (what GitHub keeps of an App key).
pub fn public_key_of(path: &Path) -> Vec<u8> {
    use base64::Engine;
    let pem = std::fs::read_to_string(path).unwrap();
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(body)
        .unwrap();
    let pair = ring::signature::RsaKeyPair::from_der(&der).expect("a PKCS#1 RSA key");
    use ring::signature::KeyPair;
    pair.public_key().as_ref().to_vec()
}

impl World {
    /// The fake behind Prism, the App's key, and a config with provider `gh` reading
    /// organisation `acme` as App 4242 (installation 777), 2 records per page.
    pub fn start() -> World {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("config")).unwrap();
        let key = dir.path().join("config/app.pem");
        make_key(&key);
        let fake = rt.block_on(Fake::start(public_key_of(&key)));
        let prism = Prism::proxy(&prism_support::spec("github.json"), &fake.url);
        fake.with(|st| st.public_url = prism.url.clone());
        let w = World {
            rt,
            fake,
            prism,
            dir,
        };
        w.write_config(&format!(
            "app_id = {}\ninstallation_id = {}\nprivate_key_file = \"{}\"\n",
            fake::APP_ID,
            fake::INSTALLATION_ID,
            key.display()
        ));
        w
    }

    /// Rewrites the config of provider `gh` with `auth` (its credential lines).
    pub fn write_config(&self, auth: &str) {
        std::fs::write(
            self.path("config/config.toml"),
            format!(
                "[[provider]]\nname = \"gh\"\nkind = \"github\"\nurl = \"{}\"\norg = \"acme\"\n{auth}page_size = 2\nmax_attempts = 3\n",
                self.prism.url
            ),
        )
        .unwrap();
    }

    /// Three token grants (two of octocat's, one of hubot's) each with an audit entry
    /// naming it by id and hash, then one entry naming the first only by hash, and two
    /// alerts. Returns the token ids.
    pub fn seed(&self) -> Vec<u64> {
        self.fake.with(|st| {
            let (a, _) = st.add_pat(
                "payroll-sync",
                "octocat",
                &[("members", "read")],
                &[("contents", "read"), ("metadata", "read")],
            );
            let (b, _) = st.add_pat("ats-export", "octocat", &[("members", "read")], &[]);
            let (c, _) = st.add_pat(
                "release-bot",
                "hubot",
                &[],
                &[("contents", "write"), ("metadata", "read")],
            );
            for id in [a, b, c] {
                let p = st.pat(id).clone();
                st.audit(
                    "personal_access_token.access_granted",
                    &p.owner,
                    Some(&p),
                    false,
                );
            }
            let p = st.pat(a).clone();
            st.audit("git.clone", "octocat", Some(&p), true);
            st.alert("payroll", "stripe_api_key", "Stripe API Key", "active");
            st.alert(
                "ats",
                "slack_incoming_webhook_url",
                "Slack Incoming Webhook URL",
                "inactive",
            );
            vec![a, b, c]
        })
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_keyaudit"));
        c.args(args)
            .env("KEYAUDIT_CONFIG", self.path("config/config.toml"))
            .env("KEYAUDIT_DB", self.path("data/cache.db"))
            .env("XDG_CONFIG_HOME", self.path("xdg-config"))
            .env("XDG_DATA_HOME", self.path("xdg-data"))
            .env("XDG_STATE_HOME", self.path("state"))
            .env_remove("KEYAUDIT_LOG")
            .env_remove("GITHUB_TOKEN")
            .stdin(Stdio::null());
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    pub fn ok(&self, args: &[&str]) -> Output {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "keyaudit {args:?} failed: {:?}\nstdout: {}\nstderr: {}",
            out.status,
            text(&out.stdout),
            text(&out.stderr)
        );
        out
    }

    pub fn json(&self, args: &[&str]) -> Vec<serde_json::Value> {
        let out = self.ok(args);
        serde_json::from_slice(&out.stdout).unwrap()
    }

    pub fn keys(&self) -> Vec<serde_json::Value> {
        self.json(&["keys", "--format", "json"])
    }

    /// The requests the fake saw whose text contains `needle`.
    pub fn seen(&self, needle: &str) -> Vec<String> {
        self.fake.with(|st| {
            st.seen
                .iter()
                .filter(|s| s.contains(needle))
                .cloned()
                .collect()
        })
    }
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}
