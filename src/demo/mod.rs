//! The embedded demo provider "Talentgrid": a fictional HR platform whose integration
//! partners (applicant tracking, payroll, background checks, onboarding, benefits, ...)
//! hold API keys, served over real HTTP on 127.0.0.1 with the contract of
//! docs/provider-api.md.
//!
//! [`start`] generates a deterministic data set (keys, 30 days of audit events with
//! labelled anomalies) from [`DemoOptions`], binds a loopback port and serves it on the
//! current tokio runtime, appending live traffic while it runs. The server keeps only the
//! fingerprints of secrets; a secret leaves it once, in the answer that created it.

mod data;
mod faults;
pub mod hostile;
mod server;

pub use data::AnomalyKind;
pub use faults::{parse_faults, FaultKind, FaultSpec};

use chrono::{DateTime, Utc};
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::net::SocketAddr;
use std::sync::Arc;
use thiserror::Error;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// How to run the demo.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Port on 127.0.0.1; 0 picks a free one.
    pub port: u16,
    /// Seed of everything generated: keys, events, anomalies, fault decisions.
    pub seed: u64,
    /// The admin bearer token clients must present.
    pub token: String,
    /// Anchor of the generated history (its end); `None` = now.
    pub now: Option<DateTime<Utc>>,
    /// History length in days.
    pub days: u32,
    /// Approximate number of historic events.
    pub events: usize,
    /// Inject labelled anomalies (`false` = clean traffic only).
    pub anomalies: bool,
    /// New events per second appended in real time while running (0 = off).
    pub live_rate: f64,
    /// Fault spec (`KIND=RATE,...`, see [`parse_faults`]); `None` = no faults.
    pub faults: Option<String>,
    /// Serve hostile text ([`hostile::CASES`]) in key names, owners, purposes, user
    /// agents and error messages.
    pub hostile: bool,
}

impl Default for DemoOptions {
    fn default() -> Self {
        DemoOptions {
            port: 0,
            seed: 7,
            token: "demo-admin-token".to_string(),
            now: None,
            days: 30,
            events: 60_000,
            anomalies: true,
            live_rate: 2.0,
            faults: None,
            hostile: false,
        }
    }
}

/// Why the demo could not start.
#[derive(Debug, Error)]
pub enum DemoError {
    /// The fault spec is malformed.
    #[error("invalid --faults: {0}")]
    Faults(String),
    /// An option is out of range.
    #[error("invalid demo option: {0}")]
    Options(String),
    /// The port could not be bound.
    #[error(
        "cannot listen on 127.0.0.1:{port}: {source}; choose another port or 0 for any free one"
    )]
    Bind {
        /// The port asked for.
        port: u16,
        /// What the OS said.
        source: std::io::Error,
    },
}

/// A running demo server. Dropping it leaves the server running until the runtime
/// ends; call [`DemoHandle::shutdown`] to stop it.
pub struct DemoHandle {
    /// Base URL, `http://127.0.0.1:PORT`.
    pub url: String,
    /// The bound address.
    pub addr: SocketAddr,
    /// The admin bearer token.
    pub token: String,
    stop: Option<oneshot::Sender<()>>,
    server: JoinHandle<()>,
    live: Option<JoinHandle<()>>,
    shared: Arc<server::Shared>,
}

impl std::fmt::Debug for DemoHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DemoHandle")
            .field("url", &self.url)
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl DemoHandle {
    /// Appends `n` events of ordinary traffic now, from the keys inside their working
    /// hours (from every active key when none is), as live traffic does; the same events
    /// for the same seed and clock. Returns how many were appended.
    pub fn append_traffic(&self, n: usize) -> usize {
        let mut rng = StdRng::seed_from_u64(self.shared.seed ^ 0x0074_7261_6666_6963);
        self.shared.append_live(n, &mut rng, true)
    }

    /// Stops live traffic and the server, closing idle connections; waits at most 2 s.
    pub async fn shutdown(mut self) {
        if let Some(live) = self.live.take() {
            live.abort();
        }
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let abort = self.server.abort_handle();
        if tokio::time::timeout(std::time::Duration::from_secs(2), &mut self.server)
            .await
            .is_err()
        {
            abort.abort();
        }
    }
}

/// Generates the data set, binds 127.0.0.1 and serves it on the current tokio runtime.
/// Returns once the socket is listening.
pub async fn start(opts: DemoOptions) -> Result<DemoHandle, DemoError> {
    let faults = match opts.faults.as_deref() {
        Some(spec) => parse_faults(spec).map_err(DemoError::Faults)?,
        None => FaultSpec::default(),
    };
    if opts.days == 0 || opts.days > 3650 {
        return Err(DemoError::Options(format!(
            "days {} is not from 1 to 3650",
            opts.days
        )));
    }
    if !(opts.live_rate.is_finite() && opts.live_rate >= 0.0) {
        return Err(DemoError::Options(format!(
            "live rate {} is not a number of events per second",
            opts.live_rate
        )));
    }
    if opts.token.is_empty() {
        return Err(DemoError::Options(
            "the admin token must not be empty".into(),
        ));
    }
    let listener = tokio::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, opts.port))
        .await
        .map_err(|source| DemoError::Bind {
            port: opts.port,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| DemoError::Bind {
        port: opts.port,
        source,
    })?;
    let anchor = opts.now.unwrap_or_else(Utc::now).timestamp_millis();
    let params = data::GenParams {
        seed: opts.seed,
        now: anchor,
        days: opts.days,
        events: opts.events,
        anomalies: opts.anomalies,
    };
    let hostile = opts.hostile;
    let dataset = tokio::task::spawn_blocking(move || {
        let mut d = data::generate(params);
        if hostile {
            hostile::poison(&mut d);
        }
        d
    })
    .await
    .map_err(|e| DemoError::Options(format!("generating the data set failed: {e}")))?;
    tracing::info!(
        keys = dataset.keys.len(),
        events = dataset.events.len(),
        labels = dataset.labels.len(),
        "demo: data set generated"
    );
    // The demo clock continues from the end of the history; without a fixed `now` it is
    // the real time, so it starts after generation rather than lagging behind by it.
    let clock_start = match opts.now {
        Some(_) => anchor,
        None => Utc::now().timestamp_millis().max(anchor),
    };
    let mut shared =
        server::Shared::new(opts.seed, opts.token.clone(), clock_start, dataset, faults);
    shared.hostile = opts.hostile;
    let shared = Arc::new(shared);
    let app = server::router(shared.clone()).into_make_service_with_connect_info::<faults::Peer>();
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        let serve =
            axum::serve(faults::DemoListener(listener), app).with_graceful_shutdown(async {
                let _ = stop_rx.await;
            });
        if let Err(e) = serve.await {
            tracing::warn!("demo server stopped: {e}");
        }
    });
    let live = (opts.live_rate > 0.0)
        .then(|| tokio::spawn(server::run_live(shared.clone(), opts.live_rate)));
    Ok(DemoHandle {
        url: format!("http://{addr}"),
        addr,
        token: opts.token,
        stop: Some(stop_tx),
        server,
        live,
        shared,
    })
}
