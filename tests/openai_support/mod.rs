//! The world of the `openai` provider tests: the stateful fake ([`fake`]) on loopback,
//! Prism validating every request and answer against OpenAI's own description
//! (tests/fixtures/openapi/openai.yaml) in front of it, a config naming it, and the
//! keyaudit binary run against them.

#![allow(dead_code)]

pub mod fake;

#[path = "../prism_support/mod.rs"]
pub mod prism_support;

use fake::{Fake, Owner};
use prism_support::Prism;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

pub struct World {
    pub rt: tokio::runtime::Runtime,
    pub fake: Fake,
    pub prism: Prism,
    pub dir: tempfile::TempDir,
    /// The admin key keyaudit uses.
    pub token: String,
}

/// The seeded keys' ids.
pub struct Seeded {
    /// A second admin key.
    pub admin: String,
    /// Ana's key in Payroll.
    pub payroll_user: String,
    /// The `etl` service account's key in Payroll.
    pub payroll_sa: String,
    /// Bo's key in Payroll.
    pub payroll_bo: String,
    /// Ana's key in Applicant tracking.
    pub ats_user: String,
}

impl World {
    /// The fake behind Prism, and a config with provider `oa`, 2 records per page.
    pub fn start() -> World {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let (fake, token) = rt.block_on(Fake::start());
        let prism = Prism::proxy(&prism_support::spec("openai.yaml"), &fake.url);
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("config")).unwrap();
        std::fs::write(
            dir.path().join("config/config.toml"),
            format!(
                "[[provider]]\nname = \"oa\"\nkind = \"openai\"\nurl = \"{}\"\ntoken_env = \"KA_OA_KEY\"\n\
                 page_size = 2\nmax_attempts = 3\n",
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

    /// The usual keys, each with its `api_key.created` entry; Ana's Payroll key and the
    /// service account's key have been used.
    pub fn seed(&self) -> Seeded {
        self.fake.with(|st| {
            let bo = Owner::User("user-bo".into(), "bo@acme.example".into(), "Bo Chen".into());
            let s = Seeded {
                admin: st.add_key("break-glass", None, fake::ana()),
                payroll_user: st.add_key("payroll-sync", Some("proj_payroll"), fake::ana()),
                payroll_sa: st.add_key(
                    "etl",
                    Some("proj_payroll"),
                    Owner::ServiceAccount("svc_acct_etl".into(), "etl".into()),
                ),
                payroll_bo: st.add_key("bo-laptop", Some("proj_payroll"), bo),
                ats_user: st.add_key("ats-webhook", Some("proj_ats"), fake::ana()),
            };
            st.use_key(&s.payroll_user);
            st.use_key(&s.payroll_sa);
            s
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
            .env("KA_OA_KEY", &self.token)
            .env_remove("KEYAUDIT_LOG")
            .env_remove("OPENAI_ADMIN_KEY")
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

    /// `keyaudit events --format json` since 2020.
    pub fn events(&self) -> Vec<serde_json::Value> {
        let out = self.ok(&[
            "events",
            "--since",
            "2020-01-01T00:00:00Z",
            "--format",
            "json",
        ]);
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
