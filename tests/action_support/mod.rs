//! Shared setup of the action tests: the demo provider on loopback, a private set of XDG
//! directories, a config naming the demo, and the keyaudit binary run against them.

#![allow(dead_code)]

use keyaudit::config::ProviderConfig;
use keyaudit::demo::{self, DemoHandle, DemoOptions};
use keyaudit::model::Key;
use keyaudit::provider::{NewKey, Provider};
use keyaudit::secret::Secret;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;

pub const TOKEN: &str = "action-test-admin-token";

/// One test's world.
pub struct World {
    pub rt: tokio::runtime::Runtime,
    pub demo: DemoHandle,
    pub dir: tempfile::TempDir,
    pub provider: Arc<dyn Provider>,
}

impl World {
    /// Starts a small demo (no live traffic) and writes a config naming it `talentgrid`.
    pub fn start() -> World {
        Self::start_with(&[])
    }

    /// As [`World::start`], with extra provider names pointing at the same demo (their
    /// keys share ids with `talentgrid`'s, which makes bare ids ambiguous).
    pub fn start_with(extra: &[&str]) -> World {
        Self::start_opts(extra, None)
    }

    /// As [`World::start`], with the demo injecting `faults` (`KIND=RATE,...`).
    pub fn start_faulty(faults: &str) -> World {
        Self::start_opts(&[], Some(faults))
    }

    fn start_opts(extra: &[&str], faults: Option<&str>) -> World {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let demo = rt
            .block_on(demo::start(DemoOptions {
                port: 0,
                seed: 5,
                token: TOKEN.into(),
                events: 3000,
                days: 7,
                live_rate: 0.0,
                faults: faults.map(str::to_string),
                ..DemoOptions::default()
            }))
            .expect("demo starts");
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = String::new();
        for name in std::iter::once("talentgrid").chain(extra.iter().copied()) {
            cfg.push_str(&format!(
                "[[provider]]\nname = \"{name}\"\nkind = \"http\"\nurl = \"{}\"\ntoken_env = \"KA_TEST_TOKEN\"\nmax_attempts = 3\n\n",
                demo.url
            ));
        }
        std::fs::create_dir_all(dir.path().join("config")).unwrap();
        std::fs::write(dir.path().join("config/config.toml"), cfg).unwrap();
        let provider = keyaudit::provider::from_config(&ProviderConfig {
            name: "talentgrid".into(),
            kind: "http".into(),
            url: Some(demo.url.clone()),
            token: Some(TOKEN.into()),
            ..Default::default()
        })
        .unwrap();
        World {
            rt,
            demo,
            dir,
            provider,
        }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn db(&self) -> PathBuf {
        self.path("data/cache.db")
    }

    pub fn log(&self) -> PathBuf {
        self.path("state/keyaudit/keyaudit.log")
    }

    /// The keyaudit binary with this world's config, cache and XDG directories; standard
    /// input is empty (not a terminal).
    pub fn cmd(&self, args: &[&str]) -> Command {
        self.cmd_of(env!("CARGO_BIN_EXE_keyaudit"), args)
    }

    /// `program` with this world's environment (for wrappers such as `script`).
    pub fn cmd_of(&self, program: &str, args: &[&str]) -> Command {
        let mut c = Command::new(program);
        c.args(args)
            .env("KEYAUDIT_CONFIG", self.path("config/config.toml"))
            .env("KEYAUDIT_DB", self.db())
            .env("XDG_CONFIG_HOME", self.path("xdg-config"))
            .env("XDG_DATA_HOME", self.path("xdg-data"))
            .env("XDG_STATE_HOME", self.path("state"))
            .env("KA_TEST_TOKEN", TOKEN)
            .env_remove("KEYAUDIT_CRASH_AT")
            .env_remove("KEYAUDIT_LOG")
            .stdin(Stdio::null());
        c
    }

    /// Runs keyaudit and returns its output.
    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    /// Runs keyaudit and asserts it succeeded.
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

    /// Runs keyaudit on the cache `db`, with `config` instead of this world's when
    /// given (another member of a team), and asserts it succeeded.
    pub fn ok_on(&self, config: Option<&Path>, db: &Path, args: &[&str]) -> Output {
        let mut c = self.cmd(args);
        c.env("KEYAUDIT_DB", db);
        if let Some(config) = config {
            c.env("KEYAUDIT_CONFIG", config);
        }
        let out = c.output().unwrap();
        assert!(
            out.status.success(),
            "keyaudit {args:?} on {}: {}\n{}",
            db.display(),
            text(&out.stdout),
            text(&out.stderr)
        );
        out
    }

    /// Creates a key at the provider and returns it with its secret.
    pub fn create(&self, name: &str, owner: &str) -> (Key, Secret) {
        let spec = NewKey {
            name: name.into(),
            owner: owner.into(),
            environment: Some("prod".into()),
            purpose: Some("action-test".into()),
            scopes: vec!["candidates:read".into()],
        };
        let issued = self.rt.block_on(self.provider.create(&spec)).unwrap();
        (issued.key, issued.secret)
    }

    /// The key as the provider reports it now.
    pub fn remote(&self, id: &str) -> Key {
        self.rt.block_on(self.provider.get_key(id)).unwrap()
    }

    /// Whether `secret` authenticates at the partner endpoint (`/v1/partner/ping` 200).
    pub fn works(&self, secret: &Secret) -> bool {
        self.rt
            .block_on(self.provider.verify_secret(secret))
            .is_ok()
    }

    /// Asserts `needle` appears in no file under the world's directory except `allowed`
    /// (the sink): not the cache, its WAL, the log, the config.
    pub fn assert_secret_nowhere(&self, needle: &str, allowed: &[&Path]) {
        assert!(needle.len() >= 16);
        assert!(self.log().exists(), "the log file is where the test looks");
        assert_absent_under(self.dir.path(), needle, allowed, 2);
    }

    /// The journal as JSON lines, through the binary.
    pub fn journal(&self) -> Vec<serde_json::Value> {
        let out = self.ok(&["journal", "--format", "jsonl"]);
        text(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

/// Asserts `needle` appears in no file under `dir` except `allowed`, and that at least
/// `at_least` files were read.
pub fn assert_absent_under(dir: &Path, needle: &str, allowed: &[&Path], at_least: usize) {
    let mut stack = vec![dir.to_path_buf()];
    let mut checked = 0;
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            if allowed.iter().any(|a| *a == p) {
                continue;
            }
            let bytes = std::fs::read(&p).unwrap();
            assert!(
                !contains(&bytes, needle.as_bytes()),
                "the new secret appears in {}",
                p.display()
            );
            checked += 1;
        }
    }
    assert!(checked >= at_least, "nothing was checked");
}

pub fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}
