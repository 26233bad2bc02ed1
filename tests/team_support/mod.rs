//! A private PostgreSQL cluster for the team store's tests and benchmark.
//!
//! The server binaries come from Debian's `postgresql` (scripts/postgres.sh installs it
//! when missing and prints their directory). A missing or broken PostgreSQL fails the
//! tests, in CI and locally alike: they are never skipped.
//!
//! One cluster per test binary at a time: `initdb` as the `postgres` OS user when the
//! tests run as root (initdb refuses root), else as the user running them, into a
//! temporary directory it owns, trust authentication, `pg_ctl start`
//! on 127.0.0.1 with a free port and its socket in the same directory. Tests share it
//! through [`Cluster::shared`], each with databases of its own ([`Cluster::database`]);
//! the cluster is stopped when the last test holding it drops it.

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};

/// The OS user that runs the test clusters.
const PG_USER: &str = "postgres";

/// The directory of initdb and pg_ctl, installing PostgreSQL once per test process.
pub fn pg_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/postgres.sh");
        let out = Command::new("bash")
            .arg(&script)
            .stderr(Stdio::inherit())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
        assert!(
            out.status.success(),
            "{} failed ({}); the team store's tests need PostgreSQL (Debian `postgresql`)",
            script.display(),
            out.status
        );
        let dir = PathBuf::from(String::from_utf8(out.stdout).unwrap().trim());
        assert!(
            dir.join("initdb").is_file(),
            "no initdb in {}",
            dir.display()
        );
        dir
    })
}

/// A running cluster.
pub struct Cluster {
    pub port: u16,
    /// The server's options (`pg_ctl -o`), for [`Cluster::resume`].
    opts: String,
    dir: tempfile::TempDir,
    next_db: AtomicUsize,
}

/// True when the tests run as root: the server then runs as the `postgres` OS user
/// (initdb refuses root); otherwise as the user running the tests.
fn root() -> bool {
    nix::unistd::geteuid().is_root()
}

fn as_pg(args: &[&str]) -> Command {
    if root() {
        let mut c = Command::new("runuser");
        c.args(["-u", PG_USER, "--"]).args(args);
        c
    } else {
        let mut c = Command::new(args[0]);
        c.args(&args[1..]);
        c
    }
}

fn run_ok(mut c: Command, what: &str) {
    let out = c
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Cluster {
    /// The cluster of this test binary, started when no test holds it.
    pub fn shared() -> Arc<Cluster> {
        static SHARED: Mutex<Weak<Cluster>> = Mutex::new(Weak::new());
        let mut slot = SHARED.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = slot.upgrade() {
            return c;
        }
        let c = Arc::new(Cluster::start());
        *slot = Arc::downgrade(&c);
        c
    }

    /// Initialises and starts a new cluster.
    pub fn start() -> Cluster {
        Self::start_opts(|_| String::new())
    }

    /// A cluster that also speaks TLS, with a certificate for 127.0.0.1 and `localhost`
    /// signed by a CA made here; returns the CA's PEM.
    pub fn start_tls() -> (Cluster, String) {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, "keyaudit team test CA");
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let leaf_key = KeyPair::generate().unwrap();
        let leaf = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .unwrap()
            .signed_by(&leaf_key, &ca_cert, &ca_key)
            .unwrap();
        let (cert, key) = (leaf.pem(), leaf_key.serialize_pem());
        let cluster = Self::start_opts(|dir| {
            let (uid, gid) = pg_ids();
            for (name, text) in [("server.crt", &cert), ("server.key", &key)] {
                let p = dir.join(name);
                std::fs::write(&p, text).unwrap();
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
                std::os::unix::fs::chown(&p, Some(uid), Some(gid)).unwrap();
            }
            format!(
                " -c ssl=on -c ssl_cert_file={0}/server.crt -c ssl_key_file={0}/server.key",
                dir.display()
            )
        });
        (cluster, ca_cert.pem())
    }

    fn start_opts(setup: impl Fn(&Path) -> String) -> Cluster {
        let bin = pg_bin();
        let dir = tempfile::Builder::new()
            .prefix("keyaudit-pg-")
            .tempdir()
            .unwrap();
        let (uid, gid) = pg_ids();
        std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).unwrap();
        let data = dir.path().join("data");
        let initdb = bin.join("initdb");
        run_ok(
            as_pg(&[
                initdb.to_str().unwrap(),
                "-D",
                data.to_str().unwrap(),
                "-U",
                "postgres",
                "--auth=trust",
                "--no-sync",
                "--no-instructions",
            ]),
            "initdb",
        );
        let extra = setup(dir.path());
        let log = dir.path().join("server.log");
        let mut last = String::new();
        for _ in 0..5 {
            let port = free_port();
            let opts = format!(
                "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=60{extra}",
                dir.path().display()
            );
            if pg_start(dir.path(), &opts).status.success() {
                return Cluster {
                    port,
                    opts,
                    dir,
                    next_db: AtomicUsize::new(0),
                };
            }
            // Another process took the port between the probe and the start.
            last = std::fs::read_to_string(&log).unwrap_or_default();
        }
        panic!("pg_ctl start failed five times; server log:\n{last}");
    }

    /// Stops the server (fast shutdown: clients are disconnected at once).
    pub fn stop(&self) {
        let pg_ctl = pg_bin().join("pg_ctl");
        let data = self.dir.path().join("data");
        run_ok(
            as_pg(&[
                pg_ctl.to_str().unwrap(),
                "-D",
                data.to_str().unwrap(),
                "-m",
                "fast",
                "-w",
                "stop",
            ]),
            "pg_ctl stop",
        );
    }

    /// Starts the stopped server again, on the same port.
    pub fn resume(&self) {
        let out = pg_start(self.dir.path(), &self.opts);
        assert!(
            out.status.success(),
            "pg_ctl start failed; server log:\n{}",
            std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
        );
    }

    /// `postgres://ROLE@127.0.0.1:PORT/DB`.
    pub fn url(&self, role: &str, db: &str) -> String {
        format!("postgres://{role}@127.0.0.1:{}/{db}", self.port)
    }

    /// Runs SQL as the superuser in `db` (psql, stopping at the first error).
    pub fn psql(&self, db: &str, sql: &str) -> std::process::Output {
        Command::new(pg_bin().join("psql"))
            .args([
                "-X",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-d",
                db,
                "-c",
                sql,
            ])
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// A new, empty database owned by the superuser; returns its name.
    pub fn database(&self, stem: &str) -> String {
        let n = self.next_db.fetch_add(1, Ordering::SeqCst);
        let name = format!("{stem}_{n}");
        let out = self.psql("postgres", &format!("CREATE DATABASE {name}"));
        assert!(
            out.status.success(),
            "CREATE DATABASE {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        name
    }

    /// The cluster's directory (data, socket, server log).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let pg_ctl = pg_bin().join("pg_ctl");
        let data = self.dir.path().join("data");
        let _ = as_pg(&[
            pg_ctl.to_str().unwrap(),
            "-D",
            data.to_str().unwrap(),
            "-m",
            "immediate",
            "-w",
            "stop",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    }
}

/// `pg_ctl start` of the cluster in `dir` with `opts`, waiting until it accepts
/// connections.
fn pg_start(dir: &Path, opts: &str) -> std::process::Output {
    let pg_ctl = pg_bin().join("pg_ctl");
    let (data, log) = (dir.join("data"), dir.join("server.log"));
    as_pg(&[
        pg_ctl.to_str().unwrap(),
        "-D",
        data.to_str().unwrap(),
        "-l",
        log.to_str().unwrap(),
        "-o",
        opts,
        "-w",
        "-t",
        "60",
        "start",
    ])
    .stdin(Stdio::null())
    .output()
    .unwrap()
}

fn pg_ids() -> (u32, u32) {
    if !root() {
        return (
            nix::unistd::getuid().as_raw(),
            nix::unistd::getgid().as_raw(),
        );
    }
    let u = nix::unistd::User::from_name(PG_USER)
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("no OS user `{PG_USER}`: is Debian's postgresql installed?"));
    (u.uid.as_raw(), u.gid.as_raw())
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Cluster {
    /// One value of a query run as the superuser (`psql -At`).
    pub fn value(&self, db: &str, sql: &str) -> String {
        let out = Command::new(pg_bin().join("psql"))
            .args([
                "-X",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-d",
                db,
                "-c",
                sql,
            ])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }
}

/// The `[team]` table of a config naming `url`, with a lease of `lease`.
pub fn team_table(url: &str, lease: &str) -> String {
    format!("\n[team]\nurl = \"{url}\"\nlease = \"{lease}\"\n")
}

/// The PEM of a CA that signed nothing the test servers present.
pub fn unrelated_ca() -> String {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.self_signed(&key).unwrap().pem()
}
