//! The moto server of the AWS provider tests: installed on first use (locally) into
//! `.test-deps/moto` by `scripts/install-moto.sh`, started on 127.0.0.1 on a free port,
//! ready when `GET /moto-api/` answers 200, killed when dropped. Under `CI=true` a
//! missing install is a failure, never a skip.

#![allow(dead_code)]

use aws_config::SdkConfig;
use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub const REGION: &str = "us-east-1";
pub const ACCOUNT: &str = "123456789012";

static INSTALL: Mutex<()> = Mutex::new(());

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The `moto_server` executable, installing it first when missing (not under CI).
pub fn moto_server() -> PathBuf {
    let _guard = INSTALL.lock().unwrap_or_else(|e| e.into_inner());
    let deps = std::env::var_os("KEYAUDIT_TEST_DEPS")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join(".test-deps"));
    let bin = deps.join("moto/bin/moto_server");
    if bin.exists() {
        return bin;
    }
    if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
        panic!(
            "moto is not installed at {}: CI must run scripts/install-moto.sh before the tests \
             (the AWS tests never skip)",
            bin.display()
        );
    }
    let status = Command::new("bash")
        .arg(root().join("scripts/install-moto.sh"))
        .status()
        .expect("cannot run scripts/install-moto.sh");
    assert!(status.success(), "scripts/install-moto.sh failed: {status}");
    assert!(bin.exists(), "moto_server missing after the install");
    bin
}

/// A running moto server, killed on drop.
pub struct Moto {
    child: Child,
    pub port: u16,
    pub endpoint: String,
    log: PathBuf,
}

impl Moto {
    /// Starts a server on a free loopback port and waits until it answers.
    pub async fn start() -> Moto {
        let bin = moto_server();
        let mut last = String::new();
        for _ in 0..3 {
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("no free port")
                .port();
            let log = std::env::temp_dir().join(format!("keyaudit-moto-{port}.log"));
            let out = std::fs::File::create(&log).expect("moto log");
            let child = Command::new(&bin)
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                // AWS managed policies (ReadOnlyAccess, ...) exist as in a real account.
                .env("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")
                .stdin(Stdio::null())
                .stdout(out.try_clone().expect("moto log"))
                .stderr(out)
                .spawn()
                .expect("cannot start moto_server");
            let mut moto = Moto {
                child,
                port,
                endpoint: format!("http://127.0.0.1:{port}"),
                log,
            };
            if moto.wait_ready(Duration::from_secs(30)).await {
                return moto;
            }
            last = moto.log_text();
        }
        panic!("moto_server did not start; its log:\n{last}");
    }

    async fn wait_ready(&mut self, within: Duration) -> bool {
        let client = reqwest::Client::new();
        let started = Instant::now();
        while started.elapsed() < within {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            if let Ok(r) = client
                .get(format!("{}/moto-api/", self.endpoint))
                .send()
                .await
            {
                if r.status().is_success() {
                    return true;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    }

    fn log_text(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(&self.log) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }

    /// Wipes all state.
    pub async fn reset(&self) {
        let r = reqwest::Client::new()
            .post(format!("{}/moto-api/reset", self.endpoint))
            .send()
            .await
            .expect("moto reset");
        assert!(r.status().is_success());
    }

    /// The whole server state (`GET /moto-api/data.json`).
    pub async fn data(&self) -> serde_json::Value {
        reqwest::Client::new()
            .get(format!("{}/moto-api/data.json", self.endpoint))
            .send()
            .await
            .expect("moto data")
            .json()
            .await
            .expect("moto data json")
    }

    /// SDK configuration for seeding and checking: dummy credentials, this endpoint.
    pub async fn sdk(&self) -> SdkConfig {
        let settings = keyaudit::provider::aws::AwsSettings {
            name: "seed".into(),
            region: Some(REGION.into()),
            endpoint: Some(self.endpoint.clone()),
            profile: None,
            timeout_secs: Some(10),
            ca_file: None,
        };
        let sdk = keyaudit::provider::aws::load_sdk_config(&settings)
            .await
            .expect("sdk config");
        let creds = aws_sdk_iam::config::Credentials::new("testing", "testing", None, None, "test");
        sdk.to_builder()
            .credentials_provider(aws_sdk_iam::config::SharedCredentialsProvider::new(creds))
            .build()
    }

    /// Creates IAM user `user` with one access key; returns the key's id.
    pub async fn user_with_key(&self, user: &str) -> String {
        let iam = aws_sdk_iam::Client::new(&self.sdk().await);
        iam.create_user().user_name(user).send().await.unwrap();
        iam.create_access_key()
            .user_name(user)
            .send()
            .await
            .unwrap()
            .access_key()
            .unwrap()
            .access_key_id()
            .to_string()
    }

    pub async fn s3(&self) -> aws_sdk_s3::Client {
        let sdk = self.sdk().await;
        aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&sdk)
                .force_path_style(true)
                .build(),
        )
    }

    /// Writes `dir/config.toml` with one `aws` provider entry (`talentgrid-aws`) that
    /// reaches this server; returns its path.
    pub fn provider_config(&self, dir: &Path) -> PathBuf {
        let cfg = dir.join("config.toml");
        std::fs::write(
            &cfg,
            format!(
                "[[provider]]\nname = \"talentgrid-aws\"\nkind = \"aws\"\nregion = \"{REGION}\"\nendpoint = \"{}\"\n",
                self.endpoint
            ),
        )
        .unwrap();
        cfg
    }

    /// A `keyaudit` command with the dummy credentials and private XDG dirs under `dir`.
    pub fn keyaudit(&self, dir: &Path) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_keyaudit"));
        dummy_aws_chain(&mut c, dir)
            .env_remove("AWS_REGION")
            .env("XDG_CONFIG_HOME", dir.join("config"))
            .env("XDG_DATA_HOME", dir.join("data"))
            .env("XDG_STATE_HOME", dir.join("state"))
            .env_remove("KEYAUDIT_CONFIG")
            .env_remove("KEYAUDIT_DB")
            .stdin(Stdio::null());
        c
    }
}

/// The standard AWS chain of `c` reduced to dummy credentials in the environment: no
/// session token, profile, default region, shared files (they would be under `dir`, and
/// are not there) or instance metadata.
pub fn dummy_aws_chain<'c>(c: &'c mut Command, dir: &Path) -> &'c mut Command {
    c.env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_DEFAULT_REGION")
        .env("AWS_CONFIG_FILE", dir.join("no-aws-config"))
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            dir.join("no-aws-credentials"),
        )
        .env("AWS_EC2_METADATA_DISABLED", "true")
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}
