//! The world of the `cloudflare` provider tests: the stateful fake ([`fake`]) on
//! loopback, Prism validating every request and answer against
//! tests/fixtures/openapi/cloudflare.yaml in front of it, a config naming it, and the
//! keyaudit binary run against them.

#![allow(dead_code)]

pub mod fake;

#[path = "../prism_support/mod.rs"]
pub mod prism_support;

use fake::{Fake, Owner, ACCOUNT};
use prism_support::Prism;
use serde_json::json;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

pub struct World {
    pub rt: tokio::runtime::Runtime,
    pub fake: Fake,
    pub prism: Prism,
    pub dir: tempfile::TempDir,
    /// The value of the token keyaudit uses.
    pub token: String,
}

impl World {
    /// The fake behind Prism, and a config with provider `cf` reading the user's tokens
    /// and account [`ACCOUNT`]'s, 2 records per page.
    pub fn start() -> World {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let (fake, token) = rt.block_on(Fake::start());
        let prism = Prism::proxy(&prism_support::spec("cloudflare.yaml"), &fake.url);
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("config")).unwrap();
        std::fs::write(
            dir.path().join("config/config.toml"),
            format!(
                "[[provider]]\nname = \"cf\"\nkind = \"cloudflare\"\nurl = \"{}\"\ntoken_env = \"KA_CF_TOKEN\"\n\
                 accounts = [\"{ACCOUNT}\"]\npage_size = 2\nmax_attempts = 3\n",
                prism.url
            ),
        )
        .unwrap();
        World {
            rt,
            fake,
            prism,
            dir,
            token,
        }
    }

    /// The usual tokens besides keyaudit's own: two user tokens (one limited to an IP
    /// range, one disabled) and three account tokens (one expired). Returns their ids in
    /// that order.
    pub fn seed(&self) -> Vec<String> {
        self.fake.with(|st| {
            let specs: [(&str, Owner, &[&str]); 5] = [
                ("laptop-dns", Owner::User, &["DNS Write", "Zone Read"]),
                ("old-script", Owner::User, &["Zone Read"]),
                (
                    "ci-deploy",
                    Owner::Account(ACCOUNT.into()),
                    &["Workers Scripts Write"],
                ),
                (
                    "terraform",
                    Owner::Account(ACCOUNT.into()),
                    &["Zone Write", "DNS Write"],
                ),
                (
                    "expired-backup",
                    Owner::Account(ACCOUNT.into()),
                    &["Zone Read"],
                ),
            ];
            let mut ids = Vec::new();
            for (name, owner, groups) in specs {
                let (id, _) = st.add(name, owner, groups);
                let t = st.token(&id).clone();
                let me = st.tokens[0].clone();
                st.log(&t, "create", &me);
                ids.push(id);
            }
            st.token_mut(&ids[0]).condition = Some(
                json!({"request_ip": {"in": ["198.51.100.0/24"], "not_in": ["198.51.100.9/32"]}}),
            );
            st.token_mut(&ids[1]).status = "disabled".into();
            let now = st.now;
            st.token_mut(&ids[4]).expires_on = Some(now - chrono::Duration::days(2));
            ids
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
            .env("KA_CF_TOKEN", &self.token)
            .env_remove("KEYAUDIT_LOG")
            .env_remove("CLOUDFLARE_API_TOKEN")
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

    /// `keyaudit keys --format json`.
    pub fn keys(&self) -> Vec<serde_json::Value> {
        let out = self.ok(&["keys", "--format", "json"]);
        serde_json::from_slice(&out.stdout).unwrap()
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
