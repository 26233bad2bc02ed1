//! The world of the `gitlab` provider tests: the stateful fake ([`fake`]) on loopback,
//! Prism validating every request and answer against tests/fixtures/openapi/gitlab.yaml
//! in front of it, a config naming it, and the keyaudit binary run against them.

#![allow(dead_code)]

pub mod fake;

#[path = "../prism_support/mod.rs"]
pub mod prism_support;

use fake::{Fake, Where};
use prism_support::Prism;
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
    /// The fake behind Prism, and a config with provider `gl` reading project
    /// `acme/payroll`, group `9` and the instance audit events, 2 records per page.
    pub fn start() -> World {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let (fake, token) = rt.block_on(Fake::start());
        let prism = Prism::proxy(&prism_support::spec("gitlab.yaml"), &fake.url);
        fake.with(|st| st.public_url = prism.url.clone());
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("config")).unwrap();
        std::fs::write(
            dir.path().join("config/config.toml"),
            format!(
                "[[provider]]\nname = \"gl\"\nkind = \"gitlab\"\nurl = \"{}\"\ntoken_env = \"KA_GL_TOKEN\"\n\
                 projects = [\"acme/payroll\"]\ngroups = [\"9\"]\ninstance_audit = true\npage_size = 2\nmax_attempts = 3\n",
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

    /// The usual tokens: two personal ones of user 1 besides keyaudit's own, a project
    /// token, a group token and a revoked project token, each with its creation event.
    /// Returns their ids in that order.
    pub fn seed(&self) -> Vec<u64> {
        self.fake.with(|st| {
            let specs: [(&str, Where, u64, &[&str]); 5] = [
                ("laptop", Where::Personal, 1, &["api"]),
                ("backup-script", Where::Personal, 1, &["read_repository"]),
                (
                    "payroll-ci",
                    Where::Project(42),
                    501,
                    &["read_api", "write_repository"],
                ),
                ("acme-release", Where::Group(9), 502, &["api"]),
                ("old-deploy", Where::Project(42), 503, &["read_registry"]),
            ];
            let mut ids = Vec::new();
            for (name, place, user, scopes) in specs {
                let (id, _) = st.add(name, place.clone(), user, scopes);
                let t = st.token(id).clone();
                let kind = match place {
                    Where::Personal => "personal_access_token",
                    Where::Project(_) => "project_access_token",
                    Where::Group(_) => "group_access_token",
                };
                st.audit(
                    &t,
                    &format!("{kind}_created"),
                    &format!("Created {} with token_id: {id}", kind.replace('_', " ")),
                    1,
                );
                ids.push(id);
            }
            let old = *ids.last().unwrap();
            st.tokens.iter_mut().find(|t| t.id == old).unwrap().revoked = true;
            let t = st.token(old).clone();
            st.audit(
                &t,
                "project_access_token_revoked",
                &format!("Revoked project access token with token_id: {old}"),
                1,
            );
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
            .env("KA_GL_TOKEN", &self.token)
            .env_remove("KEYAUDIT_LOG")
            .env_remove("GITLAB_TOKEN")
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

    /// `keyaudit keys --format json` as (id, name, status, owner) sorted by id.
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
